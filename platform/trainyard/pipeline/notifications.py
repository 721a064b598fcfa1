"""The run summary: always logged; sent by e-mail or Slack when configured."""

from __future__ import annotations

import logging
from typing import Any

from trainyard.pipeline.platform import PlatformConfig

log = logging.getLogger(__name__)


def summarize(
    dag_run_id: str,
    best: dict[str, Any] | None,
    evaluation: dict[str, Any] | None,
    deployment: dict[str, Any] | None,
) -> dict[str, Any]:
    evaluation = evaluation or {}
    return {
        "dag_run_id": dag_run_id,
        "best_run_id": best and best.get("run_id"),
        "best_params": best and best.get("params"),
        "best_val_accuracy": best and best.get("val_accuracy"),
        "candidate_accuracy": evaluation.get("candidate_accuracy"),
        "champion_version_before": evaluation.get("champion_version"),
        "champion_accuracy_before": evaluation.get("champion_accuracy"),
        "deployed": deployment is not None,
        "champion_version_after": (deployment or {}).get("version")
        or evaluation.get("champion_version"),
        "reason": evaluation.get("reason"),
    }


def message(summary: dict[str, Any]) -> str:
    outcome = (
        f"deployed as champion v{summary['champion_version_after']}"
        if summary["deployed"]
        else f"not deployed ({summary['reason']})"
    )
    return (
        f"trainyard run {summary['dag_run_id']}: best trial {summary['best_params']} "
        f"val {summary['best_val_accuracy']}, test {summary['candidate_accuracy']}; {outcome}"
    )


def send(summary: dict[str, Any], config: PlatformConfig, context: Any) -> list[str]:
    """Log the summary and send it to every configured channel; returns the channels used."""
    text = message(summary)
    log.info("%s", text)
    channels = ["log"]
    if config.notify.smtp_to:
        from airflow.providers.smtp.notifications.smtp import SmtpNotifier  # noqa: PLC0415

        SmtpNotifier(
            to=config.notify.smtp_to,
            smtp_conn_id=config.notify.smtp_conn_id,
            subject=f"trainyard: {'deployed' if summary['deployed'] else 'not deployed'}",
            html_content=f"<pre>{text}</pre>",
        ).notify(context)
        channels.append("smtp")
    if config.notify.slack_conn_id:
        try:
            from airflow.providers.slack.notifications.slack_webhook import (  # noqa: PLC0415
                SlackWebhookNotifier,
            )
        except ImportError as exc:
            raise RuntimeError(
                "notify.slack_conn_id is set but apache-airflow-providers-slack is not installed"
            ) from exc
        SlackWebhookNotifier(slack_webhook_conn_id=config.notify.slack_conn_id, text=text).notify(
            context
        )
        channels.append("slack")
    return channels

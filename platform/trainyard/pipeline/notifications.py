"""The run summary and alerts: always logged; sent by e-mail or Slack when configured."""

from __future__ import annotations

import html
import logging
from collections.abc import Iterator
from typing import Any

from trainyard.pipeline.platform import NotifyConfig, PlatformConfig

log = logging.getLogger(__name__)


def summarize(
    dag_run_id: str,
    best: dict[str, Any] | None,
    evaluation: dict[str, Any] | None,
    deployment: dict[str, Any] | None,
) -> dict[str, Any]:
    """The run in one object. The gate's metric comes from the evaluate result (`label`,
    `candidate_value`, `direction`); results of the digits-only gate (`candidate_accuracy`)
    read as label "accuracy", higher is better."""
    best = best or {}
    evaluation = evaluation or {}
    label = evaluation.get("label") or "accuracy"
    candidate = evaluation.get("candidate_value", evaluation.get("candidate_accuracy"))
    champion = evaluation.get("champion_value", evaluation.get("champion_accuracy"))
    accuracy = label == "accuracy"
    return {
        "dag_run_id": dag_run_id,
        "best_run_id": best.get("run_id"),
        "best_params": best.get("params"),
        "best_metric": best.get("metric", "val_accuracy" if "val_accuracy" in best else None),
        "best_value": best.get("value", best.get("val_accuracy")),
        "best_val_accuracy": best.get("val_accuracy"),
        "metric": evaluation.get("metric"),
        "label": label,
        "direction": evaluation.get("direction") or "max",
        "candidate_value": candidate,
        "champion_value_before": champion,
        # The digits pipeline's keys, for readers written before the gate knew other metrics.
        "candidate_accuracy": evaluation.get("candidate_accuracy", candidate if accuracy else None),
        "champion_accuracy_before": evaluation.get(
            "champion_accuracy", champion if accuracy else None
        ),
        "champion_version_before": evaluation.get("champion_version"),
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
    better = "higher" if summary.get("direction", "max") == "max" else "lower"
    return (
        f"trainyard run {summary['dag_run_id']}: best trial {summary['best_params']} "
        f"{summary.get('best_metric') or 'selection metric'} {summary.get('best_value')}, "
        f"candidate {summary.get('label', 'accuracy')} {summary.get('candidate_value')} "
        f"({better} is better); {outcome}"
    )


def send(summary: dict[str, Any], config: PlatformConfig, context: Any) -> list[str]:
    """Log the summary and send it to every configured channel; returns the channels used."""
    subject = f"trainyard: {'deployed' if summary['deployed'] else 'not deployed'}"
    return deliver(subject, message(summary), config.notify, context)


def _smtp(notify: NotifyConfig, subject: str, text: str) -> Any:
    from airflow.providers.smtp.notifications.smtp import SmtpNotifier  # noqa: PLC0415

    return SmtpNotifier(
        to=notify.smtp_to,
        smtp_conn_id=notify.smtp_conn_id,
        subject=_literal(subject),
        html_content=f"<pre>{html.escape(_literal(text))}</pre>",
    )


def _slack(conn_id: str, text: str) -> Any:
    try:
        from airflow.providers.slack.notifications.slack_webhook import (  # noqa: PLC0415
            SlackWebhookNotifier,
        )
    except ImportError as exc:
        raise RuntimeError(
            "notify.slack_conn_id is set but apache-airflow-providers-slack is not installed"
        ) from exc
    return SlackWebhookNotifier(slack_webhook_conn_id=conn_id, text=_literal(text))


def _literal(text: str) -> str:
    """Notifiers render their fields as Jinja templates: keep braces in messages literal."""
    if "{{" not in text and "{%" not in text and "{#" not in text:
        return text
    return "{% raw %}" + text.replace("{% endraw %}", "") + "{% endraw %}"


def _notifiers(subject: str, text: str, notify: NotifyConfig) -> Iterator[tuple[str, Any]]:
    """The configured channels besides the log: (name, notifier), each made when its turn
    comes (a missing Slack provider fails only after the e-mail went out)."""
    if notify.smtp_to:
        yield "smtp", _smtp(notify, subject, text)
    if notify.slack_conn_id:
        yield "slack", _slack(notify.slack_conn_id, text)


def deliver(subject: str, text: str, notify: NotifyConfig, context: Any) -> list[str]:
    """`text` to the log and every configured channel (e-mail, Slack); the channels used."""
    log.info("%s", text)
    channels = ["log"]
    for name, notifier in _notifiers(subject, text, notify):
        notifier.notify(context)
        channels.append(name)
    return channels


async def adeliver(subject: str, text: str, notify: NotifyConfig, context: Any) -> list[str]:
    """`deliver` for the triggerer's event loop (deadline alerts run there)."""
    log.warning("%s", text)
    channels = ["log"]
    for name, notifier in _notifiers(subject, text, notify):
        await notifier.async_notify(context)
        channels.append(name)
    return channels

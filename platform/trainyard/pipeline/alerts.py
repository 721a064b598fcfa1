"""Alerts: a failed run and a missed deadline, through the same channels as the summary.

- `record_error` (every task's `on_failure_callback`, in the task's own process) keeps the
  failure's one-line error as an XCom of the failed task instance.
- `RunFailureAlert` (the DAG's `on_failure_callback`, run by the DAG processor once the
  run has failed) sends the task that failed the run, that one line and its log URL. A
  deploy whose rollout failed and was rolled back fails the run, so it alerts too.
- `deadline_missed` (the deadline alert's callback, run in the triggerer, so it works
  whichever executor runs tasks) says which run is still not finished.

Sending never raises out of a callback: a broken channel is logged, the others still send.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import asdict
from typing import Any

from trainyard.errors import ERROR_MARK
from trainyard.pipeline.notifications import adeliver, deliver
from trainyard.pipeline.platform import NotifyConfig, PlatformConfig

log = logging.getLogger(__name__)

ERROR_KEY = "trainyard_error"


def one_line(error: object) -> str:
    """The line that says what went wrong: the trainer's `error:` line, else the first line.

    A pod that never ran (an image that cannot be pulled) fails the pod operator twice: the
    start-up check says why, then the clean-up raises "Pod … returned a failure." over it. The
    first says what to fix, so its two first lines (the reason, then the image) are added.
    """
    line = _first_line(error)
    reason = getattr(error, "__cause__", None) or getattr(error, "__context__", None)
    if reason is not None and ERROR_MARK not in line and line.endswith("returned a failure."):
        return f"{line} {' '.join(_lines(reason)[:2])}".strip()
    return line


def _lines(error: object) -> list[str]:
    return [line.strip() for line in str(error).splitlines() if line.strip()]


def _first_line(error: object) -> str:
    lines = _lines(error)
    for line in lines:
        if ERROR_MARK in line:
            return line
    return lines[0] if lines else type(error).__name__


def task_label(ti: Any) -> str:
    map_index = getattr(ti, "map_index", -1)
    return f"{ti.task_id}[{map_index}]" if map_index is not None and map_index >= 0 else ti.task_id


def record_error(context: Any) -> None:
    """Task `on_failure_callback`: keep the one-line error where the run's alert finds it."""
    ti, error = context.get("ti"), context.get("exception")
    if ti is None or error is None:
        return
    line = one_line(error)
    # In the task's log as well: the log view renders a Python task's exception apart from its
    # lines, and the line is what a reader of the log looks for.
    log.error("%s failed: %s", task_label(ti), line)
    try:
        ti.xcom_push(key=ERROR_KEY, value=line)
    except Exception:  # the alert still goes out, with the run's reason instead
        log.exception("could not record the error of %s", task_label(ti))


class RunFailureAlert:
    """DAG `on_failure_callback`: which task failed the run, its error, its log."""

    def __init__(self, config: PlatformConfig) -> None:
        self.notify = config.notify

    def __call__(self, context: Any) -> None:
        subject, text = self.describe(context)
        _send(subject, text, self.notify, context)

    @staticmethod
    def describe(context: Any) -> tuple[str, str]:
        ti = context.get("ti")
        run_id = context.get("run_id") or getattr(ti, "run_id", "?")
        dag_id = getattr(context.get("dag"), "dag_id", None) or getattr(ti, "dag_id", "?")
        if ti is None:
            reason = context.get("reason") or "unknown reason"
            return f"trainyard: {dag_id} failed", f"{dag_id} run {run_id} failed ({reason})"
        error = None
        try:
            error = ti.xcom_pull(task_ids=ti.task_id, map_indexes=ti.map_index, key=ERROR_KEY)
        except Exception:
            log.exception("could not read the error of %s", task_label(ti))
        error = error or f"no error recorded (run: {context.get('reason') or 'failed'})"
        task = task_label(ti)
        return (
            f"trainyard: {dag_id} failed at {task}",
            f"{dag_id} run {run_id} failed: task {task} (try {ti.try_number}): {error}\n"
            f"log: {ti.log_url}",
        )


def _send(subject: str, text: str, notify: NotifyConfig, context: Any) -> None:
    try:
        deliver(subject, text, notify, context)
    except Exception:
        log.exception("sending the alert failed: %s", text)


async def deadline_missed(
    notify: dict[str, Any], minutes: int, context: dict[str, Any] | None = None
) -> str:
    """Deadline alert callback (in the triggerer): the run is not finished `minutes` after it
    was queued. `notify` is the platform's notify settings, carried in the callback's kwargs."""
    settings = NotifyConfig(**notify)
    run = (context or {}).get("dag_run") or {}
    deadline = (context or {}).get("deadline") or {}
    dag_id, run_id = run.get("dag_id", "?"), run.get("dag_run_id") or run.get("run_id", "?")
    subject = f"trainyard: {dag_id} missed its {minutes}-minute deadline"
    text = (
        f"{dag_id} run {run_id} is not finished {minutes} min after it was queued "
        f"(queued {run.get('queued_at')}, deadline {_when(deadline.get('deadline_time'))}, "
        f"state {run.get('state')})\nrun: {_run_url(dag_id, run_id)}"
    )
    try:
        await adeliver(subject, text, settings, context or {})
    except Exception:
        log.exception("sending the deadline alert failed: %s", text)
    return text


def deadline(config: PlatformConfig) -> Any:
    """The DAG's deadline alert: not finished `deadline_minutes` after being queued → alert.
    None when the platform sets no deadline (0)."""
    if not config.deadline_minutes:
        return None
    # airflow.sdk re-exports these lazily (invisible to type checkers): their own modules.
    from airflow.sdk.definitions.callback import AsyncCallback  # noqa: PLC0415
    from airflow.sdk.definitions.deadline import DeadlineAlert, DeadlineReference  # noqa: PLC0415

    return DeadlineAlert(
        reference=DeadlineReference.DAGRUN_QUEUED_AT,
        interval=dt.timedelta(minutes=config.deadline_minutes),
        # The triggerer runs it: every executor, and no worker slot. The kwargs are
        # serialized with the DAG: the notify settings travel with it.
        callback=AsyncCallback(
            deadline_missed,
            kwargs={"notify": asdict(config.notify), "minutes": config.deadline_minutes},
        ),
        name="trainyard_deadline",
    )


def _when(value: Any) -> str:
    return value.isoformat() if isinstance(value, dt.datetime) else str(value)


def _run_url(dag_id: str, run_id: str) -> str:
    from urllib.parse import quote  # noqa: PLC0415

    from airflow.configuration import conf  # noqa: PLC0415

    base = conf.get("api", "base_url", fallback="http://localhost:8080/").rstrip("/")
    return f"{base}/dags/{dag_id}/runs/{quote(run_id)}"

"""Failure and deadline alerts of the training DAG on the standalone platform.

Real Airflow 3 processes, a real SMTP server (aiosmtpd) and a local HTTP server standing in
for Slack's webhook endpoint (the Slack provider's own notifier posts to it). The platform
is configured with both channels and a one-minute deadline.

- A run whose validation fails alerts once it has failed: the task, its one-line error and
  its log URL, by e-mail and Slack (the DAG's failure callback, in the DAG processor).
- A run still waiting for its data a minute after being queued alerts while it is still
  running (the deadline alert's callback, in the triggerer); a run triggered behind it stays
  queued, and `trainyard demo`'s follow says why.

The days are fixed, far from the clock's: the laptop platform schedules no run of the DAG, so
no scheduled run of a new day can take its one active run, whenever the tests run.
"""

from __future__ import annotations

import base64
import datetime as dt
import email
import io
import json
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar

import numpy as np
import pytest
from aiosmtpd.controller import Controller
from rich.console import Console

from digits.data import build_day
from tests.integration.test_notifications import Inbox
from trainyard import storage
from trainyard.errors import UserError
from trainyard.processes import free_port
from trainyard.standalone import runtime
from trainyard.standalone.airflow_api import AirflowApi, state_name
from trainyard.standalone.demo import DAG_ID, follow, trigger

from .conftest import airflow_api

pytestmark = pytest.mark.integration

FAILING_DAY = dt.date(2026, 3, 2)  # its data is published, with missing values
WAITING_DAY = dt.date(2026, 3, 3)  # no data: the sensor keeps waiting
QUEUED_DAY = dt.date(2026, 3, 4)  # triggered while WAITING_DAY's run waits
QUIET = Console(file=io.StringIO())
SLACK_TOKEN = "T000/B000/alerts"


class SlackStub(BaseHTTPRequestHandler):
    """Slack's incoming-webhook endpoint: records each JSON body, answers `ok`."""

    received: ClassVar[list[tuple[str, dict[str, Any]]]] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.received.append((self.path, json.loads(body)))
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def channels() -> Iterator[tuple[Inbox, list[tuple[str, dict[str, Any]]]]]:
    inbox, smtp_port = Inbox(), free_port()
    smtp = Controller(inbox, hostname="127.0.0.1", port=smtp_port)
    smtp.start()
    slack = ThreadingHTTPServer(("127.0.0.1", free_port()), SlackStub)
    threading.Thread(target=slack.serve_forever, daemon=True).start()
    connections = {
        "AIRFLOW_CONN_SMTP_ALERTS": {
            "conn_type": "smtp",
            "host": "127.0.0.1",
            "port": smtp_port,
            "extra": {"disable_tls": True, "disable_ssl": True, "from_email": "ty@example.com"},
        },
        "AIRFLOW_CONN_SLACK_ALERTS": {
            "conn_type": "slackwebhook",
            "host": f"http://127.0.0.1:{slack.server_address[1]}/services",
            "password": SLACK_TOKEN,
        },
    }
    # The Airflow processes inherit the environment: connections as AIRFLOW_CONN_* variables.
    with pytest.MonkeyPatch.context() as env:
        for name, value in connections.items():
            env.setenv(name, json.dumps(value))
        yield inbox, SlackStub.received
    slack.shutdown()
    slack.server_close()
    smtp.stop()


@pytest.fixture(scope="module")
def stack(channels, tmp_path_factory: pytest.TempPathFactory) -> Iterator[runtime.LaptopStack]:
    started = runtime.start(
        tmp_path_factory.mktemp("alerts"),
        deadline_minutes=1,
        notify={
            "smtp_to": ["oncall@example.com"],
            "smtp_conn_id": "smtp_alerts",
            "slack_conn_id": "slack_alerts",
        },
    )
    try:
        yield started
    finally:
        started.stop()


@pytest.fixture(scope="module")
def api(stack: runtime.LaptopStack) -> AirflowApi:
    return airflow_api(stack, DAG_ID)


def mail_text(message: email.message.Message) -> str:
    part = next(p for p in message.walk() if p.get_content_type() == "text/html")
    return base64.b64decode(part.get_payload()).decode()


def wait_for(find: Callable[[], list[Any]], timeout_s: float, what: str) -> Any:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        found = find()
        if found:
            return found[0]
        time.sleep(1)
    raise AssertionError(f"no {what} within {timeout_s:.0f} s")


def test_a_failed_run_alerts_with_the_task_its_error_and_its_log(stack, api, channels):
    inbox, slack = channels
    date = FAILING_DAY.isoformat()
    frame = build_day(FAILING_DAY)
    frame.loc[:20, "pixel_10"] = np.nan
    stack.s3.client().put_object(
        Bucket="datasets",
        Key=f"digits/daily/{date}/features.parquet",
        Body=storage.parquet_bytes(frame),
    )
    run_id = trigger(api, date, {})
    # Manual runs only on the laptop, the DAG unpaused: no scheduled run at midnight.
    dag = api.dags.get_dag(DAG_ID)
    assert not dag.is_paused and dag.timetable_summary is None, dag
    assert dag.next_dagrun_run_after is None, dag
    assert state_name(follow(api, run_id, 600, QUIET).state) == "failed"

    mail = wait_for(
        lambda: [m for m in inbox.messages if run_id in mail_text(m) and "failed" in m["Subject"]],
        120,
        "failure e-mail",
    )
    assert mail["Subject"] == f"trainyard: {DAG_ID} failed at data_preparation.validate"
    assert mail["To"] == "oncall@example.com"
    text = mail_text(mail)
    # The one-line error the trainer printed, not a traceback or "exited with 1".
    [error] = [line for line in text.splitlines() if "digits validate: error:" in line]
    assert "missing values (NaN)" in error
    assert "task data_preparation.validate (try 2): digits validate: error:" in error
    log_url = f"{stack.airflow.url}/dags/{DAG_ID}/runs/{run_id}/tasks/data_preparation.validate"
    assert f"log: {log_url}?try_number=2" in text

    path, body = wait_for(
        lambda: [m for m in slack if run_id in m[1].get("text", "") and "failed" in m[1]["text"]],
        60,
        "failure Slack message",
    )
    assert path == f"/services/{SLACK_TOKEN}"
    assert "missing values (NaN)" in body["text"] and log_url in body["text"]


def test_a_run_past_its_deadline_alerts_while_it_runs(stack, api, channels):
    inbox, slack = channels
    run_id = trigger(api, WAITING_DAY.isoformat(), {})
    queued = time.monotonic()

    mail = wait_for(
        lambda: [
            m for m in inbox.messages if run_id in mail_text(m) and "deadline" in m["Subject"]
        ],
        300,
        "deadline e-mail",
    )
    assert time.monotonic() - queued >= 55  # not before the minute is up
    assert mail["Subject"] == f"trainyard: {DAG_ID} missed its 1-minute deadline"
    text = mail_text(mail)
    assert f"{DAG_ID} run {run_id} is not finished 1 min after it was queued" in text
    assert f"run: {stack.airflow.url}/dags/{DAG_ID}/runs/" in text
    wait_for(
        lambda: [m for m in slack if run_id in m[1].get("text", "") and "deadline" in m[1]["text"]],
        60,
        "deadline Slack message",
    )
    # Alerted before the end: the run is still waiting for its data.
    assert state_name(api.dag_run(DAG_ID, run_id).state) in ("running", "queued")

    # A run triggered now waits behind it (max_active_runs=1), and the demo says why.
    output = io.StringIO()
    behind = trigger(api, QUEUED_DAY.isoformat(), {})
    with pytest.raises(UserError) as timed_out:
        follow(api, behind, 25, Console(file=output))
    why = (
        f"{DAG_ID} runs 1 run at a time (max_active_runs) and {run_id} (manual run, running since "
    )
    assert f"run {behind} still queued after 25s: {why}" in str(timed_out.value)
    assert "wait_for_training_data deferred) holds it" in str(timed_out.value)
    assert f"{behind} queued: {why}" in output.getvalue()

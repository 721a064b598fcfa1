"""The notify step's e-mail channel against a real SMTP server (aiosmtpd)."""

from __future__ import annotations

import base64
import email
import json
import time

import pytest
from aiosmtpd.controller import Controller

from trainyard.pipeline import notifications
from trainyard.pipeline.platform import parse
from trainyard.processes import free_port

pytestmark = pytest.mark.integration


class Inbox:
    def __init__(self) -> None:
        self.messages: list[email.message.Message] = []

    async def handle_DATA(self, server, session, envelope):  # type: ignore[no-untyped-def]  # noqa: N802
        self.messages.append(email.message_from_bytes(envelope.content))
        return "250 OK"


@pytest.fixture
def smtp(monkeypatch):
    inbox, port = Inbox(), free_port()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    monkeypatch.setenv(
        "AIRFLOW_CONN_SMTP_TRAINYARD",
        json.dumps(
            {
                "conn_type": "smtp",
                "host": "127.0.0.1",
                "port": port,
                "extra": {
                    "disable_tls": True,
                    "disable_ssl": True,
                    "from_email": "trainyard@example.com",
                },
            }
        ),
    )
    yield inbox
    controller.stop()


def test_summary_is_mailed_when_smtp_is_configured(smtp):
    config = parse(
        {"notify": {"smtp_to": ["ml-team@example.com"], "smtp_conn_id": "smtp_trainyard"}}
    )
    summary = notifications.summarize(
        "scheduled__2026-11-20",
        {"run_id": "abc", "params": {"lr": 0.1}, "metric": "val_accuracy", "value": 0.97},
        {
            "metric": "test_accuracy",
            "label": "accuracy",
            "direction": "max",
            "candidate_value": 0.96,
            "champion_version": "1",
            "reason": "beats champion",
        },
        {"version": "2"},
    )
    assert notifications.send(summary, config, {}) == ["log", "smtp"]
    deadline = time.monotonic() + 5
    while not smtp.messages and time.monotonic() < deadline:
        time.sleep(0.1)
    [message] = smtp.messages
    assert message["To"] == "ml-team@example.com"
    assert message["Subject"] == "trainyard: deployed"
    html = next(p for p in message.walk() if p.get_content_type() == "text/html")
    body = base64.b64decode(html.get_payload()).decode()
    assert "deployed as champion v2" in body


def test_only_the_log_without_channels():
    summary = notifications.summarize("r", None, None, None)
    assert notifications.send(summary, parse({}), {}) == ["log"]

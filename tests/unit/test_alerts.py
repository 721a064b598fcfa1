"""Alert texts, the DAG's callbacks and deadline, and the deadline setting's checks."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
from dataclasses import dataclass
from typing import Any

import pytest

from tests.unit.test_dag_integrity import load_dag
from trainyard.pipeline import alerts
from trainyard.pipeline.platform import PlatformConfigError, parse

pytestmark = pytest.mark.unit

ROLLED_BACK = (
    "trainyard.stages deploy: error: local model server at http://127.0.0.1:5001 failed with "
    "v3: smoke test: 32 rows answered wrongly; rolled back: champion is v2 again and served"
)


@dataclass
class FakeTi:
    task_id: str
    map_index: int = -1
    try_number: int = 3
    dag_id: str = "ml_training_pipeline"
    run_id: str = "scheduled__2026-11-20"
    recorded: str | None = None

    @property
    def log_url(self) -> str:
        return f"http://airflow/dags/{self.dag_id}/runs/{self.run_id}/tasks/{self.task_id}"

    def xcom_pull(self, task_ids: str, map_indexes: int, key: str) -> Any:
        assert (task_ids, map_indexes, key) == (self.task_id, self.map_index, alerts.ERROR_KEY)
        return self.recorded

    def xcom_push(self, key: str, value: Any) -> None:
        assert key == alerts.ERROR_KEY
        self.recorded = value


def test_the_trainers_error_line_is_picked_from_a_long_message():
    pod_failure = f"Pod trainyard-deploy-x returned a failure.\n{ROLLED_BACK}\nremote_pod: {{...}}"
    assert alerts.one_line(pod_failure) == ROLLED_BACK
    assert alerts.one_line(ValueError("first\nsecond")) == "first"
    assert alerts.one_line(ValueError("")) == "ValueError"


def test_a_pod_that_never_ran_is_named_by_why_it_could_not_start():
    """The pod operator's clean-up error comes over its start-up check's (a real chain: raised
    in a `finally` while the first propagates, as the operator does)."""
    reason = (
        "Image cannot be pulled, unable to start: ErrImageNeverPull\n"
        'Container image "team/trainer:9" is not present with pull policy of Never'
    )
    with pytest.raises(RuntimeError) as raised:
        try:
            raise RuntimeError(reason)
        finally:
            raise RuntimeError("Pod trainyard-validate-x returned a failure.\nremote_pod: {...}")
    assert alerts.one_line(raised.value) == (
        "Pod trainyard-validate-x returned a failure. Image cannot be pulled, unable to start: "
        'ErrImageNeverPull Container image "team/trainer:9" is not present with pull policy of '
        "Never"
    )


def test_a_rolled_back_deploy_alerts_with_its_rollback_line():
    ti = FakeTi("deploy")
    alerts.record_error({"ti": ti, "exception": RuntimeError(f"{ROLLED_BACK}\n(exited with 1)")})
    subject, text = alerts.RunFailureAlert.describe(
        {"ti": ti, "run_id": ti.run_id, "reason": "task_failure"}
    )
    assert subject == "trainyard: ml_training_pipeline failed at deploy"
    assert text == (
        f"ml_training_pipeline run scheduled__2026-11-20 failed: task deploy (try 3): "
        f"{ROLLED_BACK}\nlog: {ti.log_url}"
    )


def test_a_mapped_trial_and_a_missing_error_are_named():
    ti = FakeTi("train", map_index=2)
    subject, text = alerts.RunFailureAlert.describe({"ti": ti, "reason": "task_failure"})
    assert subject.endswith("failed at train[2]")
    assert "task train[2] (try 3): no error recorded (run: task_failure)" in text
    _, text = alerts.RunFailureAlert.describe({"run_id": "r", "reason": "timed out"})
    assert text == "? run r failed (timed out)"


def test_no_deadline_unless_configured():
    assert alerts.deadline(parse({})) is None
    with pytest.raises(PlatformConfigError, match="deadline_minutes: must not be negative"):
        parse({"deadline_minutes": -5})


def test_the_deadline_callback_carries_the_notify_settings_as_json():
    config = parse({"deadline_minutes": 90, "notify": {"smtp_to": ["oncall@example.com"]}})
    alert = alerts.deadline(config)
    assert alert.interval == dt.timedelta(minutes=90)
    assert alert.reference.reference_name == "DagRunQueuedAtDeadline"
    serialized = alert.callback.serialize()
    assert serialized["path"] == "trainyard.pipeline.alerts.deadline_missed"
    assert json.loads(json.dumps(serialized["kwargs"])) == {
        "notify": {"smtp_to": ["oncall@example.com"], "smtp_conn_id": "smtp_default",
                   "slack_conn_id": None},
        "minutes": 90,
    }  # fmt: skip


def test_the_deadline_text_names_the_run():
    context = {
        "dag_run": {
            "dag_id": "ml_training_pipeline",
            "dag_run_id": "manual__x",
            "queued_at": "2026-11-20T00:00:05Z",
            "state": "running",
        },
        "deadline": {"deadline_time": dt.datetime(2026, 11, 20, 1, 30, 5, tzinfo=dt.UTC)},
    }
    text = asyncio.run(
        alerts.deadline_missed({"smtp_to": [], "slack_conn_id": None}, 90, context=context)
    )
    assert text.startswith(
        "ml_training_pipeline run manual__x is not finished 90 min after it was queued "
        "(queued 2026-11-20T00:00:05Z, deadline 2026-11-20T01:30:05+00:00, state running)"
    )
    assert "/dags/ml_training_pipeline/runs/manual__x" in text


def test_the_dag_alerts_on_failure_and_declares_the_platforms_deadline(tmp_path, monkeypatch):
    dag = load_dag(tmp_path, monkeypatch, runtime="standalone", deadline_minutes=45)
    assert isinstance(dag.on_failure_callback, alerts.RunFailureAlert)
    assert dag.default_args["on_failure_callback"] is alerts.record_error
    assert dag.get_task("deploy").on_failure_callback == [alerts.record_error]
    [deadline] = dag.deadline if isinstance(dag.deadline, list) else [dag.deadline]
    assert deadline.interval == dt.timedelta(minutes=45)
    params = dag.params.dump()
    assert params["force_deploy"] is False and params["checkpoint_every"] == 1
    assert load_dag(tmp_path, monkeypatch, runtime="standalone").deadline in (None, [])

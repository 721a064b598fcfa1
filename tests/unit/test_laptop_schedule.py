"""Runs on the laptop platform across midnight: the training DAG has no schedule there, the
demo's run ids and logical dates come from the clock it is given, and a run held in the queue
is explained (`trainyard demo` prints why)."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from tests.unit.test_dag_integrity import load_dag
from trainyard.pipeline.platform import PlatformConfigError, parse
from trainyard.standalone import demo, runtime
from trainyard.standalone.airflow_api import ApiException

pytestmark = pytest.mark.unit

# A second before midnight UTC, when CI's run of 23:14 reached the alert tests.
BEFORE_MIDNIGHT = dt.datetime(2026, 12, 7, 23, 59, 59, tzinfo=dt.UTC)


def laptop_platform_json(tmp_path: Path) -> dict[str, Any]:
    """The platform.json `trainyard up` writes (its services stand-ins: only their addresses)."""
    s3 = SimpleNamespace(endpoint="http://127.0.0.1:1")
    server = SimpleNamespace(url="http://127.0.0.1:2", folder=tmp_path / "serving")
    path = runtime.platform_config(tmp_path, s3, "http://127.0.0.1:3", server)  # type: ignore[arg-type]
    config: dict[str, Any] = json.loads(path.read_text())
    return config


def next_scheduled_run(dag: Any, last_run: dt.datetime | None) -> dt.datetime | None:
    """When the scheduler would start the DAG's next scheduled run after one at `last_run`:
    the DAG as serialized for the scheduler, asked with no clock (catchup restriction)."""
    from airflow.serialization.serialized_objects import DagSerialization  # noqa: PLC0415
    from airflow.timetables.base import DataInterval, TimeRestriction  # noqa: PLC0415

    timetable = DagSerialization.from_dict(DagSerialization.to_dict(dag)).timetable
    info = timetable.next_dagrun_info(
        last_automated_data_interval=DataInterval(last_run, last_run) if last_run else None,
        restriction=TimeRestriction(earliest=dag.start_date, latest=None, catchup=True),
    )
    return None if info is None else dt.datetime.fromisoformat(info.run_after.isoformat())


def test_the_laptop_platform_schedules_no_run_of_the_training_dag(tmp_path, monkeypatch):
    """Nothing feeds the laptop a day's data: a scheduled run at midnight would wait for it
    and hold the DAG's one active run. The scheduler starts none there, at any hour."""
    config = laptop_platform_json(tmp_path)
    assert config["schedule"] is None
    dag = load_dag(tmp_path, monkeypatch, **config)
    assert dag.schedule is None
    assert dag.max_active_runs == 1  # why a waiting run would hold every other one
    today = BEFORE_MIDNIGHT.replace(hour=0, minute=0, second=0)
    assert next_scheduled_run(dag, None) is None
    assert next_scheduled_run(dag, today) is None


def test_a_cluster_keeps_the_daily_schedule_unless_its_platform_says_otherwise(
    tmp_path, monkeypatch
):
    """On a cluster the day's midnight run follows a run that took today's slot (the CI
    collision's other half): its data is expected there, and `schedule` can move or drop it."""
    assert parse({}).schedule == "@daily"
    daily = load_dag(tmp_path, monkeypatch, runtime="kubernetes")
    today = BEFORE_MIDNIGHT.replace(hour=0, minute=0, second=0)
    assert next_scheduled_run(daily, today) == today + dt.timedelta(days=1)
    early = load_dag(tmp_path, monkeypatch, runtime="kubernetes", schedule="0 4 * * *")
    assert next_scheduled_run(early, today) == today + dt.timedelta(hours=4)
    manual = load_dag(tmp_path, monkeypatch, runtime="kubernetes", schedule=None)
    assert next_scheduled_run(manual, today) is None
    with pytest.raises(PlatformConfigError, match="schedule: empty; null for manual runs only"):
        parse({"schedule": " "})
    with pytest.raises(PlatformConfigError, match="schedule: expected str or NoneType"):
        parse({"schedule": 1})


class FakeApi:
    """The calls `trigger` and `queued_reason` make, answered from fixed records."""

    def __init__(
        self,
        taken: tuple[str, ...] = (),
        paused: bool = False,
        runs: list[Any] | None = None,
        tasks: dict[str, list[Any]] | None = None,
    ) -> None:
        self.taken = set(taken)
        self.triggered: list[tuple[str, str]] = []
        self.unpaused: list[str] = []
        self.runs = runs or []
        self.tasks = tasks or {}
        self.dags = SimpleNamespace(
            get_dag=lambda dag_id: SimpleNamespace(is_paused=paused, max_active_runs=1)
        )
        self.dag_runs = SimpleNamespace(get_dag_runs=self._get_dag_runs)

    def trigger(self, dag_id: str, logical_date: str, conf: Any, run_id: str) -> Any:
        if logical_date in self.taken:
            raise ApiException(status=409)
        self.taken.add(logical_date)
        self.triggered.append((logical_date, run_id))
        return SimpleNamespace(dag_run_id=run_id)

    def unpause(self, dag_id: str) -> None:
        self.unpaused.append(dag_id)

    def _get_dag_runs(self, dag_id: str, state: list[str], limit: int) -> Any:
        return SimpleNamespace(dag_runs=[r for r in self.runs if r.state in state])

    def task_instances(self, dag_id: str, run_id: str) -> list[Any]:
        return self.tasks.get(run_id, [])


def test_a_run_triggered_just_before_midnight_is_for_the_day_asked():
    """The day is the caller's, never the clock's: just before midnight the first run of a day
    takes its midnight, a later one its clock's time of day on that same day, after midnight
    too."""
    api = FakeApi()
    day = "2026-03-02"
    for seconds in (-1, 0, 2):  # 23:59:58, 23:59:59, 00:00:01 the next day
        now = BEFORE_MIDNIGHT + dt.timedelta(seconds=seconds)
        demo.trigger(api, day, {}, now=now)  # type: ignore[arg-type]
    assert api.triggered == [
        ("2026-03-02T00:00:00Z", "demo__2026-03-02__235958"),
        ("2026-03-02T23:59:59Z", "demo__2026-03-02__235959"),
        ("2026-03-02T00:00:01Z", "demo__2026-03-02__000001"),
    ]
    assert api.unpaused == [demo.DAG_ID] * 3


def ti(task_id: str, state: str, map_index: int = -1) -> Any:
    return SimpleNamespace(task_id=task_id, state=state, map_index=map_index)


def dag_run(run_id: str, state: str, run_type: str = "manual", start: Any = None) -> Any:
    return SimpleNamespace(dag_run_id=run_id, state=state, run_type=run_type, start_date=start)


def test_a_run_queued_behind_a_scheduled_run_waiting_for_data_is_explained():
    """CI's failure: a run queued behind the midnight run, whose sensor waits for its data."""
    midnight = BEFORE_MIDNIGHT + dt.timedelta(seconds=1)
    scheduled = dag_run("scheduled__2026-12-08T00:00:00+00:00", "running", "scheduled", midnight)
    mine = dag_run("demo__2026-12-07__235959", "queued")
    api = FakeApi(
        runs=[scheduled, mine],
        tasks={
            scheduled.dag_run_id: [
                ti("wait_for_training_data", "deferred"),
                ti("data_preparation.validate", None),  # type: ignore[arg-type]
                ti("generate_hyperparams", "success"),
            ]
        },
    )
    reason = demo.queued_reason(api, mine)  # type: ignore[arg-type]
    assert reason == (
        "ml_training_pipeline runs 1 run at a time (max_active_runs) and "
        "scheduled__2026-12-08T00:00:00+00:00 (scheduled run, running since "
        "2026-12-08 00:00:00 UTC: wait_for_training_data deferred) holds it"
    )


def test_a_queued_run_with_nothing_holding_it_or_a_paused_dag():
    mine = dag_run("demo__2026-03-02__120000", "queued")
    assert demo.queued_reason(FakeApi(runs=[mine]), mine) is None  # type: ignore[arg-type]
    paused = demo.queued_reason(FakeApi(paused=True, runs=[mine]), mine)  # type: ignore[arg-type]
    assert paused == "ml_training_pipeline is paused: its runs start once it is unpaused"
    running = dag_run("demo__2026-03-02__120000", "running")
    assert demo.queued_reason(FakeApi(runs=[running]), running) is None  # type: ignore[arg-type]

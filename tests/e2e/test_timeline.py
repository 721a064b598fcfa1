"""The run timeline (timeline.py) from hand-written task instances and pod records: the phases,
their totals, the tables; and the pod times a PodRecord reads from a Pod object."""

from __future__ import annotations

import datetime as dt
import enum
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from . import figures
from .kube import PodRecord
from .timeline import (
    TaskRun,
    format_comparison,
    format_table,
    pod_label,
    ratio_of,
    timeline,
    write_run_tables,
)

pytestmark = pytest.mark.unit

T0 = dt.datetime(2026, 1, 1, 10, 0, 0, tzinfo=dt.UTC)
RUN = "demo__2026-01-01__100000"


def at(seconds: float) -> dt.datetime:
    return T0 + dt.timedelta(seconds=seconds)


def pod(
    name: str,
    task_id: str,
    created: float,
    scheduled: float | None = None,
    started: float | None = None,
    finished: float | None = None,
    map_index: int | None = None,
    try_number: int = 1,
    run_id: str = RUN,
) -> PodRecord:
    labels = {"dag_id": "ml_training_pipeline", "task_id": task_id, "run_id": run_id}
    labels["try_number"] = str(try_number)
    if map_index is not None:
        labels["map_index"] = str(map_index)
    return PodRecord(
        uid=name,
        name=name,
        namespace="ns",
        labels=labels,
        created=at(created),
        scheduled=None if scheduled is None else at(scheduled),
        started=None if started is None else at(started),
        finished=None if finished is None else at(finished),
    )


def ti(
    task_id: str, queued: float | None, start: float | None, end: float | None, map_index: int = -1
) -> TaskRun:
    return TaskRun(
        task_id=task_id,
        map_index=map_index,
        state="success",
        queued=None if queued is None else at(queued),
        start=None if start is None else at(start),
        end=None if end is None else at(end),
    )


# A kind run: a sensor on another executor (no pod), a pod task, a Python task in a worker
# pod, two mapped trials, a skipped task (no times).
KIND_TIS = [
    ti("wait_for_training_data", 0, 1, 2),
    ti("data_preparation.validate", 3, 10, 30),
    ti("generate_hyperparams", 31, 38, 40),
    ti("train", 41, 48, 70, map_index=0),
    ti("train", 41.5, 49, 75, map_index=1),
    ti("skip_deployment", None, 71, 71),  # skipped: never queued
    ti("notify", None, None, None),  # never reached
]
WORKERS = [
    pod("w-validate", "data_preparation.validate", created=4, scheduled=4, started=6),
    pod("w-hyper", "generate_hyperparams", created=32, scheduled=33, started=35),
    pod("w-train-0", "train", created=42, scheduled=42, started=44, map_index=0),
    pod("w-train-1", "train", created=42, scheduled=43, started=45, map_index=1),
    # Another run's pod of the same task, and an earlier try's: neither counts.
    pod("w-other-run", "data_preparation.validate", 0, 0, 0, run_id="demo__other"),
    pod("w-try-0", "generate_hyperparams", created=1, scheduled=1, started=1, try_number=0),
]
TRAINERS = [
    pod("p-validate", "data_preparation.validate", 12, 13, 16, 26),
    pod("p-train-0", "train", 50, 50, 52, 66, map_index=0),
    pod("p-train-1", "train", 51, 53, 55, 71, map_index=1),
]


def kind_run() -> Any:
    return timeline(KIND_TIS, RUN, WORKERS, TRAINERS, dag_id="ml_training_pipeline")


def test_a_pod_task_has_every_phase_from_queued_to_the_next_task_queued() -> None:
    run = kind_run()
    validate = next(t for t in run.tasks if t.task.key == "data_preparation.validate")
    assert validate.worker is not None and validate.worker.name == "w-validate"
    assert validate.trainer is not None and validate.trainer.name == "p-validate"
    assert validate.phases() == {
        "q→ws": 1.0,  # queued at 3, worker scheduled at 4
        "ws→wr": 2.0,
        "wr→s": 4.0,  # worker started at 6, the task at 10
        "s→pc": 2.0,
        "pc→ps": 1.0,
        "ps→pr": 3.0,
        "pr→pd": 10.0,
        "pd→e": 4.0,
        "e→nq": 1.0,  # generate_hyperparams queued at 31
        "q→s": 7.0,
        "s→e": 20.0,
        "q→e": 27.0,
    }
    # The chain adds up to the task instance's own span.
    phases = validate.phases()
    chain = ("q→ws", "ws→wr", "wr→s", "s→pc", "pc→ps", "ps→pr", "pr→pd", "pd→e")
    assert sum(phases[n] or 0 for n in chain) == phases["q→e"]


def test_tasks_without_pods_leave_the_pod_cells_empty() -> None:
    run = kind_run()
    by_key = {t.task.key: t for t in run.tasks}
    sensor = by_key["wait_for_training_data"].phases()
    assert {n: v for n, v in sensor.items() if v is not None} == {
        "e→nq": 1.0,
        "q→s": 1.0,
        "s→e": 1.0,
        "q→e": 2.0,
    }
    # A Python task in a worker pod: worker phases, no trainer phases.
    hyper = by_key["generate_hyperparams"]
    assert hyper.worker is not None and hyper.worker.name == "w-hyper"  # not the earlier try's
    assert hyper.trainer is None
    phases = hyper.phases()
    assert (phases["q→ws"], phases["ws→wr"], phases["wr→s"]) == (2.0, 2.0, 3.0)
    assert phases["s→pc"] is None and phases["pr→pd"] is None and phases["pd→e"] is None
    skipped = by_key["skip_deployment"].phases()
    assert {n: v for n, v in skipped.items() if v is not None} == {"s→e": 0.0}
    assert set(by_key["notify"].phases().values()) == {None}


def test_mapped_tasks_get_the_pods_of_their_own_index_and_rows_follow_the_queue() -> None:
    run = kind_run()
    assert [t.task.key for t in run.tasks] == [
        "wait_for_training_data",
        "data_preparation.validate",
        "generate_hyperparams",
        "train[0]",
        "train[1]",
        "skip_deployment",  # never queued: where it ended
        "notify",  # no times at all: last
    ]
    trials = [t for t in run.tasks if t.task.task_id == "train"]
    assert [(t.worker and t.worker.name, t.trainer and t.trainer.name) for t in trials] == [
        ("w-train-0", "p-train-0"),
        ("w-train-1", "p-train-1"),
    ]
    assert trials[1].phases()["pr→pd"] == 16.0
    # The last tasks to end have no next task queued.
    assert trials[0].phases()["e→nq"] is None and trials[1].phases()["e→nq"] is None


def test_totals_are_sums_over_tasks_and_wall_time_spans_first_queued_to_last_end() -> None:
    run = kind_run()
    totals = run.totals()
    assert totals["pr→pd"] == 10.0 + 14.0 + 16.0
    assert totals["q→e"] == 2.0 + 27.0 + 9.0 + 29.0 + 33.5
    assert totals["s→pc"] == 2.0 + 2.0 + 2.0
    assert run.wall_s == 75.0


def test_several_pods_for_one_try_take_the_first_and_are_marked() -> None:
    """A deferred task resumes in a second worker pod of the same try."""
    second = pod("w-validate-resumed", "data_preparation.validate", 20, 20, 21)
    run = timeline(KIND_TIS, RUN, [*WORKERS, second], TRAINERS)
    validate = next(t for t in run.tasks if t.task.key == "data_preparation.validate")
    assert validate.worker is not None and validate.worker.name == "w-validate"
    assert validate.label == "data_preparation.validate+"
    assert "more than one worker or trainer pod" in format_table(run)


def test_the_kind_table_has_a_column_per_phase_and_the_totals() -> None:
    text = format_table(kind_run(), "kind: run x")
    lines = text.splitlines()
    assert lines[0] == "kind: run x"
    header = lines[1].split()
    assert header == [
        "task", "q→ws", "ws→wr", "wr→s", "s→pc", "pc→ps", "ps→pr", "pr→pd", "pd→e",
        "e→nq", "q→s", "s→e", "q→e",
    ]  # fmt: skip
    # Fixed width: numbers right-aligned under their names; rows with a last cell as long as
    # the header, empty cells at the end left off.
    rows = lines[2:9]
    assert len({len(line) for line in [lines[1], *rows[:5], lines[9]]}) == 1, text
    assert rows[5].endswith("0.0") and len(rows[5]) == lines[1].index("s→e") + len("s→e")
    assert rows[6] == "notify"
    validate = next(line for line in rows if line.startswith("data_preparation.validate "))
    pr_pd = lines[1].index("pr→pd") + len("pr→pd")
    assert validate[:pr_pd].endswith("10.0")
    sensor = next(line for line in rows if line.startswith("wait_for_training_data "))
    assert sensor[: lines[1].index("e→nq")].strip() == "wait_for_training_data"
    total = next(line for line in lines if line.startswith("total (sum over tasks)"))
    assert total.split()[-1] == "100.5"  # q→e
    assert "wall time (first task queued → last task end): 75.0 s" in text
    assert "pr→pd  trainer container started → finished" in text


def test_the_laptop_table_has_only_the_task_instance_phases() -> None:
    laptop = timeline(
        [ti("wait_for_training_data", 0, 0.5, 1), ti("data_preparation.validate", 1.5, 2, 6)],
        "laptop-run",
    )
    text = format_table(laptop)
    lines = text.splitlines()
    assert lines[0] == "run laptop-run: seconds per phase"
    assert lines[1].split() == ["task", "e→nq", "q→s", "s→e", "q→e"]
    assert lines[2].split() == ["wait_for_training_data", "0.5", "0.5", "0.5", "1.0"]
    assert lines[3].split() == ["data_preparation.validate", "0.5", "4.0", "4.5"]
    assert "q→ws" not in text and "Pod times" not in text
    assert laptop.wall_s == 6.0


def test_the_comparison_puts_both_runs_totals_side_by_side_with_their_ratio() -> None:
    kind = kind_run()
    laptop = timeline(
        [ti("wait_for_training_data", 0, 0.5, 1), ti("data_preparation.validate", 1, 2, 15)],
        "laptop-run",
    )
    assert ratio_of(kind, laptop) == 5.0
    text = format_comparison(kind, laptop)
    lines = text.splitlines()
    assert lines[1].split() == ["phase", "kind", "laptop", "kind/laptop"]
    wall = next(line for line in lines if line.startswith("wall time "))
    assert wall.split() == ["wall", "time", "75.0", "15.0", "5.00"]
    q_e = next(line for line in lines if line.startswith("q→e"))
    assert q_e.split()[-3:] == ["100.5", "15.0", "6.70"]
    assert lines[-1] == "wall time ratio kind/laptop: 5.00 (tasks: 7 and 2)"


def test_task_instances_from_the_rest_api() -> None:
    class State(enum.Enum):
        SUCCESS = "success"

    response = SimpleNamespace(
        task_id="train",
        map_index=2,
        try_number=3,
        state=State.SUCCESS,
        queued_when=at(1),
        start_date=at(2),
        end_date=at(3),
    )
    task = TaskRun.from_api(response)
    assert task == TaskRun("train", 2, 3, "success", at(1), at(2), at(3))
    assert task.key == "train[2]"


def test_run_ids_are_matched_as_airflow_writes_them_into_pod_labels() -> None:
    assert pod_label(RUN) == RUN
    run_id = "manual__2026-01-01T00:00:00+00:00"
    from airflow.providers.cncf.kubernetes.pod_generator import (  # noqa: PLC0415
        make_safe_label_value,
    )

    assert pod_label(run_id) == make_safe_label_value(run_id) != run_id
    tis = [ti("data_preparation.validate", 3, 10, 30)]
    workers = [pod("w", "data_preparation.validate", 4, 4, 6, run_id=pod_label(run_id))]
    (task,) = timeline(tis, run_id, workers).tasks
    assert task.worker is not None


DAY = "2026-01-01"
POD_OBJECT: dict[str, Any] = {
    "kind": "Pod",
    "metadata": {
        "uid": "u1",
        "name": "train-1",
        "namespace": "training",
        "creationTimestamp": "2026-01-01T10:00:01Z",
        "labels": {"task_id": "train", "map_index": "0", "run_id": RUN},
        "annotations": {"run_id": "manual__x"},
    },
    "spec": {
        "nodeName": "worker",
        "containers": [{"name": "sidecar"}, {"name": "base"}],
    },
    "status": {
        "phase": "Running",
        "conditions": [
            {"type": "Initialized", "status": "True", "lastTransitionTime": f"{DAY}T10:00:02Z"},
            {"type": "PodScheduled", "status": "True", "lastTransitionTime": f"{DAY}T10:00:03Z"},
        ],
        "containerStatuses": [
            {"name": "sidecar", "state": {"running": {"startedAt": "2026-01-01T10:00:04Z"}}},
            {"name": "base", "state": {"running": {"startedAt": "2026-01-01T10:00:05Z"}}},
        ],
    },
}


def test_a_pod_record_keeps_the_pods_times_labels_and_annotations() -> None:
    record = PodRecord.from_object(POD_OBJECT)
    assert (record.created, record.scheduled, record.started, record.finished) == (
        at(1),
        at(3),
        at(5),  # the main container `base`, not the sidecar
        None,
    )
    assert record.labels["map_index"] == "0" and record.annotations == {"run_id": "manual__x"}
    assert (record.namespace, record.node, record.phase) == ("training", "worker", "Running")


def test_a_later_event_of_the_pod_adds_the_finish_and_keeps_what_it_lacks() -> None:
    first = PodRecord.from_object(POD_OBJECT)
    deleted = {
        **POD_OBJECT,
        "spec": {"containers": POD_OBJECT["spec"]["containers"]},  # no node name
        "status": {
            "phase": "Succeeded",
            "containerStatuses": [
                {
                    "name": "base",
                    "state": {
                        "terminated": {
                            "startedAt": "2026-01-01T10:00:05Z",
                            "finishedAt": "2026-01-01T10:00:09Z",
                        }
                    },
                }
            ],
        },
    }
    record = PodRecord.from_object(deleted).merged(first)
    assert (record.created, record.scheduled, record.started, record.finished) == (
        at(1),
        at(3),
        at(5),
        at(9),
    )
    assert (record.node, record.phase) == ("worker", "Succeeded")


def test_the_kind_tests_write_each_runs_table_into_the_artifacts(tmp_path: Path) -> None:
    class Api:
        def task_instances(self, dag_id: str, run_id: str) -> list[TaskRun]:
            assert dag_id == "ml_training_pipeline"
            if run_id != RUN:
                raise RuntimeError("no such run")
            return KIND_TIS

    before = len(figures.FIGURES)
    try:
        paths = write_run_tables(
            Api(), [RUN, "gone"], WORKERS, TRAINERS, tmp_path / "timelines", "cpu first day",
            dag_id="ml_training_pipeline",
        )  # fmt: skip
        added = figures.FIGURES[before:]
    finally:
        del figures.FIGURES[before:]
    assert [p.name for p in paths] == [
        f"timeline-cpu_first_day-{RUN}.txt",
        "timeline-cpu_first_day-gone.txt",
    ]
    table = paths[0].read_text(encoding="utf-8")
    assert table.startswith(f"cpu first day: run {RUN}, seconds per phase\n")
    assert "data_preparation.validate" in table and "pr→pd" in table
    # A run whose table cannot be made says why, and the test goes on.
    assert "no table (RuntimeError: no such run)" in paths[1].read_text(encoding="utf-8")
    assert added == [table.rstrip("\n"), paths[1].read_text(encoding="utf-8").rstrip("\n")]


def test_tables_are_written_even_without_an_airflow_api(tmp_path: Path) -> None:
    """After a failed journey (in a `finally`) the API may be gone: the file says so."""

    def no_api() -> None:
        raise ConnectionError("port-forward closed")

    before = len(figures.FIGURES)
    try:
        (path,) = write_run_tables(no_api, [RUN], [], [], tmp_path, "x", dag_id="d")
    finally:
        del figures.FIGURES[before:]
    assert "no Airflow API (ConnectionError: port-forward closed)" in path.read_text()

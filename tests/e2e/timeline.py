"""Where a DAG run's time goes: per task, the phases between Airflow's task instance times and
the times of the pods the task ran (its KubernetesExecutor worker pod, its trainer pod).

Pure computation and formatting: the inputs are the run's task instances as the REST API returns
them (AirflowApi.task_instances) and PodRecords of the pods seen during the run (kube.py's
PodRecorder, one on the release namespace for worker pods, one on the training namespace for
trainer pods). A task without a pod (a Python task on another executor, every task of the laptop
runtime) leaves those cells empty. `write_run_tables` is the one function that reads the API and
writes files, for the kind tests.

Pod times are the API server's and kubelet's, in whole seconds, so a pod phase is exact to about
a second; task instance times are Airflow's, to the microsecond.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .kube import PodRecord

# The points of a task's life, in order. q/s/e: the task instance's queued, start, end;
# ws/wr: its worker pod scheduled, container running; pc/ps/pr/pd: its trainer pod created,
# scheduled, container running, container done; nq: the next task queued after its end.
POD_PHASES: tuple[tuple[str, str, str], ...] = (
    ("q→ws", "q", "ws"),
    ("ws→wr", "ws", "wr"),
    ("wr→s", "wr", "s"),
    ("s→pc", "s", "pc"),
    ("pc→ps", "pc", "ps"),
    ("ps→pr", "ps", "pr"),
    ("pr→pd", "pr", "pd"),
    ("pd→e", "pd", "e"),
)
TASK_PHASES: tuple[tuple[str, str, str], ...] = (
    ("e→nq", "e", "nq"),
    ("q→s", "q", "s"),
    ("s→e", "s", "e"),
    ("q→e", "q", "e"),
)
LEGEND_POD = (
    "q→ws   task queued → its worker pod scheduled (executor, Kubernetes scheduler)",
    "ws→wr  worker pod scheduled → its container started (kubelet, container start)",
    "wr→s   worker container started → task start (Airflow's start-up in the worker)",
    "s→pc   task start → trainer pod created (the pod operator)",
    "pc→ps  trainer pod created → scheduled",
    "ps→pr  trainer pod scheduled → its container started",
    "pr→pd  trainer container started → finished (the trainer's own work)",
    "pd→e   trainer finished → task end (the operator: logs, XCom, pod cleanup)",
)
LEGEND_TASK = (
    "e→nq   task end → the next task queued (scheduler latency; none after the last task)",
    "q→s, s→e, q→e  queued → start → end of the task instance (Airflow's own times)",
)
LEGEND_MORE = "+      more than one worker or trainer pod for the task's try: the first one's times"
# Kubernetes label values: up to 63 characters, alphanumeric at both ends, -_. between.
_SAFE_LABEL = re.compile(r"[A-Za-z0-9]([A-Za-z0-9_.-]{0,61}[A-Za-z0-9])?")


def pod_label(value: str) -> str:
    """A value as Airflow writes it into a pod label (run ids hold ':' and '+', which labels
    cannot): unchanged where it is a valid label value, else Airflow's own conversion."""
    if _SAFE_LABEL.fullmatch(value):
        return value
    from airflow.providers.cncf.kubernetes.pod_generator import (  # noqa: PLC0415 (slow import)
        make_safe_label_value,
    )

    return str(make_safe_label_value(value))


@dataclass(frozen=True)
class TaskRun:
    """One task instance of a run, with Airflow's times."""

    task_id: str
    map_index: int = -1
    try_number: int = 1
    state: str | None = None
    queued: dt.datetime | None = None
    start: dt.datetime | None = None
    end: dt.datetime | None = None

    @property
    def key(self) -> str:
        """`data_preparation.validate`; mapped ones as `train[0]`."""
        return self.task_id + (f"[{self.map_index}]" if self.map_index >= 0 else "")

    @classmethod
    def from_api(cls, ti: Any) -> TaskRun:
        """From the REST API's TaskInstanceResponse (queued_when; queued_dttm in the database)."""
        state = getattr(ti, "state", None)
        map_index = getattr(ti, "map_index", None)
        return cls(
            task_id=ti.task_id,
            map_index=-1 if map_index is None else int(map_index),
            try_number=int(getattr(ti, "try_number", None) or 1),
            state=None if state is None else str(getattr(state, "value", state)),
            queued=getattr(ti, "queued_when", None) or getattr(ti, "queued_dttm", None),
            start=getattr(ti, "start_date", None),
            end=getattr(ti, "end_date", None),
        )


@dataclass
class TaskTimeline:
    task: TaskRun
    worker: PodRecord | None = None
    trainer: PodRecord | None = None
    next_queued: dt.datetime | None = None
    worker_pods: int = 0
    trainer_pods: int = 0

    def points(self) -> dict[str, dt.datetime | None]:
        worker, trainer = self.worker, self.trainer
        return {
            "q": self.task.queued,
            # Scheduled; its creation where no PodScheduled condition was seen.
            "ws": (worker.scheduled or worker.created) if worker else None,
            "wr": worker.started if worker else None,
            "s": self.task.start,
            "pc": trainer.created if trainer else None,
            "ps": trainer.scheduled if trainer else None,
            "pr": trainer.started if trainer else None,
            "pd": trainer.finished if trainer else None,
            "e": self.task.end,
            "nq": self.next_queued,
        }

    def phases(self) -> dict[str, float | None]:
        """Seconds per phase (POD_PHASES, TASK_PHASES); None where a point is unknown."""
        points = self.points()
        result: dict[str, float | None] = {}
        for name, start, end in (*POD_PHASES, *TASK_PHASES):
            first, last = points[start], points[end]
            result[name] = None if first is None or last is None else seconds(first, last)
        return result

    @property
    def label(self) -> str:
        more = self.worker_pods > 1 or self.trainer_pods > 1
        return self.task.key + ("+" if more else "")


@dataclass
class RunTimeline:
    run_id: str
    tasks: list[TaskTimeline] = field(default_factory=list)
    # Whether pods were observed at all (kind), or the run has only Airflow's times (laptop).
    with_pods: bool = False

    @property
    def wall_s(self) -> float | None:
        """First task queued → last task end."""
        queued = [t.task.queued for t in self.tasks if t.task.queued is not None]
        ends = [t.task.end for t in self.tasks if t.task.end is not None]
        if not queued or not ends:
            return None
        return seconds(min(queued), max(ends))

    def totals(self) -> dict[str, float | None]:
        """Per phase, the sum over the tasks that have it (None where none has)."""
        sums: dict[str, float | None] = {}
        for task in self.tasks:
            for name, value in task.phases().items():
                if value is not None:
                    sums[name] = (sums.get(name) or 0.0) + value
                else:
                    sums.setdefault(name, None)
        return sums


def seconds(first: dt.datetime, last: dt.datetime) -> float:
    return (last - first).total_seconds()


def _pods_of(task: TaskRun, pods: Iterable[PodRecord]) -> list[PodRecord]:
    """The pods of this task instance's try, oldest first (no pod carries the try: those of
    the latest try that has pods)."""
    task_label = pod_label(task.task_id)
    index = str(task.map_index) if task.map_index >= 0 else None
    mine = [
        p
        for p in pods
        if p.labels.get("task_id") == task_label and p.labels.get("map_index") == index
    ]
    this_try = [p for p in mine if p.labels.get("try_number") == str(task.try_number)]
    if not this_try and mine:
        latest = max(_try_of(p) for p in mine)
        this_try = [p for p in mine if _try_of(p) == latest]
    far = dt.datetime.max.replace(tzinfo=dt.UTC)
    return sorted(this_try, key=lambda p: (p.created or far, p.name))


def _try_of(pod: PodRecord) -> int:
    value = pod.labels.get("try_number", "")
    return int(value) if value.isdigit() else 0


def timeline(
    task_instances: Iterable[Any],
    run_id: str,
    workers: Sequence[PodRecord] = (),
    trainers: Sequence[PodRecord] = (),
    dag_id: str | None = None,
    with_pods: bool | None = None,
) -> RunTimeline:
    """The run's tasks (REST API responses or TaskRuns) with their pods, in the order they
    were queued (a task never queued, like a skipped one, where it started or ended). Pods of
    other runs (and of other DAGs, given dag_id) are left out by their labels. with_pods:
    whether the table shows pod phases (default: whether any pod is given)."""
    tasks = [t if isinstance(t, TaskRun) else TaskRun.from_api(t) for t in task_instances]
    run_label = pod_label(run_id)
    dag_label = pod_label(dag_id) if dag_id else None

    def of_run(pods: Sequence[PodRecord]) -> list[PodRecord]:
        return [
            p
            for p in pods
            if p.labels.get("run_id") == run_label
            and (dag_label is None or p.labels.get("dag_id") == dag_label)
        ]

    run_workers, run_trainers = of_run(workers), of_run(trainers)
    queued = sorted(t.queued for t in tasks if t.queued is not None)
    far = dt.datetime.max.replace(tzinfo=dt.UTC)
    rows = []
    for task in sorted(tasks, key=lambda t: (t.queued or t.start or t.end or far, t.key)):
        own_workers, own_trainers = _pods_of(task, run_workers), _pods_of(task, run_trainers)
        end = task.end
        rows.append(
            TaskTimeline(
                task=task,
                worker=own_workers[0] if own_workers else None,
                trainer=own_trainers[0] if own_trainers else None,
                next_queued=None if end is None else next((q for q in queued if q >= end), None),
                worker_pods=len(own_workers),
                trainer_pods=len(own_trainers),
            )
        )
    shown = bool(workers or trainers) if with_pods is None else with_pods
    return RunTimeline(run_id=run_id, tasks=rows, with_pods=shown)


# ---- text ------------------------------------------------------------------------------------

WIDTH = 7  # a number column


def _cell(value: float | None) -> str:
    return "" if value is None else f"{value:.1f}"


def _wall(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f} s"


def format_table(run: RunTimeline, title: str = "") -> str:
    """A fixed-width table: a row per task, a column per phase (seconds), their totals."""
    names = [n for n, _, _ in POD_PHASES] if run.with_pods else []
    names += [n for n, _, _ in TASK_PHASES]
    label_width = max([len("total (sum over tasks)"), *(len(t.label) for t in run.tasks)]) + 2
    lines = [title or f"run {run.run_id}: seconds per phase"]
    lines.append("task".ljust(label_width) + "".join(n.rjust(WIDTH) for n in names))
    for task in run.tasks:
        phases = task.phases()
        cells = "".join(_cell(phases[n]).rjust(WIDTH) for n in names)
        lines.append((task.label.ljust(label_width) + cells).rstrip())
    totals = run.totals()
    lines.append("-" * (label_width + WIDTH * len(names)))
    lines.append(
        "total (sum over tasks)".ljust(label_width)
        + "".join(_cell(totals.get(n)).rjust(WIDTH) for n in names)
    )
    lines.append(f"wall time (first task queued → last task end): {_wall(run.wall_s)}")
    lines.append("")
    legend = [*LEGEND_POD, *LEGEND_TASK] if run.with_pods else list(LEGEND_TASK)
    if any(t.worker_pods > 1 or t.trainer_pods > 1 for t in run.tasks):
        legend.append(LEGEND_MORE)
    lines += legend
    if run.with_pods:
        lines.append("Pod times are whole seconds (Kubernetes): a pod phase is exact to ~1 s.")
    return "\n".join(lines) + "\n"


def format_comparison(
    kind: RunTimeline, laptop: RunTimeline, names: tuple[str, str] = ("kind", "laptop")
) -> str:
    """The two runs' totals per task-level phase and wall times side by side, with their ratio
    (first / second)."""
    first, second = kind.totals(), laptop.totals()
    rows: list[tuple[str, float | None, float | None]] = [
        (f"{name} (sum over tasks)", first.get(name), second.get(name))
        for name, _, _ in TASK_PHASES
    ]
    rows.append(("wall time", kind.wall_s, laptop.wall_s))
    width = max(len(r[0]) for r in rows) + 2
    ratio_name = f"{names[0]}/{names[1]}"
    lines = [
        f"{names[0]} run {kind.run_id} beside {names[1]} run {laptop.run_id}: seconds",
        "phase".ljust(width) + names[0].rjust(9) + names[1].rjust(9) + ratio_name.rjust(14),
    ]
    for label, a, b in rows:
        ratio = "" if a is None or not b else f"{a / b:.2f}"
        line = label.ljust(width) + _cell(a).rjust(9) + _cell(b).rjust(9) + ratio.rjust(14)
        lines.append(line.rstrip())
    wall_ratio = ratio_of(kind, laptop)
    lines.append(
        f"wall time ratio {ratio_name}: "
        + ("-" if wall_ratio is None else f"{wall_ratio:.2f}")
        + f" (tasks: {len(kind.tasks)} and {len(laptop.tasks)})"
    )
    return "\n".join(lines) + "\n"


def ratio_of(first: RunTimeline, second: RunTimeline) -> float | None:
    """first's wall time / second's."""
    a, b = first.wall_s, second.wall_s
    return None if a is None or not b else a / b


# ---- for the kind tests ----------------------------------------------------------------------


def worker_pods(release_name: str) -> str:
    """The label selector of a release's Airflow worker pods (the chart's pod template labels
    them component=worker; the KubernetesExecutor adds dag_id, task_id, run_id, try_number)."""
    return f"app.kubernetes.io/instance={release_name},app.kubernetes.io/component=worker"


def write_run_tables(
    airflow: Any,
    run_ids: Sequence[str],
    workers: Sequence[PodRecord],
    trainers: Sequence[PodRecord],
    folder: Path,
    label: str,
    dag_id: str | None = None,
) -> list[Path]:
    """Each run's table into folder/timeline-<label>-<run id>.txt and into the printed figures;
    its task instances read from `airflow`: an AirflowApi, or what makes one (an Endpoints'
    `airflow` method, called here). Best effort, so that it may run in a `finally`: a table
    that cannot be made says why in its file, and nothing is raised."""
    from . import figures  # noqa: PLC0415 (the computation above needs none of it)

    if dag_id is None:
        from trainyard.standalone.demo import DAG_ID as dag_id  # noqa: N811, PLC0415

    api, error = airflow, ""
    if callable(airflow):
        try:
            api = airflow()
        except Exception as exc:
            error = f"{type(exc).__name__}: {exc}"
    written = []
    for run_id in run_ids:
        try:
            if error:
                raise RuntimeError(f"no Airflow API ({error})")
            tis = api.task_instances(dag_id, run_id)
            run = timeline(tis, run_id, workers, trainers, dag_id, with_pods=True)
            text = format_table(run, f"{label}: run {run_id}, seconds per phase")
        except Exception as exc:  # a report, not an assertion
            text = f"{label}: run {run_id}: no table ({type(exc).__name__}: {exc})\n"
        safe = re.sub(r"[^A-Za-z0-9_.-]+", "_", f"timeline-{label}-{run_id}")[:150]
        try:
            path = folder / f"{safe}.txt"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
            written.append(path)
        except OSError as exc:
            text += f"(not written to {folder}: {exc})\n"
        figures.table(text)
    return written

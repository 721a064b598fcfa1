"""`trainyard demo`: the training pipeline end to end on this machine.

up → publish a day of data → trigger `ml_training_pipeline` through the Airflow
REST API → follow it task by task → print (and optionally write) a summary →
down, unless `--keep` or the platform was already up.
"""

from __future__ import annotations

import datetime as dt
import json
import time
from pathlib import Path
from typing import Any

from airflow_client.client import DAGRunResponse, TaskInstanceResponse
from rich.console import Console
from rich.live import Live
from rich.table import Table

from trainyard.errors import UserError
from trainyard.standalone import runtime
from trainyard.standalone.airflow_api import (
    AirflowApi,
    ApiException,
    read_offloaded,
    state_name,
)
from trainyard.standalone.services import s3_client
from trainyard.standalone.stages import run_stage

DAG_ID = "ml_training_pipeline"
STATE_STYLE = {
    "success": "green",
    "failed": "red",
    "upstream_failed": "red",
    "running": "yellow",
    "deferred": "cyan",
    "skipped": "dim",
    "up_for_retry": "magenta",
    "queued": "blue",
}
FINISHED = ("success", "failed", "skipped", "upstream_failed", "removed")
# A run queued this long is not just waiting for the scheduler's next loop: say why.
QUEUED_REASON_AFTER_S = 10


def publish(workdir: Path, date: str) -> str:
    args = ["publish", "--root", "s3://datasets/digits", "--date", date]
    return str(run_stage(args, runtime.client_env(workdir))["data_url"])


def trigger(
    api: AirflowApi, date: str, conf: dict[str, Any], now: dt.datetime | None = None
) -> str:
    """Trigger a run for `date`; the first of the day takes midnight, the scheduled slot (on a
    platform that schedules the DAG), a later one `now`'s time of day on `date`."""
    stamp = (now or dt.datetime.now(dt.UTC)).strftime("%H%M%S")
    for time_of_day in ("00:00:00", f"{stamp[:2]}:{stamp[2:4]}:{stamp[4:]}"):
        try:
            run = api.trigger(
                DAG_ID, f"{date}T{time_of_day}Z", conf, run_id=f"demo__{date}__{stamp}"
            )
        except ApiException as exc:
            if exc.status == 409:
                continue  # a run already holds that logical date
            raise
        # Unpaused only now: a scheduler that schedules the DAG then sees the slot taken and
        # adds no twin.
        api.unpause(DAG_ID)
        return str(run.dag_run_id)
    raise UserError(f"could not trigger {DAG_ID} for {date}")


def _unfinished_tasks(api: AirflowApi, dag_id: str, run_id: str) -> str:
    tasks = [
        f"{ti.task_id}{f'[{ti.map_index}]' if ti.map_index >= 0 else ''} {state_name(ti.state)}"
        for ti in api.task_instances(dag_id, run_id)
        if state_name(ti.state) not in (None, *FINISHED)  # None: not started
    ]
    shown = ", ".join(tasks[:3]) + (f" and {len(tasks) - 3} more" if len(tasks) > 3 else "")
    return shown or "no task running"


def queued_reason(api: AirflowApi, run: DAGRunResponse, dag_id: str = DAG_ID) -> str | None:
    """Why `run` is still queued, in one line, or None when nothing holds it (the scheduler
    starts it at its next loop): the DAG is paused, or other runs take all its active runs
    (`max_active_runs`), each named with its type, start and unfinished tasks."""
    if state_name(run.state) != "queued":
        return None
    dag = api.dags.get_dag(dag_id)
    if dag.is_paused:
        return f"{dag_id} is paused: its runs start once it is unpaused"
    active = api.dag_runs.get_dag_runs(dag_id, state=["running"], limit=100).dag_runs
    holders = [r for r in active if r.dag_run_id != run.dag_run_id]
    limit = dag.max_active_runs
    if not holders or limit is None or len(holders) < limit:
        return None
    described = "; ".join(
        f"{r.dag_run_id} ({state_name(r.run_type)} run, running since "
        f"{r.start_date:%Y-%m-%d %H:%M:%S %Z}: "
        f"{_unfinished_tasks(api, dag_id, r.dag_run_id)})"
        if r.start_date
        else r.dag_run_id
        for r in holders
    )
    plural = "run" if limit == 1 else "runs"
    return f"{dag_id} runs {limit} {plural} at a time (max_active_runs) and {described} holds it"


def progress_table(run: DAGRunResponse, tasks: list[TaskInstanceResponse], started: float) -> Table:
    table = Table(
        title=f"{DAG_ID} · {run.dag_run_id} · {state_name(run.state)} · "
        f"{time.monotonic() - started:.0f}s",
        title_justify="left",
    )
    for column in ("task", "state", "seconds"):
        table.add_column(column)
    for ti in tasks:
        name = ti.task_id
        if ti.map_index >= 0:
            name += f" [{ti.rendered_map_index or ti.map_index}]"
        state = state_name(ti.state) or "none"
        duration = f"{ti.duration:.1f}" if ti.duration else ""
        table.add_row(name, f"[{STATE_STYLE.get(state, 'white')}]{state}[/]", duration)
    return table


def follow(api: AirflowApi, run_id: str, timeout_s: float, console: Console) -> DAGRunResponse:
    """Poll the run until it ends, showing every task's state live, and why the run is still
    queued when it is."""
    started = time.monotonic()
    live = Live(console=console, refresh_per_second=2, transient=not console.is_terminal)
    seen: dict[tuple[str, int], str] = {}
    reason: str | None = None
    checked = 0.0
    with live:
        while True:
            run = api.dag_run(DAG_ID, run_id)
            tasks = api.task_instances(DAG_ID, run_id)
            elapsed = time.monotonic() - started
            if state_name(run.state) != "queued":
                reason = None
            elif elapsed >= QUEUED_REASON_AFTER_S and elapsed - checked >= QUEUED_REASON_AFTER_S:
                checked, known = elapsed, reason
                reason = queued_reason(api, run)
                if reason and reason != known:  # one line, in a terminal and in a log
                    line = f"{elapsed:6.0f}s {run_id} queued: {reason}"
                    console.print(line, soft_wrap=True, markup=False, highlight=False)
            if console.is_terminal:
                live.update(progress_table(run, tasks, started))
            else:  # logs and CI: one line per state change
                for ti in tasks:
                    key, state = (ti.task_id, ti.map_index), state_name(ti.state) or "none"
                    if seen.get(key) != state:
                        seen[key] = state
                        suffix = f"[{ti.map_index}]" if ti.map_index >= 0 else ""
                        console.print(f"{elapsed:6.0f}s {ti.task_id}{suffix}: {state}")
            if state_name(run.state) in ("success", "failed"):
                return run
            if elapsed > timeout_s:
                why = f": {reason}" if reason else ""
                raise UserError(
                    f"run {run_id} still {state_name(run.state)} after {timeout_s:.0f}s{why}"
                )
            time.sleep(2)


def collect_summary(api: AirflowApi, run: DAGRunResponse, workdir: Path) -> dict[str, Any]:
    run_id = run.dag_run_id
    states = {
        (t.task_id, t.map_index): state_name(t.state) for t in api.task_instances(DAG_ID, run_id)
    }
    summary: dict[str, Any] = {"dag_run_id": run_id, "state": state_name(run.state)}
    if states.get(("notify", -1)) == "success":
        summary.update(
            read_offloaded(
                api.xcom(DAG_ID, run_id, "notify"), s3_client(runtime.client_env(workdir))
            )
        )
    summary["tasks_failed"] = sorted(
        f"{task}[{index}]" if index >= 0 else task
        for (task, index), state in states.items()
        if state in ("failed", "upstream_failed")
    )
    urls = runtime.read_state(workdir)["urls"]
    summary["airflow_url"] = f"{urls['airflow']}/dags/{DAG_ID}/runs/{run_id}"
    summary["mlflow_url"] = urls["mlflow"]
    summary["serving_url"] = urls["serving"]
    return summary


def print_summary(summary: dict[str, Any], console: Console) -> None:
    console.print(f"\n[bold]run {summary['dag_run_id']}: {summary['state']}[/]")
    if "best_params" in summary:
        params = summary["best_params"]
        shown = ", ".join(f"{k}={params[k]}" for k in ("optimizer", "lr", "batch_size", "epochs"))
        console.print(f"best trial: {shown}  (MLflow run {summary['best_run_id']})")
        console.print(
            f"accuracy: validation {summary['best_val_accuracy']:.4f}, "
            f"test {summary['candidate_accuracy']:.4f}"
        )
        before = summary["champion_version_before"]
        console.print(
            f"champion: {f'v{before}' if before else 'none'} before → "
            f"v{summary['champion_version_after']} after; "
            f"{'deployed' if summary['deployed'] else 'not deployed'} ({summary['reason']})"
        )
    if summary["tasks_failed"]:
        console.print(f"[red]failed tasks: {', '.join(summary['tasks_failed'])}[/]")
    console.print(
        f"Airflow UI: {summary['airflow_url']}  (user admin, password in "
        f"{runtime.read_state(Path(summary['workdir']))['airflow_password_file']})"
    )
    console.print(f"MLflow UI:  {summary['mlflow_url']}")
    console.print(f"Model server (the champion): POST {summary['serving_url']}/invocations")


def _check_running_stack(workdir: Path, user_dags: Path | None, metadata_db: str | None) -> None:
    """A demo on a platform that is already up takes it as it is: refuse options it lacks
    rather than ignore them."""
    state = runtime.read_state(workdir)
    running_db = state.get("metadata_db", "sqlite")
    if metadata_db is not None and metadata_db != running_db:
        raise UserError(
            f"the platform in {workdir} is up with --metadata-db {running_db}, not "
            f"{metadata_db}: run `trainyard down` first, or leave --metadata-db out"
        )
    running_dags = state.get("user_dags")
    if user_dags is not None and str(user_dags.resolve()) != running_dags:
        raise UserError(
            f"the platform in {workdir} is up with --dags-folder {running_dags or '(none)'}, "
            f"not {user_dags}: run `trainyard down` first, or leave --dags-folder out"
        )


def run_demo(
    workdir: Path,
    date: str | None = None,
    conf: dict[str, Any] | None = None,
    keep: bool = False,
    summary_json: Path | None = None,
    timeout_s: float = 1800,
    user_dags: Path | None = None,
    metadata_db: str | None = None,
) -> dict[str, Any]:
    console = Console()
    date = date or dt.datetime.now(dt.UTC).date().isoformat()
    already_up = runtime.is_up(workdir)
    stack = None
    if already_up:
        _check_running_stack(workdir, user_dags, metadata_db)
    else:
        console.print(f"starting the platform in {workdir} …")
        stack = runtime.start(workdir, user_dags=user_dags, metadata_db=metadata_db or "postgres")
    try:
        urls = runtime.read_state(workdir)["urls"]
        console.print(f"Airflow {urls['airflow']} · MLflow {urls['mlflow']} · S3 {urls['s3']}")
        console.print(f"published {publish(workdir, date)}")
        api = AirflowApi(urls["airflow"], "admin", runtime.airflow_password(workdir))
        api.wait_for_dag(DAG_ID)
        run_id = trigger(api, date, conf or {})
        console.print(f"triggered {DAG_ID} run {run_id}")
        run = follow(api, run_id, timeout_s, console)
        summary = collect_summary(api, run, workdir)
        summary["workdir"] = str(workdir.resolve())
        print_summary(summary, console)
        if summary_json:
            summary_json.write_text(json.dumps(summary, indent=2, sort_keys=True))
    finally:
        if stack and not keep:
            console.print("stopping the platform (--keep leaves it up)")
            stack.stop()
    if summary["state"] != "success":
        raise UserError(f"run {summary['dag_run_id']} ended {summary['state']}")
    return summary

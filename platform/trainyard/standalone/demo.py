"""`trainyard demo`: the training pipeline end to end on this machine.

up → publish a day of data → trigger `ml_training_pipeline` through the Airflow
REST API → follow it task by task → print (and optionally write) a summary →
down, unless `--keep` or the platform was already up.

`--pipeline SPEC` runs a team's pipeline instead: the platform starts with the spec (or must be
up with it), and the day's input comes from the `--publish` command, run in the spec's folder.
"""

from __future__ import annotations

import datetime as dt
import json
import shlex
import sys
import time
from pathlib import Path
from typing import Any

import jinja2
from airflow_client.client import DAGRunResponse, TaskInstanceResponse
from rich.console import Console
from rich.live import Live
from rich.table import Table

from trainyard.errors import UserError
from trainyard.pipeline import platform as platform_settings
from trainyard.stage_runner import StageExitError, StageProcess
from trainyard.standalone import pipelines, runtime
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


def publish_spec_input(workdir: Path, spec_path: Path, date: str, command: str) -> str:
    """Run a team's publish `command` in its spec's folder for `date`; the input URL it fills.

    It gets the platform's S3 and MLflow variables, TRAINYARD_DS and TRAINYARD_INPUT_URL (the
    spec's input URL for the day); `python` is this interpreter, as in the laptop's stages."""
    platform = platform_settings.load(workdir.resolve() / "platform.json")
    (pipeline,) = pipelines.load_pipelines([spec_path], platform)
    url = str(jinja2.Template(pipeline.input_url).render(ds=date, ds_nodash=date.replace("-", "")))
    program = shlex.split(command)
    if not program:
        raise UserError("--publish: empty command")
    if program[0] == "python":
        program[0] = sys.executable
    env = {**runtime.client_env(workdir), "TRAINYARD_DS": date, "TRAINYARD_INPUT_URL": url}
    try:
        StageProcess(program, env, str(pipeline.spec.folder)).run(read_result=False)
    except StageExitError as failed:
        raise UserError(f"--publish {command!r} failed: {failed}") from None
    except OSError as exc:
        raise UserError(f"--publish {command!r}: {exc.strerror or exc}") from None
    return url


def trigger(
    api: AirflowApi,
    date: str,
    conf: dict[str, Any],
    now: dt.datetime | None = None,
    dag_id: str = DAG_ID,
) -> str:
    """Trigger a run for `date`; the first of the day takes midnight, the scheduled slot (on a
    platform that schedules the DAG), a later one `now`'s time of day on `date`."""
    stamp = (now or dt.datetime.now(dt.UTC)).strftime("%H%M%S")
    for time_of_day in ("00:00:00", f"{stamp[:2]}:{stamp[2:4]}:{stamp[4:]}"):
        try:
            run = api.trigger(
                dag_id, f"{date}T{time_of_day}Z", conf, run_id=f"demo__{date}__{stamp}"
            )
        except ApiException as exc:
            if exc.status == 409:
                continue  # a run already holds that logical date
            raise
        # Unpaused only now: a scheduler that schedules the DAG then sees the slot taken and
        # adds no twin.
        api.unpause(dag_id)
        return str(run.dag_run_id)
    raise UserError(f"could not trigger {dag_id} for {date}")


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


def progress_table(
    run: DAGRunResponse,
    tasks: list[TaskInstanceResponse],
    started: float,
    dag_id: str = DAG_ID,
) -> Table:
    table = Table(
        title=f"{dag_id} · {run.dag_run_id} · {state_name(run.state)} · "
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


def follow(
    api: AirflowApi, run_id: str, timeout_s: float, console: Console, dag_id: str = DAG_ID
) -> DAGRunResponse:
    """Poll the run until it ends, showing every task's state live, and why the run is still
    queued when it is."""
    started = time.monotonic()
    live = Live(console=console, refresh_per_second=2, transient=not console.is_terminal)
    seen: dict[tuple[str, int], str] = {}
    reason: str | None = None
    checked = 0.0
    with live:
        while True:
            run = api.dag_run(dag_id, run_id)
            tasks = api.task_instances(dag_id, run_id)
            elapsed = time.monotonic() - started
            if state_name(run.state) != "queued":
                reason = None
            elif elapsed >= QUEUED_REASON_AFTER_S and elapsed - checked >= QUEUED_REASON_AFTER_S:
                checked, known = elapsed, reason
                reason = queued_reason(api, run, dag_id)
                if reason and reason != known:  # one line, in a terminal and in a log
                    line = f"{elapsed:6.0f}s {run_id} queued: {reason}"
                    console.print(line, soft_wrap=True, markup=False, highlight=False)
            if console.is_terminal:
                live.update(progress_table(run, tasks, started, dag_id))
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


def collect_summary(
    api: AirflowApi, run: DAGRunResponse, workdir: Path, dag_id: str = DAG_ID
) -> dict[str, Any]:
    run_id = run.dag_run_id
    states = {
        (t.task_id, t.map_index): state_name(t.state) for t in api.task_instances(dag_id, run_id)
    }
    summary: dict[str, Any] = {"dag_run_id": run_id, "state": state_name(run.state)}
    if states.get(("notify", -1)) == "success":
        summary.update(
            read_offloaded(
                api.xcom(dag_id, run_id, "notify"), s3_client(runtime.client_env(workdir))
            )
        )
    summary["tasks_failed"] = sorted(
        f"{task}[{index}]" if index >= 0 else task
        for (task, index), state in states.items()
        if state in ("failed", "upstream_failed")
    )
    urls = runtime.read_state(workdir)["urls"]
    summary["airflow_url"] = f"{urls['airflow']}/dags/{dag_id}/runs/{run_id}"
    summary["mlflow_url"] = urls["mlflow"]
    summary["serving_url"] = urls["serving"]
    return summary


def print_summary(summary: dict[str, Any], console: Console) -> None:
    console.print(f"\n[bold]run {summary['dag_run_id']}: {summary['state']}[/]")
    params = summary.get("best_params")
    if params is not None:
        if summary.get("label", "accuracy") == "accuracy":  # the digits pipeline's options
            params = {k: params[k] for k in ("optimizer", "lr", "batch_size", "epochs")}
        shown = ", ".join(f"{k}={v}" for k, v in params.items())
        console.print(f"best trial: {shown}  (MLflow run {summary['best_run_id']})")
        better = "lower" if summary.get("direction") == "min" else "higher"
        console.print(
            f"{summary['best_metric']} {summary['best_value']:.4f}, "
            f"{summary['label']} {summary['candidate_value']:.4f} ({better} is better)"
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
    if summary["serving_url"]:
        console.print(f"Model server (the champion): POST {summary['serving_url']}/invocations")


def _check_running_stack(
    workdir: Path, user_dags: Path | None, metadata_db: str | None, pipeline: Path | None
) -> None:
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
    running_specs = [entry["spec"] for entry in state.get("pipelines", {}).values()]
    if pipeline is not None and str(pipeline.resolve()) not in running_specs:
        raise UserError(
            f"the platform in {workdir} is up without --pipeline {pipeline} (its pipelines: "
            f"{', '.join(running_specs) or 'none'}): run `trainyard down` first"
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
    pipeline: Path | None = None,
    publish_command: str | None = None,
) -> dict[str, Any]:
    """`pipeline`: a team's spec to run instead of the digits pipeline; `publish_command`
    puts its day's input in place (none: the input must already be there)."""
    if publish_command is not None and pipeline is None:
        raise UserError("--publish needs --pipeline (the digits pipeline publishes its own data)")
    console = Console()
    date = date or dt.datetime.now(dt.UTC).date().isoformat()
    already_up = runtime.is_up(workdir)
    stack = None
    if already_up:
        _check_running_stack(workdir, user_dags, metadata_db, pipeline)
    else:
        console.print(f"starting the platform in {workdir} …")
        stack = runtime.start(
            workdir,
            user_dags=user_dags,
            metadata_db=metadata_db or "postgres",
            pipelines=[pipeline] if pipeline else (),
        )
    try:
        state = runtime.read_state(workdir)
        urls = state["urls"]
        console.print(f"Airflow {urls['airflow']} · MLflow {urls['mlflow']} · S3 {urls['s3']}")
        dag_id, serving_url = DAG_ID, urls["serving"]
        if pipeline is None:
            console.print(f"published {publish(workdir, date)}")
        else:
            resolved = str(pipeline.resolve())
            dag_id, entry = next(
                (n, p) for n, p in state["pipelines"].items() if p["spec"] == resolved
            )
            if publish_command:
                url = publish_spec_input(workdir, pipeline, date, publish_command)
                console.print(f"published {url}")
            served = state["model_servers"].get(entry["model"])
            serving_url = served["url"] if served else None
        api = AirflowApi(urls["airflow"], "admin", runtime.airflow_password(workdir))
        api.wait_for_dag(dag_id)
        run_id = trigger(api, date, conf or {}, dag_id=dag_id)
        console.print(f"triggered {dag_id} run {run_id}")
        run = follow(api, run_id, timeout_s, console, dag_id)
        summary = collect_summary(api, run, workdir, dag_id)
        summary["serving_url"] = serving_url
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

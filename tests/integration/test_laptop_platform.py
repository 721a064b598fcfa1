"""The laptop platform as a place to work: the user's own DAGs beside the training DAG, Airflow
on PostgreSQL under concurrent runs and API calls, and crashed services noticed and cleaned up.

One laptop stack for the module (`trainyard up --dags-folder`, PostgreSQL by default), real
Airflow, PostgreSQL, MLflow and SeaweedFS processes. The crash test comes last: it kills
every service's main process and brings the platform up again in the same workdir.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import textwrap
import threading
import time
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import urlsplit

import psutil
import pytest

from tests.e2e.figures import FIGURES
from trainyard import cli
from trainyard.standalone import runtime
from trainyard.standalone.airflow_api import (
    AirflowApi,
    ApiException,
    offloaded_location,
    read_offloaded,
    state_name,
)
from trainyard.standalone.airflow_stack import XCOM_THRESHOLD_BYTES
from trainyard.standalone.demo import DAG_ID

from .conftest import airflow_api

pytestmark = pytest.mark.integration

USER_DAG = "user_xcom_and_logs"
LOAD_DAGS = ("load_a", "load_b", "load_c")
RUNS_PER_DAG = 8  # 24 runs in all, triggered at once

USER_DAG_FILE = f'''
from airflow.sdk import ObjectStoragePath, dag, task


@dag(dag_id="{USER_DAG}", schedule=None)
def pipeline():
    @task
    def big():
        print("hello from the user's DAG")
        return list(range(400))  # above the XCom threshold: offloaded to the store

    @task
    def write(values):
        path = ObjectStoragePath("s3://trainyard_s3@datasets/user/sum.txt")
        path.write_text(str(sum(values)))
        return str(path)

    write(big())


pipeline()
'''

LOAD_DAG_FILE = f"""
from airflow.sdk import dag, task

for name in {LOAD_DAGS!r}:

    @dag(dag_id=name, schedule=None, max_active_runs=16)
    def load():
        @task
        def first():
            return 1

        @task
        def second(value):
            return value + 1

        second(first())

    load()
"""

# Airflow parses only files that mention both "airflow" and "dag" (its safe mode).
BROKEN_DAG_FILE = (
    'from airflow.sdk import dag\n\nraise RuntimeError("this DAG file is broken on purpose")\n'
)


def figure(line: str) -> None:
    FIGURES.append(line)
    print(line)


@pytest.fixture(scope="module")
def user_dags(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("user-dags")
    (folder / "user_pipeline.py").write_text(textwrap.dedent(USER_DAG_FILE))
    (folder / "load.py").write_text(textwrap.dedent(LOAD_DAG_FILE))
    (folder / "broken.py").write_text(BROKEN_DAG_FILE)
    return folder


@pytest.fixture(scope="module")
def stack(
    tmp_path_factory: pytest.TempPathFactory, user_dags: Path
) -> Iterator[runtime.LaptopStack]:
    workdir = tmp_path_factory.mktemp("laptop")
    started = runtime.start(workdir, user_dags=user_dags)
    figure(f"laptop platform: PostgreSQL ready in {started.startup_seconds['postgres']:.2f} s")
    try:
        yield started
    finally:
        with contextlib.suppress(Exception):
            runtime.stop(workdir)


@pytest.fixture(scope="module")
def api(stack: runtime.LaptopStack) -> AirflowApi:
    return airflow_api(stack, DAG_ID, USER_DAG, *LOAD_DAGS, timeout_s=180)


def wait_for_run(api: AirflowApi, dag_id: str, run_id: str, timeout_s: float = 300) -> str:
    deadline = time.monotonic() + timeout_s
    while True:
        state = state_name(api.dag_run(dag_id, run_id).state)
        if state in ("success", "failed"):
            return state
        assert time.monotonic() < deadline, f"{dag_id} {run_id} still {state}"
        time.sleep(1)


def test_users_dags_are_parsed_beside_the_training_dag(stack, api, user_dags, capsys):
    assert stack.state()["metadata_db"] == "postgres"
    bundles = {d.bundle_name for d in api.dags.get_dags(limit=100).dags}
    assert bundles == {"trainyard", "user"}
    # The broken file is reported by `trainyard status`, on its own line.
    deadline = time.monotonic() + 60
    while not (errors := runtime.status(stack.workdir)["import_errors"]):
        assert time.monotonic() < deadline, "no import error reported for broken.py"
        time.sleep(2)
    assert errors == ["user/broken.py: RuntimeError: this DAG file is broken on purpose"]
    assert cli.main(["--workdir", str(stack.workdir), "status"]) == 0
    out, err = capsys.readouterr()
    assert "trainyard status: DAG import error: user/broken.py: RuntimeError: " in err
    # People get a table (a row per service, no problem), scripts the report with --json.
    table = out.splitlines()
    assert table[0].split() == ["SERVICE", "PROCESS", "PROBE", "PROBLEM"]
    rows = {line.split()[0]: line for line in table[1 : table.index("")]}
    assert set(rows) == set(stack.state()["pids"]) | {"serving"}
    assert all(row.endswith("  -") for row in rows.values()), table
    assert cli.main(["--workdir", str(stack.workdir), "status", "--json"]) == 0
    out, err = capsys.readouterr()
    assert json.loads(out)["import_errors"] == errors
    assert "trainyard status: DAG import error: user/broken.py: RuntimeError: " in err


def test_users_dag_gets_the_platforms_s3_connection_xcom_backend_and_remote_logs(stack, api):
    api.unpause(USER_DAG)
    run = api.trigger(USER_DAG, "2026-01-01T00:00:00Z")
    assert wait_for_run(api, USER_DAG, run.dag_run_id) == "success"
    s3 = stack.s3.client()
    # The large return value went to the object store; the database holds the reference.
    reference = api.xcom(USER_DAG, run.dag_run_id, "big")
    assert offloaded_location(reference) is not None, reference
    assert read_offloaded(reference, s3) == list(range(400))
    assert len(str(list(range(400)))) > XCOM_THRESHOLD_BYTES
    # Through the platform's S3 connection.
    assert s3.get_object(Bucket="datasets", Key="user/sum.txt")["Body"].read() == b"79800"
    # Its task logs are in the logs bucket (uploaded when each task's process ends).
    prefix = f"logs/dag_id={USER_DAG}/run_id={run.dag_run_id}/task_id=big/"
    deadline = time.monotonic() + 60
    while not (keys := s3.list_objects_v2(Bucket="airflow-logs", Prefix=prefix).get("Contents")):
        assert time.monotonic() < deadline, f"no remote log under {prefix}"
        time.sleep(2)
    log = s3.get_object(Bucket="airflow-logs", Key=keys[0]["Key"])["Body"].read().decode()
    assert "hello from the user's DAG" in log


def test_concurrent_runs_and_api_calls_never_fail_on_postgres(stack, api):
    """24 runs of 3 DAGs triggered at once while the API is polled: no HTTP 5xx, all succeed."""
    for dag_id in LOAD_DAGS:
        api.unpause(dag_id)
    password = stack.airflow.admin_password()
    done = threading.Event()
    polls, server_errors = [0], []

    def poll() -> None:
        client = AirflowApi(stack.airflow.url, "admin", password)
        calls = (
            lambda: client.dag_runs.get_dag_runs("~", limit=100),
            lambda: client.task_instances_api.get_task_instances("~", "~", limit=100),
            lambda: client.dags.get_dags(limit=100),
            client.import_errors.get_import_errors,
            client.monitor.get_health,
        )
        while not done.is_set():
            for call in calls:
                try:
                    call()
                except ApiException as exc:
                    if exc.status and exc.status >= 500:
                        server_errors.append(f"HTTP {exc.status}: {str(exc.body)[:200]}")
                except Exception as exc:  # a dropped connection fails the test too
                    server_errors.append(f"{type(exc).__name__}: {str(exc)[:200]}")
                polls[0] += 1

    def trigger(n: int) -> tuple[str, str]:
        client = AirflowApi(stack.airflow.url, "admin", password)
        dag_id = LOAD_DAGS[n % len(LOAD_DAGS)]
        run = client.trigger(dag_id, f"2026-02-{n // len(LOAD_DAGS) + 1:02d}T00:00:00Z")
        return dag_id, run.dag_run_id

    started = time.monotonic()
    pollers = [threading.Thread(target=poll, daemon=True) for _ in range(2)]
    for poller in pollers:
        poller.start()
    total = RUNS_PER_DAG * len(LOAD_DAGS)
    try:
        with ThreadPoolExecutor(total) as pool:
            runs = list(pool.map(trigger, range(total)))
        states = {run: wait_for_run(api, *run, timeout_s=600) for run in runs}
    finally:
        done.set()
        for poller in pollers:
            poller.join(30)
    seconds = time.monotonic() - started
    figure(
        f"laptop platform: {total} concurrent runs of {len(LOAD_DAGS)} DAGs in {seconds:.0f} s, "
        f"{polls[0]} API polls, {len(server_errors)} HTTP 5xx"
    )
    assert server_errors == [], server_errors[:5]
    assert polls[0] >= 50
    assert set(states.values()) == {"success"}, states
    logs = (stack.workdir / "airflow" / "logs").glob("*.log")
    assert not [log.name for log in logs if "database is locked" in log.read_text()]


def bound(port: int) -> bool:
    """Whether something listens on the port (connections in TIME_WAIT do not count)."""
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return True
    return False


def test_demo_on_a_running_platform_refuses_options_it_lacks(stack, user_dags, tmp_path, capsys):
    """`demo` on a platform that is up takes it as it is; a database or DAG folder it was not
    started with is refused with one line, not ignored."""
    workdir = str(stack.workdir)
    other = tmp_path / "other-dags"
    other.mkdir()
    assert cli.main(["--workdir", workdir, "demo", "--metadata-db", "sqlite"]) == 1
    assert cli.main(["--workdir", workdir, "demo", "--dags-folder", str(other)]) == 1
    errors = capsys.readouterr().err.strip().splitlines()
    assert len(errors) == 2, errors
    assert "is up with --metadata-db postgres, not sqlite" in errors[0]
    assert f"is up with --dags-folder {user_dags.resolve()}, not {other}" in errors[1]


def stack_processes(leaders: Iterable[int]) -> list[psutil.Process]:
    """Every process of the running stack: its services' main processes and all their
    descendants (found from the process tree, not the way `down` finds them)."""
    found = []
    for pid in leaders:
        with contextlib.suppress(psutil.NoSuchProcess):
            leader = psutil.Process(pid)
            found += [leader, *leader.children(recursive=True)]
    return found


def listening_ports(processes: list[psutil.Process]) -> set[int]:
    ports = set()
    for process in processes:
        with contextlib.suppress(psutil.NoSuchProcess):
            ports |= {c.laddr.port for c in process.net_connections("inet") if c.status == "LISTEN"}
    return ports


def test_crashed_services_are_flagged_and_down_cleans_up_everything(stack, api):
    workdir = stack.workdir
    state = runtime.read_state(workdir)
    # All the stack runs and listens on while healthy (the services' URLs, but also Airflow's
    # log servers, the S3 server's second port, PostgreSQL's backends): none may outlive down.
    started = stack_processes(state["pids"].values())
    ports = listening_ports(started)
    assert {urlsplit(url).port for name, url in state["urls"].items() if name != "serving"} <= ports
    # Every service's main process in turn. The scheduler, dag-processor and triggerer first:
    # their probe is the api-server's health report, which still says "healthy" for a while
    # after they died, the mismatch status must flag. The stores last (the others use them).
    airflow = [name for name in state["pids"] if name.startswith("airflow")]
    order = [name for name in airflow if name != "airflow-api-server"]
    order += ["airflow-api-server", "mlflow", "s3", "postgres"]
    still_answering = []
    for name in order:
        os.kill(state["pids"][name], signal.SIGKILL)
        deadline = time.monotonic() + 10
        while True:
            report = runtime.status(workdir)
            flagged = [p for p in report["problems"] if p.startswith(f"{name}: ")]
            gone = report["services"][name]["process"] == "stopped"
            if (flagged and gone) or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        assert flagged and gone, (name, report["services"][name], report["problems"])
        if "still answers" in flagged[0]:
            still_answering.append(name)
        print(flagged[0])
    # The scheduler's heartbeat counts as healthy for 30 s (scheduler_health_check_threshold).
    assert "airflow-scheduler" in still_answering, still_answering
    assert cli.main(["--workdir", str(workdir), "status"]) == 1

    runtime.stop(workdir)
    left = [p for p in started if p.is_running()]
    assert left == [], [(p.pid, p.cmdline()) for p in left]
    assert runtime.processes_of(workdir) == []
    assert sorted(p for p in ports if bound(p)) == []

    again = runtime.start(workdir, user_dags=stack.airflow.user_dags)
    try:
        assert runtime.status(workdir)["problems"] == []
        client = AirflowApi(again.airflow.url, "admin", again.airflow.admin_password())
        assert client.wait_for_dag(USER_DAG).dag_id == USER_DAG  # the same database again
    finally:
        runtime.stop(workdir)
    assert runtime.processes_of(workdir) == []


def test_sqlite_is_an_explicit_option(user_dags, tmp_path):
    """`--metadata-db sqlite`: no PostgreSQL process, Airflow's metadata in a file, and a DAG
    run still succeeds (one at a time: SQLite is for a quick look)."""
    workdir = tmp_path / "sqlite"
    started = runtime.start(workdir, user_dags=user_dags, metadata_db="sqlite")
    try:
        state = runtime.read_state(workdir)
        assert state["metadata_db"] == "sqlite" and "postgres" not in state["pids"]
        assert runtime.status(workdir)["problems"] == []
        assert (workdir / "airflow" / "airflow.db").is_file()
        client = airflow_api(started, LOAD_DAGS[0], timeout_s=180)
        client.unpause(LOAD_DAGS[0])
        run = client.trigger(LOAD_DAGS[0], "2026-03-01T00:00:00Z")
        assert wait_for_run(client, LOAD_DAGS[0], run.dag_run_id) == "success"
    finally:
        runtime.stop(workdir)
    assert runtime.processes_of(workdir) == []

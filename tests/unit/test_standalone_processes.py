"""Finding and stopping every process a laptop service started, its main process alive or not.

Real processes: a service whose main process starts a child in the same session and one that
starts a session of its own (as Airflow's task processes and PostgreSQL's children do).
"""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import psutil
import pytest

from trainyard.processes import (
    ManagedProcess,
    pid_alive,
    service_processes,
    stop_service,
)
from trainyard.standalone.airflow_stack import AirflowStack
from trainyard.standalone.postgres import PostgresServer
from trainyard.standalone.services import S3Server

pytestmark = pytest.mark.unit

# Starts `sleep` in its session and `setsid sleep` in a new one, then waits.
FAMILY = "sleep 300 & setsid sleep 300 & wait"


def family(tmp_path: Path, name: str = "svc") -> ManagedProcess:
    process = ManagedProcess(name, ["sh", "-c", FAMILY], tmp_path / name / "log", cwd=tmp_path)
    process.start()
    deadline = time.monotonic() + 10
    while names(service_processes(process.record())) != ["sh", "sleep", "sleep"]:
        assert time.monotonic() < deadline, service_processes(process.record())
        time.sleep(0.05)
    return process


def names(processes: list[psutil.Process]) -> list[str]:
    found = []
    for process in processes:
        try:
            found.append(process.name())
        except psutil.Error:
            found.append("(gone)")
    return sorted(found)


def test_a_service_whose_main_process_died_is_still_found_and_stopped(tmp_path: Path) -> None:
    process = family(tmp_path)
    record = process.record()
    assert process.pid is not None
    os.kill(process.pid, signal.SIGKILL)
    process.process.wait()  # type: ignore[union-attr]
    assert not pid_alive(process.pid)
    left = service_processes(record)
    assert names(left) == ["sleep", "sleep"], left
    assert sorted(stop_service(record, grace_s=5)) == sorted(p.pid for p in left)
    assert service_processes(record) == []
    assert not any(p.is_running() and p.status() != psutil.STATUS_ZOMBIE for p in left)


def test_stopping_one_service_leaves_its_neighbours_alone(tmp_path: Path) -> None:
    first, second = family(tmp_path, "first"), family(tmp_path, "second")
    try:
        first.stop(grace_s=5)
        assert service_processes(first.record()) == []
        assert len(service_processes(second.record())) == 3
        # A record without a name covers every service below the folder.
        assert len(service_processes({"dir": str(tmp_path)})) == 3
    finally:
        second.stop(grace_s=5)


def test_airflow_settings_for_postgres_sqlite_and_the_users_dags(tmp_path: Path) -> None:
    s3 = S3Server(tmp_path / "s3")
    postgres = PostgresServer(tmp_path / "postgres")
    dags, mine = tmp_path / "dags", tmp_path / "mine"
    stack = AirflowStack(
        tmp_path / "airflow", dags, s3, "http://mlflow", tmp_path / "p.json", postgres=postgres
    )
    stack.user_dags = mine
    env = stack.env()
    url = env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"]
    assert url == f"postgresql+psycopg://trainyard@127.0.0.1:{postgres.port}/airflow"
    assert env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN_ASYNC"] == url
    assert env["PGPASSFILE"] == str(postgres.passfile)
    bundles = json.loads(env["AIRFLOW__DAG_PROCESSOR__DAG_BUNDLE_CONFIG_LIST"])
    assert [(b["name"], b["kwargs"]["path"]) for b in bundles] == [
        ("trainyard", str(dags.resolve())),
        ("user", str(mine.resolve())),
    ]
    sqlite = AirflowStack(tmp_path / "airflow", dags, s3, "http://mlflow", tmp_path / "p.json")
    assert sqlite.env()["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"].startswith("sqlite:///")
    assert len(json.loads(sqlite.env()["AIRFLOW__DAG_PROCESSOR__DAG_BUNDLE_CONFIG_LIST"])) == 1

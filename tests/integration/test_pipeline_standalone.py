"""The training DAG on the standalone stack: real Airflow 3, MLflow and S3 processes.

One laptop stack for the module; each scenario is a DAG run for its own day. The
user journey (deploy, serve, skip on an impossible threshold) is tests/e2e/scenario.py;
these are the failure paths around it.
"""

from __future__ import annotations

import datetime as dt
import io
import json
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from mlflow import MlflowClient
from rich.console import Console

from digits.data import build_day
from tests.e2e.scenario import task_states as states
from trainyard import storage
from trainyard.standalone import runtime
from trainyard.standalone.airflow_api import (
    AirflowApi,
    offloaded_location,
    read_offloaded,
    state_name,
)
from trainyard.standalone.airflow_stack import XCOM_THRESHOLD_BYTES
from trainyard.standalone.demo import DAG_ID, follow, run_demo, trigger

from .conftest import airflow_api

pytestmark = pytest.mark.integration

# The scenarios' days are fixed, not the clock's: they cannot change between collection and a
# run after midnight, and the laptop platform schedules no run that could take the DAG's one
# active run (max_active_runs=1) at midnight.
FIRST_DAY = dt.date(2026, 2, 10)
MODEL = "digits"
# Four trials, the last diverges (NaN loss); enough trials that their argument
# lists exceed the XCom threshold and are offloaded to the object store.
CRASHING_GRID = {"optimizer": ["sgd"], "lr": [0.1, 0.05, 0.02, 1000000.0], "batch_size": [32]}
QUIET = Console(file=io.StringIO())


def day(offset: int) -> str:
    """FIRST_DAY, or the day `offset` days before it: each scenario's own day."""
    return (FIRST_DAY - dt.timedelta(days=offset)).isoformat()


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[runtime.LaptopStack]:
    workdir = tmp_path_factory.mktemp("platform")
    started = runtime.start(workdir)
    try:
        yield started
    finally:
        started.stop()


@pytest.fixture(scope="module")
def api(stack: runtime.LaptopStack) -> AirflowApi:
    return airflow_api(stack, DAG_ID)


@pytest.fixture(scope="module")
def mlflow_client(stack: runtime.LaptopStack) -> MlflowClient:
    return MlflowClient(tracking_uri=stack.mlflow.url)


@pytest.fixture(scope="module")
def first_run(stack, api):
    """The first day's run: a grid where one trial diverges."""
    summary_file = stack.workdir / "summary.json"
    summary = run_demo(
        stack.workdir,
        day(0),
        {"search_space": CRASHING_GRID},
        summary_json=summary_file,
        timeout_s=900,
    )
    return summary, summary_file


def champion_version(client: MlflowClient) -> str:
    return str(client.get_model_version_by_alias(MODEL, "champion").version)


def s3_keys(stack: runtime.LaptopStack, bucket: str, prefix: str) -> list[str]:
    pages = (
        stack.s3.client().get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
    )
    return [obj["Key"] for page in pages for obj in page.get("Contents", [])]


def test_full_run_survives_a_crashing_trial_and_deploys(first_run, api, mlflow_client):
    summary, summary_file = first_run
    assert summary["state"] == "success"
    run_states = states(api, summary["dag_run_id"])
    assert [run_states[f"train[{i}]"] for i in range(4)] == ["success"] * 3 + ["failed"]
    assert run_states["deploy"] == "success" and run_states["skip_deployment"] == "skipped"
    assert summary["best_params"]["lr"] in (0.1, 0.05, 0.02)
    assert summary["candidate_accuracy"] >= 0.90
    assert summary["deployed"] is True
    assert summary["champion_version_after"] == champion_version(mlflow_client)
    assert summary_file.exists()
    version = mlflow_client.get_model_version(MODEL, summary["champion_version_after"])
    assert version.run_id == summary["best_run_id"]
    assert version.tags["airflow.dag_run_id"] == summary["dag_run_id"]


def test_task_logs_and_large_xcoms_live_in_the_object_store(first_run, api, stack):
    run_id = first_run[0]["dag_run_id"]
    logs = s3_keys(stack, "airflow-logs", f"logs/dag_id={DAG_ID}/run_id={run_id}/")
    assert any("task_id=train" in key for key in logs)
    assert any("task_id=data_preparation.validate" in key for key in logs)

    # The metadata database holds only a reference; the value is gzip'd JSON in the bucket.
    reference = api.xcom(DAG_ID, run_id, "generate_hyperparams")
    assert offloaded_location(reference) is not None, reference
    bucket, key = offloaded_location(reference)
    assert bucket == "airflow-xcom" and key.endswith(".gz")
    assert key in s3_keys(stack, "airflow-xcom", f"xcom/{DAG_ID}/{run_id}/")
    trials = read_offloaded(reference, stack.s3.client())
    assert len(trials) == 4 and trials[0][0] == "train"
    # Each trial checkpoints under the run's work prefix (rendered, not a template).
    checkpoints = [t[t.index("--checkpoint") + 1] for t in trials]
    prefix = f"s3://datasets/runs/{day(0)}/{run_id.replace(':', '').replace('+', '')}/checkpoints"
    assert checkpoints == [f"{prefix}/trial-{i:03d}.pt" for i in range(4)]
    assert "--processes" not in trials[0]  # no GPUs on the laptop platform: one process
    stored = set(s3_keys(stack, "datasets", prefix.removeprefix("s3://datasets/")))
    assert {c.removeprefix("s3://datasets/") for c in checkpoints} <= stored
    assert len(json.dumps(trials)) > XCOM_THRESHOLD_BYTES
    # Small values stay inline in the metadata database.
    assert api.xcom(DAG_ID, run_id, "select_best", key="run_id") == first_run[0]["best_run_id"]


def test_corrupt_data_fails_validation_and_nothing_downstream_runs(
    first_run, api, stack, mlflow_client
):
    date = day(2)
    frame = build_day(dt.date.fromisoformat(date))
    frame.loc[:20, "pixel_10"] = np.nan
    stack.s3.client().put_object(
        Bucket="datasets",
        Key=f"digits/daily/{date}/features.parquet",
        Body=storage.parquet_bytes(frame),
    )
    versions_before = len(mlflow_client.search_model_versions(f"name='{MODEL}'"))
    run_id = trigger(api, date, {})
    run = follow(api, run_id, 600, QUIET)
    assert state_name(run.state) == "failed"
    run_states = states(api, run_id)
    assert run_states["data_preparation.validate"] == "failed"
    for task in (
        "data_preparation.preprocess",
        "generate_hyperparams",
        "select_best",
        "evaluate",
        "deploy",
        "notify",
    ):
        assert run_states[task] == "upstream_failed", task
    assert len(mlflow_client.search_model_versions(f"name='{MODEL}'")) == versions_before
    log_key = next(
        k
        for k in s3_keys(stack, "airflow-logs", f"logs/dag_id={DAG_ID}/run_id={run_id}/")
        if "validate" in k
    )
    log = stack.s3.client().get_object(Bucket="airflow-logs", Key=log_key)["Body"].read().decode()
    assert "missing values (NaN)" in log


def _wait_for(api: AirflowApi, run_id: str, condition, timeout_s: float = 600) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition(states(api, run_id)):
            return
        time.sleep(0.5)
    raise AssertionError(f"condition not reached; states: {states(api, run_id)}")


def test_mlflow_unreachable_at_evaluate_means_no_deploy(first_run, api, stack, mlflow_client):
    before = champion_version(mlflow_client)
    date = day(3)
    stack.s3.client().put_object(
        Bucket="datasets",
        Key=f"digits/daily/{date}/features.parquet",
        Body=storage.parquet_bytes(build_day(dt.date.fromisoformat(date))),
    )
    run_id = trigger(api, date, {"search_space": {"optimizer": ["adam"], "lr": [0.003]}})
    # Training needs MLflow; take it away once every trial has finished.
    _wait_for(api, run_id, lambda s: s.get("train[0]") in ("success", "failed"))
    stack.mlflow.stop()
    try:
        run = follow(api, run_id, 600, QUIET)
    finally:
        stack.mlflow.start()
        stack.save_state()  # the new process, for `status`
    run_states = states(api, run_id)
    assert state_name(run.state) == "failed"
    assert run_states["evaluate"] == "failed"
    assert run_states["deploy"] in ("upstream_failed", "skipped", None)
    assert champion_version(mlflow_client) == before


def test_run_completes_after_the_scheduler_is_killed(first_run, api, stack):
    date = day(4)
    stack.s3.client().put_object(
        Bucket="datasets",
        Key=f"digits/daily/{date}/features.parquet",
        Body=storage.parquet_bytes(build_day(dt.date.fromisoformat(date))),
    )
    run_id = trigger(api, date, {"search_space": {"optimizer": ["adam"], "lr": [0.001, 0.003]}})
    _wait_for(api, run_id, lambda s: "running" in (s.get("train[0]"), s.get("train[1]")))
    scheduler = stack.airflow.processes["scheduler"]
    assert scheduler.pid is not None
    os.killpg(scheduler.pid, signal.SIGKILL)  # the scheduler and its executor's workers
    scheduler.process.wait()  # type: ignore[union-attr]
    stack.airflow.restart("scheduler")
    stack.save_state()
    run = follow(api, run_id, 900, QUIET)
    assert state_name(run.state) == "success", states(api, run_id)
    assert states(api, run_id)["notify"] == "success"


def test_stack_status_and_clean_shutdown(stack, tmp_path):
    status = runtime.status(stack.workdir)
    assert set(status["services"]) >= {"s3", "mlflow", "airflow-scheduler", "airflow-api-server"}
    assert status["problems"] == [], status
    assert status["services"]["postgres"]["probe"] == "accepts connections"
    # The deploy step started the champion's server.
    assert status["services"]["serving"]["probe"] == "HTTP 200"
    assert Path(stack.workdir / "platform.json").exists()

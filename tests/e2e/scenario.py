"""The user journey, against endpoints only: one piece of code for every target.

A platform engineer's day: publish a day of data → trigger `ml_training_pipeline`
→ it succeeds → the best trial is champion in MLflow, XComs and task logs are in
the object store, the model server answers with the champion; next day, an
impossible threshold → deployment skipped, champion and served model unchanged.

The target (standalone processes, a kind cluster through port-forwards) only
supplies `Endpoints`; nothing here knows how the platform runs.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import io
import os
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import boto3
import numpy as np
import requests
import yaml
from airflow_client.client.exceptions import NotFoundException
from mlflow import MlflowClient
from rich.console import Console
from sklearn.datasets import load_digits

from digits.data import build_day
from digits.schema import daily_data_url
from trainyard import storage
from trainyard.pipeline import alerts
from trainyard.standalone import runtime
from trainyard.standalone.airflow_api import (
    AirflowApi,
    offloaded_location,
    read_offloaded,
    state_name,
)
from trainyard.standalone.demo import DAG_ID, follow, trigger

# The DAG's default grid: four trials, whose argument lists exceed the XCom threshold
# and go to the object store.
FIRST_DAY_CONF: dict[str, Any] = {"epochs": 10}
# One trial, deployed when it passes the default gate: a champion to start from, where the run
# itself is not what is checked (the upgrade test's release before its upgrade).
ONE_TRIAL_DAY_CONF: dict[str, Any] = {
    "epochs": 10,
    "search_space": {"optimizer": ["adam"], "lr": [0.001], "batch_size": [32]},
}
SECOND_DAY_CONF: dict[str, Any] = {
    "search_space": {"optimizer": ["adam"], "lr": [0.001], "batch_size": [32]},
    "min_accuracy": 0.999,
}


@dataclass(frozen=True)
class Endpoints:
    airflow_url: str  # api-server base URL (REST under /api/v2)
    airflow_user: str
    airflow_password: str
    mlflow_url: str
    s3_endpoint: str  # S3 API endpoint reachable from the test process
    s3_access_key: str
    s3_secret_key: str
    serving_url: str  # model server base URL (POST /invocations)
    mlflow_username: str | None = None  # MLflow basic auth, when enabled
    mlflow_password: str | None = None
    model_name: str = "digits"
    data_root: str = "s3://datasets/digits"
    xcom_url: str = "s3://airflow-xcom/xcom"  # XComObjectStorageBackend's base path
    logs_url: str = "s3://airflow-logs/logs"  # remote task logs' base folder

    def s3(self) -> Any:
        return boto3.client(
            "s3",
            endpoint_url=self.s3_endpoint,
            aws_access_key_id=self.s3_access_key,
            aws_secret_access_key=self.s3_secret_key,
            region_name="us-east-1",
        )

    def airflow(self) -> AirflowApi:
        return AirflowApi(self.airflow_url, self.airflow_user, self.airflow_password)


def laptop_endpoints(workdir: Path) -> Endpoints:
    """The endpoints of a laptop platform started in `workdir` (`trainyard up`'s state)."""
    urls, env = runtime.read_state(workdir)["urls"], runtime.client_env(workdir)
    return Endpoints(
        airflow_url=urls["airflow"],
        airflow_user="admin",
        airflow_password=runtime.airflow_password(workdir),
        mlflow_url=urls["mlflow"],
        s3_endpoint=urls["s3"],
        s3_access_key=env["AWS_ACCESS_KEY_ID"],
        s3_secret_key=env["AWS_SECRET_ACCESS_KEY"],
        serving_url=urls["serving"],
    )


# mlflow_credentials across threads (the kind tests run pipelines at once): the environment is
# set by the first user, restored by the last; users in between must want the same credentials.
_credentials_lock = threading.Lock()
_credentials_users = 0
_credentials_held: tuple[str, str] | None = None
_credentials_saved: dict[str, str | None] = {}
_CREDENTIAL_VARS = ("MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD")


@contextlib.contextmanager
def mlflow_credentials(endpoints: Endpoints) -> Iterator[MlflowClient]:
    """An MLflow client; basic-auth credentials reach it only through the environment, which
    every thread shares: concurrent users must share the credentials too."""
    global _credentials_users, _credentials_held  # noqa: PLW0603 (the process's environment)
    wanted = None
    if endpoints.mlflow_username and endpoints.mlflow_password:
        wanted = (endpoints.mlflow_username, endpoints.mlflow_password)
    with _credentials_lock:
        if _credentials_users:
            assert _credentials_held == wanted, "MLflow clients of two releases at once"
        else:
            _credentials_saved.update({name: os.environ.get(name) for name in _CREDENTIAL_VARS})
            _credentials_held = wanted
            if wanted:
                os.environ.update(dict(zip(_CREDENTIAL_VARS, wanted, strict=True)))
        _credentials_users += 1
    try:
        yield MlflowClient(tracking_uri=endpoints.mlflow_url)
    finally:
        with _credentials_lock:
            _credentials_users -= 1
            if not _credentials_users:
                for name, value in _credentials_saved.items():
                    if value is None:
                        os.environ.pop(name, None)
                    else:
                        os.environ[name] = value


def s3_keys(endpoints: Endpoints, url: str) -> list[str]:
    parts = urlsplit(url)
    pages = (
        endpoints.s3()
        .get_paginator("list_objects_v2")
        .paginate(Bucket=parts.netloc, Prefix=parts.path.lstrip("/"))
    )
    return [obj["Key"] for page in pages for obj in page.get("Contents", [])]


def publish(endpoints: Endpoints, date: str) -> None:
    parts = urlsplit(daily_data_url(endpoints.data_root, date))
    endpoints.s3().put_object(
        Bucket=parts.netloc,
        Key=parts.path.lstrip("/"),
        Body=storage.parquet_bytes(build_day(dt.date.fromisoformat(date))),
    )


def run_day(
    endpoints: Endpoints,
    api: AirflowApi,
    date: str,
    conf: dict[str, Any],
    timeout_s: float,
    run_ids: list[str] | None = None,
) -> tuple[str, dict[str, str | None]]:
    """Publish, trigger, wait; returns the run id and every task's state. run_ids: where the
    run id is appended as soon as the run exists (a caller's record, even of a failed run)."""
    publish(endpoints, date)
    run_id = trigger(api, date, conf)
    if run_ids is not None:
        run_ids.append(run_id)
    # Unpaused once its run holds the slot (a platform may create DAGs paused, as kind's
    # values do): the scheduler then adds no scheduled twin of the same day.
    api.unpause(DAG_ID)
    run = follow(api, run_id, timeout_s, Console(file=io.StringIO()))
    states = task_states(api, run_id)
    ended = state_name(run.state)
    assert ended == "success", f"run {run_id} ended {ended}: {states}{failed_logs(api, run_id)}"
    return run_id, states


def failed_logs(api: AirflowApi, run_id: str) -> str:
    """The log tails of the failed tasks, every try (a retry may fail for a reason the first try
    left behind): a CI run's output is all there is to read later."""
    report = []
    for ti in api.task_instances(DAG_ID, run_id):
        if state_name(ti.state) != "failed":
            continue
        for attempt in range(1, ti.try_number + 1):
            try:
                tail = api.log_tail(DAG_ID, run_id, ti, attempt)
            except Exception as exc:  # a report, not the test: the failure above is what counts
                tail = f"(log not readable: {exc})"
            name = f"{ti.task_id}[{ti.map_index}]"
            report.append(f"\n--- log of {name}, try {attempt} of {ti.try_number} ---\n{tail}")
    return "".join(report)


def task_states(api: AirflowApi, run_id: str) -> dict[str, str | None]:
    """Each task's state by name; mapped ones as `train[0]`."""
    return {
        ti.task_id + (f"[{ti.map_index}]" if ti.map_index >= 0 else ""): state_name(ti.state)
        for ti in api.task_instances(DAG_ID, run_id)
    }


def served_classes(endpoints: Endpoints) -> np.ndarray:
    """The server's classes for 100 digits, which it must get at least 90% right."""
    digits = load_digits()
    response = requests.post(
        endpoints.serving_url.rstrip("/") + "/invocations",
        json={"inputs": digits.data[:100].astype(np.float32).tolist()},
        timeout=60,
    )
    assert response.status_code == 200, f"model server: {response.status_code} {response.text}"
    served = np.asarray(response.json()["predictions"]).argmax(axis=1)
    accuracy = (served == digits.target[:100]).mean()
    assert accuracy >= 0.90, f"served accuracy {accuracy}"
    return served


def check_trained_and_deployed(
    endpoints: Endpoints,
    api: AirflowApi,
    run_id: str,
    states: dict[str, str | None],
    expected_trials: int = 4,
) -> str:
    """The best trial became champion; XComs and logs are in the store. Returns the version.
    The default grid's four trials' argument lists exceed the XCom threshold: they are checked
    to be offloaded to the store; one trial's are not."""
    trials = [state for task, state in states.items() if task.startswith("train[")]
    assert len(trials) == expected_trials and set(trials) == {"success"}, states
    assert states["deploy"] == "success" and states["skip_deployment"] == "skipped", states
    s3 = endpoints.s3()
    results = [
        read_offloaded(api.xcom(DAG_ID, run_id, "train", map_index=i), s3)
        for i in range(expected_trials)
    ]
    best = max(results, key=lambda r: r["val_accuracy"])
    assert api.xcom(DAG_ID, run_id, "select_best", key="run_id") == best["run_id"]
    with mlflow_credentials(endpoints) as client:
        champion = client.get_model_version_by_alias(endpoints.model_name, "champion")
        assert champion.run_id == best["run_id"]
        assert champion.tags["airflow.dag_run_id"] == run_id
        assert client.get_run(best["run_id"]).data.metrics["test_accuracy"] >= 0.90

    if expected_trials == 4:
        # Large XComs are objects in the store (the DB keeps a reference); task logs too.
        reference = api.xcom(DAG_ID, run_id, "generate_hyperparams")
        location = offloaded_location(reference)
        assert location is not None, f"generate_hyperparams was not offloaded: {reference!r}"
        xcom_keys = s3_keys(endpoints, f"{endpoints.xcom_url}/{DAG_ID}/{run_id}/")
        assert location[1] in xcom_keys, (location, xcom_keys)
    # A task's log is uploaded after its process exits, which may be after the run ends.
    wait_for_task_logs(endpoints, run_id, ("data_preparation.validate", "train", "deploy"))
    return str(champion.version)


def wait_for_task_logs(
    endpoints: Endpoints, run_id: str, tasks: tuple[str, ...], timeout_s: float = 120
) -> None:
    prefix = f"{endpoints.logs_url}/dag_id={DAG_ID}/run_id={run_id}/"
    deadline = time.monotonic() + timeout_s
    while True:
        logs = s3_keys(endpoints, prefix)
        missing = [t for t in tasks if not any(f"task_id={t}/" in key for key in logs)]
        if not missing:
            return
        assert time.monotonic() < deadline, f"no task logs for {missing} under {prefix}: {logs}"
        time.sleep(2)


def run_scenario(
    endpoints: Endpoints,
    timeout_s: float = 1800,
    first_day: str | None = None,
    second_day: str | None = None,
    run_ids: list[str] | None = None,
) -> None:
    """Two days of the journey; raises AssertionError naming what went wrong. run_ids: the
    runs it triggered are appended there."""
    today = dt.datetime.now(dt.UTC).date()
    first_day = first_day or today.isoformat()
    second_day = second_day or (today - dt.timedelta(days=1)).isoformat()
    api = endpoints.airflow()
    api.wait_for_dag(DAG_ID)

    run_id, states = run_day(endpoints, api, first_day, FIRST_DAY_CONF, timeout_s, run_ids)
    champion = check_trained_and_deployed(endpoints, api, run_id, states)
    served = served_classes(endpoints)

    run_id, states = run_day(endpoints, api, second_day, SECOND_DAY_CONF, timeout_s, run_ids)
    check_not_deployed(endpoints, api, run_id, states, champion, served)


def run_first_day(
    endpoints: Endpoints,
    timeout_s: float = 1800,
    run_ids: list[str] | None = None,
    one_trial: bool = False,
) -> None:
    """The journey's first day only: trained, gated, deployed as champion and served. For the
    runs that check something else (where pods land, what an upgrade keeps); the second day's
    gate is checked by run_scenario and run_upgrade_check. one_trial: ONE_TRIAL_DAY_CONF's
    single trial."""
    api = endpoints.airflow()
    api.wait_for_dag(DAG_ID)
    day = dt.datetime.now(dt.UTC).date().isoformat()
    conf = ONE_TRIAL_DAY_CONF if one_trial else FIRST_DAY_CONF
    run_id, states = run_day(endpoints, api, day, conf, timeout_s, run_ids)
    check_trained_and_deployed(endpoints, api, run_id, states, 1 if one_trial else 4)
    served_classes(endpoints)


def run_upgrade_check(
    endpoints: Endpoints, timeout_s: float = 1800, run_ids: list[str] | None = None
) -> None:
    """After an upgrade: yesterday's champion is still served, and a new day trains again,
    with the second day's gate: its candidate is below the minimum, so it is not deployed and
    the champion and what the server answers stay."""
    api = endpoints.airflow()
    api.wait_for_dag(DAG_ID)
    with mlflow_credentials(endpoints) as client:
        before = client.get_model_version_by_alias(endpoints.model_name, "champion").version
    served = served_classes(endpoints)
    day = (dt.datetime.now(dt.UTC).date() - dt.timedelta(days=2)).isoformat()
    run_id, states = run_day(endpoints, api, day, SECOND_DAY_CONF, timeout_s, run_ids)
    check_not_deployed(endpoints, api, run_id, states, str(before), served)


def check_not_deployed(
    endpoints: Endpoints,
    api: AirflowApi,
    run_id: str,
    states: dict[str, str | None],
    champion: str,
    served: np.ndarray,
) -> None:
    """SECOND_DAY_CONF's run: the gate skipped deployment for the minimum's reason; the champion
    and the served model did not change."""
    assert states["skip_deployment"] == "success" and states["deploy"] == "skipped", states
    evaluation = api.xcom(DAG_ID, run_id, "evaluate", key="reason")
    assert "below the minimum 0.999" in evaluation, evaluation
    with mlflow_credentials(endpoints) as client:
        after = client.get_model_version_by_alias(endpoints.model_name, "champion").version
    assert str(after) == champion, f"champion moved from v{champion} to v{after}"
    assert (served_classes(endpoints) == served).all(), "the served model changed"


# The teams' pipelines of ci/kind-values.yaml (global.pipelines.specs).
TEAM_DAG, TEAM_MODEL = "team_digits", "team-digits"
TEAM_SERVER = "serving-team-digits"  # <release>-serving-<spec>: the release's server of its model
MISSING_IMAGE_DAG, MISSING_IMAGE_MODEL = "missing_image", "missing-image"
TEAMS_DAY = "2026-03-02"  # a day of its own: the journey's runs and data stay apart


# The bundle and its bucket have one name (ci/kind-teams-values.yaml).
BUNDLE_BUCKET, BUNDLE_DAG = "team-dags", "team_bundle_hello"
BUNDLE_DAG_FILE = f'''"""A team's DAG, uploaded to the release's S3 DAG bundle."""

from airflow.sdk import dag, task


@dag(dag_id="{BUNDLE_DAG}", schedule=None, catchup=False)
def hello():
    @task
    def where() -> str:
        from airflow.sdk import get_current_context

        ti = get_current_context()["ti"]
        return f"{{ti.dag_id}} ran from its bundle"

    where()


hello()
'''


def run_teams_pipelines(endpoints: Endpoints, timeout_s: float = 1800) -> dict[str, str]:
    """The pipelines from values beside the digits one (whose runs may be in flight): both DAGs
    appear; the team's run trains and promotes its own model, served by its own model server,
    and registers no version of the digits model; the one whose image does not exist fails its
    first pod at once, its one line naming the image error; nothing of it is registered.
    Meanwhile a DAG file uploaded to the S3 bundle's bucket appears (no image, no upgrade),
    listed under its bundle, and runs in a worker pod, which fetches the bundle itself. Returns
    the run id of each DAG; raises AssertionError naming what went wrong."""
    endpoints.s3().put_object(
        Bucket=BUNDLE_BUCKET, Key=f"{BUNDLE_DAG}.py", Body=BUNDLE_DAG_FILE.encode()
    )
    api = endpoints.airflow()
    for dag_id in (TEAM_DAG, MISSING_IMAGE_DAG):
        api.wait_for_dag(dag_id)
    publish(endpoints, TEAMS_DAY)
    runs = {
        dag_id: trigger(api, TEAMS_DAY, {}, dag_id=dag_id)
        for dag_id in (TEAM_DAG, MISSING_IMAGE_DAG)
    }
    bundled = api.wait_for_dag(BUNDLE_DAG, timeout_s=300)
    assert bundled.bundle_name == BUNDLE_BUCKET, bundled
    runs[BUNDLE_DAG] = api.trigger(BUNDLE_DAG, dt.datetime.now(dt.UTC).isoformat()).dag_run_id
    for dag_id in runs:
        api.unpause(dag_id)  # kind's values create DAGs paused
    quiet = Console(file=io.StringIO())
    ended = {dag_id: state_name(follow(api, run_id, timeout_s, quiet, dag_id).state)
             for dag_id, run_id in runs.items()}  # fmt: skip

    team_states = {
        ti.task_id: state_name(ti.state) for ti in api.task_instances(TEAM_DAG, runs[TEAM_DAG])
    }
    assert ended[TEAM_DAG] == "success", f"{TEAM_DAG}: {team_states}"
    assert team_states["deploy"] == "success", team_states
    # Its own model server, rolled out to its champion and smoke-tested with its input example.
    deployed = api.xcom(TEAM_DAG, runs[TEAM_DAG], "deploy") or {}
    serving = deployed.get("serving") or {}
    assert TEAM_SERVER in str(serving.get("target")), deployed
    assert int(serving.get("smoke_test_rows") or 0) > 0, deployed
    missing_states = {
        ti.task_id: state_name(ti.state)
        for ti in api.task_instances(MISSING_IMAGE_DAG, runs[MISSING_IMAGE_DAG])
    }
    assert ended[MISSING_IMAGE_DAG] == "failed", missing_states
    assert missing_states["data_preparation.validate"] == "failed", missing_states
    error = api.xcom(
        MISSING_IMAGE_DAG, runs[MISSING_IMAGE_DAG], "data_preparation.validate",
        key=alerts.ERROR_KEY,
    )  # fmt: skip
    assert "ErrImageNeverPull" in str(error) or "ErrImagePull" in str(error), error

    bundle_states = {
        ti.task_id: state_name(ti.state) for ti in api.task_instances(BUNDLE_DAG, runs[BUNDLE_DAG])
    }
    assert ended[BUNDLE_DAG] == "success", bundle_states
    assert api.xcom(BUNDLE_DAG, runs[BUNDLE_DAG], "where") == f"{BUNDLE_DAG} ran from its bundle"

    with mlflow_credentials(endpoints) as client:
        team = client.get_model_version_by_alias(TEAM_MODEL, "champion")
        assert team.tags.get("airflow.dag_run_id") == runs[TEAM_DAG], team.tags
        digits = client.search_model_versions(f"name='{endpoints.model_name}'")
        team_made = [v.version for v in digits if v.run_id == team.run_id]
        assert not team_made, f"the team's run registered digits versions {team_made}"
        assert client.search_model_versions(f"name='{MISSING_IMAGE_MODEL}'") == []
    return runs


@dataclass(frozen=True)
class PipelinesState:
    """What a pipelines upgrade must leave alone: each DAG's runs and each model's champion."""

    runs: dict[str, dict[str, str]]  # dag id -> run id -> state
    champions: dict[str, str]  # registered model -> the champion's version

    @classmethod
    def read(cls, endpoints: Endpoints, dag_ids: list[str], models: list[str]) -> PipelinesState:
        api = endpoints.airflow()
        runs = {
            dag_id: {
                r.dag_run_id: state_name(r.state)
                for r in api.dag_runs.get_dag_runs(dag_id, limit=100).dag_runs
            }
            for dag_id in dag_ids
        }
        with mlflow_credentials(endpoints) as client:
            champions = {
                m: client.get_model_version_by_alias(m, "champion").version for m in models
            }
        return cls(runs, champions)


def wait_for_dag_gone(api: AirflowApi, dag_id: str, timeout_s: float = 300) -> None:
    """Until Airflow no longer offers the DAG: deleted, or stale (its file no longer defines
    it); its runs stay in the database."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            if api.dags.get_dag(dag_id).is_stale:
                return
        except NotFoundException:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"{dag_id} still active {timeout_s:.0f} s after its spec went")
        time.sleep(5)


def teams_values_changed(teams_values: Path, removed: str, added: str, out: Path) -> Path:
    """The teams' values with one spec removed and a new one added (a copy of the team's
    spec under a new name and model, not served)."""
    values = yaml.safe_load(teams_values.read_text())
    specs = values["global"]["pipelines"]["specs"]
    del specs[removed]
    specs[added] = {**specs[TEAM_DAG], "name": added, "model": {"name": added, "serve": False}}
    out.write_text(yaml.safe_dump(values, sort_keys=False))
    return out

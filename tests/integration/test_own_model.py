"""A team's own model on the laptop platform: examples/diabetes, written only against the
trainer contract, and the contract's errors, each a small spec of its own.

One platform (`trainyard up --pipeline …` as `runtime.start(pipelines=…)`) runs the diabetes
spec and four broken specs; their runs overlap, the diabetes days follow each other (its
champion of day 1 is what day 2's gate compares with). Failure alerts go to a local stand-in
for Slack's webhook (tests/integration/test_alerts.py's channels).
"""

from __future__ import annotations

import datetime as dt
import io
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import mlflow
import pytest
import requests
import yaml
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException
from rich.console import Console

from tests.integration.test_alerts import channels, wait_for  # noqa: F401  (a fixture)
from trainyard.standalone import runtime
from trainyard.standalone.airflow_api import AirflowApi, read_offloaded, state_name
from trainyard.standalone.demo import follow, publish_spec_input, trigger

from .conftest import airflow_api

pytestmark = pytest.mark.integration

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "diabetes"
SPEC = EXAMPLE / "pipeline.yaml"
DAG = "diabetes_regression"
MODEL = "diabetes-regressor"
FIRST_DAY, SECOND_DAY = dt.date(2026, 5, 11), dt.date(2026, 5, 12)
QUIET = Console(file=io.StringIO())
TRAINYARD = str(Path(sys.executable).parent / "trainyard")
THRESHOLD = yaml.safe_load(SPEC.read_text())["metric"]["threshold"]


def broken_spec(name: str, prepare: list[dict[str, Any]], train: list[str]) -> dict[str, Any]:
    """A spec on the diabetes day's input whose stages break the contract in one way."""
    return {
        "apiVersion": "trainyard/v1",
        "name": name,
        "input": {"url": "s3://datasets/diabetes/daily/{{ ds }}/diabetes.csv"},
        "model": {"name": f"{name.replace('_', '-')}-model", "serve": False},
        "metric": {"name": "rmse", "direction": "min", "threshold": 70},
        "search": {"space": {"alpha": [1]}},
        "stages": {"prepare": prepare, "train": {"command": train or ["true"]}},
    }


NO_RESULT = '{"run_id": "r1", "model_uri": "models:/m-1", "metrics": {"r2": 0.4}, "params": {}}'
# Each broken pipeline: its spec, the task that fails, and what the task's one line says.
BROKEN = {
    "missing_command": (
        broken_spec("missing_command", [{"name": "check", "command": ["no-such-checker"]}], []),
        "data_preparation.check",
        "cannot run the stage's command 'no-such-checker'",
    ),
    "no_metric": (
        broken_spec("no_metric", [], ["sh", "-c", f"echo '{NO_RESULT}' > $XCOM_DIR/return.json"]),
        "select_best",
        "reported no number for metric 'rmse' (got None; it reported r2)",
    ),
    "no_result": (
        broken_spec("no_result", [{"name": "check", "command": ["sh", "-c", "echo ok"]}], []),
        "data_preparation.check",
        "the stage exited 0 but wrote no return.json",
    ),
    "one_line_error": (
        broken_spec(
            "one_line_error",
            [{"name": "validate", "command": ["sh", str(EXAMPLE / "validate.sh")],
              "args": ["${input}", "100000"]}],
            ["true"],
        ),
        "data_preparation.validate",
        "validate: error: s3://datasets/diabetes/daily/2026-05-11/diabetes.csv: ",
    ),
}  # fmt: skip


@pytest.fixture(scope="module")
def stack(
    channels,  # noqa: F811  (the alert channels, before the platform that alerts to them)
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[runtime.LaptopStack]:
    folder = tmp_path_factory.mktemp("broken-specs")
    for name, (spec, _, _) in BROKEN.items():
        (folder / f"{name}.yaml").write_text(yaml.safe_dump(spec))
    specs = [SPEC, *sorted(folder.glob("*.yaml"))]
    started = runtime.start(
        tmp_path_factory.mktemp("own-model"),
        pipelines=specs,
        task_retries=0,  # a broken stage fails the same way twice: no retry to wait for
        notify={"slack_conn_id": "slack_alerts"},
    )
    try:
        yield started
    finally:
        started.stop()


@pytest.fixture(scope="module")
def api(stack: runtime.LaptopStack) -> AirflowApi:
    return airflow_api(stack, DAG, *BROKEN, timeout_s=180)


@pytest.fixture(scope="module")
def mlflow_client(stack: runtime.LaptopStack) -> MlflowClient:
    return MlflowClient(tracking_uri=stack.mlflow.url)


def publish(stack: runtime.LaptopStack, day: dt.date) -> str:
    """The example's own publisher, as `trainyard demo --publish "python publish.py"` runs it."""
    return publish_spec_input(stack.workdir, SPEC, day.isoformat(), "python publish.py")


def states(api: AirflowApi, dag_id: str, run_id: str) -> dict[str, str | None]:
    return {
        ti.task_id + (f"[{ti.map_index}]" if ti.map_index >= 0 else ""): state_name(ti.state)
        for ti in api.task_instances(dag_id, run_id)
    }


@pytest.fixture(scope="module")
def runs(stack, api) -> dict[str, str]:
    """Day 1 of every pipeline, triggered together; the broken ones run beside the diabetes one."""
    for day in (FIRST_DAY, SECOND_DAY):
        publish(stack, day)
    return {
        dag_id: trigger(api, FIRST_DAY.isoformat(), {}, dag_id=dag_id) for dag_id in [DAG, *BROKEN]
    }


def finished(api: AirflowApi, dag_id: str, run_id: str) -> str:
    return str(state_name(follow(api, run_id, 600, QUIET, dag_id).state))


@pytest.fixture(scope="module")
def first_day(runs, api) -> str:
    run_id = runs[DAG]
    ended = finished(api, DAG, run_id)
    assert ended == "success", f"{states(api, DAG, run_id)}{failed_logs(api, DAG, run_id)}"
    return run_id


def failed_logs(api: AirflowApi, dag_id: str, run_id: str) -> str:
    """The failed tasks' log tails, for the assertion's message."""
    return "".join(
        f"\n--- {ti.task_id}[{ti.map_index}] ---\n"
        + api.log_tail(dag_id, run_id, ti, ti.try_number, lines=40)
        for ti in api.task_instances(dag_id, run_id)
        if state_name(ti.state) == "failed"
    )


def served(stack: runtime.LaptopStack, model_uri: str, folder: Path) -> Any:
    """The model's own server's answer to the model's logged input example."""
    # The logged model's own artifact location: `models:/m-…` resolves through the registry of
    # the process's default tracking URI, not the one given here.
    model_id = model_uri.removeprefix("models:/")
    location = MlflowClient(stack.mlflow.url).get_logged_model(model_id).artifact_location
    local = mlflow.artifacts.download_artifacts(
        artifact_uri=location, dst_path=str(folder), tracking_uri=stack.mlflow.url
    )
    response = requests.post(
        f"{stack.model_servers[MODEL].url}/invocations",
        data=(Path(local) / "serving_input_example.json").read_bytes(),
        headers={"Content-Type": "application/json"},
        timeout=60,
    )
    assert response.status_code == 200, response.text
    return response.json()["predictions"]


def test_day_one_trains_gates_on_rmse_deploys_and_serves(
    first_day, api, stack, mlflow_client, tmp_path
):
    run_states = states(api, DAG, first_day)
    assert [run_states[f"train[{i}]"] for i in range(4)] == ["success"] * 4
    assert run_states["deploy"] == "success" and run_states["skip_deployment"] == "skipped"

    # The shell stage's return.json is its XCom.
    validated = api.xcom(DAG, first_day, "data_preparation.validate")
    assert validated["data_url"] == f"s3://datasets/diabetes/daily/{FIRST_DAY}/diabetes.csv"
    assert validated["columns"] == 11 and 100 <= validated["rows"] <= 442

    trials = [
        read_offloaded(api.xcom(DAG, first_day, "train", map_index=i), stack.s3.client())
        for i in range(4)
    ]
    best = min(trials, key=lambda t: t["metrics"]["val_rmse"])
    assert api.xcom(DAG, first_day, "select_best", key="run_id") == best["run_id"]
    evaluation = api.xcom(DAG, first_day, "evaluate")
    assert (evaluation["metric"], evaluation["direction"]) == ("rmse", "min")
    assert evaluation["deploy"] is True and "no champion registered yet" in evaluation["reason"]

    champion = mlflow_client.get_model_version_by_alias(MODEL, "champion")
    assert champion.run_id == best["run_id"]
    assert mlflow_client.get_run(champion.run_id).data.metrics["rmse"] <= THRESHOLD
    predictions = served(stack, champion.source, tmp_path)
    assert len(predictions) == 5 and all(25 <= p <= 346 for p in predictions)  # the target's range


def test_day_two_is_decided_by_rmse(first_day, api, stack, mlflow_client):
    before = mlflow_client.get_model_version_by_alias(MODEL, "champion")
    # One trial (a run's config narrows the search space): the gate is what this day checks.
    one_trial = {"search_space": {"learning_rate": [0.1], "max_depth": [2]}}
    run_id = trigger(api, SECOND_DAY.isoformat(), one_trial, dag_id=DAG)
    ended = finished(api, DAG, run_id)
    assert ended == "success", f"{states(api, DAG, run_id)}{failed_logs(api, DAG, run_id)}"
    evaluation = api.xcom(DAG, run_id, "evaluate")
    assert (evaluation["metric"], evaluation["direction"]) == ("rmse", "min")
    assert evaluation["champion_version"] == before.version
    champion_rmse = mlflow_client.get_run(before.run_id).data.metrics["rmse"]
    assert evaluation["champion_value"] == pytest.approx(champion_rmse)
    candidate = evaluation["candidate_value"]
    # Lower is better: deployed exactly when the candidate's RMSE is below the champion's by
    # at least minImprovement (and under the threshold).
    better = candidate <= THRESHOLD and champion_rmse - candidate >= evaluation["min_improvement"]
    assert evaluation["deploy"] is better, evaluation
    after = mlflow_client.get_model_version_by_alias(MODEL, "champion")
    run_states = states(api, DAG, run_id)
    if better:
        assert run_states["deploy"] == "success" and after.version != before.version
        assert f"beats champion v{before.version}" in evaluation["reason"]
    else:
        assert run_states["deploy"] == "skipped" and after.version == before.version
        assert (
            f"vs champion v{before.version}" in evaluation["reason"]
            or "above" in evaluation["reason"]
        )


@pytest.mark.parametrize("dag_id", list(BROKEN))
def test_a_broken_stage_fails_its_task_with_one_line(
    dag_id,
    runs,
    api,
    mlflow_client,
    channels,  # noqa: F811
):
    _, task, line = BROKEN[dag_id]
    run_id = runs[dag_id]
    assert finished(api, dag_id, run_id) == "failed"
    run_states = states(api, dag_id, run_id)
    assert run_states[task] == "failed", run_states
    assert run_states["deploy"] in ("upstream_failed", None), run_states

    # The task's log and the failure alert carry the one line, not a traceback's last words.
    ti = next(t for t in api.task_instances(dag_id, run_id) if t.task_id == task)
    assert line in api.log_tail(dag_id, run_id, ti, ti.try_number, lines=200)
    _, slack = channels
    _, body = wait_for(
        # Every broken pipeline ran with the same run id: its alert is the one naming its DAG.
        lambda: [m for m in slack if f"{dag_id} run {run_id} failed" in m[1].get("text", "")],
        90,
        f"failure alert of {dag_id}",
    )
    [error] = [text for text in body["text"].splitlines() if f"task {task} " in text]
    assert line in error, error

    # Nothing was registered or promoted.
    model = BROKEN[dag_id][0]["model"]["name"]
    assert len(mlflow_client.search_model_versions(f"name='{model}'")) == 0
    with pytest.raises(MlflowException):
        mlflow_client.get_model_version_by_alias(model, "champion")


def test_trainyard_up_refuses_a_bad_spec_at_once(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text(SPEC.read_text().replace("direction: min", "direction: lower"))
    started = time.monotonic()
    proc = subprocess.run(
        [TRAINYARD, "--workdir", str(tmp_path / "w"), "up", "--pipeline", str(bad)],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert proc.returncode == 1 and time.monotonic() - started < 30
    assert proc.stderr.strip() == (
        f"trainyard up: error: {bad}: metric.direction: 'lower' is not one of ['max', 'min']"
    )
    assert not (tmp_path / "w" / "state.json").exists()

"""Every trainer stage against a real S3 server and a real MLflow server.

validate → preprocess → features → train (two configs) → evaluate → deploy,
with the data in S3, runs and models in MLflow, results read back from each
stage's return.json exactly as the KubernetesPodOperator reads them.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import mlflow
import numpy as np
import pytest
import requests
from mlflow import MlflowClient
from mlflow.models import Model

from digits.features import load_manifest, load_raw_holdout
from tests.conftest import StageRun
from trainyard.processes import free_port
from trainyard.stages.serving_local import LocalModelServer

pytestmark = pytest.mark.integration

DAY = "2026-11-20"
MODEL = "digits-it"
ADAM = ("--optimizer", "adam", "--lr", "1e-3", "--epochs", "10", "--batch-size", "32")
SGD = ("--optimizer", "sgd", "--lr", "1e-3", "--epochs", "10", "--batch-size", "32")


@pytest.fixture(scope="module")
def manifest_url(stage, services):
    root = "s3://datasets/digits"
    data = stage("publish", "--root", root, "--date", DAY).result["data_url"]
    assert data == f"{root}/daily/{DAY}/features.parquet"
    assert stage("validate", "--data", data).result["valid"] is True
    prepared = stage("preprocess", "--data", data, "--output", f"s3://datasets/runs/{DAY}/prepared")
    features = stage(
        "features",
        "--prepared",
        prepared.result["output_url"],
        "--output",
        f"s3://datasets/runs/{DAY}/features",
    )
    return features.result["manifest_url"]


@pytest.fixture(scope="module")
def trials(stage, manifest_url):
    return {
        "adam": stage("train", "--features", manifest_url, *ADAM, "--run-name", "adam").result,
        "sgd": stage("train", "--features", manifest_url, *SGD, "--run-name", "sgd").result,
    }


@pytest.fixture(scope="module")
def platform_stage(services, tmp_path_factory):
    """`python -m trainyard.stages <args>` against the services, each with a fresh XCOM_DIR."""
    folder = tmp_path_factory.mktemp("platform-xcom")
    count = iter(range(1000))

    def run(*args: str, env: dict[str, str] | None = None) -> StageRun:
        xcom = folder / str(next(count))
        proc = subprocess.run(
            [sys.executable, "-m", "trainyard.stages", *args],
            env={**os.environ, **services.env, "XCOM_DIR": str(xcom), **(env or {})},
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        return StageRun(proc.returncode, proc.stdout, proc.stderr, xcom / "return.json")

    return run


# The digits pipeline's gate: test accuracy, higher is better, at least 0.90.
ACCURACY_GATE = (
    "--metric", "test_accuracy", "--label", "accuracy", "--direction", "max",
    "--threshold", "0.9", "--min-improvement", "0.005",
)  # fmt: skip


@pytest.fixture(scope="module")
def client(services):
    mlflow.set_tracking_uri(services.mlflow.url)  # for the fluent helpers used below
    return MlflowClient(tracking_uri=services.mlflow.url)


def test_stage_outputs_are_objects_in_the_s3_store(manifest_url, services):
    keys = {
        obj["Key"] for obj in services.s3.client().list_objects_v2(Bucket="datasets")["Contents"]
    }
    assert f"digits/daily/{DAY}/features.parquet" in keys
    for name in ("train", "validation", "test"):
        assert f"runs/{DAY}/prepared/{name}.parquet" in keys
        assert f"runs/{DAY}/features/{name}.parquet" in keys
    assert f"runs/{DAY}/features/manifest.json" in keys


def test_adam_clears_the_bar_and_plain_sgd_does_not(trials):
    assert trials["adam"]["test_accuracy"] >= 0.90
    assert trials["sgd"]["test_accuracy"] < 0.90
    assert trials["adam"]["device"] == "cpu"
    assert trials["adam"]["params"]["optimizer"] == "adam"


def test_runs_carry_params_curves_and_a_servable_model(trials, client):
    run = client.get_run(trials["adam"]["run_id"])
    assert run.info.status == "FINISHED"
    assert run.data.params["optimizer"] == "adam"
    assert run.data.params["batch_size"] == "32"
    assert run.data.metrics["test_accuracy"] == pytest.approx(trials["adam"]["test_accuracy"])
    history = client.get_metric_history(run.info.run_id, "val_accuracy")
    assert [m.step for m in history] == list(range(1, 11))
    assert len(client.get_metric_history(run.info.run_id, "train_loss")) == 10
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert "training_curve.png" in artifacts

    model_uri = trials["adam"]["model_uri"]
    info = mlflow.models.get_model_info(model_uri)
    assert list(info.signature.inputs.to_dict()[0]["tensor-spec"]["shape"]) == [-1, 64]
    local = mlflow.artifacts.download_artifacts(model_uri, tracking_uri=client.tracking_uri)
    example = Model.load(local).load_input_example(local)
    assert example.shape[0] >= 2 and example.shape[1] == 64


def test_training_is_deterministic_for_a_seed(stage, manifest_url, trials):
    again = stage("train", "--features", manifest_url, *ADAM, "--run-name", "adam-again").result
    assert again["run_id"] != trials["adam"]["run_id"]
    assert again["test_accuracy"] == trials["adam"]["test_accuracy"]
    assert again["val_accuracy"] == trials["adam"]["val_accuracy"]


def test_gate_deploy_and_rollback_with_aliases(stage, platform_stage, trials, client):
    adam, sgd = trials["adam"], trials["sgd"]

    def evaluate(trial):
        return platform_stage(
            "evaluate",
            "--model-uri",
            trial["model_uri"],
            "--run-id",
            trial["run_id"],
            "--model-name",
            MODEL,
            *ACCURACY_GATE,
        ).result

    first = evaluate(adam)
    assert first["champion_status"] == "absent"
    assert first["deploy"] is True
    assert first["candidate_value"] == pytest.approx(adam["test_accuracy"], abs=1e-6)
    # The trainer's old evaluate (old DAGs) runs the same gate and keeps its keys.
    old = stage(
        "evaluate", "--model-uri", adam["model_uri"], "--run-id", adam["run_id"],
        "--features", "ignored", "--model-name", MODEL,
    ).result  # fmt: skip
    assert old["deploy"] is True and old["candidate_accuracy"] == first["candidate_value"]

    deployed = stage(
        "deploy",
        "--model-uri",
        adam["model_uri"],
        "--run-id",
        adam["run_id"],
        "--model-name",
        MODEL,
        "--tag",
        "trainyard.date=" + DAY,
    ).result
    assert deployed["previous_version"] is None
    champion = client.get_model_version_by_alias(MODEL, "champion")
    assert champion.version == deployed["version"]
    assert champion.run_id == adam["run_id"]
    assert champion.tags["trainyard.date"] == DAY

    # Against a champion: a weak candidate is refused, the champion scores as before.
    weak = evaluate(sgd)
    assert weak["deploy"] is False
    assert weak["champion_status"] == "ok"
    assert weak["champion_version"] == deployed["version"]
    assert weak["champion_value"] == pytest.approx(adam["test_accuracy"], abs=1e-6)
    same = evaluate(adam)
    assert same["deploy"] is False
    assert "improvement +0.0000" in same["reason"]

    # A second promotion keeps the old champion as `previous`; a retry reuses the version.
    promote = (
        "deploy",
        "--model-uri",
        sgd["model_uri"],
        "--run-id",
        sgd["run_id"],
        "--model-name",
        MODEL,
    )
    second = stage(*promote).result
    assert second["previous_version"] == deployed["version"]
    assert stage(*promote).result["version"] == second["version"]
    assert client.get_model_version_by_alias(MODEL, "champion").version == second["version"]
    assert client.get_model_version_by_alias(MODEL, "previous").version == deployed["version"]

    rolled = stage("rollback", "--model-name", MODEL).result
    assert rolled == {
        "model_name": MODEL,
        "version": deployed["version"],
        "rolled_back_version": second["version"],
        "champion_uri": f"models:/{MODEL}@champion",
    }
    assert client.get_model_version_by_alias(MODEL, "champion").version == deployed["version"]
    assert (
        client.get_model_version(MODEL, second["version"]).tags["trainyard.rolled_back"] == "true"
    )

    # A retried deploy of the rolled-back run is refused in one line; champion stays.
    refused = stage(*promote)
    assert refused.returncode == 1 and not refused.xcom_file.exists()
    [line] = [x for x in refused.stderr.splitlines() if x.startswith("trainyard.stages")]
    assert line == (
        f"trainyard.stages deploy: error: {MODEL} v{second['version']} was rolled back before "
        "(trainyard.rolled_back=true): not promoting it again; trigger the run with "
        "force_deploy=true to override"
    )
    assert client.get_model_version_by_alias(MODEL, "champion").version == deployed["version"]
    # force_deploy (rendered by Jinja as True) promotes it, and it is no longer marked.
    forced = stage(*promote, "--force-deploy", "True").result
    assert forced["version"] == second["version"]
    assert client.get_model_version_by_alias(MODEL, "champion").version == second["version"]
    assert "trainyard.rolled_back" not in client.get_model_version(MODEL, second["version"]).tags
    assert stage(*promote, "--force-deploy", "maybe").returncode == 2


UNREACHABLE = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0", "MLFLOW_HTTP_REQUEST_TIMEOUT": "5"}


def test_evaluate_with_mlflow_unreachable_does_not_recommend_deploying(
    platform_stage, trials, client, services
):
    dead = {**UNREACHABLE, "MLFLOW_TRACKING_URI": f"http://127.0.0.1:{free_port()}"}
    adam = trials["adam"]
    gate = ("evaluate", "--model-uri", adam["model_uri"], "--run-id", adam["run_id"],
            "--model-name", MODEL, *ACCURACY_GATE)  # fmt: skip

    # Nothing can be read: the stage fails and writes no recommendation at all.
    run = platform_stage(*gate, env=dead)
    assert run.returncode == 1
    assert f"candidate run {adam['run_id']} could not be read" in run.stderr
    assert not run.xcom_file.exists()

    # The candidate's run is readable but the registry is not: fail closed.
    closed = platform_stage(
        *gate, env={**UNREACHABLE, "MLFLOW_REGISTRY_URI": f"http://127.0.0.1:{free_port()}"}
    ).result
    assert closed["deploy"] is False
    assert closed["champion_status"] == "unreadable"
    assert closed["candidate_value"] >= 0.90
    assert "failing closed" in closed["reason"]

    # The candidate's run lacks the metric: one line naming the metric and the run.
    other = platform_stage(*gate[:-10], "--metric", "rmse", "--direction", "min",
                           "--threshold", "1e9")  # fmt: skip
    assert other.returncode == 1
    assert f"candidate run {adam['run_id']} has no metric 'rmse'" in other.stderr


class _WrongServer(BaseHTTPRequestHandler):
    """Holds the model server's port and answers with a row missing."""

    def do_GET(self) -> None:
        self.send_response(200)
        self.end_headers()

    def do_POST(self) -> None:
        rows = json.loads(self.rfile.read(int(self.headers["Content-Length"])))["inputs"]
        # Ten scores per row, as the signature says, but one row short.
        body = json.dumps({"predictions": [[1.0] + [0.0] * 9 for _ in rows[1:]]}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


def test_deploy_rolls_out_the_model_server_and_rolls_back_when_it_fails(
    platform_stage, manifest_url, trials, client, services, tmp_path, monkeypatch
):
    model = "digits-served"
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    serving_env = {"TRAINYARD_SERVING_LOCAL_DIR": str(tmp_path), "TRAINYARD_SERVING_URL": url}
    server = LocalModelServer(tmp_path, url)

    def deploy(trial):
        return platform_stage(
            "deploy",
            "--model-uri",
            trial["model_uri"],
            "--run-id",
            trial["run_id"],
            "--model-name",
            model,
            "--features",
            manifest_url,
            env=serving_env,
        )

    try:
        first = deploy(trials["adam"]).result
        local = mlflow.artifacts.download_artifacts(
            trials["adam"]["model_uri"], tracking_uri=client.tracking_uri
        )
        logged_rows = len(Model.load(local).load_input_example(local))
        assert first["serving"]["smoke_test_rows"] == logged_rows
        assert first["serving"]["target"] == f"local model server at {url}"
        # The server answers for the champion: raw pixels in, ten scores per row out.
        for name, value in services.env.items():
            monkeypatch.setenv(name, value)
        x, y = load_raw_holdout(load_manifest(manifest_url))
        answer = requests.post(url + "/invocations", json={"inputs": x[:50].tolist()}, timeout=30)
        predicted = np.asarray(answer.json()["predictions"]).argmax(axis=1)
        assert (predicted == y[:50].numpy()).mean() >= 0.9
        server.retire()

        # Something else holds the port and answers wrongly: the rollout of the next version
        # fails, `champion` goes back to the first version and the stage fails.
        impostor = ThreadingHTTPServer(("127.0.0.1", port), _WrongServer)
        threading.Thread(target=impostor.serve_forever, daemon=True).start()
        try:
            failed = deploy(trials["sgd"])
        finally:
            impostor.shutdown()
            impostor.server_close()
        assert failed.returncode == 1
        assert "failed with v2" in failed.stderr
        assert f"champion is v{first['version']} again" in failed.stderr
        assert not failed.xcom_file.exists()
        assert client.get_model_version_by_alias(model, "champion").version == first["version"]
        assert client.get_model_version(model, "2").tags["trainyard.rolled_back"] == "true"
    finally:
        server.retire()


def test_a_scikit_learn_regressor_is_gated_deployed_and_served(
    platform_stage, trials, client, services, tmp_path, monkeypatch
):
    """Nothing of the digits model: rmse, lower is better, a column-based input example."""
    from sklearn.datasets import load_diabetes  # noqa: PLC0415
    from sklearn.linear_model import Ridge  # noqa: PLC0415

    for name, value in services.env.items():
        monkeypatch.setenv(name, value)
    x, y = load_diabetes(return_X_y=True, as_frame=True)
    model = Ridge(alpha=0.1).fit(x[:300], y[:300])
    rmse = float(np.sqrt(np.mean((model.predict(x[300:]) - y[300:]) ** 2)))
    mlflow.set_experiment("diabetes-it")
    with mlflow.start_run() as run:
        mlflow.log_metric("test_rmse", rmse)
        logged = mlflow.sklearn.log_model(model, name="model", input_example=x[:5])
    name, url = "diabetes-served", f"http://127.0.0.1:{free_port()}"
    rmse_gate = ("--model-uri", logged.model_uri, "--run-id", run.info.run_id,
                 "--metric", "test_rmse", "--label", "rmse", "--direction", "min",
                 "--threshold", "80")  # fmt: skip

    gate = platform_stage("evaluate", "--model-name", name, *rmse_gate).result
    assert gate["deploy"] is True and gate["champion_status"] == "absent"
    assert gate["candidate_value"] == pytest.approx(rmse)
    assert "candidate meets the maximum rmse" in gate["reason"]
    # Against a champion whose run never logged test_rmse (the digits model): fail closed.
    adam = trials["adam"]
    promoted = platform_stage("deploy", "--model-uri", adam["model_uri"], "--run-id",
                              adam["run_id"], "--model-name", "digits-only").result  # fmt: skip
    assert promoted["serving"] is None
    closed = platform_stage("evaluate", "--model-name", "digits-only", *rmse_gate).result
    assert closed["deploy"] is False and closed["champion_status"] == "unreadable"
    assert "failing closed" in closed["reason"] and "test_rmse" in closed["reason"]

    server = LocalModelServer(tmp_path, url)
    try:
        deployed = platform_stage(
            "deploy", "--model-uri", logged.model_uri, "--run-id", run.info.run_id,
            "--model-name", name,
            env={"TRAINYARD_SERVING_LOCAL_DIR": str(tmp_path), "TRAINYARD_SERVING_URL": url},
        ).result  # fmt: skip
        assert deployed["serving"]["smoke_test_rows"] == 5
        answer = requests.post(
            url + "/invocations", json={"dataframe_split": x[300:303].to_dict("split")}, timeout=30
        ).json()["predictions"]
        assert answer == pytest.approx(model.predict(x[300:303]).tolist())
    finally:
        server.retire()
    assert "Digits" not in (client.get_registered_model(name).description or "")
    again = platform_stage(
        "evaluate", "--model-name", name, *rmse_gate, "--min-improvement", "0.5"
    ).result
    assert again["champion_status"] == "ok" and "improvement +0.0000 < 0.5" in again["reason"]


def test_deploy_refuses_a_model_without_an_input_example_when_a_server_is_configured(
    platform_stage, services, tmp_path, monkeypatch
):
    from sklearn.linear_model import LinearRegression  # noqa: PLC0415

    for name, value in services.env.items():
        monkeypatch.setenv(name, value)
    mlflow.set_experiment("no-example-it")
    with mlflow.start_run() as run:
        logged = mlflow.sklearn.log_model(
            LinearRegression().fit([[0.0], [1.0]], [0.0, 1.0]), name="model"
        )
    refused = platform_stage(
        "deploy", "--model-uri", logged.model_uri, "--run-id", run.info.run_id,
        "--model-name", "no-example",
        env={"TRAINYARD_SERVING_LOCAL_DIR": str(tmp_path),
             "TRAINYARD_SERVING_URL": f"http://127.0.0.1:{free_port()}"},
    )  # fmt: skip
    assert refused.returncode == 1 and not refused.xcom_file.exists()
    assert (
        f"trainyard.stages deploy: error: model {logged.model_uri} was logged without an input "
        "example, which the model server's smoke test sends: log it with input_example="
    ) in refused.stderr

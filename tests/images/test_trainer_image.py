"""The trainer CPU image, built by scripts/build-images and run as pods run it.

Stages run with `docker run --network host` against a real S3 server and MLflow server on the
host, each with a host folder at /airflow/xcom: KubernetesPodOperator's xcom sidecar reads
/airflow/xcom/return.json, so that file is the contract checked here. The model server runs
the chart's command (`mlflow models serve -m models:/<name>@champion --env-manager local`) with
the chart's read-only root filesystem and /tmp emptyDir.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import mlflow
import pytest
from mlflow import MlflowClient
from mlflow.models import Model

from tests.conftest import Services
from tests.images.conftest import (
    BuiltImage,
    TrainerContainer,
    docker,
    wait_for_container,
    xcom_folder,
)
from trainyard.processes import free_port

pytestmark = [pytest.mark.images, pytest.mark.timeout(1800)]

DAY = "2026-11-21"
ROOT = "s3://datasets/digits-image"
MODEL = "digits-image"
# Below this the image is bloated (issue 6 aims under 1.5 GB); measured 1.33 GB.
MAX_SIZE_BYTES = 1_500_000_000


def test_image_is_labelled_non_root_and_small(trainer_image: BuiltImage) -> None:
    config = json.loads(
        docker("image", "inspect", "--format", "{{json .Config}}", trainer_image.ref).stdout
    )
    assert config["User"] == "10001:10001"  # numeric: runAsNonRoot can verify it
    assert config["Entrypoint"] == ["python", "-m", "digits"]
    labels = config["Labels"]
    version = trainer_image.ref.rsplit(":", 1)[1]
    assert labels["org.opencontainers.image.version"] == version
    if trainer_image.revision:
        assert labels["org.opencontainers.image.revision"].startswith(trainer_image.revision)
    assert labels["org.opencontainers.image.source"].startswith("https://")
    assert labels["io.trainyard.image.variant"] == "cpu"
    assert trainer_image.size_bytes < MAX_SIZE_BYTES, f"{trainer_image.size_bytes / 1e9:.2f} GB"


def test_no_pip_and_no_compiler_at_run_time(trainer_image: BuiltImage) -> None:
    """The venv carries no pip and the image no compiler: nothing is built or installed in a pod."""
    probe = (
        "import importlib.util, shutil, torch; "
        "print(importlib.util.find_spec('pip') is None, "
        "[t for t in ('gcc', 'cc', 'g++', 'make') if shutil.which(t)], torch.version.cuda)"
    )
    proc = docker("run", "--rm", "--entrypoint", "python", trainer_image.ref, "-c", probe)
    assert proc.stdout.split() == ["True", "[]", "None"]


@pytest.fixture(scope="module")
def day_data(trainer: TrainerContainer) -> str:
    """Today's raw data, published into S3 by the image's own `publish` stage."""
    published = trainer.stage("publish", "--root", ROOT, "--date", DAY, name="publish").result
    data_url: str = published["data_url"]
    assert data_url == f"{ROOT}/daily/{DAY}/features.parquet"
    return data_url


def test_validate_writes_return_json_into_the_image_xcom_dir(
    trainer: TrainerContainer, day_data: str, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """No mount: the image's own /airflow/xcom must be writable by its user."""
    name = f"trainyard-validate-{time.monotonic_ns()}"
    proc = trainer.docker_run("validate", "--data", day_data, options=("--name", name))
    try:
        assert proc.returncode == 0, proc.stderr[-3000:]
        out = tmp_path_factory.mktemp("validate-xcom")
        docker("cp", f"{name}:/airflow/xcom/return.json", str(out / "return.json"))
    finally:
        docker("rm", "--force", name, check=False)
    result = json.loads((out / "return.json").read_text())
    assert result["valid"] is True
    assert result["data_url"] == day_data
    assert result["rows"] > 1000
    # The same JSON on stdout, as the pod log shows it.
    assert json.loads(proc.stdout) == result


def test_bad_input_exits_1_and_writes_no_return_json(trainer: TrainerContainer) -> None:
    run = trainer.stage(
        "validate", "--data", f"{ROOT}/daily/1999-01-01/features.parquet", name="bad"
    )
    assert run.returncode == 1
    assert not run.xcom_file.exists()
    assert "1999-01-01" in run.stderr


@pytest.fixture(scope="module")
def trained(trainer: TrainerContainer, day_data: str) -> dict[str, Any]:
    """preprocess → features → train, each a container writing its own return.json."""
    prepared = trainer.stage(
        "preprocess", "--data", day_data, "--output", f"{ROOT}/runs/{DAY}/prepared", name="prep"
    ).result
    features = trainer.stage(
        "features",
        "--prepared",
        prepared["output_url"],
        "--output",
        f"{ROOT}/runs/{DAY}/features",
        name="features",
    ).result
    train = trainer.stage(
        "train",
        "--features",
        features["manifest_url"],
        "--experiment",
        "trainyard-image-test",
        "--optimizer",
        "adam",
        "--epochs",
        "10",
        "--batch-size",
        "32",
        name="train",
    )
    result: dict[str, Any] = train.result
    return result


def test_train_in_the_image_logs_to_mlflow_and_returns_metrics(
    trained: dict[str, Any], services: Services
) -> None:
    assert trained["device"] == "cpu"
    assert trained["test_accuracy"] >= 0.90
    assert 0 < trained["val_accuracy"] <= 1
    assert trained["params"]["optimizer"] == "adam"
    run = MlflowClient(tracking_uri=services.mlflow.url).get_run(trained["run_id"])
    assert run.info.status == "FINISHED"
    assert run.data.metrics["test_accuracy"] == pytest.approx(trained["test_accuracy"])


@pytest.fixture(scope="module")
def champion(trained: dict[str, Any], services: Services) -> Iterator[Any]:
    """The trained model registered as `MODEL@champion` (what the deploy step does)."""
    mlflow.set_tracking_uri(services.mlflow.url)
    version = mlflow.register_model(trained["model_uri"], MODEL)
    client = MlflowClient(tracking_uri=services.mlflow.url)
    client.set_registered_model_alias(MODEL, "champion", version.version)
    local = mlflow.artifacts.download_artifacts(trained["model_uri"])
    yield Model.load(local).load_input_example(local)


def test_model_server_serves_the_champion(
    trainer: TrainerContainer, champion: Any, trainer_image: BuiltImage
) -> None:
    """The chart's serving command, user, read-only root filesystem and /tmp emptyDir."""
    port = free_port()
    name = f"trainyard-serving-{port}"
    proc = trainer.docker_run(
        "models",
        "serve",
        "-m",
        f"models:/{MODEL}@champion",
        "--env-manager",
        "local",
        "-h",
        "127.0.0.1",
        "-p",
        str(port),
        "--workers",
        "1",
        options=(
            "--detach",
            "--name",
            name,
            "--entrypoint",
            "mlflow",
            "--user",
            "10001:10001",
            "--read-only",
            "--tmpfs",
            "/tmp:rw,exec,mode=1777",
        ),
    )
    assert proc.returncode == 0, proc.stderr
    try:
        wait_for_container(name, f"http://127.0.0.1:{port}/ping", "model server")
        rows = champion.tolist()
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}/invocations",
            data=json.dumps({"inputs": rows}).encode(),
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            predictions = json.loads(response.read())["predictions"]
        assert len(predictions) == len(rows)
    finally:
        docker("rm", "--force", name, check=False)


def test_stage_runs_under_an_arbitrary_uid_in_group_0(
    trainer: TrainerContainer, day_data: str, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """Clusters that assign a random UID (group 0) can still write /airflow/xcom."""
    name = f"trainyard-anyuid-{time.monotonic_ns()}"
    proc = trainer.docker_run(
        "validate", "--data", day_data, options=("--name", name, "--user", "123456:0")
    )
    try:
        assert proc.returncode == 0, proc.stderr[-3000:]
        out = xcom_folder(tmp_path_factory.mktemp("anyuid"), "xcom")
        docker("cp", f"{name}:/airflow/xcom/return.json", str(out / "return.json"))
    finally:
        docker("rm", "--force", name, check=False)
    assert json.loads((out / "return.json").read_text())["valid"] is True

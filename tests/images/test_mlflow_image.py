"""The MLflow image, built by scripts/build-images and run the way the chart runs it.

`mlflow server` with the basic-auth app, proxied artifacts in the host's S3 server (boto3 in the
image), the chart's user, read-only root filesystem and /tmp emptyDir. A SQLite store stands in
for Postgres; psycopg is checked by import (the build does too).
"""

from __future__ import annotations

import json
import secrets
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from mlflow import MlflowClient

from tests.conftest import Services
from tests.images.conftest import BuiltImage, docker, wait_for_container
from trainyard.processes import free_port

pytestmark = [pytest.mark.images, pytest.mark.timeout(1800)]


def test_image_is_labelled_and_non_root(mlflow_image: BuiltImage) -> None:
    config = json.loads(
        docker("image", "inspect", "--format", "{{json .Config}}", mlflow_image.ref).stdout
    )
    assert config["User"] == "10001:10001"
    assert config["Entrypoint"] == ["mlflow"]
    labels = config["Labels"]
    assert labels["org.opencontainers.image.version"] == mlflow_image.ref.rsplit(":", 1)[1]
    if mlflow_image.revision:
        assert labels["org.opencontainers.image.revision"].startswith(mlflow_image.revision)


def test_tools_image_has_python_boto3_and_psycopg(mlflow_image: BuiltImage) -> None:
    """The chart's bucket-init Job, db-upgrade init container and helm tests run `python`."""
    probe = "import boto3, psycopg, mlflow; print(mlflow.__version__, psycopg.pq.version() > 0)"
    proc = docker("run", "--rm", "--entrypoint", "python", mlflow_image.ref, "-c", probe)
    assert proc.stdout.split() == ["3.17.2", "True"]


@pytest.fixture(scope="module")
def server(
    mlflow_image: BuiltImage, services: Services, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[str, dict[str, str]]]:
    """`mlflow server --app-name basic-auth` in the image; yields its URL and credentials."""
    password = secrets.token_urlsafe(16)
    auth = tmp_path_factory.mktemp("mlflow-auth") / "basic_auth.ini"
    auth.write_text(
        "[mlflow]\ndefault_permission = READ\ndatabase_uri = sqlite:////tmp/auth.db\n"
        "admin_username = admin\n"
        "authorization_function = mlflow.server.auth:authenticate_request_basic_auth\n"
    )
    auth.chmod(0o644)
    port = free_port()
    name = f"trainyard-mlflow-{port}"
    env = {
        **services.s3.client_env(),
        "MLFLOW_AUTH_CONFIG_PATH": "/etc/mlflow/auth/basic_auth.ini",
        "MLFLOW_AUTH_ADMIN_PASSWORD": password,
        "MLFLOW_FLASK_SERVER_SECRET_KEY": secrets.token_urlsafe(32),
        "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",
    }
    docker(
        "run",
        "--detach",
        "--name",
        name,
        "--network",
        "host",
        "--user",
        "10001:10001",
        "--read-only",
        "--tmpfs",
        "/tmp:rw,exec,mode=1777",
        "-v",
        f"{auth}:/etc/mlflow/auth/basic_auth.ini:ro",
        *[flag for key in env for flag in ("-e", key)],
        mlflow_image.ref,
        "server",
        "--host=127.0.0.1",
        f"--port={port}",
        "--workers=1",
        "--backend-store-uri=sqlite:////tmp/mlflow.db",
        "--serve-artifacts",
        "--artifacts-destination=s3://mlflow/image-test",
        "--app-name=basic-auth",
        env=env,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for_container(name, f"{url}/health", "mlflow server")
        yield url, {"MLFLOW_TRACKING_USERNAME": "admin", "MLFLOW_TRACKING_PASSWORD": password}
    finally:
        docker("rm", "--force", name, check=False)


def test_server_requires_login(server: tuple[str, dict[str, str]]) -> None:
    url, _ = server
    with pytest.raises(urllib.error.HTTPError) as denied:
        urllib.request.urlopen(f"{url}/api/2.0/mlflow/experiments/search?max_results=1", timeout=10)
    assert denied.value.code == 401


def test_runs_and_proxied_artifacts_round_trip_through_s3(
    server: tuple[str, dict[str, str]],
    services: Services,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    url, credentials = server
    for key, value in credentials.items():
        monkeypatch.setenv(key, value)
    client = MlflowClient(tracking_uri=url)
    experiment = client.create_experiment("image-test")
    run = client.create_run(experiment)
    client.log_metric(run.info.run_id, "accuracy", 0.97)
    note = tmp_path / "note.txt"
    note.write_text("through the proxy")
    client.log_artifact(run.info.run_id, str(note))
    client.set_terminated(run.info.run_id)

    back = Path(client.download_artifacts(run.info.run_id, "note.txt", str(tmp_path / "back")))
    assert back.read_text() == "through the proxy"
    assert client.get_run(run.info.run_id).data.metrics["accuracy"] == 0.97
    # The artifact lies in the object store, written by boto3 inside the image.
    listing = services.s3.client().list_objects_v2(Bucket="mlflow", Prefix="image-test/")
    assert any(item["Key"].endswith("/note.txt") for item in listing.get("Contents", []))

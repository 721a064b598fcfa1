"""The Airflow image, built by scripts/build-images on the official apache/airflow image, or,
without a registry, on the plain Python base (TRAINYARD_TEST_AIRFLOW_BASE names another).

What they check is what the chart relies on, run the way the chart runs it (its rendered
settings, mounts, user and read-only root filesystem): uid 50000, the DAG loads with the
pipeline modules the image carries and the platform config where the chart mounts it (a mount
that hid the modules broke every Airflow pod on the first real cluster), and the
object-storage XCom backend writes to a real S3 server with the chart's settings.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.chart.conftest import RELEASE, containers, one, pod_spec, render_chart
from tests.conftest import Services
from tests.images.conftest import BuiltImage, docker

pytestmark = [pytest.mark.images, pytest.mark.timeout(1800)]

# Parse the DAG folder as the dag-processor does, with the platform config of a cluster.
LOAD_DAGS = """
import json, os, pathlib
pathlib.Path('/tmp/platform.json').write_text(json.dumps({'runtime': 'kubernetes'}))
os.environ['TRAINYARD_PLATFORM_CONFIG'] = '/tmp/platform.json'
from airflow.dag_processing.dagbag import DagBag
bag = DagBag('/opt/airflow/dags')
tasks = {dag_id: len(dag.tasks) for dag_id, dag in bag.dags.items()}
print(json.dumps({'errors': bag.import_errors, 'dags': tasks}))
"""


def test_image_is_labelled_and_runs_as_the_airflow_user(airflow_image: BuiltImage) -> None:
    config = json.loads(
        docker("image", "inspect", "--format", "{{json .Config}}", airflow_image.ref).stdout
    )
    assert config["User"] == "50000:0"
    labels = config["Labels"]
    assert labels["org.opencontainers.image.version"] == airflow_image.ref.rsplit(":", 1)[1]
    if airflow_image.revision:
        assert labels["org.opencontainers.image.revision"].startswith(airflow_image.revision)


def test_the_dag_loads_in_the_image(airflow_image: BuiltImage) -> None:
    proc = docker(
        "run", "--rm", "-e", "AIRFLOW_HOME=/tmp/airflow", "--entrypoint", "python",
        airflow_image.ref, "-c", LOAD_DAGS,
    )  # fmt: skip
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["errors"] == {}
    assert result["dags"]["ml_training_pipeline"] > 5


def chart_container(objects: list[dict[str, Any]], component: str) -> dict[str, Any]:
    deployment = one(objects, "Deployment", f"{RELEASE}-airflow-{component}")
    (container,) = [c for c in containers(pod_spec(deployment)) if c["name"] == component]
    return container


def run_as_the_chart(
    image: str, objects: list[dict[str, Any]], component: str, workdir: Path,
    env: dict[str, str], code: str,
) -> subprocess.CompletedProcess[str]:  # fmt: skip
    """`python -c code` in the image with the component's settings from the rendered chart:
    the airflow-config env, the platform.json ConfigMap at its mountPath, uid 50000, read-only
    root with emptyDirs where the chart has them."""
    container = chart_container(objects, component)
    config = one(objects, "ConfigMap", f"{RELEASE}-airflow-config")["data"]
    platform = one(objects, "ConfigMap", f"{RELEASE}-platform")["data"]["platform.json"]
    options = ["--rm", "--network", "host", "--user", "50000:0", "--read-only"]
    for mount in container["volumeMounts"]:
        if mount["name"] == "platform-config":
            folder = workdir / "platform-config"
            folder.mkdir(exist_ok=True)
            (folder / "platform.json").write_text(platform)
            folder.chmod(0o755)
            options += ["-v", f"{folder}:{mount['mountPath']}:ro"]
        elif mount["name"] == "fab-config":
            folder = workdir / "fab-config"
            folder.mkdir(exist_ok=True)
            fab = one(objects, "ConfigMap", f"{RELEASE}-airflow-fab-config")["data"]
            (folder / "webserver_config.py").write_text(fab["webserver_config.py"])
            folder.chmod(0o755)
            options += ["-v", f"{folder}:{mount['mountPath']}:ro"]
        elif mount["name"] in ("tmp", "logs"):
            options += ["--tmpfs", f"{mount['mountPath']}:uid=50000,gid=0,mode=1777"]
    variables = {**config, **env}
    flags = [flag for name in variables for flag in ("-e", name)]
    return subprocess.run(
        ["docker", "run", *options, *flags, "--entrypoint", "python", image, "-c", code],
        env={**os.environ, **variables},
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )


def test_the_dag_loads_with_the_charts_mounts_and_settings(
    airflow_image: BuiltImage, tmp_path: Path
) -> None:
    load = "\n".join(line for line in LOAD_DAGS.splitlines() if "platform.json" not in line)
    proc = run_as_the_chart(airflow_image.ref, render_chart(), "dag-processor", tmp_path, {}, load)
    assert proc.returncode == 0, proc.stderr[-4000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["errors"] == {}
    assert result["dags"]["ml_training_pipeline"] > 5


# What FAB does with [fab] config_file when it builds its app, and the sign-in libraries it needs.
LOAD_FAB_CONFIG = """
import json
import authlib, ldap
from flask import Flask
from flask_appbuilder.const import AUTH_DB, AUTH_LDAP, AUTH_OAUTH
from airflow.configuration import conf
app = Flask("check")
assert app.config.from_pyfile(conf.get_mandatory_value("fab", "config_file"))
keys = ("OAUTH_PROVIDERS", "AUTH_LDAP_SERVER", "AUTH_LDAP_BIND_PASSWORD", "AUTH_ROLES_MAPPING")
loaded = {k: app.config.get(k) for k in keys}
types = {AUTH_DB: "db", AUTH_LDAP: "ldap", AUTH_OAUTH: "oauth"}
loaded["AUTH_TYPE"] = types[app.config["AUTH_TYPE"]]
print(json.dumps(loaded))
"""


def fab_config_in_the_image(
    image: BuiltImage, fab: dict[str, Any], env: dict[str, str], tmp_path: Path
) -> dict[str, Any]:
    """What FAB loads in the api-server rendered with `airflow.auth.fab` values, given `env`."""
    objects = render_chart({"airflow": {"auth": {"fab": fab}}})
    proc = run_as_the_chart(image.ref, objects, "api-server", tmp_path, env, LOAD_FAB_CONFIG)
    assert proc.returncode == 0, proc.stderr[-4000:]
    loaded: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return loaded


def test_fab_loads_the_charts_sign_in_settings(airflow_image: BuiltImage, tmp_path: Path) -> None:
    oidc = {
        "name": "keycloak",
        "clientId": "airflow",
        "clientSecret": {"existingSecret": "airflow-oidc", "key": "client-secret"},
        "apiBaseUrl": "https://idp.example.com/realms/ml/protocol/",
        "serverMetadataUrl": "https://idp.example.com/realms/ml/.well-known/openid-configuration",
    }
    fab = {"type": "oauth", "oauth": {"providers": [oidc]}, "rolesMapping": {"ml": ["Op"]}}
    env = {"TRAINYARD_OAUTH_0_CLIENT_SECRET": "from-the-secret"}
    loaded = fab_config_in_the_image(airflow_image, fab, env, tmp_path)
    assert loaded["AUTH_TYPE"] == "oauth"
    assert loaded["AUTH_ROLES_MAPPING"] == {"ml": ["Op"]}
    (provider,) = loaded["OAUTH_PROVIDERS"]
    assert provider["remote_app"]["client_secret"] == "from-the-secret"
    assert provider["remote_app"]["server_metadata_url"] == oidc["serverMetadataUrl"]

    ldap = {"server": "ldaps://ldap.example.com", "search": "dc=example,dc=com"}
    ldap["bindPassword"] = {"existingSecret": "ldap-bind", "key": "password"}
    env = {"TRAINYARD_LDAP_BIND_PASSWORD": "bind-secret"}
    loaded = fab_config_in_the_image(airflow_image, {"type": "ldap", "ldap": ldap}, env, tmp_path)
    assert loaded["AUTH_TYPE"] == "ldap"
    assert loaded["AUTH_LDAP_SERVER"] == ldap["server"]
    assert loaded["AUTH_LDAP_BIND_PASSWORD"] == "bind-secret"


WRITE_XCOM = """
import json
from airflow.providers.common.io.xcom.backend import XComObjectStorageBackend
value = {"grid": [{"lr": i / 1000, "hidden": 64} for i in range(200)]}
ref = XComObjectStorageBackend.serialize_value(
    value, key="return_value", dag_id="ml_training_pipeline", run_id="image-test",
    task_id="generate_hyperparams")
# Airflow 3: the serialized form of the path string (older: JSON bytes of it).
ref = ref.decode() if isinstance(ref, bytes) else ref
ref = json.loads(ref) if ref.startswith('"') else ref
print(json.dumps({"ref": ref}))
"""


def test_the_xcom_backend_writes_to_s3_with_the_charts_settings(
    airflow_image: BuiltImage, services: Services, tmp_path: Path
) -> None:
    objects = render_chart()
    config = one(objects, "ConfigMap", f"{RELEASE}-airflow-config")["data"]
    path = config["AIRFLOW__COMMON_IO__XCOM_OBJECTSTORAGE_PATH"]  # s3://<conn>@<bucket>/<prefix>
    conn_id, _, rest = path.removeprefix("s3://").partition("@")
    bucket, _, prefix = rest.partition("/")
    client = services.s3.client()
    with contextlib.suppress(client.exceptions.BucketAlreadyOwnedByYou):
        client.create_bucket(Bucket=bucket)
    s3 = services.s3.client_env()
    connection = {
        "conn_type": "aws",
        "login": s3["AWS_ACCESS_KEY_ID"],
        "password": s3["AWS_SECRET_ACCESS_KEY"],
        "extra": {"endpoint_url": s3["AWS_ENDPOINT_URL_S3"], "region_name": "us-east-1"},
    }
    env = {f"AIRFLOW_CONN_{conn_id.upper()}": json.dumps(connection)}
    proc = run_as_the_chart(airflow_image.ref, objects, "scheduler", tmp_path, env, WRITE_XCOM)
    assert proc.returncode == 0, proc.stderr[-4000:]
    ref = json.loads(proc.stdout.strip().splitlines()[-1])["ref"]
    assert isinstance(ref, str) and ref.startswith(f"s3://{conn_id}@{bucket}/{prefix}/"), ref
    key = ref.split(f"@{bucket}/", 1)[1]
    stored = client.get_object(Bucket=bucket, Key=key)["Body"].read()
    assert stored, f"nothing stored at s3://{bucket}/{key}"

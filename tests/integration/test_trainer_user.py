"""The chart's trainer-user Job script (its ConfigMap, rendered by Helm) against a real MLflow
server with the basic-auth app, configured like the chart's (default permission READ).

On kind the trainer makes the pipelines' experiments and models itself (a fresh install); here
the upgrade's case: the admin made them before the trainer identity existed.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests
from mlflow.exceptions import MlflowException
from mlflow.server.auth.client import AuthServiceClient
from mlflow.tracking import MlflowClient

from tests.chart.conftest import platform_script

pytestmark = pytest.mark.integration

ADMIN, ADMIN_PASSWORD = "admin", "admin-password-for-the-test"
TRAINER, TRAINER_PASSWORD = "trainer", "trainer-password-for-the-test"
CREDENTIAL_VARS = ("MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD")


@dataclass(frozen=True)
class AuthServer:
    url: str


@pytest.fixture(scope="module")
def mlflow_with_auth(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AuthServer]:
    folder = tmp_path_factory.mktemp("mlflow-auth")
    config = folder / "basic_auth.ini"
    config.write_text(
        "[mlflow]\ndefault_permission = READ\n"
        f"database_uri = sqlite:///{folder}/auth.db\nadmin_username = {ADMIN}\n"
        f"admin_password = {ADMIN_PASSWORD}\n"
        "authorization_function = mlflow.server.auth:authenticate_request_basic_auth\n"
    )
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {k: v for k, v in os.environ.items() if k not in CREDENTIAL_VARS}
    env |= {"MLFLOW_AUTH_CONFIG_PATH": str(config), "MLFLOW_FLASK_SERVER_SECRET_KEY": "test-only"}
    log = (folder / "server.log").open("w")
    server = subprocess.Popen(
        [str(Path(sys.executable).with_name("mlflow")), "server", "--app-name", "basic-auth",
         "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
         "--backend-store-uri", f"sqlite:///{folder}/mlflow.db",
         "--serve-artifacts", "--artifacts-destination", str(folder / "artifacts")],
        env=env, stdout=log, stderr=subprocess.STDOUT, cwd=folder,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            assert server.poll() is None, (folder / "server.log").read_text()[-3000:]
            try:
                if requests.get(f"{url}/health", timeout=2).ok:
                    break
            except requests.ConnectionError:
                pass
            assert time.monotonic() < deadline, "MLflow did not start"
            time.sleep(0.5)
        yield AuthServer(url)
    finally:
        server.terminate()
        server.wait(timeout=30)
        log.close()


@contextmanager
def as_user(user: str, password: str) -> Iterator[None]:
    saved = {name: os.environ.get(name) for name in CREDENTIAL_VARS}
    os.environ.update(dict(zip(CREDENTIAL_VARS, (user, password), strict=True)))
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


@pytest.fixture(scope="module")
def script(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return platform_script("ensure_trainer_user.py", tmp_path_factory.mktemp("trainer-user"))


def run_script(
    script: Path, url: str, admin_password: str = ADMIN_PASSWORD, timeout_s: float = 60
) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in CREDENTIAL_VARS}
    env |= {
        "MLFLOW_URL": url,
        "ADMIN_USERNAME": ADMIN,
        "ADMIN_PASSWORD": admin_password,
        "TRAINER_USERNAME": TRAINER,
        "TRAINER_PASSWORD": TRAINER_PASSWORD,
        "EXPERIMENTS": '["trainyard-digits", "trainyard-not-yet"]',
        "MODELS": '["digits", "not-yet"]',
        "WAIT_TIMEOUT_SECONDS": str(timeout_s),
    }
    return subprocess.run(
        [sys.executable, str(script)],
        env=env, capture_output=True, text=True, timeout=timeout_s + 120, check=False,
    )  # fmt: skip


def test_the_trainer_user_gets_the_admins_pipeline_objects_and_nothing_more(
    script: Path, mlflow_with_auth: AuthServer
) -> None:
    url = mlflow_with_auth.url
    with as_user(ADMIN, ADMIN_PASSWORD):
        admin = MlflowClient(url)
        experiment = admin.create_experiment("trainyard-digits")
        admin.create_registered_model("digits")
        admin.create_registered_model("another-teams-model")
    first = run_script(script, url)
    assert first.returncode == 0, first.stdout + first.stderr
    assert first.stdout.splitlines() == [
        f"user {TRAINER}: created",
        "experiment trainyard-digits: MANAGE granted",
        "experiment trainyard-not-yet: none yet (the trainer makes and owns it)",
        "model digits: MANAGE granted",
        "model not-yet: none yet (the trainer makes and owns it)",
    ]
    again = run_script(script, url)  # every upgrade runs it again
    assert again.returncode == 0, again.stdout + again.stderr
    assert "experiment trainyard-digits: MANAGE kept" in again.stdout
    with as_user(TRAINER, TRAINER_PASSWORD):
        trainer, auth = MlflowClient(url), AuthServiceClient(url)
        assert not auth.get_user(TRAINER).is_admin
        run = trainer.create_run(experiment)  # the admin's experiment, granted
        trainer.set_terminated(run.info.run_id)
        trainer.update_registered_model("digits", description="the trainer may manage it")
        for refused in (
            lambda: trainer.update_registered_model("another-teams-model", description="no"),
            lambda: auth.get_user(ADMIN),
        ):
            with pytest.raises(MlflowException) as raised:
                refused()
            assert raised.value.error_code == "PERMISSION_DENIED", raised.value


def test_a_wrong_admin_password_fails_in_time_naming_mlflow(
    script: Path, mlflow_with_auth: AuthServer
) -> None:
    done = run_script(script, mlflow_with_auth.url, admin_password="wrong", timeout_s=3)
    assert done.returncode == 1
    assert done.stderr.strip().splitlines()[-1].startswith("MLflow did not answer in time:")

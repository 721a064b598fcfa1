from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import StageRun, run_trainer
from trainyard.standalone.services import MlflowServer, S3Server


@dataclass
class Services:
    s3: S3Server
    mlflow: MlflowServer
    workdir: Path

    @property
    def env(self) -> dict[str, str]:
        """What a trainer pod gets: the S3 endpoint and credentials, the tracking URI."""
        return {**self.s3.client_env(), "MLFLOW_TRACKING_URI": self.mlflow.url}


@pytest.fixture(scope="session")
def services(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Services]:
    """A real SeaweedFS S3 server and a real MLflow server (SQLite backend, S3 artifacts)."""
    workdir = tmp_path_factory.mktemp("services")
    s3 = S3Server(workdir / "s3")
    mlflow = MlflowServer(workdir / "mlflow", s3)
    try:
        s3.start()
        mlflow.start()
        yield Services(s3, mlflow, workdir)
    finally:
        mlflow.stop()
        s3.stop()


@pytest.fixture(scope="session")
def stage(services: Services, tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    """Run a trainer stage against the services, each call with a fresh XCOM_DIR."""
    folder = tmp_path_factory.mktemp("xcom")
    counter = itertools.count()

    def run(*args: str, env: dict[str, str] | None = None) -> StageRun:
        return run_trainer(list(args), folder / str(next(counter)), {**services.env, **(env or {})})

    return run

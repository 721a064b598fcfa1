"""`trainyard up | down | status`: the whole platform as local processes in one folder.

State (ports, process ids, URLs) lives in `<workdir>/state.json`; data (S3
objects, the PostgreSQL cluster, MLflow artifacts) stays in the folder across up/down.
`down` stops every process each service started, its main process alive or not;
`status` puts each service's processes beside its health probe and names every mismatch.
"""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil

from trainyard.errors import UserError
from trainyard.pipeline import platform as platform_settings
from trainyard.processes import (
    ManagedProcess,
    free_port,
    pid_alive,
    service_processes,
    stop_service,
)
from trainyard.stages.serving import LOCAL_DIR_ENV, URL_ENV
from trainyard.stages.serving_local import LocalModelServer
from trainyard.standalone import pipelines as team_pipelines
from trainyard.standalone.airflow_stack import ADMIN_USER, STORAGE_CONN_ID, AirflowStack
from trainyard.standalone.postgres import PostgresServer
from trainyard.standalone.services import (
    BUCKETS,
    REGION,
    MlflowServer,
    S3Server,
    load_credentials,
)

REPO_DAGS = Path(__file__).resolve().parents[3] / "dags"
# The local model server's pid file and log, below the workdir.
SERVING_DIR = "serving"
METADATA_DBS = ("postgres", "sqlite")
DATA_ROOT = "s3://datasets/digits"
WORK_ROOT = "s3://datasets/runs"
# Stopped in this order: Airflow first (running tasks still write to the stores), the
# stores next, the database last.
STOP_ORDER = ("airflow", "mlflow", "s3", "postgres")


@dataclass
class LaptopStack:
    """The services `trainyard up` runs on this machine, and where they keep their state."""

    s3: S3Server
    mlflow: MlflowServer
    airflow: AirflowStack
    # Started by the pipeline's deploy step once there is a champion, not by `up`.
    model_server: LocalModelServer
    workdir: Path
    postgres: PostgresServer | None = None
    # Seconds each service took to answer, for `up`'s report.
    startup_seconds: dict[str, float] = field(default_factory=dict)
    # Teams' specs (`up --pipeline`) and their models' servers, started by their deploy steps.
    pipelines: list[team_pipelines.LaptopPipeline] = field(default_factory=list)
    model_servers: dict[str, LocalModelServer] = field(default_factory=dict)

    def processes(self) -> dict[str, ManagedProcess]:
        processes = {"postgres": self.postgres.process if self.postgres else None}
        processes.update({"s3": self.s3.process, "mlflow": self.mlflow.process})
        processes.update({f"airflow-{k}": v for k, v in self.airflow.processes.items()})
        return {name: proc for name, proc in processes.items() if proc is not None}

    def state(self) -> dict[str, Any]:
        processes = self.processes()
        urls = {
            "airflow": self.airflow.url,
            "mlflow": self.mlflow.url,
            "s3": self.s3.endpoint,
            "serving": self.model_server.url,
        }
        if self.postgres:
            urls["postgres"] = self.postgres.url("airflow")  # no password in it
        return {
            "workdir": str(self.workdir),
            "urls": urls,
            "pids": {name: proc.pid for name, proc in processes.items()},
            "services": {name: proc.record() for name, proc in processes.items()},
            "metadata_db": "postgres" if self.postgres else "sqlite",
            "user_dags": str(self.airflow.user_dags) if self.airflow.user_dags else None,
            "airflow_user": ADMIN_USER,
            "airflow_password_file": str(self.airflow.password_file),
            "startup_seconds": {k: round(v, 2) for k, v in self.startup_seconds.items()},
            "pipelines": {
                p.spec.name: {"spec": str(p.spec.path), "model": p.model_name}
                for p in self.pipelines
            },
            "model_servers": {
                name: {"url": server.url, "folder": str(server.folder)}
                for name, server in self.model_servers.items()
            },
        }

    def save_state(self) -> None:
        """Write state.json, which `status` and `down` read (again after a restart in-process)."""
        (self.workdir / "state.json").write_text(json.dumps(self.state(), indent=2))

    def stop(self) -> None:
        self.airflow.stop()
        self.model_server.retire()
        for server in self.model_servers.values():
            server.retire()
        self.mlflow.stop()
        self.s3.stop()
        if self.postgres:
            self.postgres.stop()
        (self.workdir / "state.json").unlink(missing_ok=True)


def platform_config(
    workdir: Path,
    s3: S3Server,
    mlflow_url: str,
    model_server: LocalModelServer,
    pipelines: Sequence[team_pipelines.LaptopPipeline] = (),
    model_servers: dict[str, LocalModelServer] | None = None,
    **overrides: Any,
) -> Path:
    """The standalone platform config: local processes, the local S3 store, MLflow and the
    local model server the deploy step rolls out; teams' specs and their models' servers."""
    config = laptop_settings(s3, mlflow_url, model_server, **overrides)
    config["pipelines"] = [str(p.spec.path) for p in pipelines]
    config["model_servers"] = {
        **config.get("model_servers", {}),
        **{name: team_pipelines.serving_env(s) for name, s in (model_servers or {}).items()},
    }
    path = workdir / "platform.json"
    path.write_text(json.dumps(config, indent=2))
    return path


def laptop_settings(
    s3: S3Server, mlflow_url: str, model_server: LocalModelServer, **overrides: Any
) -> dict[str, Any]:
    return {
        "runtime": "standalone",
        "data_root": DATA_ROOT,
        "work_root": WORK_ROOT,
        "storage_conn_id": STORAGE_CONN_ID,
        "max_parallel_trials": 2,
        "task_retries": 1,
        "retry_delay_seconds": 5,
        "execution_timeout_minutes": 30,
        # Manual runs only (`trainyard demo`, the UI): nothing feeds this machine a day's data,
        # so a scheduled run would only wait for it and queue the user's runs behind it.
        "schedule": None,
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


def start(
    workdir: Path,
    mlflow_backend: str | None = None,
    dags_folder: Path = REPO_DAGS,
    user_dags: Path | None = None,
    metadata_db: str = "postgres",
    pipelines: Sequence[Path] = (),
    **config_overrides: Any,
) -> LaptopStack:
    """Start the platform in `workdir`. `metadata_db`: "postgres" (Airflow's metadata and,
    unless `mlflow_backend` says otherwise, MLflow's backend) or "sqlite". `pipelines`: teams'
    spec files, each checked before anything starts."""
    workdir = workdir.resolve()
    if metadata_db not in METADATA_DBS:
        raise UserError(f"--metadata-db {metadata_db!r}: choose one of {', '.join(METADATA_DBS)}")
    if user_dags is not None and not user_dags.is_dir():
        raise UserError(f"--dags-folder {user_dags}: not a folder")
    state_file = workdir / "state.json"
    if state_file.exists() and any(pid_alive(p) for p in read_state(workdir)["pids"].values()):
        raise UserError(f"the platform in {workdir} is already up: run `trainyard down` first")
    leftovers = service_processes(_everything(workdir)) if workdir.exists() else []
    if leftovers:
        raise UserError(
            f"processes of an earlier platform in {workdir} are still running "
            f"(pids {', '.join(str(p.pid) for p in leftovers)}): run `trainyard down` first"
        )
    workdir.mkdir(parents=True, exist_ok=True)
    # Names in the specs resolve against this platform's settings (${platform.data_root}).
    names = {"data_root": DATA_ROOT, "work_root": WORK_ROOT, **config_overrides}
    resolved = platform_settings.PlatformConfig(
        **{k: names[k] for k in team_pipelines.NAME_SETTINGS if k in names}
    )
    specs = team_pipelines.load_pipelines(pipelines, resolved)
    servers = team_pipelines.model_servers(specs, workdir, resolved)
    model_server = LocalModelServer(workdir / SERVING_DIR, f"http://127.0.0.1:{free_port()}")
    postgres = PostgresServer(workdir / "postgres") if metadata_db == "postgres" else None
    s3 = S3Server(workdir / "s3", (*BUCKETS, *team_pipelines.input_buckets(specs, BUCKETS)))
    if mlflow_backend is None and postgres is not None:
        mlflow_backend = postgres.url("mlflow")
    mlflow = MlflowServer(
        workdir / "mlflow",
        s3,
        backend_store_uri=mlflow_backend,
        env=postgres.client_env() if postgres else None,
    )
    airflow = AirflowStack(
        workdir / "airflow",
        dags_folder,
        s3,
        mlflow.url,
        platform_config(workdir, s3, mlflow.url, model_server, specs, servers, **config_overrides),
        postgres=postgres,
        user_dags=user_dags.resolve() if user_dags else None,
    )
    stack = LaptopStack(
        s3, mlflow, airflow, model_server, workdir, postgres, pipelines=specs, model_servers=servers
    )
    try:
        if postgres:
            stack.startup_seconds["postgres"] = postgres.start()
        stack.startup_seconds["s3"] = s3.start()
        stack.startup_seconds["mlflow"] = mlflow.start()
        stack.startup_seconds["airflow"] = airflow.start()
    except BaseException:
        stack.stop()
        raise
    stack.save_state()
    return stack


def read_state(workdir: Path) -> dict[str, Any]:
    state_file = workdir.resolve() / "state.json"
    if not state_file.exists():
        raise UserError(f"no platform state in {workdir}: run `trainyard up`")
    state: dict[str, Any] = json.loads(state_file.read_text())
    return state


def _service_records(state: dict[str, Any]) -> dict[str, dict[str, Any]]:
    records: dict[str, dict[str, Any]] = state.get("services") or {
        # state.json of an earlier version: process ids only.
        name: {"pid": pid, "name": None, "dir": state["workdir"]}
        for name, pid in state["pids"].items()
    }
    return records


def _everything(workdir: Path) -> dict[str, object]:
    """A record that matches every process of every service below `workdir`."""
    return {"dir": str(workdir), "claims_cwd": str(workdir / "postgres" / "data")}


def processes_of(workdir: Path) -> list[psutil.Process]:
    """Every process still running for the platform in `workdir`, whatever started it."""
    return service_processes(_everything(workdir.resolve()))


def stop(workdir: Path) -> list[str]:
    """Stop every process `up` started: each service's whole session and every process
    marked as its own, whether or not its main process is still there; then anything
    else still running from this workdir (a crashed service's orphans, the model server)."""
    workdir = workdir.resolve()
    try:
        state = read_state(workdir)
    except UserError:
        state = None
    stopped = []
    if state is not None:
        records = _service_records(state)
        for name in sorted(
            records, key=lambda n: next(i for i, p in enumerate(STOP_ORDER) if n.startswith(p))
        ):
            if stop_service(records[name]):
                stopped.append(name)
        model_server = LocalModelServer(workdir / SERVING_DIR, state["urls"]["serving"])
        if model_server.running_pid() is not None:
            model_server.retire()
            stopped.append("serving")
        for name, server in state.get("model_servers", {}).items():
            team_server = LocalModelServer(Path(server["folder"]), server["url"])
            if team_server.running_pid() is not None:
                team_server.retire()
                stopped.append(f"serving {name}")
    if stop_service(_everything(workdir)):
        stopped.append("leftover processes")
    if state is None and not stopped:
        raise UserError(f"no platform state in {workdir}: run `trainyard up`")
    (workdir / "state.json").unlink(missing_ok=True)
    return stopped


PROBES = {
    "airflow-api-server": "/api/v2/monitor/health",
    "mlflow": "/health",
    "s3": "/",
    "serving": "/ping",
}
# The components the api-server's health report covers, by its names for them.
AIRFLOW_HEALTH = {
    "airflow-scheduler": "scheduler",
    "airflow-dag-processor": "dag_processor",
    "airflow-triggerer": "triggerer",
}


def _http_probe(url: str) -> tuple[bool, str, Any]:
    """(answers, what it said, JSON body if any). Any HTTP answer means the server is there."""
    try:
        with urllib.request.urlopen(url, timeout=3) as response:
            body = response.read()
            code = response.status
    except Exception as exc:
        code = getattr(exc, "code", None)
        if code is None:
            return False, type(exc).__name__, None
        body = b""
    try:
        parsed = json.loads(body) if body else None
    except ValueError:
        parsed = None
    return True, f"HTTP {code}", parsed


def _postgres_probe(state: dict[str, Any]) -> tuple[bool, str]:
    postgres = PostgresServer(Path(state["workdir"]) / "postgres")
    postgres.port = int(state["urls"]["postgres"].rsplit(":", 1)[1].split("/")[0])
    try:
        with postgres.connect() as conn:
            conn.execute("SELECT 1")
    except Exception as exc:
        return False, type(exc).__name__
    return True, "accepts connections"


def status(workdir: Path) -> dict[str, Any]:
    """Each service: its main process, the processes it left, its probe, and whether they agree.

    `problems` names every mismatch: a main process gone while its processes or its port
    still answer, a process that runs but does not answer, a service that is down.
    """
    state = read_state(workdir)
    urls = state["urls"]
    records = _service_records(state)
    api_ok, api_said, health = _http_probe(urls["airflow"] + PROBES["airflow-api-server"])
    services: dict[str, dict[str, Any]] = {}
    problems: list[str] = []
    for name, record in records.items():
        leader = record["pid"]
        running = pid_alive(leader)
        others = [p.pid for p in service_processes(record) if p.pid != leader]
        if name == "postgres":
            answers, said = _postgres_probe(state)
        elif name in AIRFLOW_HEALTH:
            part = (health or {}).get(AIRFLOW_HEALTH[name], {})
            answers = part.get("status") == "healthy"
            said = f"health: {part.get('status') or api_said}"
        elif name == "airflow-api-server":
            answers, said = api_ok and api_said == "HTTP 200", api_said
        else:
            answers, said, _ = _http_probe(urls[name] + PROBES[name])
        entry = {
            "process": "running" if running else "stopped",
            "pid": leader,
            "other_processes": others,
            "probe": said,
            "ok": running and answers,
        }
        services[name] = entry
        if running and not answers:
            problems.append(f"{name}: process {leader} runs but its probe fails ({said})")
        elif not running and answers:
            problems.append(
                f"{name}: process {leader} is gone but the service still answers ({said}); "
                f"processes left: {others or 'none found'}: run `trainyard down`"
            )
        elif not running:
            left = f"; processes left: {others}: run `trainyard down`" if others else ""
            problems.append(f"{name}: process {leader} is gone and nothing answers{left}")
    serving_ok, serving_said, _ = _http_probe(urls["serving"] + PROBES["serving"])
    # Started by the deploy step, not by `up`: no process to compare with.
    services["serving"] = {"process": None, "probe": serving_said, "answers": serving_ok}
    return {
        "services": services,
        "urls": urls,
        "metadata_db": state.get("metadata_db", "sqlite"),
        "problems": problems,
        "import_errors": _import_errors_or_why(workdir, state) if api_ok else [],
    }


def import_errors(workdir: Path, state: dict[str, Any] | None = None) -> list[str]:
    """Every DAG file Airflow could not import, as `bundle/file: last line of the error`."""
    from trainyard.standalone.airflow_api import AirflowApi  # noqa: PLC0415 - a slow import

    state = state or read_state(workdir)
    api = AirflowApi(state["urls"]["airflow"], state["airflow_user"], airflow_password(workdir))
    errors = api.import_errors.get_import_errors(limit=100).import_errors
    return [
        f"{e.bundle_name}/{e.filename}: "
        + ((e.stack_trace or "").strip().splitlines() or ["(no message)"])[-1]
        for e in errors
    ]


def _import_errors_or_why(workdir: Path, state: dict[str, Any]) -> list[str]:
    try:
        return import_errors(workdir, state)
    except Exception as exc:  # a status report, not a failure: say why there is no list
        return [f"(import errors unavailable: {type(exc).__name__}: {str(exc).splitlines()[0]})"]


def client_env(workdir: Path) -> dict[str, str]:
    """What a client of the running platform needs: S3 endpoint and keys, MLflow URI."""
    state = read_state(workdir)
    credentials = load_credentials(Path(state["workdir"]) / "s3")
    if credentials is None:
        raise UserError(f"no S3 credentials in {workdir}/s3")
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
    except UserError:
        return False
    return all(pid_alive(pid) for pid in state["pids"].values())

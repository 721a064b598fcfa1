"""The laptop's model server: `mlflow models serve` for the champion as a local process.

The standalone runtime runs the deploy stage as a local process, which restarts this server;
stage pods never do (the images have no psutil, which `trainyard.processes` needs), so
`deploy` imports this module only when the runtime names a local serving folder.
"""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path
from urllib.parse import urlsplit

import requests

from trainyard.processes import ManagedProcess, ServiceError, pid_alive, stop_group
from trainyard.stages.registry import champion_uri
from trainyard.stages.serving import DEFAULT_TIMEOUT_S, ServingError

log = logging.getLogger(__name__)


class LocalModelServer:
    """`mlflow models serve` for the champion as a local process, restarted on each rollout.

    It runs in its own session with its output in a log file, so it outlives the deploy
    process; `trainyard down` stops it through the pid file.
    """

    def __init__(self, folder: Path, url: str, timeout_s: float = DEFAULT_TIMEOUT_S) -> None:
        self.folder, self.url, self.timeout_s = folder, url, timeout_s
        self.pid_file = folder / "model-server.pid"
        self.log_file = folder / "model-server.log"

    def describe(self) -> str:
        return f"local model server at {self.url}"

    def roll_out(self, model_name: str, version: str) -> None:
        self.retire()
        address = urlsplit(self.url)
        server = ManagedProcess(
            "model server",
            [
                sys.executable,
                "-m",
                "mlflow",
                "models",
                "serve",
                "-m",
                champion_uri(model_name),
                "--env-manager",
                "local",
                "-h",
                address.hostname or "127.0.0.1",
                "-p",
                str(address.port or 80),
                "--workers",
                "1",
            ],
            self.log_file,
            # mlflow execs `uvicorn` by name: this interpreter's scripts come first on PATH.
            env={"PATH": os.pathsep.join([str(Path(sys.executable).parent), os.environ["PATH"]])},
        )
        server.start()
        self.folder.mkdir(parents=True, exist_ok=True)
        self.pid_file.write_text(str(server.pid))
        try:
            seconds = server.wait_until(self._pings, self.timeout_s, "answer on /ping")
        except ServiceError as exc:
            raise ServingError(str(exc)) from exc
        log.info("%s serves %s v%s (up in %.1fs)", self.describe(), model_name, version, seconds)

    def _pings(self) -> bool:
        return requests.get(self.url.rstrip("/") + "/ping", timeout=2).status_code == 200

    def running_pid(self) -> int | None:
        try:
            pid = int(self.pid_file.read_text())
        except (FileNotFoundError, ValueError):
            return None
        return pid if pid_alive(pid) else None

    def retire(self) -> None:
        pid = self.running_pid()
        if pid is not None:
            stop_group(pid, grace_s=15)
        self.pid_file.unlink(missing_ok=True)

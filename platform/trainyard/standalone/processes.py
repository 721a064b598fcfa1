"""Start, probe and stop long-running service processes."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from trainyard.errors import StageError


class ServiceError(StageError):
    """A service did not start or answer; the message carries the tail of its log."""


def free_port(offsets: Sequence[int] = (0,)) -> int:
    """A loopback port p such that p + each offset is free too (SeaweedFS binds port+10000)."""
    for _ in range(200):
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port: int = probe.getsockname()[1]
        if port + max(offsets) < 65536 and all(_is_free(port + o) for o in offsets):
            return port
    raise ServiceError(f"no free loopback port with offsets {list(offsets)}")


def _is_free(port: int) -> bool:
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


class ManagedProcess:
    """A child process in its own session, logging to a file, stopped as a group."""

    def __init__(
        self,
        name: str,
        command: Sequence[str],
        log_path: Path,
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
    ) -> None:
        self.name = name
        self.command = list(command)
        self.log_path = log_path
        self.env = {**os.environ, **(env or {})}
        self.cwd = cwd
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                self.command,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=self.env,
                cwd=self.cwd,
                start_new_session=True,
            )

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process else None

    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def log_tail(self, lines: int = 30) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])

    def wait_until(self, ready: Callable[[], bool], timeout_s: float, what: str) -> float:
        """Poll `ready` until it is true; return seconds taken. Fails fast if the process dies."""
        started = time.monotonic()
        while time.monotonic() - started < timeout_s:
            if not self.running():
                raise ServiceError(
                    f"{self.name} exited (code {self.process and self.process.returncode}) "
                    f"before {what}; last log lines:\n{self.log_tail()}"
                )
            with contextlib.suppress(Exception):
                if ready():
                    return time.monotonic() - started
            time.sleep(0.2)
        raise ServiceError(
            f"{self.name}: no {what} within {timeout_s:.0f}s; last log lines:\n{self.log_tail()}"
        )

    def stop(self, grace_s: float = 10.0) -> None:
        if not self.running():
            return
        assert self.process is not None
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(grace_s)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(grace_s)


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def stop_group(pid: int, grace_s: float = 30.0) -> None:
    """Stop a process group started (by an earlier command) with start_new_session."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    while pid_alive(pid) and time.monotonic() < deadline:
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)
        time.sleep(0.2)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGKILL)

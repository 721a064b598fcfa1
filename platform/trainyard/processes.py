"""Start, probe and stop long-running processes: the laptop runtime's services and the
laptop's model server (which the deploy stage restarts).

Not laptop-only, so neither `trainyard.standalone` nor a trainer owns it; but it needs
psutil, which only the `standalone` extra installs: code that runs in trainer pods imports it
only on the laptop's code paths.

Every process a service starts is found again, even after its main process is
gone: the service runs in its own session (`start_new_session`), and it and all
its descendants carry two environment variables naming the service and its
folder (`TRAINYARD_SERVICE`, `TRAINYARD_SERVICE_DIR`), which also catch the
descendants that start sessions of their own (Airflow's task processes do).
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import psutil

from trainyard.errors import UserError

SERVICE_ENV = "TRAINYARD_SERVICE"
SERVICE_DIR_ENV = "TRAINYARD_SERVICE_DIR"


class ServiceError(UserError):
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
        stop_signal: signal.Signals = signal.SIGTERM,
        claims_cwd: Path | None = None,
    ) -> None:
        self.name = name
        self.command = list(command)
        self.log_path = log_path
        self.cwd = cwd
        # The folder that names the service in its processes' environment.
        self.folder = (cwd or log_path.parent).resolve()
        self.env = {
            **os.environ,
            **(env or {}),
            SERVICE_ENV: name,
            SERVICE_DIR_ENV: str(self.folder),
        }
        self.stop_signal = stop_signal
        # Processes working in this folder are the service's too: PostgreSQL's children start
        # sessions of their own and overwrite their environment with their `ps` titles.
        self.claims_cwd = claims_cwd
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

    def record(self) -> dict[str, object]:
        """What `down` and `status` of a later command need to find this service again."""
        record: dict[str, object] = {"pid": self.pid, "name": self.name, "dir": str(self.folder)}
        if self.claims_cwd:
            record["claims_cwd"] = str(self.claims_cwd.resolve())
        return record

    def stop(self, grace_s: float = 10.0) -> None:
        """Stop the service and everything it started, its main process alive or not."""
        if self.process is None:
            return
        stop_service(self.record(), grace_s, self.stop_signal)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(1)


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    with contextlib.suppress(psutil.Error):
        return bool(psutil.Process(pid).status() != psutil.STATUS_ZOMBIE)
    return True


def _group(pgid: int) -> list[psutil.Process]:
    """The live (not zombie) members of process group `pgid`."""
    members = []
    for process in psutil.process_iter():
        with contextlib.suppress(psutil.Error, OSError):
            if os.getpgid(process.pid) == pgid and process.status() != psutil.STATUS_ZOMBIE:
                members.append(process)
    return members


def stop_group(pid: int, grace_s: float = 30.0) -> None:
    """Stop a process group started (by an earlier command) with start_new_session; return
    once no member is left (the leader may be gone, or a zombie nobody reaps, before them)."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    while _group(pid) and time.monotonic() < deadline:
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)
        time.sleep(0.2)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGKILL)
    psutil.wait_procs(_group(pid), timeout=5)


def _ours(
    process: psutil.Process, session: int | None, name: str | None, folder: str, cwd: str | None
) -> bool:
    """Whether `process` belongs to the service: in its session, carrying its marks, or
    working in the folder it claims."""
    if session is not None:
        with contextlib.suppress(OSError):
            if os.getsid(process.pid) == session or os.getpgid(process.pid) == session:
                return True
    if cwd is not None:
        with contextlib.suppress(psutil.Error, OSError):
            if process.cwd() == cwd:
                return True
    try:
        env = process.environ()
    except (psutil.Error, OSError):
        return False
    marked_dir = env.get(SERVICE_DIR_ENV)
    if marked_dir is None:
        return False
    if name is None:  # every service below `folder`
        return bool(Path(marked_dir).is_relative_to(folder))
    return marked_dir == folder and env.get(SERVICE_ENV) == name


def service_processes(record: Mapping[str, object]) -> list[psutil.Process]:
    """Every live process of the service that `record` (ManagedProcess.record) describes.

    A record without a name means every service whose folder is below `record["dir"]`.
    The descendants of every process found are included.
    """
    pid = record.get("pid")
    session = pid if isinstance(pid, int) else None
    name = record.get("name")
    folder = str(record["dir"])
    claimed = record.get("claims_cwd")
    spared = {os.getpid(), *(p.pid for p in psutil.Process().parents())}
    found: dict[int, psutil.Process] = {}
    for process in psutil.process_iter():
        if process.pid in spared:
            continue
        with contextlib.suppress(psutil.Error):
            if _ours(
                process,
                session,
                name if isinstance(name, str) else None,
                folder,
                claimed if isinstance(claimed, str) else None,
            ):
                found[process.pid] = process
    for process in list(found.values()):
        with contextlib.suppress(psutil.Error):
            found.update({child.pid: child for child in process.children(recursive=True)})
    alive = []
    for process in found.values():
        with contextlib.suppress(psutil.Error):
            if process.pid not in spared and process.status() != psutil.STATUS_ZOMBIE:
                alive.append(process)
    return alive


def stop_service(
    record: Mapping[str, object], grace_s: float = 30.0, sig: signal.Signals = signal.SIGTERM
) -> list[int]:
    """Signal every process of the service, then kill what is left after `grace_s`.

    Returns the pids it found. The main process is signalled first (it may stop its
    own children in order); the rest get the signal too, so nothing waits on a dead leader.
    """
    leader = record.get("pid")
    if isinstance(leader, int):
        # A crashed main process that is this process's own child stays a zombie (and keeps
        # its pid taken) until reaped.
        with contextlib.suppress(ChildProcessError, OSError):
            os.waitpid(leader, os.WNOHANG)
    processes = service_processes(record)
    processes.sort(key=lambda p: p.pid != leader)
    for process in processes:
        with contextlib.suppress(psutil.Error):
            process.send_signal(sig)
    _, alive = psutil.wait_procs(processes, timeout=grace_s)
    for process in alive:
        with contextlib.suppress(psutil.Error):
            process.kill()
    psutil.wait_procs(alive, timeout=5)
    return [p.pid for p in processes]

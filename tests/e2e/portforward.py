"""A local port that keeps reaching a Kubernetes Service while its pods come and go.

`kubectl port-forward svc/NAME` binds to the one pod it picked at start and breaks with it. The
e2e runs outlive pods on purpose: the model server starts with 0 replicas and is rolled out by
the pipeline's deploy step, the scheduler is killed mid-run, `helm upgrade` replaces everything.
So the test process owns the listening socket (the URL in Endpoints never changes) and relays each
connection through a `kubectl port-forward` that it (re)starts whenever the forward is gone.
"""

from __future__ import annotations

import contextlib
import os
import queue
import re
import selectors
import socket
import subprocess
import threading
import time
from pathlib import Path
from typing import Protocol

# How long one client connection may wait for a working forward (a pod starting, a rollout).
CONNECT_PATIENCE_S = 120.0
# Client bytes kept for a replay: a request whose forward died before any reply is sent again.
REPLAY_LIMIT = 1 << 20
# How long kubectl may take to print its port (it connects to the API server first).
START_TIMEOUT_S = 30.0
_FORWARDING = re.compile(rb"Forwarding from 127\.0\.0\.1:(\d+)")


class Backend(Protocol):
    """Where the relay sends a connection: a local port that forwards into the cluster."""

    def port(self, deadline: float) -> int:
        """A port that forwards now, (re)starting the forward if needed; raises TimeoutError."""
        ...

    def reset(self) -> None:
        """The forward stopped working: the next port() starts a fresh one."""
        ...

    def close(self) -> None: ...


class KubectlPortForward:
    """`kubectl port-forward -n NS svc/NAME :PORT`, started on demand and restarted when broken."""

    def __init__(
        self, kubectl: Path, kubeconfig: Path, namespace: str, target: str, remote_port: int
    ) -> None:
        self.description = f"{namespace}/{target}:{remote_port}"
        self._args = [
            str(kubectl),
            "--kubeconfig",
            str(kubeconfig),
            "--namespace",
            namespace,
            "port-forward",
            "--address",
            "127.0.0.1",
            target,
            f":{remote_port}",
        ]
        self._lock = threading.Lock()
        self._proc: subprocess.Popen[bytes] | None = None
        self._port = 0
        self.last_error = ""
        self.starts = 0

    def port(self, deadline: float) -> int:
        with self._lock:
            while True:
                if self._proc is not None and self._proc.poll() is None:
                    return self._port
                self._stop()
                if self._start():
                    return self._port
                if time.monotonic() >= deadline:
                    raise TimeoutError(f"port-forward {self.description}: {self.last_error}")
                time.sleep(2)  # e.g. no running pod behind the Service yet

    def _start(self) -> bool:
        self.starts += 1
        proc = subprocess.Popen(
            self._args,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            env={**os.environ, "KUBECONFIG": self._args[2]},
        )
        lines: queue.Queue[bytes] = queue.Queue()
        started = threading.Event()
        threading.Thread(target=_read_lines, args=(proc, lines, started), daemon=True).start()
        # kubectl prints "Forwarding from 127.0.0.1:PORT -> REMOTE" once it listens.
        output = b""
        until = time.monotonic() + START_TIMEOUT_S
        while (left := until - time.monotonic()) > 0:
            try:
                line = lines.get(timeout=left)
            except queue.Empty:
                break
            if not line:  # it exited: the reason is what it printed
                proc.wait()
                self.last_error = (
                    output.decode(errors="replace").strip() or f"exit {proc.returncode}"
                )
                return False
            output += line
            match = _FORWARDING.search(line)
            if match:
                started.set()
                self._proc, self._port = proc, int(match.group(1))
                return True
        proc.kill()
        proc.wait()
        self.last_error = f"kubectl port-forward printed no port in {START_TIMEOUT_S:.0f} s"
        return False

    def reset(self) -> None:
        with self._lock:
            self._stop()

    def _stop(self) -> None:
        if self._proc is not None:
            self._proc.kill()
            self._proc.wait()
            self._proc = None

    def close(self) -> None:
        self.reset()


def _read_lines(
    proc: subprocess.Popen[bytes], lines: queue.Queue[bytes], started: threading.Event
) -> None:
    """Hands kubectl's output to _start line by line (b"" at the end) until it listens, then
    only drains it, so kubectl never blocks on a full pipe."""
    assert proc.stdout is not None
    for line in proc.stdout:
        if not started.is_set():
            lines.put(line)
    lines.put(b"")


class Relay:
    """Listens on 127.0.0.1 and relays every connection to `backend`, in a thread per connection."""

    def __init__(self, backend: Backend, patience_s: float = CONNECT_PATIENCE_S) -> None:
        self.backend = backend
        self.patience_s = patience_s
        self._server = socket.create_server(("127.0.0.1", 0))
        self.port: int = self._server.getsockname()[1]
        self._closed = threading.Event()
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _accept(self) -> None:
        while not self._closed.is_set():
            try:
                client, _ = self._server.accept()
            except OSError:
                return  # closed
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _serve(self, client: socket.socket) -> None:
        deadline = time.monotonic() + self.patience_s
        sent = bytearray()
        with client:
            while not self._closed.is_set():
                try:
                    port = self.backend.port(deadline)
                    upstream = socket.create_connection(("127.0.0.1", port), timeout=10)
                except (TimeoutError, OSError):
                    self.backend.reset()
                    if time.monotonic() >= deadline:
                        return
                    continue
                with upstream:
                    replied = _pump(client, upstream, sent)
                if replied or not sent:
                    return
                # The forward closed before answering anything: kubectl lost its pod (it keeps
                # listening for a while after that). Start a fresh forward, send the request again.
                self.backend.reset()
                if time.monotonic() >= deadline or len(sent) > REPLAY_LIMIT:
                    return

    def close(self) -> None:
        self._closed.set()
        with contextlib.suppress(OSError):
            self._server.close()
        self.backend.close()


def _pump(client: socket.socket, upstream: socket.socket, sent: bytearray) -> bool:
    """Copy bytes both ways until the upstream closes; whether any reply came.

    `sent` holds what the client sent while no reply came; it is sent to the upstream first (a
    replay after a broken forward) and cleared by the first reply.
    """
    client.settimeout(None)
    upstream.settimeout(None)
    if sent:
        upstream.sendall(sent)
    replied = False
    with selectors.DefaultSelector() as selector:
        selector.register(client, selectors.EVENT_READ)
        selector.register(upstream, selectors.EVENT_READ)
        while True:
            for key, _ in selector.select(timeout=1.0):
                try:
                    data = key.fileobj.recv(65536)  # type: ignore[union-attr]
                except OSError:
                    data = b""
                if key.fileobj is upstream:
                    if not data:
                        return replied
                    replied = True
                    sent.clear()
                    try:
                        client.sendall(data)
                    except OSError:
                        return True
                elif data:
                    if not replied:
                        sent.extend(data)
                    try:
                        upstream.sendall(data)
                    except OSError:
                        return replied
                else:
                    # The client finished sending: pass the half-close on, keep reading replies.
                    selector.unregister(client)
                    with contextlib.suppress(OSError):
                        upstream.shutdown(socket.SHUT_WR)
                    if not sent and not replied:
                        return False

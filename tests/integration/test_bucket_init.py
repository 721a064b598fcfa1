"""The chart's bucket-init script (its ConfigMap, rendered by Helm) against a real SeaweedFS, and
against an endpoint that answers every request with a bare 404, as a store was seen to on kind;
and the cause of that: a first connection that reached something other than the store."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from tests.chart.conftest import platform_script
from tests.conftest import Services

pytestmark = pytest.mark.integration

BUCKETS = ("init-logs", "init-xcom", "init-data")
OLD_SCRIPT = Path(__file__).with_name("data") / "create_buckets_0_3.py"


@pytest.fixture(scope="module")
def script(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return platform_script("create_buckets.py", tmp_path_factory.mktemp("bucket-init"))


def run_script(
    script: Path, env: dict[str, str], timeout_s: float = 5, buckets: tuple[str, ...] = BUCKETS
) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(script)],
        env={
            **os.environ,
            **env,
            "BUCKETS": ",".join(buckets),
            "S3_ADDRESSING_STYLE": "path",
            "WAIT_TIMEOUT_SECONDS": str(timeout_s),
        },
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_buckets_are_created_once_and_found_after(script: Path, services: Services) -> None:
    env = services.s3.client_env()
    first = run_script(script, env)
    assert first.returncode == 0, first.stderr
    assert [f"bucket {b}: created" for b in BUCKETS] == first.stdout.splitlines()[:3]
    second = run_script(script, env)
    assert second.returncode == 0, second.stderr
    assert [f"bucket {b}: exists" for b in BUCKETS] == second.stdout.splitlines()[:3]
    names = {b["Name"] for b in services.s3.client().list_buckets()["Buckets"]}
    assert set(BUCKETS) <= names


@pytest.fixture
def bare_404() -> Iterator[str]:
    """An HTTP/1.1 server that answers everything 404 with a plain-text body, as a router
    with no route does (no S3 error code), and keeps each connection open for the next
    request, as such servers do."""

    class Handler(BaseHTTPRequestHandler):
        server_version, sys_version = "not-a-store/1.0", ""
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: object) -> None:
            return

        def answer(self) -> None:
            body = b"404 page not found\n"
            self.send_response(404)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

        do_GET = do_HEAD = do_PUT = answer  # noqa: N815

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()


def test_a_store_that_answers_a_bare_404_fails_the_job_naming_who_answered(
    script: Path, bare_404: str
) -> None:
    """The kind runs' bucket-init repeated "(404) ... CreateBucket ... Not Found" for 10
    minutes without saying what answered: each retry now names the server, the request id and
    the endpoint, and the Job fails at its deadline with the same line."""
    env = {
        "AWS_ENDPOINT_URL_S3": bare_404,
        "AWS_ACCESS_KEY_ID": "unused",
        "AWS_SECRET_ACCESS_KEY": "unused",
        "AWS_DEFAULT_REGION": "us-east-1",
    }
    proc = run_script(script, env, timeout_s=4)
    assert proc.returncode == 1, proc.stdout
    assert "waiting for the object store" in proc.stdout
    assert "CreateBucket" in proc.stderr and "HTTP 404" in proc.stderr, proc.stderr
    assert "server 'not-a-store/1.0" in proc.stderr and bare_404 in proc.stderr, proc.stderr


@pytest.fixture
def first_connection_elsewhere(bare_404: str, services: Services) -> Iterator[str]:
    """An endpoint whose first connection reaches the bare-404 server and every later one the
    real store: what a bucket-init on kind met when its first lookup of the store's Service
    name, made while the Service was being created, did not give the Service's address."""
    store = services.s3.client_env()["AWS_ENDPOINT_URL_S3"].removeprefix("http://")
    backends = [bare_404.removeprefix("http://"), store]
    listener = socket.create_server(("127.0.0.1", 0))

    def pipe(source: socket.socket, sink: socket.socket) -> None:
        with source, sink:
            while data := source.recv(65536):
                sink.sendall(data)

    def serve() -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            target = backends.pop(0) if len(backends) > 1 else backends[0]
            host, port = target.rsplit(":", 1)
            upstream = socket.create_connection((host, int(port)))
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=pipe, args=(a, b), daemon=True).start()

    threading.Thread(target=serve, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}"
    finally:
        listener.close()


@pytest.mark.parametrize(
    ("which", "buckets"),
    [("this chart's", ("pinned-logs", "pinned-data")), ("0.3's", ("old-logs", "old-data"))],
    ids=["this-chart", "chart-0.3-control"],
)
def test_a_retry_does_not_ride_the_connection_that_reached_something_else(
    script: Path,
    services: Services,
    first_connection_elsewhere: str,
    which: str,
    buckets: tuple[str, ...],
) -> None:
    """The 404 of the kind runs, reproduced: the first connection answers a bare 404 and
    stays open. 0.3's bucket-init kept one client, so every retry rode that connection and
    got 404 until its deadline (the control: this test fails on the old behaviour). This
    chart's retries on new connections, reaches the store, creates the buckets and confirms
    them with the store's own listing."""
    env = {**services.s3.client_env(), "AWS_ENDPOINT_URL_S3": first_connection_elsewhere}
    if which == "0.3's":
        proc = run_script(OLD_SCRIPT, env, timeout_s=8, buckets=buckets)
        assert proc.returncode == 1, proc.stdout
        assert proc.stdout.count("CreateBucket operation: Not Found") >= 2, proc.stdout
        assert "object store did not answer in time" in proc.stderr, proc.stderr
        return
    proc = run_script(script, env, timeout_s=30, buckets=buckets)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    lines = proc.stdout.splitlines()
    assert "server 'not-a-store/1.0" in lines[0], lines  # the first attempt's answer, named
    assert [f"bucket {b}: created" for b in buckets] == [ln for ln in lines if "created" in ln]
    assert lines[-1] == "all buckets present: " + ", ".join(buckets)
    names = {b["Name"] for b in services.s3.client().list_buckets()["Buckets"]}
    assert set(buckets) <= names

"""The chart's bucket-init script (its ConfigMap, rendered by Helm) against a real SeaweedFS, and
against an endpoint that answers every request with a bare 404, as a store was seen to on kind.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from tests.chart.conftest import render_chart
from tests.conftest import Services

pytestmark = pytest.mark.integration

BUCKETS = ("init-logs", "init-xcom", "init-data")


@pytest.fixture(scope="module")
def script(tmp_path_factory: pytest.TempPathFactory) -> Path:
    (configmap,) = render_chart(show_only=["templates/platform-scripts-configmap.yaml"])
    path = tmp_path_factory.mktemp("bucket-init") / "create_buckets.py"
    path.write_text(configmap["data"]["create_buckets.py"])
    return path


def run_script(
    script: Path, env: dict[str, str], timeout_s: float = 5
) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(script)],
        env={
            **os.environ,
            **env,
            "BUCKETS": ",".join(BUCKETS),
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
    """An HTTP server that answers everything 404 with a plain-text body, as a router with
    no route does (no S3 error code)."""

    class Handler(BaseHTTPRequestHandler):
        server_version, sys_version = "not-a-store/1.0", ""

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

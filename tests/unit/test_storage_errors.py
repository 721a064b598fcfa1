"""A stage given an `s3://` URL it cannot use says what is missing in one line, not a traceback.

The real trainer CLI as a process, with an environment that has no AWS credentials
anywhere (no variables, no files, no instance metadata) or no reachable endpoint.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

URL = "s3://datasets/digits/daily/2026-01-01/features.parquet"


def stage(tmp_path: Path, *arguments: str, **env: str) -> list[str]:
    """Run a stage (`validate` on URL unless given) with `env` instead of any AWS settings;
    its stderr lines."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    clean.update(
        AWS_SHARED_CREDENTIALS_FILE=str(tmp_path / "none"),
        AWS_CONFIG_FILE=str(tmp_path / "none"),
        AWS_EC2_METADATA_DISABLED="true",
        **env,
    )
    command = [sys.executable, "-m", "digits", "--xcom-dir", str(tmp_path)]
    proc = subprocess.run(
        [*command, *(arguments or ("validate", "--data", URL))],
        env=clean,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 1, proc.stderr
    return proc.stderr.strip().splitlines()


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


def test_no_credentials_is_one_line(tmp_path: Path) -> None:
    lines = stage(tmp_path, AWS_ENDPOINT_URL_S3=f"http://127.0.0.1:{closed_port()}")
    assert lines == [
        f"digits validate: error: {URL}: no S3 credentials: set AWS_ACCESS_KEY_ID "
        "and AWS_SECRET_ACCESS_KEY (or an AWS profile or role)"
    ]


def test_unreachable_endpoint_is_one_line(tmp_path: Path) -> None:
    endpoint = f"http://127.0.0.1:{closed_port()}"
    lines = stage(
        tmp_path, AWS_ENDPOINT_URL_S3=endpoint, AWS_ACCESS_KEY_ID="ak", AWS_SECRET_ACCESS_KEY="sk"
    )
    assert lines == [f"digits validate: error: {URL}: cannot reach the S3 endpoint {endpoint}"]


def test_no_endpoint_is_one_line(tmp_path: Path) -> None:
    # No endpoint means AWS's own; a region that does not exist makes it unreachable anywhere.
    lines = stage(
        tmp_path,
        AWS_ACCESS_KEY_ID="ak",
        AWS_SECRET_ACCESS_KEY="sk",
        AWS_DEFAULT_REGION="nowhere-1",
    )
    assert len(lines) == 1, lines
    assert lines[0].startswith(
        f"digits validate: error: {URL}: no S3 endpoint: AWS_ENDPOINT_URL_S3 is not set"
    ), lines


def test_a_write_without_credentials_is_one_line(tmp_path: Path) -> None:
    root = "s3://datasets/digits"
    lines = stage(
        tmp_path,
        "publish", "--root", root, "--date", "2026-01-01",
        AWS_ENDPOINT_URL_S3=f"http://127.0.0.1:{closed_port()}",
    )  # fmt: skip
    assert len(lines) == 1, lines
    assert lines[0].startswith(f"digits publish: error: {root}/"), lines
    assert lines[0].endswith(
        ": no S3 credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (or an AWS profile "
        "or role)"
    ), lines


def test_the_error_line_is_the_containers_termination_message(tmp_path: Path) -> None:
    """In a pod the kubelet reads the termination log into the pod's status, where the pod
    operator (and so the failure alert) finds it; the file stands in for the kubelet's."""
    termination_log = tmp_path / "termination-log"
    termination_log.touch()
    lines = stage(
        tmp_path,
        AWS_ENDPOINT_URL_S3=f"http://127.0.0.1:{closed_port()}",
        TRAINYARD_TERMINATION_LOG=str(termination_log),
    )
    assert termination_log.read_text().splitlines() == lines

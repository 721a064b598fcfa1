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


def stage(tmp_path: Path, **env: str) -> list[str]:
    """Run `validate` on URL with `env` instead of any AWS settings; its stderr lines."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    clean.update(
        AWS_SHARED_CREDENTIALS_FILE=str(tmp_path / "none"),
        AWS_CONFIG_FILE=str(tmp_path / "none"),
        AWS_EC2_METADATA_DISABLED="true",
        **env,
    )
    command = [sys.executable, "-m", "trainyard.trainer", "--xcom-dir", str(tmp_path)]
    proc = subprocess.run(
        [*command, "validate", "--data", URL],
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
        f"trainyard.trainer validate: error: {URL}: no S3 credentials: set AWS_ACCESS_KEY_ID "
        "and AWS_SECRET_ACCESS_KEY (or an AWS profile or role)"
    ]


def test_unreachable_endpoint_is_one_line(tmp_path: Path) -> None:
    endpoint = f"http://127.0.0.1:{closed_port()}"
    lines = stage(
        tmp_path, AWS_ENDPOINT_URL_S3=endpoint, AWS_ACCESS_KEY_ID="ak", AWS_SECRET_ACCESS_KEY="sk"
    )
    assert lines == [
        f"trainyard.trainer validate: error: {URL}: cannot reach the S3 endpoint {endpoint}"
    ]


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
        f"trainyard.trainer validate: error: {URL}: no S3 endpoint: AWS_ENDPOINT_URL_S3 is not set"
    ), lines

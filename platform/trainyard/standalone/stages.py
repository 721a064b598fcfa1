"""Run one trainer stage as a process and read its result, outside Airflow (demo, benchmarks)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from trainyard.errors import StageError
from trainyard.trainer.xcom import RETURN_FILE


def run_stage(args: Sequence[str], env: Mapping[str, str]) -> dict[str, Any]:
    """`python -m trainyard.trainer <args>` with `env`; its return.json, or StageError."""
    with tempfile.TemporaryDirectory(prefix="trainyard-xcom-") as xcom_dir:
        proc = subprocess.run(
            [sys.executable, "-m", "trainyard.trainer", "--log-level", "WARNING", *args],
            env={**os.environ, **env, "XCOM_DIR": xcom_dir},
            capture_output=True,
            text=True,
            check=False,
        )
        if proc.returncode != 0:
            raise StageError(f"stage {args[0]} failed: {proc.stderr.strip()[-1000:]}")
        result: dict[str, Any] = json.loads(Path(xcom_dir, RETURN_FILE).read_text())
    return result

"""Shared test helpers: run trainer stages through their real CLI, as a pod does."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# Airflow reads its home at import: keep tests away from ~/airflow.
os.environ.setdefault("AIRFLOW_HOME", tempfile.mkdtemp(prefix="trainyard-airflow-home-"))
os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")

# Command-line options of the kind tests (--kind-bin, --helm-bin, ...): options can only be
# registered by the top-level conftest or a plugin, so the plugin is loaded from here.
pytest_plugins = ("tests.e2e.options",)


@dataclass
class StageRun:
    returncode: int
    stdout: str
    stderr: str
    xcom_file: Path

    @property
    def result(self) -> dict[str, Any]:
        assert self.returncode == 0, f"stage failed ({self.returncode}):\n{self.stderr[-3000:]}"
        value: dict[str, Any] = json.loads(self.xcom_file.read_text())
        return value


def run_trainer(
    args: list[str], xcom_dir: Path, env: dict[str, str] | None = None, timeout: float = 300
) -> StageRun:
    """`python -m trainyard.trainer <args>` in a subprocess with its own XCOM_DIR."""
    proc = subprocess.run(
        [sys.executable, "-m", "trainyard.trainer", *args],
        env={**os.environ, "XCOM_DIR": str(xcom_dir), **(env or {})},
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    return StageRun(proc.returncode, proc.stdout, proc.stderr, xcom_dir / "return.json")

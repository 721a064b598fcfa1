"""Shared test helpers: run trainer stages through their real CLI, as a pod does."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

import pytest

from trainyard.standalone.services import MlflowServer, S3Server

from . import budget

# Airflow reads its home at import: keep tests away from ~/airflow.
os.environ.setdefault("AIRFLOW_HOME", tempfile.mkdtemp(prefix="trainyard-airflow-home-"))
os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")

# Command-line options of the kind tests (--kind-bin, --helm-bin, ...): options can only be
# registered by the top-level conftest or a plugin, so the plugin is loaded from here.
pytest_plugins = ("tests.e2e.options",)


# A test that took this long (setup + call + teardown) gets a line as soon as it ends, with the
# session's elapsed time: when CI stops a run at its time limit, the output's tail still says
# where the time went (--durations prints only at the end of a run).
SLOW_TEST_S = 60.0


class SlowTestLines:
    def __init__(self, config: pytest.Config) -> None:
        self.config = config
        self.started = time.monotonic()
        self.seconds: dict[str, float] = {}

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        total = self.seconds.get(report.nodeid, 0.0) + report.duration
        if report.when != "teardown":
            self.seconds[report.nodeid] = total
            return
        self.seconds.pop(report.nodeid, None)
        terminal = self.config.pluginmanager.get_plugin("terminalreporter")
        if total >= SLOW_TEST_S and terminal is not None:
            elapsed = time.monotonic() - self.started
            terminal.write("\n")  # off the progress dots' line
            terminal.write_line(
                f"[slow] {report.nodeid}: {total:.0f} s (session at {elapsed:.0f} s)"
            )


def pytest_configure(config: pytest.Config) -> None:
    config.pluginmanager.register(SlowTestLines(config), "trainyard-slow-test-lines")
    config.pluginmanager.register(budget.TestTimes(), budget.PLUGIN_NAME)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The kind tests first, the rest in their order: `make test` runs files on two xdist
    workers (--dist loadfile, in this order), and the longest file must start at once for the
    other worker to run everything else beside it (README: "Test budget")."""
    items.sort(key=lambda item: item.nodeid.partition("::")[0] != budget.KIND_TESTS)


def unavailable(why: str) -> NoReturn:
    """A prerequisite of a test (Docker, the offline kind toolchain) is missing: a skip on a
    developer's machine, a failure in CI (`CI` set), where .ci/run provides all of them and a
    skipped cluster or image test would pass for a proof it is not."""
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(f"CI lacks a prerequisite: {why}", pytrace=False)
    pytest.skip(why)


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
    """`python -m digits <args>` in a subprocess with its own XCOM_DIR."""
    proc = subprocess.run(
        [sys.executable, "-m", "digits", *args],
        env={**os.environ, "XCOM_DIR": str(xcom_dir), **(env or {})},
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    return StageRun(proc.returncode, proc.stdout, proc.stderr, xcom_dir / "return.json")


@dataclass
class Services:
    s3: S3Server
    mlflow: MlflowServer
    workdir: Path

    @property
    def env(self) -> dict[str, str]:
        """What a trainer pod gets: the S3 endpoint and credentials, the tracking URI."""
        return {**self.s3.client_env(), "MLFLOW_TRACKING_URI": self.mlflow.url}


@pytest.fixture(scope="session")
def services(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Services]:
    """A real SeaweedFS S3 server and a real MLflow server (SQLite backend, S3 artifacts) on
    127.0.0.1, shared by the stage tests and the image tests (containers use --network host)."""
    workdir = tmp_path_factory.mktemp("services")
    s3 = S3Server(workdir / "s3")
    mlflow = MlflowServer(workdir / "mlflow", s3)
    try:
        s3.start()
        mlflow.start()
        yield Services(s3, mlflow, workdir)
    finally:
        mlflow.stop()
        s3.stop()

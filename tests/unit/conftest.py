from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from digits.cli import main
from digits.data import build_day
from trainyard import storage

pytestmark = pytest.mark.unit


@dataclass
class CliResult:
    code: int
    stderr: str
    xcom_file: Path

    @property
    def result(self) -> dict[str, Any]:
        assert self.code == 0, self.stderr
        value: dict[str, Any] = json.loads(self.xcom_file.read_text())
        return value


@pytest.fixture
def cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]):  # type: ignore[no-untyped-def]
    """The trainer CLI in-process: exit code, stderr and where return.json would be."""
    counter = iter(range(1000))

    def run(*args: str) -> CliResult:
        xcom = tmp_path / f"xcom-{next(counter)}"
        try:
            code = main(["--xcom-dir", str(xcom), *args])
        except SystemExit as exc:  # argparse usage errors
            code = int(exc.code or 0)
        return CliResult(code, capsys.readouterr().err, xcom / "return.json")

    return run


@pytest.fixture(scope="session")
def raw_day() -> pd.DataFrame:
    return build_day(dt.date(2026, 11, 20))


@pytest.fixture
def write_raw(tmp_path: Path):  # type: ignore[no-untyped-def]
    """Write a frame as a day's raw Parquet and return its file:// URL."""

    def write(frame: pd.DataFrame, name: str = "features.parquet") -> str:
        url = f"file://{tmp_path / 'raw' / name}"
        storage.write_bytes(url, storage.parquet_bytes(frame))
        return url

    return write

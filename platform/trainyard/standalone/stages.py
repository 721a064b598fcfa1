"""Run one trainer stage as a process and read its result, outside Airflow (demo, benchmarks)."""

from __future__ import annotations

import sys
from collections.abc import Mapping, Sequence
from typing import Any

from trainyard.errors import UserError
from trainyard.stage_runner import StageExitError, StageProcess


def run_stage(args: Sequence[str], env: Mapping[str, str]) -> dict[str, Any]:
    """`python -m digits <args>` (the shipped pipeline's trainer: the demo publishes its data)
    with `env`; its return.json, or UserError."""
    command = [sys.executable, "-m", "digits", "--log-level", "WARNING", *args]
    try:
        result = StageProcess(command, env).run()
    except StageExitError as failed:
        raise UserError(f"stage {args[0]} failed: {failed}") from None
    assert result is not None
    return result

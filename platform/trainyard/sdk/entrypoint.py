"""A trainer's `main`: the contract's exit codes, one-line errors and result file.

    def train(env: StageEnvironment) -> dict: ...
    if __name__ == "__main__":
        main(train)

`fn` returns the stage's result; rank 0's is written to return.json (and, for a train trial,
checked for run_id, model_uri, metrics and params first). An exception becomes one line,
"<stage>: error: <message>", on stderr and in $TRAINYARD_TERMINATION_LOG, where the platform
reads it into the task's error and the failure alert; the exit code is 1, or 2 for a UsageError.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import os
import sys
import traceback
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, NoReturn

from trainyard.sdk.distributed import leave_process_group
from trainyard.sdk.environment import StageEnvironment, read_environment
from trainyard.sdk.errors import ContractError, UsageError
from trainyard.sdk.result import check_train_result, write_result

EXIT_FAILURE = 1
EXIT_USAGE = 2
# Kubernetes reads at most 4 KiB of a termination message; one line stays well below.
MAX_LINE_CHARS = 2000

StageFunction = Callable[[StageEnvironment], Mapping[str, Any] | None]


class ArgumentParser(argparse.ArgumentParser):
    """argparse whose usage errors raise UsageError, so `main` reports them as one line."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{self.prog}: {message}")


def one_line(text: str) -> str:
    line = " ".join(text.split())
    return line if len(line) <= MAX_LINE_CHARS else line[: MAX_LINE_CHARS - 1] + "…"


def report_failure(line: str, environ: Mapping[str, str] | None = None) -> None:
    """`line` on stderr and in $TRAINYARD_TERMINATION_LOG (when set and writable)."""
    print(line, file=sys.stderr, flush=True)
    path = (os.environ if environ is None else environ).get("TRAINYARD_TERMINATION_LOG")
    if path:
        with contextlib.suppress(OSError):  # a read-only or odd mount: the line is on stderr
            Path(path).write_text(line + "\n")


def _label() -> str:
    return os.environ.get("TRAINYARD_STAGE") or Path(sys.argv[0] or "trainer").name


def _message(exc: BaseException) -> str:
    # Errors meant for the user say what is wrong; anything else is named by its type too.
    if isinstance(exc, ContractError | UsageError | ValueError | FileNotFoundError):
        return str(exc) or type(exc).__name__
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


def run(fn: StageFunction, *, train: bool | None = None) -> int:
    """Run `fn` as a stage; the exit code. `train`: check the result as a train trial's
    (default: when the platform set TRAINYARD_TRIAL)."""
    try:
        environment = read_environment()
        result = fn(environment)
        if not environment.is_main:
            return 0  # the main process reports for the trial
        if result is None:
            raise ContractError("the stage returned no result (return.json is required)")
        if train if train is not None else environment.is_trial:
            check_train_result(result)
        write_result(result)
    except UsageError as exc:
        report_failure(f"{_label()}: error: {one_line(str(exc))}")
        return EXIT_USAGE
    except Exception as exc:
        if not isinstance(exc, ContractError | UsageError):
            traceback.print_exc()
        report_failure(f"{_label()}: error: {one_line(_message(exc))}")
        return EXIT_FAILURE
    finally:
        leave_process_group()
    return 0


def main(fn: StageFunction, *, train: bool | None = None) -> NoReturn:
    """Run `fn` as the process's stage and exit with the contract's exit code."""
    sys.exit(run(fn, train=train))


def entrypoint(fn: StageFunction | None = None, *, train: bool | None = None) -> Callable[..., Any]:
    """Decorator form of `main`: `@entrypoint` then `train_stage()` in `__main__` runs the
    stage and exits; `@entrypoint(train=True)` checks the result as a train trial's."""

    def wrap(function: StageFunction) -> Callable[[], NoReturn]:
        @functools.wraps(function)
        def start() -> NoReturn:
            main(function, train=train)

        return start

    if fn is None:
        return wrap
    return wrap(fn)

"""Run a stage as a child process the way a pod runs it: a fresh `$XCOM_DIR`, and its result
read back from `return.json` (the KubernetesPodOperator contract, see `sdk/result.py`).

A fresh `$TRAINYARD_TERMINATION_LOG` too: the file where a failing stage leaves its one-line
error (a pod's /dev/termination-log). That line is the error; without it, a trainyard stage's
marked line in its output, then the output's tail.

The laptop's pod operator and `run_stage` (demo, benchmarks) both run stages through this.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import tempfile
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from trainyard.errors import ERROR_LINE, UserError
from trainyard.sdk.result import RETURN_FILE

# Output lines kept for the error of a stage that failed without its one-line error.
TAIL_LINES = 40


class StageExitError(UserError):
    """The stage's process exited non-zero."""

    def __init__(self, code: int, error_line: str | None, output_tail: str) -> None:
        self.code, self.error_line, self.output_tail = code, error_line, output_tail
        super().__init__(error_line or output_tail[-1000:] or f"exited with {code}")


def termination_line(path: Path) -> str | None:
    """The first non-empty line the stage left in its termination log, if any."""
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return None
    return next((line.strip() for line in text.splitlines() if line.strip()), None)


class StageProcess:
    """One run of `command` with `env` on top of this process's environment.

    The process gets a session of its own, so `terminate` stops everything it started.
    """

    def __init__(
        self, command: Sequence[str], env: Mapping[str, str], cwd: str | None = None
    ) -> None:
        self.command, self.env, self.cwd = list(command), dict(env), cwd
        self._process: subprocess.Popen[str] | None = None

    def run(
        self, on_output: Callable[[str], None] = lambda line: None, read_result: bool = True
    ) -> dict[str, Any] | None:
        """Stream each output line to `on_output`; the stage's return.json, None when
        `read_result` is false. Raises StageExitError, or UserError when there is no result."""
        with (
            tempfile.TemporaryDirectory(prefix="trainyard-xcom-") as xcom_dir,
            tempfile.TemporaryDirectory(prefix="trainyard-termination-") as termination_dir,
        ):
            # Its own folder, not XCOM_DIR: the stage's result folder holds only its result.
            termination_log = Path(termination_dir, "termination-log")
            termination_log.touch()
            env = {
                **os.environ,
                **self.env,
                "XCOM_DIR": xcom_dir,
                "TRAINYARD_TERMINATION_LOG": str(termination_log),
                "PYTHONUNBUFFERED": "1",
            }
            try:
                process = self._process = subprocess.Popen(
                    self.command,
                    env=env,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.STDOUT,
                    text=True,
                    start_new_session=True,
                    cwd=self.cwd,
                )
            except OSError as exc:  # no such program, not executable: what a pod's start says
                where = f" in {self.cwd}" if self.cwd else ""
                raise UserError(
                    f"cannot run the stage's command {self.command[0]!r}{where}: "
                    f"{exc.strerror or exc}"
                ) from None
            assert process.stdout is not None
            error, tail = None, deque[str](maxlen=TAIL_LINES)
            try:
                for raw in process.stdout:
                    line = raw.rstrip()
                    on_output(line)
                    tail.append(line)
                    # The stage's own one-line error names the problem; the exit code does not.
                    if ERROR_LINE.match(line):
                        error = line.strip()
                code = process.wait()
            finally:
                # Left early (interrupted, timed out): the stage, in its own session, stops too.
                if process.poll() is None:
                    self.terminate()
                    with contextlib.suppress(subprocess.TimeoutExpired):
                        process.wait(10)
            if code != 0:
                error = termination_line(termination_log) or error
                raise StageExitError(code, error, "\n".join(tail).strip())
            if not read_result:
                return None
            result_file = Path(xcom_dir, RETURN_FILE)
            if not result_file.exists():
                raise UserError(
                    "the stage exited 0 but wrote no return.json: a stage that succeeds must "
                    "leave its result in $XCOM_DIR/return.json (the trainer contract)"
                )
            result: dict[str, Any] = json.loads(result_file.read_text())
            return result

    def terminate(self) -> None:
        """SIGTERM to the stage's process group, while its main process runs."""
        if self._process and self._process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self._process.pid, signal.SIGTERM)

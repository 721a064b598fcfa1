"""One stage runner for the laptop's pod operator and `run_stage`: real child processes, a real
trainer stage, and a stage stopped with everything it started."""

from __future__ import annotations

import sys
import threading
import time

import pytest

from trainyard.errors import UserError
from trainyard.processes import pid_alive
from trainyard.stage_runner import StageExitError, StageProcess
from trainyard.standalone.stages import run_stage

pytestmark = pytest.mark.unit

# A stage that starts a child, says its pid and waits: stopping the stage must stop the child.
WITH_A_CHILD = ["sh", "-c", "sleep 300 & echo $!; wait"]


def gone(pid: int, within_s: float = 10) -> bool:
    deadline = time.monotonic() + within_s
    while pid_alive(pid):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def test_run_stage_returns_the_stages_result(tmp_path):
    result = run_stage(["publish", "--root", f"file://{tmp_path}", "--date", "2026-11-20"], {})
    assert result["rows"] == 1617
    assert result["data_url"].endswith("daily/2026-11-20/features.parquet")


def test_run_stage_fails_with_the_stages_one_line_error(tmp_path):
    missing = f"file://{tmp_path}/missing.parquet"
    with pytest.raises(UserError) as failed:
        run_stage(["validate", "--data", missing], {})
    assert str(failed.value) == (
        f"stage validate failed: digits validate: error: {missing}: not found"
    )


def test_without_a_one_line_error_the_output_tail_is_the_error():
    crash = [sys.executable, "-c", "print('step 1'); raise RuntimeError('boom')"]
    with pytest.raises(StageExitError) as failed:
        StageProcess(crash, {}).run()
    assert failed.value.code == 1 and failed.value.error_line is None
    assert str(failed.value).startswith("step 1\nTraceback")
    assert str(failed.value).endswith("RuntimeError: boom")


def test_any_programs_one_line_error_is_found_in_its_output():
    """`<program> <stage>: error: <what>` from any trainer (a team's script, not only
    trainyard's CLIs); an exception's `Type: error: ...` is not one."""
    line = "train.py train: error: the data has no rows"
    script = f"import sys; print('ValueError: error: x'); print({line!r}, file=sys.stderr); exit(1)"
    with pytest.raises(StageExitError) as failed:
        StageProcess([sys.executable, "-c", script], {}).run()
    assert failed.value.error_line == line


def test_terminate_stops_the_stage_and_what_it_started():
    stage, lines = StageProcess(WITH_A_CHILD, {}), []
    outcome: list[BaseException] = []

    def run() -> None:
        try:
            stage.run(lines.append)
        except StageExitError as exc:
            outcome.append(exc)

    runner = threading.Thread(target=run)
    runner.start()
    while not lines:
        assert runner.is_alive(), outcome
        time.sleep(0.05)
    stage.terminate()
    runner.join(10)
    assert not runner.is_alive()
    assert isinstance(outcome[0], StageExitError) and outcome[0].code < 0  # killed by a signal
    assert gone(int(lines[0]))


def test_an_interrupted_runner_stops_the_stage():
    started: list[int] = []

    def interrupt(line: str) -> None:
        started.append(int(line))
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        StageProcess(WITH_A_CHILD, {}).run(interrupt)
    assert gone(started[0])

"""The standalone pod: same command, env and return.json → XCom contract as a pod."""

from __future__ import annotations

import pytest
from airflow.sdk.exceptions import AirflowException

from trainyard.pipeline.local_pod import LocalPodOperator

pytestmark = pytest.mark.unit

WRITE_RESULT = (
    "import json, os, pathlib; print('working'); "
    "pathlib.Path(os.environ['XCOM_DIR'], 'return.json').write_text("
    "json.dumps({'setting': os.environ['SETTING'], 'args': __import__('sys').argv[1:]}))"
)


def test_result_file_becomes_the_return_value_and_env_reaches_the_process():
    op = LocalPodOperator(
        task_id="t",
        cmds=["python", "-c", WRITE_RESULT],
        arguments=["a", 1],
        env_vars={"SETTING": "from-platform"},
    )
    assert op.execute({}) == {"setting": "from-platform", "args": ["a", "1"]}


def test_a_failing_process_fails_the_task():
    op = LocalPodOperator(task_id="t", cmds=["python", "-c", "raise SystemExit(3)"])
    with pytest.raises(AirflowException, match="exited with 3"):
        op.execute({})


def test_the_stages_one_line_error_is_the_tasks_error(tmp_path):
    op = LocalPodOperator(
        task_id="validate",
        cmds=["python", "-m", "digits"],
        arguments=["validate", "--data", f"file://{tmp_path}/missing.parquet"],
    )
    with pytest.raises(AirflowException) as failed:
        op.execute({})
    assert str(failed.value) == (
        f"digits validate: error: file://{tmp_path}/missing.parquet: not found "
        "(digits ['validate'] exited with 1)"
    )


def test_success_without_a_result_is_an_error():
    op = LocalPodOperator(task_id="t", cmds=["python", "-c", "pass"])
    with pytest.raises(AirflowException, match=r"wrote no return\.json"):
        op.execute({})


def test_real_trainer_stage(tmp_path):
    op = LocalPodOperator(
        task_id="publish",
        cmds=["python", "-m", "digits"],
        arguments=["publish", "--root", f"file://{tmp_path}", "--date", "2026-11-20"],
    )
    result = op.execute({})
    assert result["rows"] == 1617
    assert (tmp_path / "daily" / "2026-11-20" / "features.parquet").exists()


# A plain shell stage: the contract, not the trainyard package, is what such a stage follows.
FAILING_SHELL_STAGE = (
    'echo "a log line"; '
    'echo "fit: error: alpha must be positive" > "$TRAINYARD_TERMINATION_LOG"; exit 3'
)
# Succeeds only with a fresh, empty termination log; says where it was.
REPORTS_ITS_LOG = (
    'test -f "$TRAINYARD_TERMINATION_LOG" && ! test -s "$TRAINYARD_TERMINATION_LOG" && '
    'printf \'{"log": "%s"}\' "$TRAINYARD_TERMINATION_LOG" > "$XCOM_DIR/return.json"'
)


def test_the_termination_log_line_is_the_tasks_error():
    op = LocalPodOperator(task_id="train", cmds=["sh", "-c", FAILING_SHELL_STAGE])
    with pytest.raises(AirflowException) as failed:
        op.execute({})
    error, where = str(failed.value).split(" (", 1)
    assert error == "fit: error: alpha must be positive"
    assert where.endswith("exited with 3)")


def test_each_stage_gets_its_own_empty_termination_log():
    first = LocalPodOperator(task_id="a", cmds=["sh", "-c", REPORTS_ITS_LOG]).execute({})
    second = LocalPodOperator(task_id="b", cmds=["sh", "-c", REPORTS_ITS_LOG]).execute({})
    assert first["log"] != second["log"]


def test_exit_0_without_a_result_names_the_contract():
    op = LocalPodOperator(task_id="t", cmds=["sh", "-c", "echo done"])
    with pytest.raises(AirflowException, match=r"exited 0 but wrote no return\.json"):
        op.execute({})

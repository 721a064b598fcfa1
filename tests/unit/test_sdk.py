"""The trainer SDK: the contract's environment, result, checkpoints and entry point."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest

from trainyard import sdk
from trainyard.sdk.checkpoints import MAGIC

pytestmark = pytest.mark.unit

TRIAL_ENV = {
    "TRAINYARD_PIPELINE": "diabetes",
    "TRAINYARD_STAGE": "train",
    "TRAINYARD_DAG_RUN_ID": "manual__2026-11-20",
    "TRAINYARD_DS": "2026-11-20",
    "TRAINYARD_WORK_URL": "s3://work/diabetes/manual__2026-11-20",
    "TRAINYARD_EXPERIMENT": "diabetes",
    "TRAINYARD_RUN_NAME": "alpha=0.1",
    "TRAINYARD_TRIAL": "3",
    "TRAINYARD_CHECKPOINT_URL": "s3://work/ckpt/trial-003",
    "TRAINYARD_CHECKPOINT_EVERY": "2",
    "TRAINYARD_PROCESSES": "2",
    "RANK": "1",
    "WORLD_SIZE": "2",
}

GOOD_TRAIN_RESULT = {
    "run_id": "abc",
    "model_uri": "models:/m-1",
    "metrics": {"rmse": 51.2},
    "params": {"alpha": 0.1},
}


def test_the_environment_reads_into_typed_fields():
    env = sdk.read_environment(TRIAL_ENV)
    assert env.pipeline == "diabetes" and env.ds == "2026-11-20"
    assert env.trial == 3 and env.checkpoint_every == 2 and env.processes == 2
    assert env.rank == 1 and env.world_size == 2 and not env.is_main and env.is_trial
    assert sdk.processes(env) == sdk.Processes(rank=1, world_size=2, local_rank=0)


def test_outside_a_pipeline_everything_is_unset_and_this_process_is_main():
    env = sdk.read_environment({})
    assert env.experiment is None and env.trial is None and env.is_main and not env.is_trial


def test_a_required_variable_that_is_missing_is_named():
    with pytest.raises(sdk.ContractError, match=r"^TRAINYARD_EXPERIMENT is not set"):
        sdk.read_environment({"TRAINYARD_PIPELINE": "p"}).require("pipeline", "experiment")


@pytest.mark.parametrize(
    ("variables", "message"),
    [
        ({"TRAINYARD_TRIAL": "x"}, "TRAINYARD_TRIAL='x' is not an integer"),
        ({"TRAINYARD_CHECKPOINT_EVERY": "0"}, "TRAINYARD_CHECKPOINT_EVERY=0 must be at least 1"),
        ({"RANK": "2", "WORLD_SIZE": "2"}, "RANK=2 is not below WORLD_SIZE=2"),
    ],
)
def test_a_malformed_variable_is_one_line_naming_it(variables, message):
    with pytest.raises(sdk.ContractError, match=f"^{message}"):
        sdk.read_environment(variables)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"model_uri": None}, "the train result has no model_uri"),
        ({"metrics": {"rmse": "low"}}, "metric 'rmse' is 'low', not a number"),
        ({"metrics": {"rmse": float("inf")}}, "metric 'rmse' is inf"),
        ({"params": []}, "params must be an object"),
        ({"run_id": ""}, "run_id must be a non-empty string"),
    ],
)
def test_a_train_result_lacking_a_contract_key_is_refused(change, message):
    result = {**GOOD_TRAIN_RESULT, **change}
    result = {key: value for key, value in result.items() if value is not None}
    with pytest.raises(sdk.ContractError, match=message):
        sdk.check_train_result(result)


def test_a_checkpoint_round_trips_bytes_and_files_atomically(tmp_path):
    url = f"file://{tmp_path}/work/trial-000.ckpt"
    assert sdk.load_checkpoint(url) is None
    sdk.save_checkpoint(url, b"\x00weights\n", run_id="run-1", epoch=2)
    produced = tmp_path / "model.bin"
    produced.write_bytes(b"epoch 3 weights")
    sdk.save_checkpoint(url, produced, run_id="run-1", epoch=3)
    loaded = sdk.load_checkpoint(url)
    assert loaded == sdk.Checkpoint(payload=b"epoch 3 weights", run_id="run-1", epoch=3)
    assert loaded.write_payload(tmp_path / "restored.bin").read_bytes() == b"epoch 3 weights"
    assert [p.name for p in (tmp_path / "work").iterdir()] == ["trial-000.ckpt"]  # no temp file


def test_a_file_that_is_not_a_checkpoint_is_refused(tmp_path):
    (tmp_path / "junk").write_bytes(b"PK\x03\x04 some zip")
    with pytest.raises(sdk.ContractError, match="not a readable checkpoint"):
        sdk.load_checkpoint(str(tmp_path / "junk"))
    (tmp_path / "damaged").write_bytes(MAGIC + b"{not json\n")
    with pytest.raises(sdk.ContractError, match="damaged header"):
        sdk.load_checkpoint(str(tmp_path / "damaged"))


def _stage(tmp_path, body: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """A trainer script on the SDK's entry point, run as the platform runs a stage."""
    script = tmp_path / "stage.py"
    script.write_text("from trainyard import sdk\n" + textwrap.dedent(body) + "\nsdk.main(stage)\n")
    log = tmp_path / "termination-log"
    log.write_text("")
    return subprocess.run(
        [sys.executable, str(script)],
        env={
            "PATH": "/usr/bin:/bin",
            "XCOM_DIR": str(tmp_path / "xcom"),
            "TRAINYARD_TERMINATION_LOG": str(log),
            **env,
        },
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_main_writes_the_main_process_result(tmp_path):
    done = _stage(
        tmp_path,
        f"def stage(env):\n    return {{**{GOOD_TRAIN_RESULT!r}, 'trial': env.trial}}",
        {"TRAINYARD_TRIAL": "4", "TRAINYARD_STAGE": "train"},
    )
    assert done.returncode == 0, done.stderr
    assert json.loads((tmp_path / "xcom" / "return.json").read_text())["trial"] == 4


def test_other_ranks_write_no_result(tmp_path):
    done = _stage(tmp_path, "def stage(env):\n    return None", {"RANK": "1", "WORLD_SIZE": "2"})
    assert done.returncode == 0, done.stderr
    assert not (tmp_path / "xcom").exists()


@pytest.mark.parametrize(
    ("body", "code", "line"),
    [
        (
            "def stage(env):\n    raise ValueError('alpha must be positive, got -1')",
            1,
            "train: error: alpha must be positive, got -1",
        ),
        (
            "def stage(env):\n    raise RuntimeError('CUDA out of\\nmemory')",
            1,
            "train: error: RuntimeError: CUDA out of memory",
        ),
        (
            "def stage(env):\n    sdk.ArgumentParser(prog='fit').parse_args(['--nope'])",
            2,
            "train: error: fit: unrecognized arguments: --nope",
        ),
        (
            "def stage(env):\n    return {'run_id': 'r'}",
            1,
            "train: error: the train result has no model_uri, metrics, params",
        ),
        ("def stage(env):\n    return None", 1, "train: error: the stage returned no result"),
    ],
)
def test_a_failure_is_one_line_in_the_termination_log_and_on_stderr(tmp_path, body, code, line):
    done = _stage(tmp_path, body, {"TRAINYARD_STAGE": "train", "TRAINYARD_TRIAL": "0"})
    assert done.returncode == code
    written = (tmp_path / "termination-log").read_text()
    assert written.startswith(line) and written.count("\n") == 1
    assert done.stderr.rstrip().splitlines()[-1] == written.strip()
    assert not (tmp_path / "xcom" / "return.json").exists()


@pytest.mark.parametrize("fails", [False, True])
def test_main_leaves_the_process_group_the_stage_joined(tmp_path, monkeypatch, fails):
    """A gloo rank that exits with its group alive can abort in interpreter shutdown while
    rank 0 is still logging (SIGABRT, and torchrun fails the trial): `run` destroys the group
    on the way out, whether the stage returned or raised."""
    import torch.distributed as dist  # noqa: PLC0415 - only this test needs torch

    monkeypatch.setenv("XCOM_DIR", str(tmp_path / "xcom"))
    monkeypatch.delenv("TRAINYARD_TRIAL", raising=False)

    def stage(env):
        dist.init_process_group("gloo", store=dist.HashStore(), rank=0, world_size=1)
        assert dist.is_initialized()
        if fails:
            raise ValueError("bad alpha")
        return {"ok": True}

    assert sdk.run(stage) == (1 if fails else 0)
    assert not dist.is_initialized()

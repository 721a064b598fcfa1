"""The trainer SDK against a real MLflow server and a real S3 server: a trial that crashes after
its checkpoint is retried, resumes the same MLflow run from the object store and returns its
result; the run carries the pipeline's tags."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from mlflow import MlflowClient

pytestmark = pytest.mark.integration

TRIAL = textwrap.dedent(
    """
    import os
    import mlflow
    from trainyard import sdk

    def train(env):
        saved = sdk.load_checkpoint(env.checkpoint_url)
        with sdk.start_trial_run(env, resume_run_id=saved and saved.run_id) as run:
            start = saved.epoch if saved else 0
            for epoch in range(start + 1, 5):
                mlflow.log_metric("loss", 1 / epoch, step=epoch)
                sdk.save_checkpoint(env.checkpoint_url, f"state {epoch}".encode(),
                                    run_id=run.info.run_id, epoch=epoch)
                if epoch == 2 and os.environ.get("CRASH_AT_EPOCH_2"):
                    raise RuntimeError("node preempted")
            mlflow.log_metric("rmse", 3.5)
        return {"run_id": run.info.run_id, "model_uri": "runs:/x/model",
                "metrics": {"rmse": 3.5}, "params": {}, "resumed_from": start}

    sdk.main(train)
    """
)


def test_a_crashed_trial_resumes_its_run_from_its_s3_checkpoint(services, tmp_path):
    script = tmp_path / "trial.py"
    script.write_text(TRIAL)
    log = tmp_path / "termination-log"
    env = {
        **services.env,
        "PATH": "/usr/bin:/bin",
        "XCOM_DIR": str(tmp_path / "xcom"),
        "TRAINYARD_TERMINATION_LOG": str(log),
        "TRAINYARD_PIPELINE": "sdk-check",
        "TRAINYARD_STAGE": "train",
        "TRAINYARD_DAG_RUN_ID": "manual__2026-11-20",
        "TRAINYARD_EXPERIMENT": "sdk-check",
        "TRAINYARD_RUN_NAME": "alpha=0.1",
        "TRAINYARD_TRIAL": "0",
        "TRAINYARD_CHECKPOINT_URL": f"s3://datasets/sdk-check/{tmp_path.name}/trial-000.ckpt",
    }

    def attempt(**extra: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, str(script)],
            env={**env, **extra},
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )

    crashed = attempt(CRASH_AT_EPOCH_2="1")
    assert crashed.returncode == 1
    assert log.read_text() == "train: error: RuntimeError: node preempted\n"
    retried = attempt()
    assert retried.returncode == 0, retried.stderr
    result = json.loads((tmp_path / "xcom" / "return.json").read_text())
    assert result["resumed_from"] == 2

    client = MlflowClient(services.mlflow.url)
    run = client.get_run(result["run_id"])
    assert run.info.run_name == "alpha=0.1"
    assert run.data.tags["airflow.dag_run_id"] == "manual__2026-11-20"
    assert run.data.tags["trainyard.pipeline"] == "sdk-check"
    assert run.data.tags["trainyard.trial"] == "0"
    losses = client.get_metric_history(run.info.run_id, "loss")
    assert sorted(m.step for m in losses) == [1, 2, 3, 4]  # one run, every epoch once


DDP_TRIAL = textwrap.dedent(
    """
    import mlflow
    import torch
    import torch.distributed as dist
    from trainyard import sdk

    def train(env):
        place = sdk.init_process_group()
        # Each rank's share of the data; the all-reduced sum is what every rank trains on.
        local = torch.tensor([float(place.rank + 1)])
        dist.all_reduce(local)
        shares = [torch.empty(1) for _ in range(place.world_size)]
        dist.all_gather(shares, torch.tensor([float(place.rank)]))
        dist.barrier()
        if not place.is_main:
            return None  # rank 0 alone logs and reports (the contract)
        with sdk.start_trial_run(env) as run:
            mlflow.log_params({"world_size": place.world_size})
            mlflow.log_metric("rmse", 1.0 / float(local.item()))
        return {"run_id": run.info.run_id, "model_uri": "runs:/x/model",
                "metrics": {"rmse": 1.0 / float(local.item())}, "params": {},
                "world_size": place.world_size, "reduced": float(local.item())}

    sdk.main(train)
    """
)


def test_a_trial_started_by_torchrun_is_one_run_reported_by_rank_0(services, tmp_path):
    """The contract's multi-process path as a user's image takes it: the real torchrun starts
    four processes (gloo on the CPU), the SDK joins its process group from RANK, WORLD_SIZE,
    MASTER_ADDR and MASTER_PORT, and rank 0 alone makes the MLflow run and return.json.
    The other ranks exit while rank 0 still logs: without the SDK leaving the group on the way
    out, one of them aborted in interpreter shutdown about every other run (a CI failure)."""
    script = tmp_path / "ddp_trial.py"
    script.write_text(DDP_TRIAL)
    torchrun = Path(sys.executable).with_name("torchrun")
    proc = subprocess.run(
        [str(torchrun), "--standalone", "--nnodes", "1", "--nproc-per-node", "4", str(script)],
        env={
            **services.env,
            "XCOM_DIR": str(tmp_path / "xcom"),
            "TRAINYARD_TERMINATION_LOG": str(tmp_path / "termination-log"),
            "TRAINYARD_PIPELINE": "sdk-check",
            "TRAINYARD_STAGE": "train",
            "TRAINYARD_EXPERIMENT": "sdk-torchrun",
            "TRAINYARD_RUN_NAME": "ddp",
            "TRAINYARD_TRIAL": "0",
            "OMP_NUM_THREADS": "1",
        },
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads((tmp_path / "xcom" / "return.json").read_text())
    assert result["world_size"] == 4 and result["reduced"] == 10.0  # 1+2+3+4: all ranks joined
    client = MlflowClient(services.mlflow.url)
    runs = client.search_runs([client.get_experiment_by_name("sdk-torchrun").experiment_id])
    assert [r.info.run_id for r in runs] == [result["run_id"]]  # one run, rank 0's
    assert runs[0].data.params["world_size"] == "4"
    assert not (tmp_path / "termination-log").exists()

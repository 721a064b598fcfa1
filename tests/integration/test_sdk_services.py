"""The trainer SDK against a real MLflow server and a real S3 server: a trial that crashes after
its checkpoint is retried, resumes the same MLflow run from the object store and returns its
result; the run carries the pipeline's tags."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

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

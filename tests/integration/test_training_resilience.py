"""The train stage on more than one device and across a crash, against real S3 and MLflow.

- Data-parallel: `--processes 2` (gloo on CPU) meets the accuracy gate with one MLflow
  run and one model, and takes the steps one process takes.
- Checkpoint and resume: a trainer process killed mid-training, then retried with the
  same arguments, resumes at the checkpointed epoch in the same MLflow run and ends with
  exactly the metrics of an uninterrupted run with the same seed.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import mlflow
import pytest
from mlflow import MlflowClient

from tests.conftest import Services

from .conftest import prepared_features

pytestmark = pytest.mark.integration

DAY = "2026-11-21"
EXPERIMENT = "resilience"
# Small batches and a wide network: slow enough (~0.2 s an epoch) to be killed mid-way.
RESUME = ("--epochs", "12", "--batch-size", "8", "--hidden", "256,256", "--optimizer", "adam")
# gloo on the CPU, whatever GPUs the machine has (two processes would need two of them).
ON_CPU = ("--device", "cpu")
DDP = ("--epochs", "8", "--batch-size", "32", "--optimizer", "adam", "--lr", "3e-3", *ON_CPU)


@pytest.fixture(scope="module")
def manifest_url(stage):
    return prepared_features(stage, DAY, "s3://datasets/resilience")


@pytest.fixture(scope="module")
def client(services):
    mlflow.set_tracking_uri(services.mlflow.url)
    return MlflowClient(tracking_uri=services.mlflow.url)


def runs_named(client: MlflowClient, name: str):  # type: ignore[no-untyped-def]
    experiment = client.get_experiment_by_name(EXPERIMENT)
    return client.search_runs(
        [experiment.experiment_id], filter_string=f"attributes.run_name = '{name}'"
    )


def last(client: MlflowClient, run_id: str, metric: str) -> float:
    return float(client.get_run(run_id).data.metrics[metric])


def test_two_processes_meet_the_gate_with_one_run_and_one_model(stage, manifest_url, client):
    common = ("train", "--features", manifest_url, "--experiment", EXPERIMENT, *DDP)
    ddp = stage(*common, "--processes", "2", "--run-name", "ddp").result
    single = stage(*common, "--run-name", "single").result
    assert ddp["processes"] == 2 and single["processes"] == 1
    assert ddp["test_accuracy"] >= 0.90
    # The same optimisation steps (global batch split across the replicas): same
    # accuracy up to the order of floating-point sums.
    assert abs(ddp["test_accuracy"] - single["test_accuracy"]) <= 0.01
    assert (
        abs(
            last(client, ddp["run_id"], "train_loss") - last(client, single["run_id"], "train_loss")
        )
        < 1e-3
    )
    [run] = runs_named(client, "ddp")
    assert run.info.run_id == ddp["run_id"] and run.info.status == "FINISHED"
    assert run.data.params["processes"] == "2"
    # Metrics from rank 0 alone: one value per epoch.
    history = client.get_metric_history(run.info.run_id, "val_accuracy")
    assert sorted(m.step for m in history) == list(range(1, 9))
    models = mlflow.search_logged_models(
        experiment_ids=[run.info.experiment_id],
        filter_string=f"source_run_id = '{run.info.run_id}'",
        output_format="list",
    )
    assert len(models) == 1 and models[0].model_id == ddp["model_id"]
    loaded = mlflow.pytorch.load_model(ddp["model_uri"])  # the usual format: pt2, raw pixels in
    assert loaded is not None


def test_a_failing_replica_is_one_line(stage, manifest_url):
    run = stage(
        "train",
        "--features", manifest_url,
        "--experiment", EXPERIMENT,
        "--optimizer", "sgd", "--lr", "1e6", "--epochs", "3",
        "--processes", "2", *ON_CPU,
    )  # fmt: skip
    assert run.returncode == 1
    [line] = [x for x in run.stderr.splitlines() if x.startswith("digits train: error")]
    assert "training diverged at epoch 1" in line


@pytest.mark.parametrize("processes", [1, 2])
def test_a_killed_trainer_resumes_from_its_checkpoint(
    stage, manifest_url, client, services: Services, tmp_path, processes: int
):
    checkpoint = f"s3://datasets/runs/{DAY}/checkpoints/trial-{processes:02d}.pt"
    common = ("train", "--features", manifest_url, "--experiment", EXPERIMENT, *RESUME,
              "--processes", str(processes), *ON_CPU)  # fmt: skip
    straight = stage(*common, "--run-name", f"straight-{processes}").result

    name = f"retried-{processes}"
    retried = (*common, "--run-name", name, "--checkpoint", checkpoint)
    process = subprocess.Popen(
        [sys.executable, "-m", "digits", "--xcom-dir", str(tmp_path), *retried],
        env={**os.environ, **services.env},
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    assert process.stderr is not None
    killed_after = None
    for line in process.stderr:
        if "checkpoint of epoch 4 written" in line:
            # As a preempted node does: every process of the trainer at once, no clean-up.
            os.killpg(process.pid, signal.SIGKILL)
            killed_after = 4
            break
    process.wait()
    assert killed_after and process.returncode == -signal.SIGKILL
    assert not (tmp_path / "return.json").exists()
    [crashed] = runs_named(client, name)
    assert crashed.info.status == "RUNNING"  # killed: nobody ended it

    resumed = stage(*retried).result
    assert resumed["resumed_from_epoch"] >= killed_after > 0
    assert resumed["epochs_run"] == 12 - resumed["resumed_from_epoch"]
    assert resumed["processes"] == processes
    # The same MLflow run, continued and finished.
    [run] = runs_named(client, name)
    assert run.info.run_id == resumed["run_id"] == crashed.info.run_id
    assert run.info.status == "FINISHED"
    assert run.data.tags["trainyard.resumed_from_epoch"] == str(resumed["resumed_from_epoch"])
    steps = {m.step for m in client.get_metric_history(run.info.run_id, "train_loss")}
    assert steps == set(range(1, 13))
    # Bit-for-bit the uninterrupted trajectory: model, optimizer and RNG state restored.
    assert resumed["val_accuracy"] == straight["val_accuracy"]
    assert resumed["test_accuracy"] == straight["test_accuracy"]
    for metric in ("train_loss", "val_loss"):
        assert last(client, run.info.run_id, metric) == last(client, straight["run_id"], metric)
    print(
        f"{processes} process(es): killed after epoch {killed_after}; resumed at epoch "
        f"{resumed['resumed_from_epoch'] + 1} of 12; test accuracy {resumed['test_accuracy']:.4f} "
        f"(uninterrupted {straight['test_accuracy']:.4f})"
    )

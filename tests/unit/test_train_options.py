"""Bad training options fail before any data is read or any MLflow run is created."""

from __future__ import annotations

import pytest
import torch

pytestmark = pytest.mark.unit

MANIFEST = "file:///nonexistent/manifest.json"


def test_unknown_optimizer_is_a_usage_error(cli):
    run = cli("train", "--features", MANIFEST, "--optimizer", "rmsprop")
    assert run.code == 2
    assert "invalid choice: 'rmsprop'" in run.stderr
    assert "adam" in run.stderr and "adamw" in run.stderr and "sgd" in run.stderr
    assert not run.xcom_file.exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--epochs", "0"], "epochs must be at least 1, got 0"),
        (["--batch-size", "0"], "batch-size must be at least 1, got 0"),
        (["--lr", "-0.1"], "learning rate must be a positive number"),
        (["--lr", "nan"], "learning rate must be a positive number"),
        (["--hidden", "64,0"], "hidden layer sizes must be positive"),
        (["--momentum", "-1"], "must not be negative"),
        (["--tag", "novalue"], "--tag 'novalue' is not KEY=VALUE"),
    ],
)
def test_invalid_values_are_named(cli, args, message):
    run = cli("train", "--features", MANIFEST, *args)
    assert run.code == 1
    assert message in run.stderr
    assert not run.xcom_file.exists()


def test_hidden_sizes_must_be_integers(cli):
    run = cli("train", "--features", MANIFEST, "--hidden", "64,big")
    assert run.code == 2
    assert "'64,big' is not a comma-separated list of sizes" in run.stderr


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the no-GPU error; a GPU is present")
def test_cuda_without_a_gpu_is_a_clear_error(cli):
    run = cli("train", "--features", MANIFEST, "--device", "cuda")
    assert run.code == 1
    assert "--device cuda was requested but no CUDA device is visible" in run.stderr


def test_missing_manifest_is_named(cli):
    run = cli("train", "--features", MANIFEST, "--device", "cpu")
    assert run.code == 1
    assert f"{MANIFEST}: not found" in run.stderr

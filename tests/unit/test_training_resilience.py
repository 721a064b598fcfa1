"""Multi-GPU and checkpoint settings: from the platform config to the train command and pod,
and the checks a checkpoint passes before it is resumed."""

from __future__ import annotations

import pytest
import torch

from digits import checkpoint
from digits.config import TrainConfig
from digits.distributed import check_processes
from trainyard.errors import UserError
from trainyard.pipeline.platform import PlatformConfigError, parse

from .test_trainer_interface import digits_train_commands

pytestmark = pytest.mark.unit

TRIALS = [{"lr": 0.1}, {"lr": 0.2}]


def test_each_trial_of_the_digits_dag_checkpoints_to_its_own_url():
    commands = digits_train_commands(TRIALS)
    checkpoints = [c[c.index("--checkpoint") + 1] for c in commands]
    assert checkpoints == ["s3://ckpt/000.pt", "s3://ckpt/001.pt"]
    # Processes come from TRAINYARD_PROCESSES (the pod's GPUs), not a flag of the spec's.
    assert "--processes" not in commands[0]


@pytest.mark.parametrize(
    ("config", "processes"),
    [
        ({"gpu": {"enabled": True, "count": 8}}, 8),
        ({"gpu": {"enabled": False, "count": 8}}, 1),  # CPU fallback: one process
        ({"gpu": {"enabled": True, "count": 1}}, 1),
        ({"runtime": "standalone", "gpu": {"enabled": True, "count": 2}}, 1),
    ],
)
def test_gpu_count_is_the_number_of_training_processes(config, processes):
    assert parse(config).train_processes == processes


def test_zero_gpus_per_pod_is_refused():
    with pytest.raises(PlatformConfigError, match=r"gpu\.count: must be at least 1"):
        parse({"gpu": {"enabled": True, "count": 0}})


def test_multi_gpu_pods_get_a_shared_memory_volume():
    from trainyard.pipeline.kubernetes import pod_kwargs  # noqa: PLC0415

    multi = pod_kwargs(parse({"gpu": {"enabled": True, "count": 4}}), gpu=True)
    [volume] = [v for v in multi["volumes"] if v.name == "dshm"]
    assert volume.empty_dir.medium == "Memory"
    assert [m.mount_path for m in multi["volume_mounts"]] == ["/dev/shm"]
    single = pod_kwargs(parse({"gpu": {"enabled": True, "count": 1}}), gpu=True)
    assert single["volumes"] == [] and single["volume_mounts"] == []


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the no-GPU error; a GPU is present")
def test_more_processes_than_gpus_is_one_line():
    with pytest.raises(UserError, match="2 training processes need 2 GPUs; torch sees 0"):
        check_processes(2, "cuda")
    with pytest.raises(UserError, match="processes must be at least 1"):
        check_processes(0, "cpu")
    check_processes(4, "cpu")  # gloo: any number on CPU


def _saved(config: TrainConfig, epoch: int = 3) -> checkpoint.Checkpoint:
    model = torch.nn.Linear(4, 2)
    optimizer = torch.optim.Adam(model.parameters())
    return checkpoint.Checkpoint(
        epoch=epoch,
        model=model.state_dict(),
        optimizer=optimizer.state_dict(),
        shuffle_rng=torch.Generator().manual_seed(1).get_state(),
        torch_rng=torch.get_rng_state(),
        history={
            "train_loss": [1.0] * epoch,
            "val_loss": [1.0] * epoch,
            "val_accuracy": [0.5] * epoch,
        },
        train_seconds=1.5,
        mlflow_run_id="abc",
        config=checkpoint.identity(config),
    )


def test_a_checkpoint_round_trips_through_the_store(tmp_path):
    url = f"file://{tmp_path}/checkpoints/trial-000.pt"
    config = TrainConfig(lr=0.01, epochs=10)
    assert checkpoint.load(url, config) is None
    checkpoint.save(url, _saved(config))
    loaded = checkpoint.load(url, TrainConfig(lr=0.01, epochs=20, threads=4, device="cpu"))
    assert loaded is not None
    assert loaded.epoch == 3 and loaded.mlflow_run_id == "abc" and loaded.train_seconds == 1.5
    assert torch.equal(loaded.shuffle_rng, torch.Generator().manual_seed(1).get_state())


def test_a_checkpoint_of_other_settings_or_a_later_epoch_is_refused(tmp_path):
    url = f"file://{tmp_path}/trial-000.pt"
    checkpoint.save(url, _saved(TrainConfig(lr=0.01, epochs=10), epoch=8))
    with pytest.raises(UserError, match=r"a trial with other settings \(lr, optimizer\)"):
        checkpoint.load(url, TrainConfig(lr=0.02, optimizer="sgd", epochs=10))
    with pytest.raises(UserError, match="at epoch 8, past --epochs 5"):
        checkpoint.load(url, TrainConfig(lr=0.01, epochs=5))
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(UserError, match="not a readable checkpoint"):
        checkpoint.load(f"file://{tmp_path}/junk.pt", TrainConfig())


def test_checkpoint_interval_must_be_positive(cli):
    run = cli("train", "--features", "file:///nonexistent/manifest.json", "--checkpoint-every", "0")
    assert run.code == 1
    assert "checkpoint-every must be at least 1, got 0" in run.stderr

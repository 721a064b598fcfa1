"""Train the digits classifier and log everything a reviewer needs to MLflow.

One trial = one MLflow run: parameters, per-epoch train loss and validation
loss/accuracy, the final validation and test accuracy, a training-curve PNG and
the model (raw pixels in, logits out) with its signature and a multi-row input
example. `--device auto` trains on CUDA when a GPU is visible, on CPU otherwise.
"""

from __future__ import annotations

import logging
import math
import os
import time
from dataclasses import asdict, dataclass, field
from typing import Any

import mlflow
import numpy as np
import torch
import torch.nn.functional as F  # noqa: N812 - the torch convention
from mlflow.models import ModelSignature
from mlflow.types import Schema, TensorSpec
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from digits import checkpoint
from digits.config import TrainConfig
from digits.distributed import SINGLE, Replica, check_processes, launch
from digits.features import load_manifest, load_raw_holdout, load_split
from digits.model import DigitsClassifier, build_mlp
from digits.plots import training_curve
from trainyard import sdk
from trainyard.errors import UserError

log = logging.getLogger(__name__)

INPUT_EXAMPLE_ROWS = 5  # > 1 so the exported model keeps a dynamic batch dimension


@dataclass
class History:
    train_loss: list[float] = field(default_factory=list)
    val_loss: list[float] = field(default_factory=list)
    val_accuracy: list[float] = field(default_factory=list)


def resolve_device(requested: str) -> torch.device:
    if requested == "cuda" and not torch.cuda.is_available():
        raise UserError("--device cuda was requested but no CUDA device is visible to torch")
    if requested == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(requested)


def make_deterministic(seed: int) -> None:
    # cuBLAS needs a fixed workspace for deterministic GEMMs; it must be set
    # before the first CUDA call.
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.manual_seed(seed)
    torch.use_deterministic_algorithms(True)
    torch.backends.cudnn.benchmark = False
    # Subnormal arithmetic is orders of magnitude slower on x86 CPUs.
    torch.set_flush_denormal(True)


def make_optimizer(config: TrainConfig, model: nn.Module) -> torch.optim.Optimizer:
    params = model.parameters()
    if config.optimizer == "adam":
        return torch.optim.Adam(params, lr=config.lr, weight_decay=config.weight_decay)
    if config.optimizer == "adamw":
        return torch.optim.AdamW(params, lr=config.lr, weight_decay=config.weight_decay)
    if config.optimizer == "sgd":
        return torch.optim.SGD(
            params, lr=config.lr, momentum=config.momentum, weight_decay=config.weight_decay
        )
    raise UserError(f"unknown optimizer {config.optimizer!r}")


def train_epoch(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    x: torch.Tensor,
    y: torch.Tensor,
    batch_size: int,
    generator: torch.Generator,
    replica: Replica = SINGLE,
) -> float:
    """One pass over (x, y) in a seeded random order; returns the mean training loss.

    Batches are sliced from tensors already on the device (no DataLoader: the
    whole feature set fits in memory), and the loss is summed on the device so
    there is one host sync per epoch, not one per step.

    Data-parallel: every replica draws the same order and takes its share of each
    batch (`batch_size` stays the global batch). Its summed loss is scaled so that
    DistributedDataParallel's average of the replicas' gradients is the gradient of
    the whole batch's mean loss: N processes take the steps one process would.
    """
    model.train()
    n = x.shape[0]
    order = torch.randperm(n, generator=generator).to(x.device)
    loss_sum = torch.zeros((), device=x.device)
    for start in range(0, n, batch_size):
        batch = order[start : start + batch_size]
        mine = batch[replica.rank :: replica.world]
        optimizer.zero_grad(set_to_none=True)
        summed = F.cross_entropy(model(x[mine]), y[mine], reduction="sum")
        (summed * (replica.world / batch.shape[0])).backward()  # type: ignore[no-untyped-call]
        optimizer.step()
        loss_sum.add_(summed.detach())
    return float(replica.all_sum(loss_sum).item()) / n


@torch.no_grad()
def evaluate_split(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> tuple[float, float]:
    model.eval()
    logits = model(x)
    loss = F.cross_entropy(logits, y).item()
    accuracy = (logits.argmax(dim=1) == y).float().mean().item()
    return float(loss), float(accuracy)


@dataclass
class Trainer:
    """One replica's training state, and how it is checkpointed and resumed."""

    model: nn.Module  # the replica's module (DistributedDataParallel when distributed)
    network: nn.Module  # the bare network: what is checkpointed and logged
    optimizer: torch.optim.Optimizer
    config: TrainConfig
    replica: Replica = SINGLE
    checkpoint_url: str | None = None
    checkpoint_every: int = 1
    generator: torch.Generator = field(default_factory=torch.Generator)
    history: History = field(default_factory=History)
    epoch: int = 0  # last finished epoch
    seconds: float = 0.0  # spent training, over every attempt
    run_id: str | None = None

    def __post_init__(self) -> None:
        self.generator.manual_seed(self.config.seed)

    def restore(self, saved: checkpoint.Checkpoint) -> None:
        self.network.load_state_dict(saved.model)
        self.optimizer.load_state_dict(saved.optimizer)
        self.generator.set_state(saved.shuffle_rng)
        torch.set_rng_state(saved.torch_rng)
        self.history = History(**saved.history)
        self.epoch, self.seconds, self.run_id = (
            saved.epoch,
            saved.train_seconds,
            saved.mlflow_run_id,
        )

    def save(self) -> None:
        if not (self.checkpoint_url and self.replica.lead):
            return
        # Metrics of the epochs the checkpoint covers are in MLflow before it exists.
        mlflow.flush_async_logging()
        checkpoint.save(
            self.checkpoint_url,
            checkpoint.Checkpoint(
                epoch=self.epoch,
                model=self.network.state_dict(),
                optimizer=self.optimizer.state_dict(),
                shuffle_rng=self.generator.get_state(),
                torch_rng=torch.get_rng_state(),
                history=asdict(self.history),
                train_seconds=self.seconds,
                mlflow_run_id=self.run_id,
                config=checkpoint.identity(self.config),
                world=self.replica.world,
            ),
        )

    def fit(self, data: dict[str, tuple[torch.Tensor, torch.Tensor]]) -> History:
        config = self.config
        x_train, y_train = data["train"]
        x_val, y_val = data["validation"]
        while self.epoch < config.epochs:
            epoch = self.epoch + 1
            started = time.perf_counter()
            train_loss = train_epoch(
                self.model,
                self.optimizer,
                x_train,
                y_train,
                config.batch_size,
                self.generator,
                self.replica,
            )
            # Every replica holds the same weights: each scores the whole validation
            # split, so all of them see a divergence and stop together.
            val_loss, val_accuracy = evaluate_split(self.network, x_val, y_val)
            self.seconds += time.perf_counter() - started
            if not (math.isfinite(train_loss) and math.isfinite(val_loss)):
                raise UserError(
                    f"training diverged at epoch {epoch}: loss is {train_loss}; "
                    f"lower the learning rate (now {config.lr})"
                )
            self.history.train_loss.append(train_loss)
            self.history.val_loss.append(val_loss)
            self.history.val_accuracy.append(val_accuracy)
            self.epoch = epoch
            if self.replica.lead:
                # Asynchronous: a tracking-server round trip per epoch would cost more
                # than the epoch itself on small data; the run's end flushes the queue.
                mlflow.log_metrics(
                    {"train_loss": train_loss, "val_loss": val_loss, "val_accuracy": val_accuracy},
                    step=epoch,
                    synchronous=False,
                )
                log.info(
                    "epoch %d/%d train_loss=%.4f val_loss=%.4f val_accuracy=%.4f",
                    epoch,
                    config.epochs,
                    train_loss,
                    val_loss,
                    val_accuracy,
                )
            if epoch % self.checkpoint_every == 0 and epoch < config.epochs:
                self.save()
        return self.history


def model_signature(n_inputs: int, n_classes: int) -> ModelSignature:
    return ModelSignature(
        inputs=Schema([TensorSpec(np.dtype(np.float32), (-1, n_inputs))]),
        outputs=Schema([TensorSpec(np.dtype(np.float32), (-1, n_classes))]),
    )


def train(
    manifest_url: str,
    config: TrainConfig,
    experiment: str,
    run_name: str | None = None,
    tags: dict[str, str] | None = None,
    checkpoint_url: str | None = None,
    checkpoint_every: int = 1,
    processes: int = 1,
) -> dict[str, Any]:
    """Train one trial in `processes` data-parallel processes (1: this process).

    With `checkpoint_url`, the state is saved there every `checkpoint_every` epochs
    (and once the MLflow run exists); a checkpoint already there is resumed: same
    MLflow run, next epoch.
    """
    config.check()
    if checkpoint_every < 1:
        raise UserError(f"checkpoint-every must be at least 1, got {checkpoint_every}")
    device = resolve_device(config.device)
    check_processes(processes, device.type)
    arguments = (manifest_url, config, experiment, run_name, tags, checkpoint_url, checkpoint_every)
    if processes == 1:
        return train_replica(SINGLE, device, *arguments)
    return launch(processes, device.type, train_replica, arguments)


def train_replica(
    replica: Replica,
    device: torch.device,
    manifest_url: str,
    config: TrainConfig,
    experiment: str,
    run_name: str | None,
    tags: dict[str, str] | None,
    checkpoint_url: str | None,
    checkpoint_every: int,
) -> dict[str, Any]:
    make_deterministic(config.seed)
    torch.set_num_threads(config.threads)

    manifest = load_manifest(manifest_url)
    data = {
        name: tuple(t.to(device) for t in load_split(manifest, name))
        for name in ("train", "validation")
    }
    holdout_x, holdout_y = load_raw_holdout(manifest)

    network = build_mlp(len(manifest["feature_columns"]), config.hidden, manifest["n_classes"])
    network = network.to(device)
    model: nn.Module = network
    if replica.distributed:
        # Broadcasts rank 0's weights, then averages gradients across the replicas.
        model = DistributedDataParallel(
            network, device_ids=[device.index] if device.type == "cuda" else None
        )
    trainer = Trainer(
        model,
        network,
        make_optimizer(config, network),
        config,
        replica,
        checkpoint_url,
        checkpoint_every,
    )
    saved = checkpoint.load(checkpoint_url, config) if checkpoint_url else None
    if saved is not None:
        trainer.restore(saved)
        if replica.lead:
            log.info("resuming from the checkpoint of epoch %d (%s)", saved.epoch, checkpoint_url)
    # Every replica has read the checkpoint before rank 0 writes the next one.
    replica.barrier()
    if not replica.lead:
        trainer.fit(data)  # type: ignore[arg-type]
        return {}

    run_tags = {"trainyard.stage": "train", "trainyard.features": manifest_url, **(tags or {})}
    params = {**asdict(config), "hidden": "-".join(map(str, config.hidden))}
    # The SDK opens the trial's run (tagged with the DAG run, pipeline and trial the platform
    # names in the environment), or resumes the one the checkpoint recorded.
    run = sdk.start_trial_run(
        resume_run_id=trainer.run_id, experiment=experiment, run_name=run_name, tags=run_tags
    )
    if trainer.run_id is None:
        trainer.run_id = run.info.run_id
        mlflow.log_params(
            {
                **params,
                "device_used": device.type,
                "processes": replica.world,
                "train_rows": len(data["train"][1]),
                "n_features": len(manifest["feature_columns"]),
                "torch": torch.__version__,
            }
        )
        # Before the first epoch: a retry after any crash continues this run.
        trainer.save()
    else:
        mlflow.set_tag("trainyard.resumed_from_epoch", str(trainer.epoch))
    resumed_from = saved.epoch if saved is not None else None
    with run:
        history = trainer.fit(data)  # type: ignore[arg-type]
        seconds = trainer.seconds

        classifier = DigitsClassifier(
            manifest["scaler"]["mean"], manifest["scaler"]["scale"], network.cpu()
        ).eval()
        # Scored end to end on raw pixels: exactly what serving will see.
        _, test_accuracy = evaluate_split(classifier, holdout_x, holdout_y)
        samples_per_second = config.epochs * len(data["train"][1]) / seconds
        mlflow.log_figure(training_curve(history.__dict__), "training_curve.png")
        info = mlflow.pytorch.log_model(
            classifier,
            name="model",
            signature=model_signature(holdout_x.shape[1], manifest["n_classes"]),
            input_example=holdout_x[:INPUT_EXAMPLE_ROWS].numpy(),
            # pt2 (torch.export) is safe to load: no pickle. The multi-row example
            # keeps the batch dimension dynamic.
            serialization_format="pt2",
            # Stated, not inferred: inference loads the model in a subprocess (~10 s)
            # and the pt2 format needs torch alone.
            pip_requirements=[f"torch=={torch.__version__.split('+')[0]}"],
        )
        val_accuracy = history.val_accuracy[-1]
        # Final figures, linked to the logged model; val_accuracy already has its
        # per-epoch series.
        mlflow.log_metrics(
            {
                "test_accuracy": test_accuracy,
                "train_seconds": seconds,
                "train_samples_per_second": samples_per_second,
            },
            step=config.epochs,
            model_id=info.model_id,
        )

    log.info(
        "run %s: val_accuracy=%.4f test_accuracy=%.4f on %s in %.1fs",
        run.info.run_id,
        val_accuracy,
        test_accuracy,
        device,
        seconds,
    )
    result = {
        "run_id": run.info.run_id,
        "experiment_id": run.info.experiment_id,
        "model_uri": info.model_uri,
        "model_id": info.model_id,
        "val_accuracy": val_accuracy,
        "test_accuracy": test_accuracy,
        "train_seconds": round(seconds, 3),
        "device": device.type,
        "processes": replica.world,
        "epochs_run": config.epochs - (resumed_from or 0),
        "resumed_from_epoch": resumed_from,
        "params": params,
        # The contract's metrics: the pipeline spec's metric and select_by are read from here.
        "metrics": {
            "val_accuracy": val_accuracy,
            "test_accuracy": test_accuracy,
            "train_seconds": round(seconds, 3),
        },
    }
    sdk.check_train_result(result)
    return result

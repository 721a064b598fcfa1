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

from trainyard.errors import StageError
from trainyard.trainer.config import TrainConfig
from trainyard.trainer.features import load_manifest, load_raw_holdout, load_split
from trainyard.trainer.model import DigitsClassifier, build_mlp
from trainyard.trainer.plots import training_curve

log = logging.getLogger(__name__)

INPUT_EXAMPLE_ROWS = 5  # > 1 so the exported model keeps a dynamic batch dimension


@dataclass
class History:
    train_loss: list[float] = field(default_factory=list)
    val_loss: list[float] = field(default_factory=list)
    val_accuracy: list[float] = field(default_factory=list)


def resolve_device(requested: str) -> torch.device:
    if requested == "cuda" and not torch.cuda.is_available():
        raise StageError("--device cuda was requested but no CUDA device is visible to torch")
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
    raise StageError(f"unknown optimizer {config.optimizer!r}")


def train_epoch(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    x: torch.Tensor,
    y: torch.Tensor,
    batch_size: int,
    generator: torch.Generator,
) -> float:
    """One pass over (x, y) in a seeded random order; returns the mean training loss.

    Batches are sliced from tensors already on the device (no DataLoader: the
    whole feature set fits in memory), and the loss is summed on the device so
    there is one host sync per epoch, not one per step.
    """
    model.train()
    n = x.shape[0]
    order = torch.randperm(n, generator=generator).to(x.device)
    loss_sum = torch.zeros((), device=x.device)
    for start in range(0, n, batch_size):
        batch = order[start : start + batch_size]
        optimizer.zero_grad(set_to_none=True)
        loss = F.cross_entropy(model(x[batch]), y[batch])
        loss.backward()  # type: ignore[no-untyped-call]
        optimizer.step()
        loss_sum.add_(loss.detach(), alpha=float(batch.shape[0]))
    return float(loss_sum.item()) / n


@torch.no_grad()
def evaluate_split(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> tuple[float, float]:
    model.eval()
    logits = model(x)
    loss = F.cross_entropy(logits, y).item()
    accuracy = (logits.argmax(dim=1) == y).float().mean().item()
    return float(loss), float(accuracy)


def fit(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    data: dict[str, tuple[torch.Tensor, torch.Tensor]],
    config: TrainConfig,
) -> History:
    generator = torch.Generator().manual_seed(config.seed)
    history = History()
    x_train, y_train = data["train"]
    x_val, y_val = data["validation"]
    for epoch in range(1, config.epochs + 1):
        train_loss = train_epoch(model, optimizer, x_train, y_train, config.batch_size, generator)
        val_loss, val_accuracy = evaluate_split(model, x_val, y_val)
        if not (math.isfinite(train_loss) and math.isfinite(val_loss)):
            raise StageError(
                f"training diverged at epoch {epoch}: loss is {train_loss}; "
                f"lower the learning rate (now {config.lr})"
            )
        history.train_loss.append(train_loss)
        history.val_loss.append(val_loss)
        history.val_accuracy.append(val_accuracy)
        # Asynchronous: a tracking-server round trip per epoch would cost more than
        # the epoch itself on small data; the run's end flushes the queue.
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
    return history


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
) -> dict[str, Any]:
    config.check()
    device = resolve_device(config.device)
    make_deterministic(config.seed)
    torch.set_num_threads(config.threads)

    manifest = load_manifest(manifest_url)
    data = {
        name: tuple(t.to(device) for t in load_split(manifest, name))
        for name in ("train", "validation")
    }
    holdout_x, holdout_y = load_raw_holdout(manifest)

    model = build_mlp(len(manifest["feature_columns"]), config.hidden, manifest["n_classes"])
    model = model.to(device)
    optimizer = make_optimizer(config, model)

    mlflow.set_experiment(experiment)
    run_tags = {"trainyard.stage": "train", "trainyard.features": manifest_url, **(tags or {})}
    with mlflow.start_run(run_name=run_name, tags=run_tags) as run:
        params = {**asdict(config), "hidden": "-".join(map(str, config.hidden))}
        mlflow.log_params(
            {
                **params,
                "device_used": device.type,
                "train_rows": len(data["train"][1]),
                "n_features": len(manifest["feature_columns"]),
                "torch": torch.__version__,
            }
        )
        started = time.perf_counter()
        history = fit(model, optimizer, data, config)  # type: ignore[arg-type]
        seconds = time.perf_counter() - started

        classifier = DigitsClassifier(
            manifest["scaler"]["mean"], manifest["scaler"]["scale"], model.cpu()
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
    return {
        "run_id": run.info.run_id,
        "experiment_id": run.info.experiment_id,
        "model_uri": info.model_uri,
        "model_id": info.model_id,
        "val_accuracy": val_accuracy,
        "test_accuracy": test_accuracy,
        "train_seconds": round(seconds, 3),
        "device": device.type,
        "params": params,
    }

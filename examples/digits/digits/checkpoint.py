"""Training checkpoints in the object store: what a retried `train` resumes from.

Stored through the SDK (`trainyard.sdk.checkpoints`): one object per trial, replaced
atomically, with the MLflow run id and epoch in its header. The payload here is a
`torch.save` buffer that holds the model and optimizer state, the last finished epoch,
the RNG states (the shuffling generator and torch's global one), the metric history, the seconds
spent so far and the MLflow run id, so the retry continues the same run. The
trial's settings are stored too: a checkpoint of other settings is refused, not
silently continued. Loaded with `torch.load(weights_only=True)`: no pickle.
"""

from __future__ import annotations

import io
import logging
from dataclasses import asdict, dataclass
from typing import Any

import torch

from digits.config import TrainConfig
from trainyard.errors import UserError
from trainyard.sdk import ContractError, load_checkpoint, save_checkpoint

log = logging.getLogger(__name__)

FORMAT = 1
# Settings that change the result; device, threads and epochs do not make a
# checkpoint someone else's (more epochs continue the same trajectory).
IDENTITY_EXCLUDES = ("device", "threads", "epochs")


def identity(config: TrainConfig) -> dict[str, str]:
    return {
        key: str(value) for key, value in asdict(config).items() if key not in IDENTITY_EXCLUDES
    }


@dataclass
class Checkpoint:
    epoch: int
    model: dict[str, torch.Tensor]
    optimizer: dict[str, Any]
    shuffle_rng: torch.Tensor
    torch_rng: torch.Tensor
    history: dict[str, list[float]]
    train_seconds: float
    mlflow_run_id: str | None
    config: dict[str, str]
    world: int = 1

    def to_bytes(self) -> bytes:
        buffer = io.BytesIO()
        torch.save({"format": FORMAT, **asdict(self)}, buffer)
        return buffer.getvalue()


def save(url: str, checkpoint: Checkpoint) -> None:
    save_checkpoint(
        url, checkpoint.to_bytes(), run_id=checkpoint.mlflow_run_id, epoch=checkpoint.epoch
    )
    log.info("checkpoint of epoch %d written to %s", checkpoint.epoch, url)


def load(url: str, config: TrainConfig) -> Checkpoint | None:
    """The checkpoint at `url`, or None when there is none yet."""
    try:
        stored = load_checkpoint(url)
    except ContractError as exc:
        raise UserError(str(exc)) from None
    if stored is None:
        return None
    try:
        state = torch.load(io.BytesIO(stored.payload), map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises several unrelated types for bad files
        raise UserError(f"{url}: not a readable checkpoint ({exc})") from None
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise UserError(f"{url}: not a trainyard checkpoint of format {FORMAT}")
    state.pop("format")
    checkpoint = Checkpoint(**state)
    expected = identity(config)
    if checkpoint.config != expected:
        changed = sorted(k for k in expected if checkpoint.config.get(k) != expected[k])
        raise UserError(
            f"{url}: the checkpoint is of a trial with other settings ({', '.join(changed)}); "
            "delete it or use another --checkpoint URL"
        )
    if checkpoint.epoch > config.epochs:
        raise UserError(
            f"{url}: the checkpoint is at epoch {checkpoint.epoch}, past --epochs {config.epochs}"
        )
    return checkpoint

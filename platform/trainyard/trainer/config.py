"""Options of the train and evaluate stages: light to import, so the CLI parses fast."""

from __future__ import annotations

import math
from dataclasses import dataclass

from trainyard.errors import StageError

DEFAULT_HIDDEN = (128, 64)
DEFAULT_MIN_ACCURACY = 0.90
DEFAULT_MIN_IMPROVEMENT = 0.005

OPTIMIZERS = ("adam", "adamw", "sgd")
DEVICES = ("auto", "cpu", "cuda")


@dataclass(frozen=True)
class TrainConfig:
    lr: float = 1e-3
    batch_size: int = 64
    optimizer: str = "adam"
    epochs: int = 10
    seed: int = 42
    device: str = "auto"
    hidden: tuple[int, ...] = DEFAULT_HIDDEN
    momentum: float = 0.0
    weight_decay: float = 0.0
    # Small models on few cores run fastest single-threaded; more threads only
    # oversubscribe a pod's CPU limit.
    threads: int = 1

    def check(self) -> None:
        if self.optimizer not in OPTIMIZERS:
            raise StageError(
                f"unknown optimizer {self.optimizer!r}; choose one of {', '.join(OPTIMIZERS)}"
            )
        if self.device not in DEVICES:
            raise StageError(f"unknown device {self.device!r}; choose one of {', '.join(DEVICES)}")
        if not (self.lr > 0 and math.isfinite(self.lr)):
            raise StageError(f"learning rate must be a positive number, got {self.lr}")
        for name in ("batch_size", "epochs", "threads"):
            if getattr(self, name) < 1:
                raise StageError(
                    f"{name.replace('_', '-')} must be at least 1, got {getattr(self, name)}"
                )
        if not self.hidden or min(self.hidden) < 1:
            raise StageError(f"hidden layer sizes must be positive, got {list(self.hidden)}")
        if self.momentum < 0 or self.weight_decay < 0:
            raise StageError("momentum and weight decay must not be negative")

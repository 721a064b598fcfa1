"""Options of the train and evaluate stages: light to import, so the CLI parses fast.

`TrainConfig` is the one declaration of the train stage's hyperparameters: each field is a
`--flag` of `python -m digits train` (the CLI builds them from the fields), and
the searchable fields are the keys of the pipeline's hyperparameter grid. The DAG, which
imports this module to read the defaults, is parsed often: no torch or MLflow here.
"""

from __future__ import annotations

import math
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any

from trainyard.errors import UserError

DEFAULT_HIDDEN = (128, 64)
DEFAULT_MIN_ACCURACY = 0.90
DEFAULT_MIN_IMPROVEMENT = 0.005

OPTIMIZERS = ("adam", "adamw", "sgd")
DEVICES = ("auto", "cpu", "cuda")


def _option(
    default: Any, help: str | None = None, *, choices: tuple[str, ...] = (), search: bool = True
) -> Any:
    """A TrainConfig field; `search`: a hyperparameter the grid may vary per trial."""
    return field(default=default, metadata={"help": help, "choices": choices, "search": search})


@dataclass(frozen=True)
class TrainConfig:
    lr: float = _option(1e-3, "learning rate")
    batch_size: int = _option(64)
    optimizer: str = _option("adam", choices=OPTIMIZERS)
    # One value for the whole grid: the run's `epochs` param.
    epochs: int = _option(10, search=False)
    seed: int = _option(42, "model initialisation and batch order seed")
    device: str = _option(
        "auto", "auto: CUDA when a GPU is visible, else CPU", choices=DEVICES, search=False
    )
    hidden: tuple[int, ...] = _option(DEFAULT_HIDDEN, "hidden layer sizes, e.g. 128,64")
    momentum: float = _option(0.0, "SGD momentum")
    weight_decay: float = _option(0.0)
    # Small models on few cores run fastest single-threaded; more threads only
    # oversubscribe a pod's CPU limit.
    threads: int = _option(1, "CPU threads for torch", search=False)

    @classmethod
    def from_options(cls, values: Mapping[str, Any]) -> TrainConfig:
        """The config from parsed options (other keys, such as the stage's, are ignored)."""
        return cls(**{option.name: values[option.name] for option in TRAIN_OPTIONS})

    def check(self) -> None:
        if self.optimizer not in OPTIMIZERS:
            raise UserError(
                f"unknown optimizer {self.optimizer!r}; choose one of {', '.join(OPTIMIZERS)}"
            )
        if self.device not in DEVICES:
            raise UserError(f"unknown device {self.device!r}; choose one of {', '.join(DEVICES)}")
        if not (self.lr > 0 and math.isfinite(self.lr)):
            raise UserError(f"learning rate must be a positive number, got {self.lr}")
        for name in ("batch_size", "epochs", "threads"):
            if getattr(self, name) < 1:
                raise UserError(
                    f"{name.replace('_', '-')} must be at least 1, got {getattr(self, name)}"
                )
        if not self.hidden or min(self.hidden) < 1:
            raise UserError(f"hidden layer sizes must be positive, got {list(self.hidden)}")
        if self.momentum < 0 or self.weight_decay < 0:
            raise UserError("momentum and weight decay must not be negative")


@dataclass(frozen=True)
class TrainOption:
    """One TrainConfig field as the train stage's command-line option."""

    name: str
    type: Any  # float, int, str or tuple[int, ...]
    default: Any
    help: str | None
    choices: tuple[str, ...]
    search: bool

    @property
    def flag(self) -> str:
        return flag(self.name)


def flag(name: str) -> str:
    """`batch_size` → `--batch-size`: how the trainer spells an option."""
    return "--" + name.replace("_", "-")


def _train_options() -> tuple[TrainOption, ...]:
    types = typing.get_type_hints(TrainConfig)
    return tuple(
        TrainOption(
            f.name,
            types[f.name],
            f.default,
            f.metadata["help"],
            f.metadata["choices"],
            f.metadata["search"],
        )
        for f in fields(TrainConfig)
    )


TRAIN_OPTIONS = _train_options()
DEFAULTS = TrainConfig()
# The hyperparameters a search space may vary, in declaration order.
SEARCHABLE = tuple(option.name for option in TRAIN_OPTIONS if option.search)

"""The hyperparameter grid: a search space (lists per option) expanded into trials."""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterable
from typing import Any

from trainyard.trainer.config import SEARCHABLE, flag

# Search-space keys and the trainer options they become: TrainConfig's searchable fields.
OPTIONS = {name: flag(name) for name in SEARCHABLE}
# Any trainer's option name (a pipeline spec's search space): `--<name>` with dashes.
OPTION_NAME = re.compile(r"^[a-z][a-z0-9_]*$")


class GridError(ValueError):
    """The search space is malformed; the message names the key."""


def expand(
    search_space: dict[str, list[Any]],
    max_trials: int,
    options: Iterable[str] | None = tuple(OPTIONS),
) -> list[dict[str, Any]]:
    """Cartesian product of the search space, in a stable order. `options`: the names it may
    use (default the digits trainer's); None: any option name."""
    if not search_space:
        raise GridError("search_space is empty")
    known = None if options is None else sorted(options)
    unknown = sorted(k for k in search_space if not OPTION_NAME.match(str(k)))
    if known is not None:
        unknown = sorted(set(search_space) - set(known))
    if unknown:
        raise GridError(
            f"search_space: unknown keys {unknown}; "
            + (f"known: {known}" if known is not None else "names are lower_snake_case")
        )
    for key, values in search_space.items():
        if not isinstance(values, list) or not values:
            raise GridError(f"search_space.{key}: expected a non-empty list, got {values!r}")
    keys = list(search_space)
    trials = [
        dict(zip(keys, combo, strict=True)) for combo in itertools.product(*search_space.values())
    ]
    if len(trials) > max_trials:
        raise GridError(f"search space has {len(trials)} trials, more than max_trials={max_trials}")
    return trials


def trial_arguments(trial: dict[str, Any], epochs: int) -> list[str]:
    """The `train` stage options of one trial."""
    return [flag("epochs"), str(epochs), *option_flags(trial)]


def option_flags(trial: dict[str, Any]) -> list[str]:
    """`{"batch_size": 32, "hidden": [64, 32]}` → `--batch-size 32 --hidden 64,32`."""
    args = []
    for key, value in trial.items():
        rendered = ",".join(map(str, value)) if isinstance(value, list) else str(value)
        args += [flag(key), rendered]
    return args


def train_arguments(
    trials: list[dict[str, Any]],
    manifest_url: str,
    experiment: str,
    epochs: int,
    dag_run_id: str,
    *,
    processes: int = 1,
    checkpoint_root: str | None = None,
    checkpoint_every: int = 1,
) -> list[list[str]]:
    """One full `train` argument list per trial: what the mapped training task expands over.

    `processes` > 1: data-parallel training on that many devices (the pod's GPU count).
    `checkpoint_root`: each trial checkpoints to `<root>/trial-<index>.pt` every
    `checkpoint_every` epochs, and a retry of the trial resumes from it.
    """
    commands = []
    for index, trial in enumerate(trials):
        command = [
            "train",
            "--features", manifest_url,
            "--experiment", experiment,
            "--run-name", trial_label(trial),
            "--tag", f"airflow.dag_run_id={dag_run_id}",
            *trial_arguments(trial, epochs),
        ]  # fmt: skip
        if processes != 1:
            command += ["--processes", str(processes)]
        if checkpoint_root:
            command += [
                "--checkpoint", f"{checkpoint_root.rstrip('/')}/trial-{index:03d}.pt",
                "--checkpoint-every", str(checkpoint_every),
            ]  # fmt: skip
        commands.append(command)
    return commands


def trial_label(trial: dict[str, Any]) -> str:
    """`optimizer=adam lr=0.001`: the trial's MLflow run name and its mapped task's label."""
    return " ".join(f"{k}={v}" for k, v in trial.items())


def trial_labels(search_space: dict[str, list[Any]], max_trials: int) -> list[str]:
    """The labels of the grid's trials, in the order `train_arguments` lists them (only the
    order matters here: the run's generate_hyperparams checked the option names)."""
    return [trial_label(trial) for trial in expand(search_space, max_trials, None)]

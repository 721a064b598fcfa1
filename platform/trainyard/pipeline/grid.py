"""The hyperparameter grid: a search space (lists per option) expanded into trials."""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterable
from typing import Any

# Any trainer's option name (a pipeline spec's search space): `--<name>` with dashes.
OPTION_NAME = re.compile(r"^[a-z][a-z0-9_]*$")


def flag(name: str) -> str:
    """`batch_size` → `--batch-size`: how a search-space key reaches the train stage."""
    return "--" + name.replace("_", "-")


class GridError(ValueError):
    """The search space is malformed; the message names the key."""


def expand(
    search_space: dict[str, list[Any]],
    max_trials: int,
    options: Iterable[str] | None = None,
) -> list[dict[str, Any]]:
    """Cartesian product of the search space, in a stable order. `options`: the names it may
    use (a pipeline spec's `search.options`); None: any lower_snake_case name."""
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


def option_flags(trial: dict[str, Any]) -> list[str]:
    """`{"batch_size": 32, "hidden": [64, 32]}` → `--batch-size 32 --hidden 64,32`."""
    args = []
    for key, value in trial.items():
        rendered = ",".join(map(str, value)) if isinstance(value, list) else str(value)
        args += [flag(key), rendered]
    return args


def trial_label(trial: dict[str, Any]) -> str:
    """`optimizer=adam lr=0.001`: the trial's MLflow run name and its mapped task's label."""
    return " ".join(f"{k}={v}" for k, v in trial.items())


def trial_labels(search_space: dict[str, list[Any]], max_trials: int) -> list[str]:
    """The labels of the grid's trials, in the order the run's generate_hyperparams lists them
    (only the order matters here: that task checked the option names)."""
    return [trial_label(trial) for trial in expand(search_space, max_trials, None)]

"""The grid speaks the trainer's language: every command it emits parses with the trainer's own
parser into the trial's values, so a wrong flag fails here and not as exit 2 inside a pod."""

from __future__ import annotations

import argparse
from typing import Any

import pytest

from trainyard.pipeline import grid
from trainyard.trainer import config
from trainyard.trainer.cli import build_parser

pytestmark = pytest.mark.unit


def _train_parser() -> argparse.ArgumentParser:
    subparsers = next(
        action
        for action in build_parser()._actions
        if isinstance(action, argparse._SubParsersAction)
    )
    parser: argparse.ArgumentParser = subparsers.choices["train"]
    return parser


def _other_than_default(option: config.TrainOption) -> Any:
    """A valid value the trainer would not use unless told: as a search space (JSON) holds it."""
    if option.choices:
        return next(choice for choice in option.choices if choice != option.default)
    if option.type is float:
        return option.default * 2 + 0.25
    if option.type is int:
        return option.default + 3
    if option.type == tuple[int, ...]:
        return [size + 5 for size in option.default]
    raise AssertionError(f"{option.name}: no sample value for type {option.type}; add one here")


SEARCHABLE = [option for option in config.TRAIN_OPTIONS if option.search]


def test_the_grid_options_are_the_searchable_train_config_fields():
    assert list(grid.OPTIONS) == [option.name for option in SEARCHABLE]
    assert {"optimizer", "lr", "batch_size", "hidden"} <= set(grid.OPTIONS)
    flags = set(_train_parser()._option_string_actions)
    # Exact spellings: argparse would also accept an abbreviation of a flag.
    assert {*grid.OPTIONS.values(), config.flag("epochs")} <= flags


@pytest.mark.parametrize("option", SEARCHABLE, ids=lambda option: option.name)
def test_each_grid_option_parses_into_the_trial_value(option: config.TrainOption):
    value = _other_than_default(option)
    trials = grid.expand({option.name: [value]}, max_trials=1)
    [command] = grid.train_arguments(
        trials,
        "s3://datasets/runs/manifest.json",
        "exp",
        7,
        "manual__2026-11-20",
        processes=2,
        checkpoint_root="s3://datasets/runs/checkpoints/",
        checkpoint_every=3,
    )
    assert command[0] == "train"
    parsed = vars(build_parser().parse_args(command))
    settings = config.TrainConfig.from_options(parsed)
    expected = tuple(value) if isinstance(value, list) else value
    assert getattr(settings, option.name) == expected
    assert settings == config.TrainConfig(**{option.name: expected, "epochs": 7})
    assert parsed["features"] == "s3://datasets/runs/manifest.json"
    assert parsed["experiment"] == "exp"
    assert parsed["run_name"] == grid.trial_label(trials[0])
    assert parsed["tag"] == ["airflow.dag_run_id=manual__2026-11-20"]
    assert parsed["processes"] == 2
    assert parsed["checkpoint"] == "s3://datasets/runs/checkpoints/trial-000.pt"
    assert parsed["checkpoint_every"] == 3


def test_a_whole_grid_parses_trial_by_trial():
    space = {"optimizer": ["adam", "sgd"], "lr": [0.01], "hidden": [[32], [64, 32]]}
    trials = grid.expand(space, max_trials=4)
    commands = grid.train_arguments(trials, "file:///m.json", "exp", 2, "run-1")
    parsed = [config.TrainConfig.from_options(vars(build_parser().parse_args(c))) for c in commands]
    assert [(p.optimizer, p.lr, p.hidden) for p in parsed] == [
        ("adam", 0.01, (32,)),
        ("adam", 0.01, (64, 32)),
        ("sgd", 0.01, (32,)),
        ("sgd", 0.01, (64, 32)),
    ]
    assert grid.trial_labels(space, max_trials=4) == [
        build_parser().parse_args(c).run_name for c in commands
    ]


def test_train_config_defaults_are_the_parser_defaults():
    parsed = vars(build_parser().parse_args(["train", "--features", "file:///m.json"]))
    assert config.TrainConfig.from_options(parsed) == config.DEFAULTS

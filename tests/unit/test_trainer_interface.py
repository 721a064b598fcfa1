"""The shipped digits spec speaks its trainer's language: every train command the DAG builds from
it (the spec's train arguments, then the trial's options, by the pipeline factory) parses with
the trainer's own parser into the trial's values, so a wrong flag fails here and not as exit 2
inside a pod."""

from __future__ import annotations

import argparse
import re
from pathlib import Path
from typing import Any

import pytest

from digits import config
from digits.cli import build_parser
from trainyard import spec
from trainyard.pipeline import factory, grid

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
DIGITS = spec.load(Path(__file__).resolve().parents[2] / "dags" / "pipelines" / "digits.yaml")
# The run's values in the spec's train arguments: every Jinja value (epochs, checkpoint_every,
# the run id) is 7, every platform reference `${name}` but the trial's is `<name>`.
JINJA, REFERENCE = re.compile(r"\{\{[^}]*\}\}"), re.compile(r"\$\{(?!trial\.)([^}]+)\}")


def digits_train_commands(trials: list[dict[str, Any]]) -> list[list[str]]:
    """The train commands the digits DAG's generate_hyperparams builds for `trials`."""
    arguments = [REFERENCE.sub(r"<\1>", JINJA.sub("7", a)) for a in DIGITS.train.args]
    return factory.trial_arguments(arguments, trials, lambda i: f"s3://ckpt/{i:03d}.pt", 1)


def test_the_specs_options_are_the_searchable_train_config_fields():
    assert DIGITS.search_options == [option.name for option in SEARCHABLE]
    assert {"optimizer", "lr", "batch_size", "hidden"} <= set(DIGITS.search_options)
    flags = set(_train_parser()._option_string_actions)
    # Exact spellings: argparse would also accept an abbreviation of a flag.
    assert {*map(grid.flag, DIGITS.search_options), config.flag("epochs")} <= flags


@pytest.mark.parametrize("option", SEARCHABLE, ids=lambda option: option.name)
def test_each_grid_option_parses_into_the_trial_value(option: config.TrainOption):
    value = _other_than_default(option)
    trials = grid.expand({option.name: [value]}, max_trials=1, options=DIGITS.search_options)
    [command] = digits_train_commands(trials)
    assert command[0] == "train"
    parsed = vars(build_parser().parse_args(command))
    settings = config.TrainConfig.from_options(parsed)
    expected = tuple(value) if isinstance(value, list) else value
    assert getattr(settings, option.name) == expected
    assert settings == config.TrainConfig(**{option.name: expected, "epochs": 7})
    assert parsed["features"] == "<stages.features.manifest_url>"
    assert parsed["experiment"] == "<experiment>"
    assert parsed["run_name"] == grid.trial_label(trials[0])
    assert parsed["tag"] == ["airflow.dag_run_id=7"]
    assert parsed["checkpoint"] == "s3://ckpt/000.pt"
    assert parsed["checkpoint_every"] == 7


def test_a_whole_grid_parses_trial_by_trial():
    space = {"optimizer": ["adam", "sgd"], "lr": [0.01], "hidden": [[32], [64, 32]]}
    trials = grid.expand(space, max_trials=4)
    commands = digits_train_commands(trials)
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

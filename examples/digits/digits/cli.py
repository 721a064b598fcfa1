"""`python -m digits <stage> [options]`: the command every pipeline pod runs.

On success the stage's result goes to `$XCOM_DIR/return.json` (and stdout);
on bad input it prints one line naming the problem to stderr, exits 1 and
writes nothing. Usage errors (unknown option or choice) exit 2.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from typing import Any

from digits import config
from digits.validate import DEFAULT_MIN_CLASS_FRACTION, DEFAULT_MIN_ROWS
from trainyard import sdk
from trainyard.errors import UserError
from trainyard.stages import cli as platform_stages

# Stage modules are imported inside their handler: torch, MLflow and
# scikit-learn take seconds to import and most stages need only some of them.


def _hidden(value: str) -> tuple[int, ...]:
    try:
        return tuple(int(part) for part in value.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{value!r} is not a comma-separated list of sizes"
        ) from None


# How each TrainConfig field type is read from the command line.
_ARGUMENT_TYPES: dict[Any, Callable[[str], Any]] = {
    float: float,
    int: int,
    str: str,
    tuple[int, ...]: _hidden,
}


def _publish(a: argparse.Namespace) -> dict[str, Any]:
    from digits.data import publish

    return publish(a.root, a.date, a.sample_fraction, not a.no_shift)


def _validate(a: argparse.Namespace) -> dict[str, Any]:
    from digits.validate import validate

    return validate(a.data, a.min_rows, a.min_class_fraction)


def _preprocess(a: argparse.Namespace) -> dict[str, Any]:
    from digits.preprocess import preprocess

    return preprocess(a.data, a.output, a.seed, a.validation_fraction, a.test_fraction)


def _features(a: argparse.Namespace) -> dict[str, Any]:
    from digits.features import build_features

    return build_features(a.prepared, a.output)


def _train(a: argparse.Namespace) -> dict[str, Any]:
    from digits.train import train

    settings = config.TrainConfig.from_options(vars(a))
    settings.check()  # before the slow imports and any MLflow run exist
    # The platform's trial settings arrive in the contract's environment; a flag given on the
    # command line wins (the tests and a trainer run by hand use flags alone).
    env = sdk.read_environment()
    return train(
        a.features,
        settings,
        a.experiment or env.experiment or DEFAULT_EXPERIMENT,
        run_name=a.run_name or env.run_name,
        tags=platform_stages.tags(a.tag),
        checkpoint_url=a.checkpoint or env.checkpoint_url,
        checkpoint_every=_first(a.checkpoint_every, env.checkpoint_every, 1),
        processes=_first(a.processes, env.processes, 1),
    )


DEFAULT_EXPERIMENT = "trainyard-digits"


def _first(*values: int | None) -> int:
    """The first value that is set (0 is set: it is refused with its own message)."""
    return next(value for value in values if value is not None)


def _evaluate(a: argparse.Namespace) -> dict[str, Any]:
    """The digits gate of old DAGs, on the platform's gate: test accuracy, higher is better."""
    from trainyard.stages.evaluate import evaluate

    if not a.run_id:
        raise UserError("--run-id is needed: the gate reads test_accuracy from the candidate's run")
    result = evaluate(
        a.model_uri,
        a.run_id,
        a.model_name,
        metric="test_accuracy",
        label="accuracy",
        direction="max",
        threshold=a.min_accuracy,
        min_improvement=a.min_improvement,
    )
    # The keys the digits pipeline's summary read before the gate knew other metrics.
    return {
        **result,
        "candidate_accuracy": result["candidate_value"],
        "champion_accuracy": result["champion_value"],
        "min_accuracy": a.min_accuracy,
    }


STAGES: dict[str, Callable[[argparse.Namespace], dict[str, Any]]] = {
    "publish": _publish,
    "validate": _validate,
    "preprocess": _preprocess,
    "features": _features,
    "train": _train,
    "evaluate": _evaluate,
}
# Moved to the platform's stages (python -m trainyard.stages); the names still run them here,
# for DAGs written before.
MOVED = ("deploy", "rollback")


def build_parser() -> argparse.ArgumentParser:
    parser, sub = platform_stages.stage_parser("python -m digits", __doc__)

    p = sub.add_parser("publish", help="publish a day's raw dataset to the object store")
    p.add_argument("--root", required=True, help="dataset root URL, e.g. s3://datasets/digits")
    p.add_argument("--date", required=True, help="the day, YYYY-MM-DD")
    p.add_argument("--sample-fraction", type=float, default=0.9)
    p.add_argument("--no-shift", action="store_true", help="publish the rows unperturbed")

    p = sub.add_parser("validate", help="check a day's raw data")
    p.add_argument("--data", required=True, help="URL of the day's features.parquet")
    p.add_argument("--min-rows", type=int, default=DEFAULT_MIN_ROWS)
    p.add_argument("--min-class-fraction", type=float, default=DEFAULT_MIN_CLASS_FRACTION)

    p = sub.add_parser("preprocess", help="split (seeded, stratified) and standardise")
    p.add_argument("--data", required=True, help="URL of the day's features.parquet")
    p.add_argument("--output", required=True, help="URL prefix for the prepared splits")
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--validation-fraction", type=float, default=0.15)
    p.add_argument("--test-fraction", type=float, default=0.15)

    p = sub.add_parser("features", help="derive features and write the feature manifest")
    p.add_argument("--prepared", required=True, help="URL prefix written by preprocess")
    p.add_argument("--output", required=True, help="URL prefix for the feature set")

    p = sub.add_parser("train", help="train one trial and log it to MLflow")
    p.add_argument("--features", required=True, help="URL of the feature manifest.json")
    p.add_argument(
        "--experiment",
        default=None,
        help=f"MLflow experiment name (default: $TRAINYARD_EXPERIMENT, else {DEFAULT_EXPERIMENT})",
    )
    p.add_argument(
        "--run-name", default=None, help="MLflow run name (default: $TRAINYARD_RUN_NAME)"
    )
    for option in config.TRAIN_OPTIONS:  # the hyperparameters, declared by TrainConfig
        p.add_argument(
            option.flag,
            type=_ARGUMENT_TYPES[option.type],
            default=option.default,
            choices=option.choices or None,
            help=option.help,
        )
    p.add_argument(
        "--processes",
        type=int,
        default=None,
        help="data-parallel processes, one per GPU (DistributedDataParallel; gloo on CPU); "
        "1: this process alone (default: $TRAINYARD_PROCESSES, else 1)",
    )
    p.add_argument(
        "--checkpoint",
        default=None,
        metavar="URL",
        help="object URL of the trial's checkpoint: written while training, resumed from "
        "(same MLflow run) when it exists (default: $TRAINYARD_CHECKPOINT_URL)",
    )
    p.add_argument(
        "--checkpoint-every",
        type=int,
        default=None,
        metavar="EPOCHS",
        help="checkpoint interval (default: $TRAINYARD_CHECKPOINT_EVERY, else 1)",
    )
    p.add_argument(
        "--tag",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="MLflow run tag (repeatable)",
    )

    # evaluate (and deploy, rollback: see MOVED): kept for DAGs written before
    # `python -m trainyard.stages`; they run the platform's stages.
    p = sub.add_parser(
        "evaluate", help="quality gate on test_accuracy (python -m trainyard.stages)"
    )
    p.add_argument("--model-uri", required=True, help="candidate model URI from train")
    p.add_argument("--features", default=None, help="accepted and ignored (the gate reads MLflow)")
    p.add_argument("--model-name", required=True, help="registered model name")
    p.add_argument("--run-id", default=None, help="candidate run: its test_accuracy is read")
    p.add_argument("--min-accuracy", type=float, default=config.DEFAULT_MIN_ACCURACY)
    p.add_argument("--min-improvement", type=float, default=config.DEFAULT_MIN_IMPROVEMENT)

    return parser


def moved_stage(argv: Sequence[str]) -> bool:
    """Whether `argv` names a stage of MOVED (after the global `--option value` pairs)."""
    index = 0
    while index < len(argv) and argv[index].startswith("-"):
        index += 1 if "=" in argv[index] else 2
    return index < len(argv) and argv[index] in MOVED


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if moved_stage(argv):
        return platform_stages.main(argv)
    args = build_parser().parse_args(argv)
    return platform_stages.run_stage(STAGES, args, (UserError, sdk.ContractError))

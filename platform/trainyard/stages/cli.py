"""`python -m trainyard.stages <stage> [options]`: the platform's model-agnostic stages.

On success the stage's result goes to `$XCOM_DIR/return.json` (and stdout); on bad input it
prints one line naming the problem to stderr (and the termination log), exits 1 and writes
nothing. Usage errors (unknown option or choice) exit 2.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from trainyard.errors import UserError, error_line, report_termination
from trainyard.sdk.result import write_result

# Stage modules are imported inside their handler: MLflow takes seconds to import.


def tags(values: Sequence[str]) -> dict[str, str]:
    result = {}
    for item in values:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise UserError(f"--tag {item!r} is not KEY=VALUE")
        result[key] = value
    return result


def boolean(value: str) -> bool:
    """true/false in any case (a rendered Jinja bool is True/False)."""
    if value.lower() in ("true", "1", "yes"):
        return True
    if value.lower() in ("false", "0", "no", ""):
        return False
    raise argparse.ArgumentTypeError(f"{value!r} is not true or false")


def _evaluate(a: argparse.Namespace) -> dict[str, Any]:
    from trainyard.stages.evaluate import evaluate  # noqa: PLC0415

    return evaluate(
        a.model_uri,
        a.run_id,
        a.model_name,
        a.metric,
        a.label or a.metric,
        a.direction,
        a.threshold,
        a.min_improvement,
    )


def _deploy(a: argparse.Namespace) -> dict[str, Any]:
    from trainyard.stages.deploy import deploy  # noqa: PLC0415

    return deploy(a.model_uri, a.run_id, a.model_name, tags(a.tag), a.force_deploy)


def _rollback(a: argparse.Namespace) -> dict[str, Any]:
    from trainyard.stages.deploy import rollback  # noqa: PLC0415

    return rollback(a.model_name)


STAGES: dict[str, Callable[[argparse.Namespace], dict[str, Any]]] = {
    "evaluate": _evaluate,
    "deploy": _deploy,
    "rollback": _rollback,
}


def stage_parser(
    prog: str, description: str | None
) -> tuple[argparse.ArgumentParser, argparse._SubParsersAction[argparse.ArgumentParser]]:
    """A stage CLI's parser with its global options, and the subparsers its stages join."""
    parser = argparse.ArgumentParser(
        prog=prog,
        description=description,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--xcom-dir",
        type=Path,
        default=None,
        help="where return.json goes (default: $XCOM_DIR or /airflow/xcom)",
    )
    parser.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING"])
    # Its error lines name the program: `trainyard.stages deploy: error: ...`.
    parser.set_defaults(program=prog.removeprefix("python -m "))
    return parser, parser.add_subparsers(dest="stage", required=True, metavar="stage")


def run_stage(
    stages: Mapping[str, Callable[[argparse.Namespace], dict[str, Any]]],
    args: argparse.Namespace,
    errors: tuple[type[Exception], ...] = (UserError,),
) -> int:
    """Run the parsed stage: its result to return.json and stdout (0), or its one-line error
    to stderr and the termination log (1)."""
    logging.basicConfig(
        level=args.log_level,
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        result = stages[args.stage](args)
    except errors as exc:
        line = error_line(args.program, args.stage, exc)
        print(line, file=sys.stderr)
        report_termination(line)
        return 1
    path = write_result(result, args.xcom_dir)
    print(json.dumps(result, indent=2, sort_keys=True))
    logging.getLogger(__name__).info("result written to %s", path)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser, sub = stage_parser("python -m trainyard.stages", __doc__)

    p = sub.add_parser("evaluate", help="champion gate on an MLflow metric (fails closed)")
    p.add_argument("--model-uri", required=True, help="candidate model URI, passed through")
    p.add_argument("--run-id", required=True, help="candidate MLflow run: its metric is read")
    p.add_argument("--model-name", required=True, help="registered model name")
    p.add_argument("--metric", required=True, help="MLflow metric compared, e.g. test_accuracy")
    p.add_argument("--label", default=None, help="the metric's name in messages (default: it)")
    p.add_argument(
        "--direction", required=True, choices=("max", "min"), help="max: higher is better"
    )
    p.add_argument(
        "--threshold",
        type=float,
        required=True,
        help="the candidate's worst acceptable value (a minimum for max, a maximum for min)",
    )
    p.add_argument(
        "--min-improvement",
        type=float,
        default=0.0,
        help="how much better than the champion the candidate must be",
    )

    p = sub.add_parser("deploy", help="register, move the champion alias, roll out, smoke-test")
    p.add_argument("--model-uri", required=True)
    p.add_argument("--run-id", required=True)
    p.add_argument("--model-name", required=True)
    p.add_argument(
        "--tag",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="model version tag (repeatable)",
    )
    p.add_argument(
        "--force-deploy",
        type=boolean,
        default=False,
        metavar="BOOL",
        help="promote even a version that was rolled back (tagged trainyard.rolled_back=true)",
    )
    p.add_argument(
        "--features",
        default=None,
        metavar="URL",
        help="accepted and ignored, for DAGs written before the smoke test sent the model's "
        "own input example",
    )

    p = sub.add_parser("rollback", help="move champion back to the previous version")
    p.add_argument("--model-name", required=True)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    return run_stage(STAGES, build_parser().parse_args(argv))

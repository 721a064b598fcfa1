"""The `trainyard` command: the platform as local processes, and the demo."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from trainyard.errors import StageError

DEFAULT_WORKDIR = Path(".trainyard")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="trainyard", description=__doc__)
    parser.add_argument(
        "--workdir",
        type=Path,
        default=DEFAULT_WORKDIR,
        help="where services keep state and data (default: .trainyard)",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="command")
    up = sub.add_parser("up", help="start S3 (SeaweedFS), MLflow and Airflow as local processes")
    up.add_argument(
        "--mlflow-backend",
        default=None,
        help="MLflow backend store URI, e.g. postgresql://… (default: SQLite)",
    )
    sub.add_parser("down", help="stop what `up` started")
    sub.add_parser("status", help="each service, its state and URL")
    demo = sub.add_parser("demo", help="run the training pipeline end to end")
    demo.add_argument("--date", default=None, help="the day to train on (default: today, UTC)")
    demo.add_argument(
        "--conf",
        type=json.loads,
        default=None,
        help="DAG run config as JSON, e.g. '{\"min_accuracy\": 0.999}'",
    )
    demo.add_argument(
        "--min-accuracy", type=float, default=None, help="shortcut for the gate's minimum accuracy"
    )
    demo.add_argument("--keep", action="store_true", help="leave the services up afterwards")
    demo.add_argument("--summary-json", type=Path, default=None, help="write the summary here")
    demo.add_argument("--timeout", type=float, default=1800, help="seconds to wait for the run")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    # Imported per command: each pulls in heavy dependencies.
    from trainyard.standalone import runtime  # noqa: PLC0415

    try:
        if args.command == "up":
            platform = runtime.start(args.workdir, mlflow_backend=args.mlflow_backend)
            for name, url in platform.state()["urls"].items():
                print(f"{name:<8} {url}")
            print(f"Airflow user admin, password in {platform.airflow.password_file}")
        elif args.command == "down":
            print("stopped:", ", ".join(runtime.stop(args.workdir)) or "nothing was running")
        elif args.command == "status":
            print(json.dumps(runtime.status(args.workdir), indent=2))
        elif args.command == "demo":
            from trainyard.standalone.demo import run_demo  # noqa: PLC0415

            conf = dict(args.conf or {})
            if args.min_accuracy is not None:
                conf["min_accuracy"] = args.min_accuracy
            run_demo(args.workdir, args.date, conf, args.keep, args.summary_json, args.timeout)
    except StageError as exc:
        print(f"trainyard {args.command}: error: {exc}", file=sys.stderr)
        return 1
    return 0

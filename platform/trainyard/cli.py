"""The `trainyard` command: the platform as local processes, and the demo."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from trainyard import objectstore_copy
from trainyard.errors import UserError
from trainyard.standalone.status_table import format_status

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
    up = sub.add_parser(
        "up", help="start PostgreSQL, S3 (SeaweedFS), MLflow and Airflow as local processes"
    )
    up.add_argument(
        "--mlflow-backend",
        default=None,
        help="MLflow backend store URI (default: the platform's PostgreSQL, or SQLite with "
        "--metadata-db sqlite)",
    )
    sub.add_parser("down", help="stop every process `up` started, crashed services' too")
    status = sub.add_parser(
        "status",
        help="a table of each service's process, health probe and problem; DAG import errors",
    )
    status.add_argument(
        "--json", action="store_true", help="print the whole report as JSON (for scripts)"
    )
    demo = sub.add_parser("demo", help="run the training pipeline end to end")
    for command in (up, demo):
        command.add_argument(
            "--dags-folder",
            type=Path,
            default=None,
            help="a folder of your own DAGs, parsed beside the training DAG",
        )
        command.add_argument(
            "--metadata-db",
            choices=("postgres", "sqlite"),
            # demo on a platform that is up takes its database; given, it must match
            default="postgres" if command is up else None,
            help="Airflow's metadata database (and MLflow's backend): a local PostgreSQL "
            "server (default) or SQLite files",
        )
    up.add_argument(
        "--pipeline",
        dest="pipelines",
        type=Path,
        action="append",
        default=[],
        metavar="SPEC",
        help="a team's pipeline spec (YAML) to run beside the training DAG; repeatable",
    )
    up.add_argument(
        "--pipelines",
        dest="pipeline_folders",
        type=Path,
        action="append",
        default=[],
        metavar="DIR",
        help="a folder of pipeline specs (*.yaml, *.yml); repeatable",
    )
    demo.add_argument(
        "--pipeline",
        type=Path,
        default=None,
        metavar="SPEC",
        help="run this pipeline spec instead of the digits pipeline (the platform is started "
        "with it, or must be up with it)",
    )
    demo.add_argument(
        "--publish",
        default=None,
        metavar="COMMAND",
        help="with --pipeline: the command that puts the day's input in place, run in the "
        "spec's folder with the platform's S3 and MLflow variables, TRAINYARD_DS and "
        "TRAINYARD_INPUT_URL (default: the input must already exist)",
    )
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
    copy = sub.add_parser(
        "objectstore-copy",
        help="copy every bucket and object from one S3 store to another, each copy verified "
        "by SHA-256 (SOURCE_* and DEST_* env: see docs/upgrading.md)",
    )
    objectstore_copy.add_arguments(copy)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "objectstore-copy":  # needs no platform: both stores come from the env
        return objectstore_copy.execute(args)
    return platform_command(args)


def platform_command(args: argparse.Namespace) -> int:
    """up, down, status and demo: the laptop platform in --workdir."""
    # Imported per command: each pulls in heavy dependencies.
    from trainyard.standalone import runtime  # noqa: PLC0415

    try:
        if args.command == "up":
            up(args)
        elif args.command == "down":
            print("stopped:", ", ".join(runtime.stop(args.workdir)) or "nothing was running")
        elif args.command == "status":
            report = runtime.status(args.workdir)
            if args.json:
                print(json.dumps(report, indent=2))
                for problem in report["problems"]:
                    print(f"trainyard status: {problem}", file=sys.stderr)
            else:  # the problems are in the table's last column
                print(format_status(report))
            for error in report["import_errors"]:
                print(f"trainyard status: DAG import error: {error}", file=sys.stderr)
            return 1 if report["problems"] else 0
        elif args.command == "demo":
            from trainyard.standalone.demo import run_demo  # noqa: PLC0415

            conf = dict(args.conf or {})
            if args.min_accuracy is not None:
                conf["min_accuracy"] = args.min_accuracy
            run_demo(
                args.workdir,
                args.date,
                conf,
                args.keep,
                args.summary_json,
                args.timeout,
                user_dags=args.dags_folder,
                metadata_db=args.metadata_db,
                pipeline=args.pipeline,
                publish_command=args.publish,
            )
    except UserError as exc:
        print(f"trainyard {args.command}: error: {exc}", file=sys.stderr)
        return 1
    return 0


def up(args: argparse.Namespace) -> None:
    """`trainyard up`: start the platform, print where each service answers."""
    from trainyard.standalone import runtime  # noqa: PLC0415
    from trainyard.standalone.pipelines import spec_files  # noqa: PLC0415

    stack = runtime.start(
        args.workdir,
        mlflow_backend=args.mlflow_backend,
        user_dags=args.dags_folder,
        metadata_db=args.metadata_db,
        pipelines=spec_files(args.pipelines, args.pipeline_folders),
    )
    for name, url in stack.state()["urls"].items():
        print(f"{name:<8} {url}")
    for pipeline in stack.pipelines:
        server = stack.model_servers.get(pipeline.model_name)
        served = f", served at {server.url}" if server else ""
        print(f"pipeline {pipeline.spec.name}: model {pipeline.model_name}{served}")
    print(f"Airflow user admin, password in {stack.airflow.password_file}")
    if stack.postgres:
        print(f"PostgreSQL user trainyard, password in {stack.postgres.passfile}")
    took = ", ".join(f"{k} {v:.1f} s" for k, v in stack.startup_seconds.items())
    print(f"ready: {took}")

"""The `trainyard` command."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from trainyard.errors import StageError


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="trainyard", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True, metavar="command")
    demo = sub.add_parser(
        "demo",
        help="run every trainer stage end to end against local S3 and MLflow servers",
    )
    demo.add_argument("--workdir", type=Path, default=Path(".trainyard/demo"))
    demo.add_argument("--date", default="2026-11-20", help="the day of data to train on")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.command == "demo":
            from trainyard.standalone.stage_demo import run_demo  # noqa: PLC0415 - heavy

            run_demo(args.workdir, args.date)
    except StageError as exc:
        print(f"trainyard {args.command}: error: {exc}", file=sys.stderr)
        return 1
    return 0

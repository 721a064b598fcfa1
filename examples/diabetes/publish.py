"""publish: a day's diabetes data at the pipeline's input URL.

    python publish.py --date 2026-04-01 [--url s3://datasets/diabetes/daily/2026-04-01/diabetes.csv]

`trainyard demo --pipeline pipeline.yaml --publish "python publish.py"` runs it for the demo's
day, with TRAINYARD_DS and TRAINYARD_INPUT_URL set.

A day is a sample of scikit-learn's diabetes data (no download), seeded by the date, so days
differ and the champion gate has something to decide. `--url` defaults to the spec's input URL
for the date; the S3 endpoint and keys come from the usual AWS_* variables.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import sys

import pandas as pd
from sklearn.datasets import load_diabetes

DEFAULT_URL = "s3://datasets/diabetes/daily/{date}/diabetes.csv"


def day_sample(date: dt.date, fraction: float) -> pd.DataFrame:
    data = load_diabetes(as_frame=True, scaled=True).frame
    return data.sample(frac=fraction, random_state=date.toordinal()).reset_index(drop=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="publish", description=__doc__)
    # `trainyard demo --publish "python publish.py"` sets both variables.
    day = os.environ.get("TRAINYARD_DS")
    parser.add_argument(
        "--date",
        type=dt.date.fromisoformat,
        default=dt.date.fromisoformat(day) if day else None,
        required=not day,
        help="YYYY-MM-DD (default: $TRAINYARD_DS)",
    )
    parser.add_argument(
        "--url",
        default=os.environ.get("TRAINYARD_INPUT_URL"),
        help=f"where to (default: $TRAINYARD_INPUT_URL, else {DEFAULT_URL})",
    )
    parser.add_argument("--fraction", type=float, default=0.9, help="of the 442 rows")
    args = parser.parse_args(argv)
    if not 0 < args.fraction <= 1:
        parser.error(f"--fraction must be in (0, 1], got {args.fraction}")
    url = args.url or DEFAULT_URL.format(date=args.date.isoformat())
    endpoint = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
    options = {"client_kwargs": {"endpoint_url": endpoint}} if endpoint else None
    frame = day_sample(args.date, args.fraction)
    try:
        frame.to_csv(url, index=False, storage_options=options if url.startswith("s3://") else None)
    except Exception as exc:
        print(f"publish: error: {url}: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    print(url)
    return 0


if __name__ == "__main__":
    sys.exit(main())

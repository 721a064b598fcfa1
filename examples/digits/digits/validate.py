"""Validate a day's raw data before anything is trained on it."""

from __future__ import annotations

import logging
from typing import Any

import pandas as pd

from digits.schema import (
    LABEL_COLUMN,
    N_CLASSES,
    PIXEL_COLUMNS,
    PIXEL_RANGE,
    RAW_COLUMNS,
)
from trainyard import storage
from trainyard.errors import UserError

log = logging.getLogger(__name__)

DEFAULT_MIN_ROWS = 500
# load_digits has ~10% per class; a class under 5% means a broken upstream export.
DEFAULT_MIN_CLASS_FRACTION = 0.05


def check_frame(
    frame: pd.DataFrame,
    source: str,
    min_rows: int = DEFAULT_MIN_ROWS,
    min_class_fraction: float = DEFAULT_MIN_CLASS_FRACTION,
) -> dict[str, Any]:
    """Raise UserError naming the first problem found; return data statistics when clean."""
    missing = [c for c in RAW_COLUMNS if c not in frame.columns]
    unexpected = [c for c in frame.columns if c not in RAW_COLUMNS]
    if missing or unexpected:
        parts = []
        if missing:
            parts.append(f"missing columns {_short(missing)}")
        if unexpected:
            parts.append(f"unexpected columns {_short(unexpected)}")
        raise UserError(f"{source}: wrong schema: {'; '.join(parts)}")

    non_numeric = [c for c in PIXEL_COLUMNS if not pd.api.types.is_numeric_dtype(frame[c])]
    if non_numeric:
        raise UserError(f"{source}: wrong schema: non-numeric pixel columns {_short(non_numeric)}")
    if (
        not pd.api.types.is_integer_dtype(frame[LABEL_COLUMN])
        and not frame[LABEL_COLUMN].isna().any()
    ):
        raise UserError(
            f"{source}: wrong schema: column {LABEL_COLUMN!r} must hold integers, "
            f"found {frame[LABEL_COLUMN].dtype}"
        )

    if frame.empty:
        raise UserError(f"{source}: no rows")
    if len(frame) < min_rows:
        raise UserError(f"{source}: {len(frame)} rows, fewer than the minimum {min_rows}")

    nan_counts = frame.isna().sum()
    nan_columns = nan_counts[nan_counts > 0]
    if not nan_columns.empty:
        shown = ", ".join(f"{c}={n}" for c, n in nan_columns.head(5).items())
        raise UserError(
            f"{source}: {int(nan_columns.sum())} missing values (NaN) in "
            f"{len(nan_columns)} columns: {shown}"
        )

    labels = frame[LABEL_COLUMN]
    bad_labels = sorted({int(v) for v in labels.unique()} - set(range(N_CLASSES)))
    if bad_labels:
        raise UserError(f"{source}: labels must be 0..{N_CLASSES - 1}, found {_short(bad_labels)}")

    low, high = PIXEL_RANGE
    pixels = frame[PIXEL_COLUMNS]
    out_of_range = int(((pixels < low) | (pixels > high)).to_numpy().sum())
    if out_of_range:
        raise UserError(f"{source}: {out_of_range} pixel values outside [{low}, {high}]")

    counts = labels.value_counts().reindex(range(N_CLASSES), fill_value=0)
    fractions = counts / len(frame)
    scarce = fractions[fractions < min_class_fraction]
    if not scarce.empty:
        shown = ", ".join(f"{k}: {v:.1%}" for k, v in scarce.items())
        raise UserError(
            f"{source}: class imbalance: classes below {min_class_fraction:.0%} of rows ({shown})"
        )

    return {
        "rows": len(frame),
        "class_counts": {str(k): int(v) for k, v in counts.items()},
        "min_class_fraction": round(float(fractions.min()), 4),
    }


def validate(
    data_url: str,
    min_rows: int = DEFAULT_MIN_ROWS,
    min_class_fraction: float = DEFAULT_MIN_CLASS_FRACTION,
) -> dict[str, Any]:
    frame = storage.read_parquet(data_url)
    stats = check_frame(frame, data_url, min_rows=min_rows, min_class_fraction=min_class_fraction)
    log.info("%s: %d rows, schema and distribution OK", data_url, stats["rows"])
    return {"data_url": data_url, "valid": True, **stats}


def _short(values: list[Any], limit: int = 5) -> str:
    shown = ", ".join(repr(v) for v in values[:limit])
    more = f" and {len(values) - limit} more" if len(values) > limit else ""
    return f"[{shown}]{more}"

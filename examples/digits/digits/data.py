"""Publish a day's raw dataset to the object store, where the pipeline's sensor waits for it.

The rows come from `sklearn.datasets.load_digits` (shipped with scikit-learn, no
download). Each day is a seeded sample of the rows with a small brightness gain
and pixel noise, so consecutive days differ the way real daily batches do while
staying the same task.
"""

from __future__ import annotations

import datetime as dt
import logging

import numpy as np
import pandas as pd
from sklearn.datasets import load_digits

from digits.schema import LABEL_COLUMN, PIXEL_COLUMNS, PIXEL_RANGE, daily_data_url
from trainyard import storage
from trainyard.errors import UserError

log = logging.getLogger(__name__)


def parse_date(value: str) -> dt.date:
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        raise UserError(f"date {value!r} is not an ISO date (YYYY-MM-DD)") from None


def build_day(day: dt.date, sample_fraction: float = 0.9, shift: bool = True) -> pd.DataFrame:
    """The dataset for `day`: deterministic for a given date and options."""
    if not 0.0 < sample_fraction <= 1.0:
        raise UserError(f"sample fraction must be in (0, 1], got {sample_fraction}")
    digits = load_digits()
    pixels = digits.data.astype(np.float32)
    labels = digits.target.astype(np.int64)
    rng = np.random.default_rng(day.toordinal())
    keep = rng.permutation(len(labels))[: round(sample_fraction * len(labels))]
    keep.sort()
    pixels, labels = pixels[keep], labels[keep]
    if shift:
        gain = rng.uniform(0.9, 1.1)
        noise = rng.normal(0.0, 0.25, size=pixels.shape)
        pixels = np.clip(pixels * gain + noise, *PIXEL_RANGE).astype(np.float32)
    frame = pd.DataFrame(pixels, columns=PIXEL_COLUMNS)
    frame[LABEL_COLUMN] = labels
    return frame


def publish(
    root: str, date: str, sample_fraction: float = 0.9, shift: bool = True
) -> dict[str, object]:
    day = parse_date(date)
    frame = build_day(day, sample_fraction=sample_fraction, shift=shift)
    url = daily_data_url(root, day.isoformat())
    storage.write_bytes(url, storage.parquet_bytes(frame))
    log.info("published %d rows for %s to %s", len(frame), day, url)
    return {"data_url": url, "date": day.isoformat(), "rows": len(frame)}

"""The raw dataset's contract: 8x8 digit images as 64 pixel columns plus a label."""

from __future__ import annotations

IMAGE_SIDE = 8
PIXEL_COLUMNS: list[str] = [f"pixel_{i}" for i in range(IMAGE_SIDE * IMAGE_SIDE)]
LABEL_COLUMN = "label"
N_CLASSES = 10
PIXEL_RANGE = (0.0, 16.0)
RAW_COLUMNS: list[str] = [*PIXEL_COLUMNS, LABEL_COLUMN]

# Where a day's data lands; the data-arrival sensor waits for exactly this key.
DAILY_DATA_KEY = "daily/{date}/features.parquet"


def daily_data_url(root: str, date: str) -> str:
    # Plain string join: this module is imported by the DAG file, which must
    # stay free of pandas/fsspec imports.
    return f"{root.rstrip('/')}/{DAILY_DATA_KEY.format(date=date)}"

"""Split a day's data into train/validation/test (seeded, stratified) and standardise it.

Outputs under `--output`:
  train.parquet, validation.parquet, test.parquet   scaled pixels + label
  holdout_raw.parquet                               the test rows unscaled: end-to-end
                                                    models (candidate and champion) are
                                                    scored on raw input
  scaler.json                                       per-pixel mean and scale, fit on train only
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import pandas as pd
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import StandardScaler

from digits.schema import LABEL_COLUMN, PIXEL_COLUMNS
from digits.validate import check_frame
from trainyard import storage
from trainyard.errors import UserError

log = logging.getLogger(__name__)

SPLITS = ("train", "validation", "test")
HOLDOUT_RAW = "holdout_raw.parquet"
SCALER = "scaler.json"


def split_frame(
    frame: pd.DataFrame, seed: int, validation_fraction: float, test_fraction: float
) -> dict[str, pd.DataFrame]:
    if not (0 < validation_fraction < 1 and 0 < test_fraction < 1):
        raise UserError("validation and test fractions must each be in (0, 1)")
    if validation_fraction + test_fraction >= 0.5:
        raise UserError(
            f"validation ({validation_fraction}) + test ({test_fraction}) fractions leave "
            "less than half of the rows for training"
        )
    rest, test = train_test_split(
        frame, test_size=test_fraction, random_state=seed, stratify=frame[LABEL_COLUMN]
    )
    train, validation = train_test_split(
        rest,
        test_size=validation_fraction / (1 - test_fraction),
        random_state=seed,
        stratify=rest[LABEL_COLUMN],
    )
    return {
        name: part.reset_index(drop=True)
        for name, part in zip(SPLITS, (train, validation, test), strict=True)
    }


def preprocess(
    data_url: str,
    output_url: str,
    seed: int = 42,
    validation_fraction: float = 0.15,
    test_fraction: float = 0.15,
) -> dict[str, Any]:
    frame = storage.read_parquet(data_url)
    check_frame(frame, data_url)
    splits = split_frame(frame, seed, validation_fraction, test_fraction)

    scaler = StandardScaler().fit(splits["train"][PIXEL_COLUMNS].to_numpy(np.float32))
    outputs: dict[str, bytes] = {}
    for name, part in splits.items():
        scaled = pd.DataFrame(
            scaler.transform(part[PIXEL_COLUMNS].to_numpy(np.float32)).astype(np.float32),
            columns=PIXEL_COLUMNS,
        )
        scaled[LABEL_COLUMN] = part[LABEL_COLUMN].to_numpy(np.int64)
        outputs[f"{name}.parquet"] = storage.parquet_bytes(scaled)
    outputs[HOLDOUT_RAW] = storage.parquet_bytes(splits["test"])
    scaler_params = {
        "columns": PIXEL_COLUMNS,
        "mean": [float(v) for v in scaler.mean_],
        # StandardScaler maps zero-variance columns (always-blank border pixels) to scale 1.
        "scale": [float(v) for v in scaler.scale_],
        "seed": seed,
        "source": data_url,
    }
    # Everything is serialised before the first write; scaler.json goes last and
    # marks the output complete.
    outputs[SCALER] = storage.json_bytes(scaler_params)
    for name, payload in outputs.items():
        storage.write_bytes(storage.join(output_url, name), payload)

    rows = {name: len(part) for name, part in splits.items()}
    log.info("split %s into %s (seed %d) → %s", data_url, rows, seed, output_url)
    return {
        "output_url": output_url,
        "scaler_url": storage.join(output_url, SCALER),
        "rows": rows,
        "seed": seed,
    }

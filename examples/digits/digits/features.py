"""Feature engineering: derived stroke-layout features plus a manifest describing the set.

The manifest is the single input of `train` and `evaluate`: feature and label
columns, the split files, the raw hold-out set and the scaler the logged model
embeds. It is written last, so its presence means the feature set is complete.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
from typing import Any

import numpy as np
import pandas as pd
import torch

from digits.model import FEATURE_COLUMNS, derive_features
from digits.preprocess import HOLDOUT_RAW, SCALER, SPLITS
from digits.schema import LABEL_COLUMN, N_CLASSES, PIXEL_COLUMNS
from trainyard import storage
from trainyard.errors import UserError

log = logging.getLogger(__name__)

MANIFEST = "manifest.json"
MANIFEST_VERSION = 1


def engineer(scaled: pd.DataFrame, source: str) -> pd.DataFrame:
    missing = [c for c in [*PIXEL_COLUMNS, LABEL_COLUMN] if c not in scaled.columns]
    if missing:
        raise UserError(f"{source}: not a preprocessed split, missing columns {missing[:5]}")
    with torch.no_grad():
        derived = derive_features(
            torch.from_numpy(scaled[PIXEL_COLUMNS].to_numpy(np.float32, copy=True))
        )
    features = pd.DataFrame(derived.numpy(), columns=FEATURE_COLUMNS)
    features[LABEL_COLUMN] = scaled[LABEL_COLUMN].to_numpy(np.int64)
    return features


def build_features(prepared_url: str, output_url: str) -> dict[str, Any]:
    scaler = storage.read_json(storage.join(prepared_url, SCALER))
    outputs: dict[str, bytes] = {}
    split_info: dict[str, dict[str, Any]] = {}
    for name in SPLITS:
        source = storage.join(prepared_url, f"{name}.parquet")
        features = engineer(storage.read_parquet(source), source)
        payload = storage.parquet_bytes(features)
        outputs[f"{name}.parquet"] = payload
        split_info[name] = {
            "url": storage.join(output_url, f"{name}.parquet"),
            "rows": len(features),
            "sha256": hashlib.sha256(payload).hexdigest(),
        }

    holdout_source = storage.join(prepared_url, HOLDOUT_RAW)
    holdout = storage.read_bytes(holdout_source)
    outputs[HOLDOUT_RAW] = holdout

    manifest = {
        "version": MANIFEST_VERSION,
        "created": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "source": scaler.get("source"),
        "feature_columns": FEATURE_COLUMNS,
        "input_columns": PIXEL_COLUMNS,
        "label_column": LABEL_COLUMN,
        "n_classes": N_CLASSES,
        "splits": split_info,
        "holdout_raw": {
            "url": storage.join(output_url, HOLDOUT_RAW),
            "sha256": hashlib.sha256(holdout).hexdigest(),
        },
        "scaler": {"mean": scaler["mean"], "scale": scaler["scale"]},
    }
    for name, payload in outputs.items():
        storage.write_bytes(storage.join(output_url, name), payload)
    manifest_url = storage.join(output_url, MANIFEST)
    storage.write_bytes(manifest_url, storage.json_bytes(manifest))

    log.info("wrote %d features for splits %s → %s", len(FEATURE_COLUMNS), list(SPLITS), output_url)
    return {
        "manifest_url": manifest_url,
        "n_features": len(FEATURE_COLUMNS),
        "rows": {name: info["rows"] for name, info in split_info.items()},
    }


def load_manifest(manifest_url: str) -> dict[str, Any]:
    manifest = storage.read_json(manifest_url)
    if not isinstance(manifest, dict) or manifest.get("version") != MANIFEST_VERSION:
        raise UserError(
            f"{manifest_url}: not a trainyard feature manifest (version {MANIFEST_VERSION})"
        )
    return manifest


def _read_checked(url: str, expected_sha256: str) -> pd.DataFrame:
    payload = storage.read_bytes(url)
    if hashlib.sha256(payload).hexdigest() != expected_sha256:
        raise UserError(f"{url}: content does not match its manifest (overwritten since?)")
    return storage.read_parquet_bytes(payload, url)


def load_split(manifest: dict[str, Any], name: str) -> tuple[torch.Tensor, torch.Tensor]:
    """(features, labels) tensors of one split listed in the manifest."""
    info = manifest["splits"][name]
    frame = _read_checked(info["url"], info["sha256"])
    x = torch.from_numpy(frame[manifest["feature_columns"]].to_numpy(np.float32, copy=True))
    y = torch.from_numpy(frame[manifest["label_column"]].to_numpy(np.int64, copy=True))
    return x, y


def load_raw_holdout(manifest: dict[str, Any]) -> tuple[torch.Tensor, torch.Tensor]:
    """(raw pixels, labels) of the held-out test rows: the input end-to-end models see."""
    info = manifest["holdout_raw"]
    frame = _read_checked(info["url"], info["sha256"])
    x = torch.from_numpy(frame[manifest["input_columns"]].to_numpy(np.float32, copy=True))
    y = torch.from_numpy(frame[manifest["label_column"]].to_numpy(np.int64, copy=True))
    return x, y

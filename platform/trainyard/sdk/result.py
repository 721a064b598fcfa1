"""A stage's result: `$XCOM_DIR/return.json`, the KubernetesPodOperator's XCom contract.

Only small values go here (metrics, URIs, run ids), never data. The file is written atomically
and only after the stage succeeded, so a reader never sees a partial or stale-but-plausible
result.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from trainyard.sdk.errors import ContractError

DEFAULT_XCOM_DIR = "/airflow/xcom"
RETURN_FILE = "return.json"
# Airflow keeps XComs in its metadata database (or offloads large ones); a stage result above
# this size means data leaked into the contract.
MAX_RESULT_BYTES = 64 * 1024
# What every train trial's result carries: the platform's selection, gate and deploy read them.
TRAIN_RESULT_KEYS = ("run_id", "model_uri", "metrics", "params")


def xcom_dir() -> Path:
    return Path(os.environ.get("XCOM_DIR") or DEFAULT_XCOM_DIR)


def check_train_result(result: Mapping[str, Any]) -> None:
    """ContractError naming what a train trial's result lacks or has of the wrong type."""
    missing = [key for key in TRAIN_RESULT_KEYS if key not in result]
    if missing:
        raise ContractError(
            f"the train result has no {', '.join(missing)} (it needs all of "
            f"{', '.join(TRAIN_RESULT_KEYS)})"
        )
    for key in ("run_id", "model_uri"):
        if not isinstance(result[key], str) or not result[key]:
            raise ContractError(f"the train result's {key} must be a non-empty string")
    if not isinstance(result["params"], Mapping):
        raise ContractError("the train result's params must be an object")
    metrics = result["metrics"]
    if not isinstance(metrics, Mapping) or not metrics:
        raise ContractError("the train result's metrics must be an object of name -> number")
    for name, value in metrics.items():
        if (
            isinstance(value, bool)
            or not isinstance(value, int | float)
            or not math.isfinite(value)
        ):
            raise ContractError(f"the train result's metric {name!r} is {value!r}, not a number")


def write_result(result: Mapping[str, Any], directory: Path | None = None) -> Path:
    """Write `result` to `<directory or $XCOM_DIR>/return.json` in one rename."""
    payload = json.dumps(result, sort_keys=True, allow_nan=False).encode()
    if len(payload) > MAX_RESULT_BYTES:
        raise ValueError(
            f"stage result is {len(payload)} bytes, over the {MAX_RESULT_BYTES}-byte XCom limit; "
            "results carry URIs and metrics, not data"
        )
    folder = directory or xcom_dir()
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / RETURN_FILE
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".return-", suffix=".json")
    # mkstemp makes the file 0600; the pod operator's XCom sidecar, which reads it, runs as
    # another user (a pinned sidecar image with its own UID).
    os.fchmod(fd, 0o644)
    with os.fdopen(fd, "wb") as handle:
        handle.write(payload)
    os.replace(tmp, target)
    return target

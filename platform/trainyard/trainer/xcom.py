"""The KubernetesPodOperator XCom contract: a stage's result in `$XCOM_DIR/return.json`.

Only small values go here (metrics, URIs, run ids), never data. The file is
written atomically and only after the stage succeeded, so a reader never sees a
partial or stale-but-plausible result.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

DEFAULT_XCOM_DIR = "/airflow/xcom"
RETURN_FILE = "return.json"
# Airflow keeps XComs in its metadata database (or offloads large ones); a stage
# result above this size means data leaked into the contract.
MAX_RESULT_BYTES = 64 * 1024


def xcom_dir() -> Path:
    return Path(os.environ.get("XCOM_DIR") or DEFAULT_XCOM_DIR)


def write_result(result: dict[str, Any], directory: Path | None = None) -> Path:
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

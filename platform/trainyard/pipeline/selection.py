"""Pick the best trial from the mapped training results, tolerating failed trials."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

log = logging.getLogger(__name__)

METRIC = "val_accuracy"  # selection uses validation; the test split is kept for the gate


class NoSuccessfulTrialError(RuntimeError):
    pass


def select_best(results: Iterable[dict[str, Any] | None]) -> dict[str, Any]:
    succeeded = [r for r in results if r]
    if not succeeded:
        raise NoSuccessfulTrialError("no training trial succeeded: nothing to evaluate or deploy")
    ranked = sorted(succeeded, key=lambda r: r[METRIC], reverse=True)
    best = ranked[0]
    for rank, result in enumerate(ranked, start=1):
        log.info(
            "#%d %s=%.4f run=%s params=%s",
            rank,
            METRIC,
            result[METRIC],
            result["run_id"],
            result["params"],
        )
    return {
        "run_id": best["run_id"],
        "model_uri": best["model_uri"],
        "val_accuracy": best["val_accuracy"],
        "test_accuracy": best["test_accuracy"],
        "params": best["params"],
        "trials_succeeded": len(succeeded),
    }

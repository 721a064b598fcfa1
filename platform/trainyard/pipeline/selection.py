"""Pick the best trial from the mapped training results, tolerating failed trials.

Trials rank by one metric of their result (`metrics[<name>]`, the trainer contract), in the
pipeline's direction. A failed trial (no result) is skipped; a trial that succeeded without
reporting the metric broke the contract, and the run fails naming it.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable
from typing import Any

log = logging.getLogger(__name__)

# The digits pipeline's default: selection uses validation; the test split is kept for the gate.
METRIC = "val_accuracy"
# Carried into the output when a trial reported them (the run summary reads them).
KEPT_KEYS = ("val_accuracy", "test_accuracy")


class NoSuccessfulTrialError(RuntimeError):
    pass


class TrialContractError(ValueError):
    """A trial succeeded but its result lacks what selection needs."""


def metric_value(result: dict[str, Any], metric: str) -> float:
    """The trial's `metrics[metric]`, or a top-level key of that name (older trainers)."""
    metrics = result.get("metrics") or {}
    value = metrics.get(metric, result.get(metric))
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        reported = sorted(metrics) or sorted(k for k, v in result.items() if _is_number(v))
        raise TrialContractError(
            f"trial run {result.get('run_id')!r} reported no number for metric {metric!r} "
            f"(got {value!r}; it reported {', '.join(reported) or 'no metrics'})"
        )
    return float(value)


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def select_best(
    results: Iterable[dict[str, Any] | None], metric: str = METRIC, direction: str = "max"
) -> dict[str, Any]:
    if direction not in ("max", "min"):
        raise ValueError(f"direction {direction!r} is not max or min")
    succeeded = [r for r in results if r]
    if not succeeded:
        raise NoSuccessfulTrialError("no training trial succeeded: nothing to evaluate or deploy")
    scored = [(metric_value(r, metric), r) for r in succeeded]
    scored.sort(key=lambda pair: pair[0], reverse=direction == "max")
    for rank, (value, result) in enumerate(scored, start=1):
        log.info(
            "#%d %s=%.4f run=%s params=%s",
            rank,
            metric,
            value,
            result.get("run_id"),
            result.get("params"),
        )
    value, best = scored[0]
    metrics = best.get("metrics") or {k: best[k] for k in KEPT_KEYS if k in best}
    chosen = {
        "run_id": best["run_id"],
        "model_uri": best["model_uri"],
        "metric": metric,
        "value": value,
        "metrics": metrics,
        "params": best.get("params", {}),
        "trials_succeeded": len(succeeded),
    }
    for key in KEPT_KEYS:
        if key in best or key in metrics:
            chosen[key] = best.get(key, metrics.get(key))
    return chosen

"""The champion gate: compare the candidate's metric with the champion's, as logged in MLflow.

It knows no model: both values are the metric the pipeline names, read from the MLflow runs
that logged the two models (the candidate's run, and the run of the version `champion` points
at). The gate fails closed. If the champion exists but cannot be read, or its run lacks the
metric, the result says so and recommends no deployment. Only a registry that positively
reports "no champion yet" lets a candidate that meets the threshold deploy without a
comparison. A candidate whose metric cannot be read is an error (non-zero exit).
"""

from __future__ import annotations

import logging
import math
from typing import Any, Literal

from mlflow import MlflowClient

from trainyard.errors import UserError
from trainyard.stages.registry import read_aliases

log = logging.getLogger(__name__)

Direction = Literal["max", "min"]
DIRECTIONS: tuple[Direction, ...] = ("max", "min")


def run_metric(client: MlflowClient, run_id: str, metric: str) -> float:
    """The latest value of `metric` on run `run_id`; KeyError when the run did not log it."""
    metrics = client.get_run(run_id).data.metrics
    if metric not in metrics:
        raise KeyError(f"run {run_id} has no metric {metric!r} (it logged {sorted(metrics)})")
    return float(metrics[metric])


def read_candidate(client: MlflowClient, run_id: str, metric: str) -> float:
    try:
        value = run_metric(client, run_id, metric)
    except KeyError as exc:
        raise UserError(f"candidate {exc.args[0]}") from None
    except Exception as exc:
        raise UserError(f"candidate run {run_id} could not be read: {exc}") from exc
    if not math.isfinite(value):
        raise UserError(f"candidate run {run_id} logged {metric}={value}: not a comparable value")
    return value


def read_champion(client: MlflowClient, model_name: str, metric: str) -> dict[str, Any]:
    """status: absent (none registered yet) | ok (read) | unreadable (fail closed)."""
    version = None
    try:
        aliases = read_aliases(client, model_name)
        if aliases.champion is None:
            return {"status": "absent", "version": None, "value": None, "error": None}
        # Pin the version read above: the alias may move while we read its run.
        version = aliases.champion
        run_id = client.get_model_version(model_name, version).run_id
        if not run_id:
            raise ValueError(f"{model_name} v{version} was not registered from a run")
        value = run_metric(client, run_id, metric)
        if not math.isfinite(value):
            raise ValueError(f"run {run_id} logged {metric}={value}")
    except Exception as exc:  # any failure to read the champion closes the gate
        log.warning("champion of %r could not be read: %s", model_name, exc)
        error = exc.args[0] if isinstance(exc, KeyError) else exc
        return {
            "status": "unreadable",
            "version": version,
            "value": None,
            "error": f"{type(exc).__name__}: {error}"[:500],
        }
    return {"status": "ok", "version": version, "value": value, "error": None}


def improvement_over(candidate: float, champion: float, direction: Direction) -> float:
    """How much better the candidate is: positive is better in either direction."""
    return candidate - champion if direction == "max" else champion - candidate


def decide(
    candidate: float,
    champion: dict[str, Any],
    *,
    direction: Direction,
    threshold: float,
    min_improvement: float,
    label: str,
) -> tuple[bool, str]:
    bound = "minimum" if direction == "max" else "maximum"
    misses = candidate < threshold if direction == "max" else candidate > threshold
    if misses:
        side = "below" if direction == "max" else "above"
        return False, f"candidate {label} {candidate:.4f} is {side} the {bound} {threshold}"
    if champion["status"] == "unreadable":
        return False, f"champion could not be read, failing closed ({champion['error']})"
    if champion["status"] == "absent":
        return True, f"no champion registered yet; candidate meets the {bound} {label}"
    versus = f"{candidate:.4f} vs champion v{champion['version']} {champion['value']:.4f}"
    improvement = improvement_over(candidate, champion["value"], direction)
    if improvement < min_improvement:
        return False, (
            f"candidate {label} {versus}: improvement {improvement:+.4f} < {min_improvement}"
        )
    return True, (
        f"candidate {label} {candidate:.4f} beats champion v{champion['version']} "
        f"{champion['value']:.4f} by {improvement:+.4f}"
    )


def evaluate(
    model_uri: str,
    run_id: str,
    model_name: str,
    metric: str,
    label: str,
    direction: Direction,
    threshold: float,
    min_improvement: float,
) -> dict[str, Any]:
    if direction not in DIRECTIONS:
        raise UserError(f"direction {direction!r} is not one of {', '.join(DIRECTIONS)}")
    client = MlflowClient()
    candidate = read_candidate(client, run_id, metric)
    champion = read_champion(client, model_name, metric)
    deploy, reason = decide(
        candidate,
        champion,
        direction=direction,
        threshold=threshold,
        min_improvement=min_improvement,
        label=label,
    )
    log.info("gate: deploy=%s (%s)", deploy, reason)
    improvement = (
        improvement_over(candidate, champion["value"], direction)
        if champion["value"] is not None
        else None
    )
    return {
        "deploy": deploy,
        "reason": reason,
        "model_name": model_name,
        "model_uri": model_uri,
        "run_id": run_id,
        "metric": metric,
        "label": label,
        "direction": direction,
        "candidate_value": candidate,
        "champion_status": champion["status"],
        "champion_version": champion["version"],
        "champion_value": champion["value"],
        "champion_error": champion["error"],
        "improvement": improvement,
        "threshold": threshold,
        "min_improvement": min_improvement,
    }

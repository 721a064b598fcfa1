"""Quality gate: score the candidate on the held-out set and compare with the champion.

The gate fails closed. If the champion exists but cannot be read or scored
(server down, artifact missing, permission denied) the result says so and
recommends no deployment. Only a registry that positively reports "no champion
yet" lets a candidate that meets the minimum accuracy deploy without a
comparison. A candidate that cannot be scored at all is an error (non-zero exit).
"""

from __future__ import annotations

import logging
from typing import Any

import mlflow
import numpy as np
import torch
from mlflow import MlflowClient

from trainyard.errors import UserError
from trainyard.trainer.config import DEFAULT_MIN_ACCURACY, DEFAULT_MIN_IMPROVEMENT
from trainyard.trainer.features import load_manifest, load_raw_holdout
from trainyard.trainer.registry import read_aliases, version_uri

log = logging.getLogger(__name__)


def score(model_uri: str, x: torch.Tensor, y: torch.Tensor) -> float:
    """Accuracy of the MLflow model at `model_uri` on raw pixels `x`."""
    model = mlflow.pyfunc.load_model(model_uri)
    logits = np.asarray(model.predict(x.numpy()))
    if logits.ndim != 2 or logits.shape[0] != len(y):
        raise ValueError(f"model returned shape {logits.shape}, expected (rows, classes)")
    return float((logits.argmax(axis=1) == y.numpy()).mean())


def read_champion(model_name: str, x: torch.Tensor, y: torch.Tensor) -> dict[str, Any]:
    """status: absent (none registered yet) | ok (scored) | unreadable (fail closed)."""
    try:
        aliases = read_aliases(MlflowClient(), model_name)
        if aliases.champion is None:
            return {"status": "absent", "version": None, "accuracy": None, "error": None}
        # Pin the version read above: the alias may move while we score.
        accuracy = score(version_uri(model_name, aliases.champion), x, y)
    except Exception as exc:  # any failure to read the champion closes the gate
        log.warning("champion of %r could not be read: %s", model_name, exc)
        return {
            "status": "unreadable",
            "version": None,
            "accuracy": None,
            "error": f"{type(exc).__name__}: {exc}"[:500],
        }
    return {"status": "ok", "version": aliases.champion, "accuracy": accuracy, "error": None}


def decide(
    candidate_accuracy: float,
    champion: dict[str, Any],
    min_accuracy: float,
    min_improvement: float,
) -> tuple[bool, str]:
    if candidate_accuracy < min_accuracy:
        return (
            False,
            f"candidate accuracy {candidate_accuracy:.4f} is below the minimum {min_accuracy}",
        )
    if champion["status"] == "unreadable":
        return False, f"champion could not be read, failing closed ({champion['error']})"
    if champion["status"] == "absent":
        return True, "no champion registered yet; candidate meets the minimum accuracy"
    improvement = candidate_accuracy - champion["accuracy"]
    if improvement < min_improvement:
        return False, (
            f"candidate {candidate_accuracy:.4f} vs champion v{champion['version']} "
            f"{champion['accuracy']:.4f}: improvement {improvement:+.4f} < {min_improvement}"
        )
    return True, (
        f"candidate {candidate_accuracy:.4f} beats champion v{champion['version']} "
        f"{champion['accuracy']:.4f} by {improvement:+.4f}"
    )


def evaluate(
    model_uri: str,
    manifest_url: str,
    model_name: str,
    min_accuracy: float = DEFAULT_MIN_ACCURACY,
    min_improvement: float = DEFAULT_MIN_IMPROVEMENT,
    run_id: str | None = None,
) -> dict[str, Any]:
    x, y = load_raw_holdout(load_manifest(manifest_url))
    try:
        candidate_accuracy = score(model_uri, x, y)
    except Exception as exc:
        raise UserError(f"candidate model {model_uri} could not be scored: {exc}") from exc
    champion = read_champion(model_name, x, y)
    deploy, reason = decide(candidate_accuracy, champion, min_accuracy, min_improvement)
    log.info("gate: deploy=%s (%s)", deploy, reason)
    improvement = (
        candidate_accuracy - champion["accuracy"] if champion["accuracy"] is not None else None
    )
    return {
        "deploy": deploy,
        "reason": reason,
        "model_name": model_name,
        "model_uri": model_uri,
        "run_id": run_id,
        "candidate_accuracy": candidate_accuracy,
        "champion_status": champion["status"],
        "champion_version": champion["version"],
        "champion_accuracy": champion["accuracy"],
        "champion_error": champion["error"],
        "improvement": improvement,
        "min_accuracy": min_accuracy,
        "min_improvement": min_improvement,
        "holdout_rows": len(y),
    }

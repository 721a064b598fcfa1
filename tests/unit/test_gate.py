"""The champion gate's decision table in both directions (reading the metrics from MLflow runs
is tested against a real server in integration)."""

from __future__ import annotations

import pytest

from trainyard.stages.evaluate import decide

pytestmark = pytest.mark.unit

ABSENT = {"status": "absent", "version": None, "value": None, "error": None}
UNREADABLE = {
    "status": "unreadable",
    "version": None,
    "value": None,
    "error": "ConnectionError: refused",
}


def champion(value: float) -> dict[str, object]:
    return {"status": "ok", "version": "3", "value": value, "error": None}


@pytest.mark.parametrize(
    ("candidate", "current", "deploy", "reason"),
    [
        (0.95, ABSENT, True, "no champion registered yet; candidate meets the minimum accuracy"),
        (0.85, ABSENT, False, "candidate accuracy 0.8500 is below the minimum 0.9"),
        (0.99, UNREADABLE, False, "champion could not be read, failing closed (ConnectionError"),
        (0.95, champion(0.94), True, "beats champion v3 0.9400 by +0.0100"),
        (0.944, champion(0.94), False, "improvement +0.0040 < 0.005"),
        (0.94, champion(0.94), False, "improvement +0.0000 < 0.005"),
        (0.93, champion(0.94), False, "improvement -0.0100"),
        (0.89, champion(0.50), False, "below the minimum"),
    ],
)
def test_higher_is_better(candidate, current, deploy, reason):
    decision, why = decide(
        candidate,
        current,
        direction="max",
        threshold=0.90,
        min_improvement=0.005,
        label="accuracy",
    )
    assert decision is deploy
    assert reason in why


@pytest.mark.parametrize(
    ("candidate", "current", "deploy", "reason"),
    [
        (55.0, ABSENT, True, "no champion registered yet; candidate meets the maximum rmse"),
        (70.5, ABSENT, False, "candidate rmse 70.5000 is above the maximum 60.0"),
        (50.0, UNREADABLE, False, "champion could not be read, failing closed"),
        (50.0, champion(55.0), True, "beats champion v3 55.0000 by +5.0000"),
        (54.5, champion(55.0), False, "improvement +0.5000 < 1.0"),
        (56.0, champion(55.0), False, "improvement -1.0000 < 1.0"),
        (61.0, champion(80.0), False, "above the maximum"),
    ],
)
def test_lower_is_better(candidate, current, deploy, reason):
    decision, why = decide(
        candidate, current, direction="min", threshold=60.0, min_improvement=1.0, label="rmse"
    )
    assert decision is deploy
    assert reason in why


def test_the_threshold_itself_passes_in_both_directions():
    assert decide(0.9, ABSENT, direction="max", threshold=0.9, min_improvement=0, label="a")[0]
    assert decide(60, ABSENT, direction="min", threshold=60, min_improvement=0, label="r")[0]

"""The quality gate's decision table (the scoring itself runs against MLflow in integration)."""

from __future__ import annotations

import pytest

from trainyard.trainer.evaluate import decide

pytestmark = pytest.mark.unit

ABSENT = {"status": "absent", "version": None, "accuracy": None, "error": None}
UNREADABLE = {
    "status": "unreadable",
    "version": None,
    "accuracy": None,
    "error": "ConnectionError: refused",
}


def champion(accuracy: float) -> dict[str, object]:
    return {"status": "ok", "version": "3", "accuracy": accuracy, "error": None}


@pytest.mark.parametrize(
    ("candidate", "current", "deploy", "reason"),
    [
        (0.95, ABSENT, True, "no champion registered yet"),
        (0.85, ABSENT, False, "below the minimum 0.9"),
        (0.99, UNREADABLE, False, "champion could not be read, failing closed"),
        (0.95, champion(0.94), True, "beats champion v3"),
        (0.944, champion(0.94), False, "improvement +0.0040 < 0.005"),
        (0.93, champion(0.94), False, "improvement -0.0100"),
        (0.89, champion(0.50), False, "below the minimum"),
    ],
)
def test_gate(candidate, current, deploy, reason):
    decision, why = decide(candidate, current, min_accuracy=0.90, min_improvement=0.005)
    assert decision is deploy
    assert reason in why

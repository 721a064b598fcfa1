"""The test-time table and the kind tests' budget check (tests/budget.py)."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

from tests import budget

pytestmark = pytest.mark.unit


def report(nodeid: str, seconds: float) -> Any:
    return SimpleNamespace(nodeid=nodeid, duration=seconds)


def times(*reports: Any) -> budget.TestTimes:
    recorded = budget.TestTimes()
    for item in reports:
        recorded.pytest_runtest_logreport(item)
    return recorded


def config_with(recorded: budget.TestTimes) -> Any:
    plugins = {budget.PLUGIN_NAME: recorded}
    return SimpleNamespace(pluginmanager=SimpleNamespace(get_plugin=plugins.get))


def test_times_add_up_by_file_and_by_kind_class() -> None:
    recorded = times(
        report("tests/unit/test_a.py::test_one", 1.0),
        report("tests/unit/test_a.py::test_two", 2.0),
        report("tests/e2e/test_kind.py::TestCpuFallback::test_journey", 600.0),
        report("tests/e2e/test_kind.py::TestCpuFallback::test_helm_test", 30.0),
        report("tests/e2e/test_kind.py::TestUpgrade::test_upgrade", 700.0),
    )
    assert recorded.seconds == {
        "tests/unit/test_a.py": 3.0,
        "tests/e2e/test_kind.py::TestCpuFallback": 630.0,
        "tests/e2e/test_kind.py::TestUpgrade": 700.0,
    }
    lines = recorded.table()
    assert lines[0].startswith("tests/e2e/test_kind.py::TestUpgrade")
    assert "22.2 min" in lines[-3] and "kind tests" in lines[-3]
    assert "22.2 min" in lines[-2] and "all tests (sum)" in lines[-2]
    assert lines[-1].startswith("wall clock")  # workers overlap: the sum is not the run's time


def test_the_budget_check_names_each_class_once_over() -> None:
    within = times(report("tests/e2e/test_kind.py::TestCpuFallback::t", budget.KIND_BUDGET_S))
    assert budget.kind_budget_exceeded(config_with(within)) is None
    over = times(
        report("tests/e2e/test_kind.py::TestCpuFallback::t", budget.KIND_BUDGET_S - 60),
        report("tests/e2e/test_kind.py::TestUpgrade::t", 120),
        report("tests/chart/test_x.py::t", 10_000),  # other tiers do not count
    )
    message = budget.kind_budget_exceeded(config_with(over))
    assert message is not None
    minutes = budget.KIND_BUDGET_S // 60
    assert f"{minutes + 1}.0 min" in message and f"budget of {minutes} min" in message
    assert f"TestCpuFallback {minutes - 1}.0" in message and "TestUpgrade 2.0" in message

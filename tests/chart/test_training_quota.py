"""The training namespace's GPU quota against the trials Airflow may run at once.

A pod over a ResourceQuota is refused by the API server (403), not kept Pending, so the pod
operator's task fails; tests/cluster shows it on a real API server. The chart therefore refuses
a parallelism whose GPUs exceed the quota.
"""

from __future__ import annotations

from typing import Any

import pytest

from .conftest import find, render_chart, render_error

pytestmark = pytest.mark.chart


def quota_values(parallel: int, count: int, hard: dict[str, Any]) -> dict[str, Any]:
    return {
        "gpu": {"enabled": True, "count": count},
        "pipeline": {"maxParallelTrials": parallel},
        "training": {"resourceQuota": {"enabled": True, "hard": hard}},
    }


def test_parallel_trials_over_the_gpu_quota_are_refused(helm: str) -> None:
    error = render_error(quota_values(5, 8, {"requests.nvidia.com/gpu": "32"}), helm=helm)
    assert "pipeline.maxParallelTrials=5" in error and "gpu.count=8" in error
    assert "requests.nvidia.com/gpu]=32" in error and "Lower maxParallelTrials to 4" in error


@pytest.mark.parametrize(
    ("parallel", "count", "hard"),
    [
        (4, 8, {"requests.nvidia.com/gpu": "32"}),  # exactly the quota
        (64, 8, {"requests.cpu": "64"}),  # no GPU quota: nothing to check
    ],
)
def test_parallel_trials_within_the_gpu_quota_render(
    parallel: int, count: int, hard: dict[str, Any]
) -> None:
    objects = render_chart(quota_values(parallel, count, hard))
    (quota,) = find(objects, "ResourceQuota")
    assert quota["spec"]["hard"] == {
        k: str(v) if isinstance(v, str) else v for k, v in hard.items()
    }


def test_gpu_quota_is_not_checked_when_gpus_are_off() -> None:
    values = quota_values(64, 8, {"requests.nvidia.com/gpu": "8"})
    values["gpu"]["enabled"] = False
    assert find(render_chart(values), "ResourceQuota")

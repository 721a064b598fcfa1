"""GPU scheduling at scale, simulated: the DAG's trainer pods on 200 eight-GPU nodes in two pools.

The pods are built by the pod operator from the platform.json of a release installed on the
cluster (tests/cluster/trainer_pods.py), and scheduled by the real kube-scheduler. Scheduling
figures go to the terminal summary; they are reported, not asserted.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from kubernetes import client

from tests.chart.conftest import tool

from .conftest import REPORT
from .fleet import GPU_RESOURCE, GPU_TAINT, GPUS_PER_NODE, Fleet
from .helm import HelmError, HelmRelease
from .kwok import KwokCluster
from .sweep import SweepResult, delete_all, gpus_of, run_sweep, wait_for_quota
from .trainer_pods import PodBuilder

pytestmark = pytest.mark.cluster

POOL = "h100"
NAMESPACE = "ty-gpu"
TRAINING = "ty-gpu-training"
# count 1 sweeps: per-trial scheduling time, for the figure "512 within 1.2x of 8".
SECONDS_PER_TRIAL: dict[int, float] = {}


def values(fleet: Fleet, count: int = 1, parallel: int = 4, **training: Any) -> dict[str, Any]:
    gpu: dict[str, Any] = fleet.gpu_values(POOL, count) if count else {"enabled": False}
    return {
        "global": {"training": {"namespace": TRAINING}},
        "gpu": gpu,
        "pipeline": {"maxParallelTrials": parallel},
        "training": {"podSecurityEnforce": "restricted", **training},
    }


@pytest.fixture(scope="module")
def release(
    kwok_cluster: KwokCluster, api: client.ApiClient, fleet: Fleet
) -> Iterator[HelmRelease]:
    client.CoreV1Api(api).create_namespace({"metadata": {"name": NAMESPACE}})
    release = HelmRelease(kwok_cluster, tool("helm4"), NAMESPACE, NAMESPACE)
    release.deploy(values(fleet))
    yield release
    if 8 in SECONDS_PER_TRIAL and 512 in SECONDS_PER_TRIAL:
        ratio = SECONDS_PER_TRIAL[512] / SECONDS_PER_TRIAL[8]
        REPORT.append(f"time per trial, 512 vs 8 trials (1 GPU each): {ratio:.2f}x (goal <= 1.2x)")


def configure(api: client.ApiClient, release: HelmRelease, settings: dict[str, Any]) -> Any:
    """helm upgrade with `settings`; what the DAG then reads (platform.json, connection)."""
    release.deploy(settings, upgrade=True)
    delete_all(api, TRAINING)
    return release.dag_inputs(api)


def environment(pod: dict[str, Any], name: str) -> str | None:
    """The value of a variable in the trainer container's environment."""
    variables = pod["spec"]["containers"][0].get("env") or []
    return next((v.get("value") for v in variables if v["name"] == name), None)


def assert_on_pool(fleet: Fleet, pods: list[dict[str, Any]], result: SweepResult) -> None:
    assert not result.rejected, list(result.rejected.values())[:3]
    assert len(result.placements) == result.trials, f"{len(result.placements)} bound"
    assert {fleet.pool_of(node) for node in result.placements.values()} == {POOL}
    assert result.overcommitted == []
    for pod in pods:
        tolerations = pod["spec"]["tolerations"]
        assert any(t["key"] == GPU_TAINT["key"] and t["effect"] == GPU_TAINT["effect"]
                   for t in tolerations), tolerations  # fmt: skip


@pytest.mark.parametrize("count", [1, 8])
@pytest.mark.parametrize("trials", [8, 64, 512])
def test_sweep_lands_on_its_pool_without_overcommitting(
    api: client.ApiClient,
    fleet: Fleet,
    release: HelmRelease,
    pod_builder: PodBuilder,
    trials: int,
    count: int,
) -> None:
    """Airflow lets every trial start (maxParallelTrials = trials); the pool's GPUs hold what
    fits and the rest wait Pending until trials finish (count 8: 100 trials at a time)."""
    inputs = configure(api, release, values(fleet, count, parallel=trials))
    pods = pod_builder.build(inputs, trials=trials)
    assert {gpus_of(p) for p in pods} == {count}
    # One data-parallel process per GPU (the contract's TRAINYARD_PROCESSES, from gpu.count).
    assert {environment(p, "TRAINYARD_PROCESSES") for p in pods} == {str(count)}
    capacity = len(fleet.pools[POOL]) * GPUS_PER_NODE // count
    finish = trials > capacity  # trials finish (their pods go) to make room for the rest
    result = run_sweep(api, pods, inputs.platform["max_parallel_trials"], finish=finish)
    assert_on_pool(fleet, pods, result)
    if finish:
        assert result.most_pending >= trials - capacity
        assert any(f"Insufficient {GPU_RESOURCE}" in m for m in result.unschedulable_messages)
    else:
        SECONDS_PER_TRIAL.setdefault(trials, result.seconds_per_trial) if count == 1 else None
    REPORT.append(
        f"sweep of {trials} x {count} GPU: all bound in {result.seconds_to_all_bound:.2f} s "
        f"({result.pods_per_second:.0f} pods/s, {1000 * result.seconds_per_trial:.1f} ms/trial"
        f"{', in waves as trials finish' if finish else ''})"
    )
    delete_all(api, TRAINING)


def test_cpu_stages_never_land_on_gpu_nodes(
    api: client.ApiClient, fleet: Fleet, release: HelmRelease, pod_builder: PodBuilder
) -> None:
    inputs = configure(api, release, values(fleet, 1))
    stages = ("validate", "preprocess", "features", "evaluate", "deploy")
    pods = pod_builder.build(inputs, cpu_stages=stages)
    assert [gpus_of(p) for p in pods] == [0] * len(stages)
    result = run_sweep(api, pods, len(pods), finish=False)
    assert not result.rejected and len(result.placements) == len(stages)
    assert set(result.placements.values()) <= set(fleet.cpu_nodes)
    delete_all(api, TRAINING)


def test_gpu_quota_is_never_exceeded_trials_wait_in_airflow(
    api: client.ApiClient, fleet: Fleet, release: HelmRelease, pod_builder: PodBuilder
) -> None:
    """A ResourceQuota of 32 GPUs, 8-GPU trials: the API server refuses a pod over the quota
    (the pod operator's task would fail), so Airflow runs at most 4 trials at once and holds
    the others, which start as trials finish; the chart refuses a parallelism over the quota."""
    quota = {"resourceQuota": {"enabled": True, "hard": {f"requests.{GPU_RESOURCE}": "32"}}}
    inputs = configure(api, release, values(fleet, 8, parallel=4, **quota))
    pods = pod_builder.build(inputs, trials=64)
    wait_for_quota(api, TRAINING, used=0)
    limit = inputs.platform["max_parallel_trials"]
    result = run_sweep(api, pods, limit, finish=True, quota_gpus=32)
    assert_on_pool(fleet, pods, result)
    assert result.finished == 64 and result.most_gpus_requested == 32
    assert result.most_gpus_bound <= 32
    print(f"quota controller lag: {result.quota_lag_retries} creations submitted again")
    # One trial more than the quota holds, at once: refused at creation, not Pending.
    wait_for_quota(api, TRAINING, used=0)
    over = run_sweep(api, pods[:5], limit=5, finish=False, timeout=20)
    (message,) = over.rejected.values()
    assert message.startswith("403") and "exceeded quota" in message, message
    delete_all(api, TRAINING)
    with pytest.raises(HelmError, match="maxParallelTrials"):
        release.deploy(values(fleet, 8, parallel=5, **quota), upgrade=True)


def test_gpu_disabled_nothing_requests_a_gpu(
    api: client.ApiClient, fleet: Fleet, release: HelmRelease, pod_builder: PodBuilder
) -> None:
    inputs = configure(api, release, values(fleet, count=0))
    pods = pod_builder.build(inputs, trials=8, cpu_stages=("validate",))
    assert [gpus_of(p) for p in pods] == [0] * 9
    assert not any(p["spec"].get("tolerations") for p in pods)
    result = run_sweep(api, pods, len(pods), finish=False)
    assert not result.rejected and set(result.placements.values()) <= set(fleet.cpu_nodes)
    delete_all(api, TRAINING)

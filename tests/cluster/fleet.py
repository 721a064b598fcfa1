"""The simulated fleet: two GPU pools of 8-GPU nodes behind the chart's taint, and CPU nodes."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from kubernetes import client

from .kwok import node

GPU_RESOURCE = "nvidia.com/gpu"
GPUS_PER_NODE = 8
# The chart's default GPU taint (gpu.nodePool.taint) and a pool label the chart selects on.
GPU_TAINT = {"key": "nvidia.com/gpu", "value": "present", "effect": "NoSchedule"}
GPU_NODE_LABELS = {"nvidia.com/gpu.present": "true"}
POOL_LABEL = "gpu-type"
# Taints the node lifecycle controller puts on a new node until it has seen it Ready: pods
# refused for them wait in the scheduler's unschedulable queue (up to 30 s, seen here).
LIFECYCLE_TAINTS = {"node.kubernetes.io/not-ready", "node.kubernetes.io/unreachable"}


@dataclass(frozen=True)
class Fleet:
    pools: dict[str, list[str]]  # gpu-type -> node names
    cpu_nodes: list[str]

    @property
    def gpu_nodes(self) -> set[str]:
        return {name for names in self.pools.values() for name in names}

    def pool_of(self, node_name: str) -> str | None:
        return next((p for p, names in self.pools.items() if node_name in names), None)

    def gpu_values(self, pool: str, count: int) -> dict[str, object]:
        """Chart values that send trainer pods to `pool` with `count` GPUs each."""
        return {
            "enabled": True,
            "count": count,
            "resourceName": GPU_RESOURCE,
            "nodePool": {"labels": GPU_NODE_LABELS, "taint": GPU_TAINT},
            "affinity": {
                "nodeAffinity": {
                    "requiredDuringSchedulingIgnoredDuringExecution": {
                        "nodeSelectorTerms": [
                            {
                                "matchExpressions": [
                                    {"key": POOL_LABEL, "operator": "In", "values": [pool]}
                                ]
                            }
                        ]
                    }
                }
            },
        }


def create_fleet(api: client.ApiClient, pools: dict[str, int], cpu_nodes: int) -> Fleet:
    """`pools`: gpu-type -> number of 8-GPU nodes; plus `cpu_nodes` untainted CPU nodes."""
    gpu_capacity = {"cpu": "96", "memory": "1Ti", "pods": "110", GPU_RESOURCE: str(GPUS_PER_NODE)}
    cpu_capacity = {"cpu": "32", "memory": "256Gi", "pods": "110"}
    bodies = []
    names: dict[str, list[str]] = {}
    for pool, count in pools.items():
        names[pool] = [f"gpu-{pool}-{i:03d}" for i in range(count)]
        labels = {**GPU_NODE_LABELS, POOL_LABEL: pool}
        bodies += [node(n, labels, gpu_capacity, [GPU_TAINT]) for n in names[pool]]
    cpus = [f"cpu-{i:03d}" for i in range(cpu_nodes)]
    bodies += [node(n, {}, cpu_capacity) for n in cpus]
    core = client.CoreV1Api(api)
    with ThreadPoolExecutor(8) as pool_executor:
        list(pool_executor.map(core.create_node, bodies))
    wait_until_schedulable(core, {body["metadata"]["name"] for body in bodies})
    return Fleet(names, cpus)


def wait_until_schedulable(core: client.CoreV1Api, names: set[str], timeout: float = 90) -> None:
    """Until every node is Ready and free of the lifecycle controller's taints."""
    deadline = time.monotonic() + timeout
    while True:
        waiting = set(names)
        for item in core.list_node().items:
            ready = any(
                c.type == "Ready" and c.status == "True" for c in item.status.conditions or []
            )
            lifecycle = {t.key for t in item.spec.taints or []} & LIFECYCLE_TAINTS
            if ready and not lifecycle:
                waiting.discard(item.metadata.name)
        if not waiting:
            return
        if time.monotonic() > deadline:
            raise RuntimeError(
                f"{len(waiting)} of {len(names)} nodes not schedulable in {timeout} s"
            )
        time.sleep(0.5)

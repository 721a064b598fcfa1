"""The KWOK tier: one real control plane per test session, with the simulated GPU fleet.

Skips, naming the command, when the offline toolchain cache is cold: `scripts/kind-offline
toolchain` builds it (CI builds it before `make test`).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator

import pytest
from kubernetes import client

from tests.conftest import unavailable

from .fleet import Fleet, create_fleet
from .kwok import KwokCluster, static_storage, toolchain_dir
from .trainer_pods import PodBuilder

# Lines for the terminal summary: control plane start, Helm and scheduling figures.
REPORT: list[str] = []


@contextlib.contextmanager
def timed(what: str) -> Iterator[None]:
    started = time.monotonic()
    yield
    REPORT.append(f"{what}: {time.monotonic() - started:.1f} s")


# 2 x 100 nodes of 8 GPUs (the 200-node fleet) and the CPU nodes the platform runs on.
GPU_POOLS = {"a100": 100, "h100": 100}
CPU_NODES = 8


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if REPORT:
        terminalreporter.write_sep("-", "trainyard KWOK cluster figures")
        for line in REPORT:
            terminalreporter.write_line(line)


# Package scope: the control plane and its 200 nodes' heartbeats (measured: 2.6 CPU-s a minute
# when idle) stop when tests/cluster is done, not at the end of `make test`, 40 CPU-bound
# minutes later on CI's 2 cores.
@pytest.fixture(scope="package")
def kwok_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KwokCluster]:
    bin_dir, why = toolchain_dir()
    if bin_dir is None:
        unavailable(why)
    cluster = KwokCluster(bin_dir, tmp_path_factory.mktemp("kwok"))
    try:
        cluster.create()
        REPORT.append(f"control plane (etcd, apiserver, controller-manager, scheduler, kwok) "
                      f"ready in {cluster.created_seconds:.1f} s")  # fmt: skip
        yield cluster
    finally:
        with contextlib.suppress(Exception):
            cluster.delete()


@pytest.fixture(scope="package")
def api(kwok_cluster: KwokCluster) -> client.ApiClient:
    return kwok_cluster.api()


@pytest.fixture(scope="package")
def fleet(api: client.ApiClient) -> Fleet:
    started = time.monotonic()
    fleet = create_fleet(api, GPU_POOLS, CPU_NODES)  # returns once they are schedulable
    static_storage(api, volumes=16)
    expected = len(fleet.gpu_nodes) + len(fleet.cpu_nodes)
    REPORT.append(
        f"{expected} simulated nodes Ready and untainted in {time.monotonic() - started:.1f} s"
    )
    return fleet


@pytest.fixture(scope="package")
def pod_builder() -> Iterator[PodBuilder]:
    builder = PodBuilder()
    yield builder
    builder.close()

"""Fixtures of the kind tests: the cluster (tests/e2e/kind-config.yaml) with every image loaded,
and releases of the chart on it. Options: tests/e2e/options.py.

Order of the session fixture: first what is cheap to check and says why a kind run is impossible
here (kind, kubectl, helm, Docker, registry access: a skip with that reason), then the long
steps (image builds, cluster, image loads). pytest-kind's own `kind_cluster` fixture cannot take
a kind config (node labels and taints), so its KindCluster class is used directly.
"""

from __future__ import annotations

import contextlib
import subprocess
import time
from collections.abc import Generator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import unavailable

from . import images, kindconfig, offline, prereqs
from .figures import FIGURES, timed
from .kindenv import FAKE_GPUS, GPU_NODE_LABEL, KIND_VALUES, TEAMS_VALUES, KindEnv
from .kube import Kube, KubectlError
from .release import InstalledRelease


def _build_images(refs: list[str], no_build: bool, args: list[str]) -> None:
    if no_build:
        for ref in refs:
            inspect = subprocess.run(
                ["docker", "image", "inspect", ref], capture_output=True, check=False
            )
            if inspect.returncode != 0:
                pytest.fail(f"--no-image-build: {ref} is not in Docker; build it first", False)
        return
    proc = subprocess.run(
        [str(images.BUILD_IMAGES), *images.BUILD_IMAGES_ARGS, *args],
        capture_output=True,
        text=True,
        cwd=images.REPO,
        timeout=5400,
        check=False,
    )
    if proc.returncode != 0:
        output = proc.stdout + proc.stderr
        pull = prereqs.build_failure_is_registry_access(output)
        if pull:
            raise prereqs.UnavailableError(
                f"no registry access for base images: scripts/build-images failed: {pull}"
            )
        pytest.fail(f"scripts/build-images failed:\n{output[-6000:]}", False)


@dataclass(frozen=True)
class _Sources:
    """Where this run's kind, kubectl, node image and the chart's public images come from."""

    kind: Path
    kubectl: Path
    kind_config: Path
    public_images: list[str]  # loaded into the nodes besides the trainyard images
    gpu_pool_images: list[str]  # those of public_images the GPU pool's trainer pods run
    build_args: list[str]  # for scripts/build-images
    values: dict[str, Any]  # added to every release (offline: the locally built images)


def _registry_sources(option: Any, extra: list[str]) -> _Sources:
    kind = prereqs.find_kind(option("kind_bin"))
    kubectl = prereqs.find_kubectl(option("kind_kubectl_bin"))
    # The node image first: without it there is no cluster at all.
    public = sorted(images.PUBLIC_IMAGES | images.PREVIOUS_RELEASE_IMAGES)
    for ref in [*sorted({n.image for n in kindconfig.load()}), *public]:
        prereqs.ensure_image(ref)
    return _Sources(kind, kubectl, kindconfig.KIND_CONFIG, public, [], extra, {})


def _offline_sources(option: Any, extra: list[str], state: Path) -> _Sources:
    """scripts/kind-offline's toolchain and images (built by `make e2e-kind`)."""
    toolchain = offline.load()
    kind = prereqs.find_kind(option("kind_bin") or str(toolchain.kind))
    kubectl = prereqs.find_kubectl(option("kind_kubectl_bin") or str(toolchain.kubectl))
    for ref in [toolchain.node_image, *toolchain.images]:
        prereqs.ensure_image(ref)
    base = prereqs.python_base_image()
    build_args = [f"--base-image=python={base}", f"--base-image=airflow={base}", *extra]
    config = toolchain.kind_config(kindconfig.KIND_CONFIG, state / "kind-config.yaml")
    return _Sources(
        kind, kubectl, config, toolchain.images, [toolchain.xcom_sidecar_image], build_args,
        toolchain.values(),
    )  # fmt: skip


def _sources(option: Any, state: Path) -> _Sources:
    """The registry path where it works; else the offline toolchain when its cache is warm."""
    extra = [str(a) for a in option("build_images_arg")]
    mode = str(option("kind_offline"))
    if mode == "never":
        return _registry_sources(option, extra)
    if mode == "always":
        warm = offline.status()
        if warm != "warm":
            raise prereqs.UnavailableError(
                f"--kind-offline=always but the offline toolchain is {warm} "
                "(build it: scripts/kind-offline)"
            )
        return _offline_sources(option, extra, state)
    try:
        return _registry_sources(option, extra)
    except prereqs.UnavailableError as online:
        warm = offline.status()
        if warm != "warm":
            raise prereqs.UnavailableError(
                f"{online}; and the offline toolchain is {warm} (`make e2e-kind` builds it)"
            ) from None
        return _offline_sources(option, extra, state)


@pytest.fixture(scope="session")
def kind_env(request: pytest.FixtureRequest) -> Iterator[KindEnv]:
    option = request.config.getoption
    name = str(option("kind_cluster_name"))
    state = images.REPO / ".trainyard" / "e2e" / name
    state.mkdir(parents=True, exist_ok=True)
    try:
        prereqs.check_docker()
        helm = prereqs.find_helm(option("helm_bin"))
        sources = _sources(option, state)
        built = images.built_images([*images.BUILD_IMAGES_ARGS, *sources.build_args])
        with timed("cluster set-up: trainyard images built (Docker cache)"):
            _build_images(built, bool(option("no_image_build")), sources.build_args)
    except prereqs.UnavailableError as exc:
        unavailable(str(exc))
    kind, kubectl = sources.kind, sources.kubectl

    from pytest_kind import KindCluster  # noqa: PLC0415 (only where a cluster can exist)

    cluster = KindCluster(
        name, kubeconfig=state / "kubeconfig", kind_path=kind, kubectl_path=kubectl
    )
    env = KindEnv(
        name=name,
        kind=kind,
        kube=Kube(kubectl, cluster.kubeconfig_path),
        helm=helm,
        images=frozenset(images.normalize(r) for r in [*built, *sources.public_images]),
        artifacts=Path(str(option("e2e_artifacts"))),
        keep=bool(option("keep_cluster")),
        built=tuple(built),
        values=sources.values,
        gpu_pool_images=tuple(sources.gpu_pool_images),
    )
    # With --keep-cluster an existing cluster of this name is reused (delete it after changing
    # kind-config.yaml: `kind delete cluster --name trainyard-e2e`); without, a fresh one is
    # made (a cluster left from an earlier session may have lost its state with its engine).
    if not env.keep:
        subprocess.run(
            [str(kind), "delete", "cluster", "--name", name],
            capture_output=True, check=False, timeout=300,
        )  # fmt: skip
    with timed("cluster set-up: kind create cluster"):
        cluster.create(config_file=sources.kind_config)
    try:
        # Always the current credentials, also for a reused cluster.
        subprocess.run(
            [
                str(kind),
                "export",
                "kubeconfig",
                "--name",
                name,
                "--kubeconfig",
                str(cluster.kubeconfig_path),
            ],
            check=True,
            capture_output=True,
            timeout=60,
        )
        env.kube.run("wait", "--for=condition=Ready", "nodes", "--all", "--timeout=300s")
        # kind-config.yaml already leaves the control plane untainted; this makes sure of it on
        # kind versions that re-add the taint (the platform's pods tolerate nothing).
        with contextlib.suppress(KubectlError):
            env.kube.run(
                "taint",
                "nodes",
                "--selector",
                "node-role.kubernetes.io/control-plane",
                "node-role.kubernetes.io/control-plane:NoSchedule-",
            )
        with timed("cluster set-up: images loaded into the nodes"):
            env.load_images([*built, *sources.public_images])
    except Exception:
        where = env.dump("cluster-setup")
        if not env.keep:
            cluster.delete()
        pytest.fail(f"setting up the kind cluster failed; its state is in {where}", False)
    try:
        yield env
    finally:
        if not env.keep:
            cluster.delete()


@pytest.fixture(scope="class")
def cpu_release(kind_env: KindEnv) -> Iterator[InstalledRelease]:
    """CPU fallback: ci/kind-values.yaml (gpu.enabled=false), with the teams' pipelines of
    ci/kind-teams-values.yaml."""
    yield from kind_env.release("cpu", [KIND_VALUES, TEAMS_VALUES])


@pytest.fixture(scope="class")
def gpu_worker(kind_env: KindEnv) -> Iterator[str]:
    """The GPU pool node, its status patched with nvidia.com/gpu capacity (no device plugin,
    no GPU: containers requesting it start as usual and train on the CPU)."""
    worker = kind_env.node(GPU_NODE_LABEL)
    kind_env.kube.set_node_capacity(worker, "nvidia.com/gpu", FAKE_GPUS)
    # The kubelet derives allocatable from capacity at its next status sync (every 10 s).
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        node = kind_env.kube.get("node", worker)
        if node["status"].get("allocatable", {}).get("nvidia.com/gpu") == str(FAKE_GPUS):
            break
        time.sleep(2)
    else:
        pytest.fail(f"{worker} never showed nvidia.com/gpu={FAKE_GPUS} as allocatable", False)
    try:
        yield worker
    finally:
        with contextlib.suppress(KubectlError):
            kind_env.kube.set_node_capacity(worker, "nvidia.com/gpu", None)


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """A failed kind test leaves the state of its release(s) in --e2e-artifacts/<test>/."""
    report = yield
    if report.failed and report.when == "call" and item.get_closest_marker("e2e"):
        funcargs = getattr(item, "funcargs", {})
        env = funcargs.get("kind_env")
        releases: list[InstalledRelease | None] = [
            v for v in funcargs.values() if isinstance(v, InstalledRelease)
        ]
        if isinstance(env, KindEnv):
            for release in releases or [None]:
                suffix = f"-{release.namespace}" if release else ""
                where = env.dump(f"{item.name}{suffix}", release)
                report.sections.append(("kind artifacts", f"cluster state saved in {where}"))
    return report


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if FIGURES:
        terminalreporter.write_sep("-", "trainyard end-to-end figures")
        for line in FIGURES:
            terminalreporter.write_line(line)

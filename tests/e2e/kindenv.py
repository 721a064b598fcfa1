"""The kind cluster of a test session and the releases installed on it."""

from __future__ import annotations

import re
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from .artifacts import dump, kind_exporter
from .figures import timed
from .images import REPO, TRAINER_REPOSITORY, loaded_in_nodes, repository
from .kube import Kube
from .release import InstalledRelease

CHART = REPO / "charts" / "trainyard"
KIND_VALUES = CHART / "ci" / "kind-values.yaml"
FAKE_GPU_VALUES = CHART / "ci" / "kind-fake-gpu-values.yaml"
# Teams' pipelines from values: the CPU release only (the upgrade keeps the last release's values).
TEAMS_VALUES = CHART / "ci" / "kind-teams-values.yaml"
# The GPU pool node's label in kind-config.yaml.
GPU_NODE_LABEL = ("nvidia.com/gpu.present", "true")
# nvidia.com/gpu the worker advertises in fake-GPU mode: enough for every parallel trial.
FAKE_GPUS = 4


@dataclass
class KindEnv:
    name: str
    kind: Path
    kube: Kube
    helm: Path
    images: frozenset[str]  # loaded into the nodes, normalized (images.normalize)
    artifacts: Path
    keep: bool
    # The trainyard images built by scripts/build-images (refs as built).
    built: tuple[str, ...] = ()
    # Values added to every release (offline: the locally built images, see offline.py).
    values: dict[str, Any] = field(default_factory=dict)
    # Loaded into the GPU pool's nodes as well (with the trainer image): the XCom sidecar, where
    # the nodes cannot pull it (offline).
    gpu_pool_images: tuple[str, ...] = ()

    def dump(
        self,
        folder: str,
        release: InstalledRelease | None = None,
        namespaces: list[str] | None = None,
    ) -> Path:
        """The cluster's state (the release's namespaces and kube-system) into the artifacts."""
        namespaces = [*(namespaces or []), "kube-system"]
        helm = None
        if release is not None:
            namespaces = [release.namespace, release.training_namespace, *namespaces]

            def helm(args: list[str]) -> str:
                return release.helm_run(*args, release.release_name)

        return dump(
            self.kube,
            namespaces,
            self.artifacts / re.sub(r"[^A-Za-z0-9_.-]+", "_", folder),
            helm=helm,
            kind_export=kind_exporter(self.kind, self.name),
        )

    def release(
        self,
        label: str,
        values_files: list[Path],
        chart: Path = CHART,
        override_training: bool = True,
        chart_source: str = "",
    ) -> Iterator[InstalledRelease]:
        """A fresh release in namespace trainyard-<label>; uninstalled afterwards (unless
        --keep-cluster), with its namespaces, kept Secrets and volumes."""
        release = InstalledRelease(
            self.kube,
            self.helm,
            release_name="trainyard",
            namespace=f"trainyard-{label}",
            training_namespace=f"trainyard-{label}-training",
            override_training=override_training,
        )
        if chart_source:
            release.chart_source = chart_source
        release.uninstall()  # what a kept cluster may still hold from an earlier run
        release.extra_values = self.values
        try:
            with timed(f"helm install --wait, all pods ready ({label})"):
                release.deploy(chart, values_files)
        except Exception as exc:
            where = self.dump(f"{label}-install", release)
            pytest.fail(f"installing {chart} ({label}) failed: {exc}\ncluster state: {where}")
        try:
            yield release
        finally:
            if self.keep:
                release.close_forwards()
            else:
                release.uninstall(wait=False)

    def load_images(self, refs: list[str]) -> None:
        """`kind load docker-image`, one call per set of target nodes (shared layers are saved
        once): the trainer and sidecar images into every node, the rest into the nodes outside
        the GPU pool. Images a node holds already are skipped."""
        nodes = sorted(n["metadata"]["name"] for n in self.kube.nodes())  # kind's node names
        outside_pool = tuple(n for n in nodes if n != self.node(GPU_NODE_LABEL))
        everywhere = {TRAINER_REPOSITORY, *(repository(r) for r in self.gpu_pool_images)}
        groups: dict[tuple[str, ...], list[str]] = {}
        for ref in refs:
            targets = tuple(nodes) if repository(ref) in everywhere else outside_pool
            if not loaded_in_nodes(ref, targets):
                groups.setdefault(targets, []).append(ref)
        for targets, group in groups.items():
            subprocess.run(
                [str(self.kind), "load", "docker-image", "--name", self.name,
                 "--nodes", ",".join(targets), *group],
                check=True, capture_output=True, timeout=1800,
            )  # fmt: skip

    def node(self, label: tuple[str, str]) -> str:
        """The one node carrying the label."""
        key, value = label
        (node,) = [
            n["metadata"]["name"]
            for n in self.kube.nodes()
            if n["metadata"].get("labels", {}).get(key) == value
        ]
        return str(node)

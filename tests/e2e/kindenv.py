"""The kind cluster of a test session and the releases installed on it."""

from __future__ import annotations

import re
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from .artifacts import dump, kind_exporter
from .figures import timed
from .images import REPO, TRAINER_REPOSITORY, loaded_in_nodes, normalize, repository
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

    def _targets(self) -> Callable[[str], tuple[str, ...]]:
        """Which nodes an image goes to: the trainer and sidecar images into every node, the
        rest into the nodes outside the GPU pool."""
        nodes = tuple(sorted(n["metadata"]["name"] for n in self.kube.nodes()))  # kind's names
        outside_pool = tuple(n for n in nodes if n != self.node(GPU_NODE_LABEL))
        everywhere = {TRAINER_REPOSITORY, *(repository(r) for r in self.gpu_pool_images)}
        return lambda ref: nodes if repository(ref) in everywhere else outside_pool

    def load_images(self, refs: list[str]) -> None:
        """`kind load docker-image`, one call per set of target nodes (shared layers are saved
        once). Images a node holds already are skipped."""
        targets_of = self._targets()
        groups: dict[tuple[str, ...], list[str]] = {}
        for ref in refs:
            targets = targets_of(ref)
            if not loaded_in_nodes(ref, targets):
                groups.setdefault(targets, []).append(ref)
        for targets, group in groups.items():
            subprocess.run(
                [str(self.kind), "load", "docker-image", "--name", self.name,
                 "--nodes", ",".join(targets), *group],
                check=True, capture_output=True, timeout=1800,
            )  # fmt: skip

    def tag_images(self, tags: dict[str, str]) -> None:
        """Give loaded images (keys) another tag (values) in Docker and in the nodes' containerd
        (`ctr images tag`): seconds, where `kind load` sends the same layers again for minutes.
        Whatever a node still lacks under its new tag is then loaded."""
        targets_of = self._targets()
        for source, target in tags.items():
            subprocess.run(["docker", "tag", source, target], check=True, timeout=60)
            for node in targets_of(source):
                subprocess.run(
                    ["docker", "exec", node, "ctr", "--namespace", "k8s.io", "images", "tag",
                     "--force", normalize(source), normalize(target)],
                    check=True, capture_output=True, timeout=60,
                )  # fmt: skip
        self.load_images(list(tags.values()))
        self.images = self.images | {normalize(t) for t in tags.values()}

    def node(self, label: tuple[str, str]) -> str:
        """The one node carrying the label."""
        key, value = label
        (node,) = [
            n["metadata"]["name"]
            for n in self.kube.nodes()
            if n["metadata"].get("labels", {}).get(key) == value
        ]
        return str(node)

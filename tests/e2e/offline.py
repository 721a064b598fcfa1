"""The offline kind toolchain (scripts/kind-offline): kind, kubectl, the node image and the
images the chart runs, all built on this machine when no container registry is reachable.

When its cache is warm, the kind tests use it by themselves: the kind config's node images are
replaced by the locally built node image, and the chart gets values that point it at the locally
built Postgres, SeaweedFS and XCom sidecar images, the way an air-gapped cluster points the
chart at its mirror. `make e2e-kind` builds the cache first where kindest/node cannot be pulled.
"""

from __future__ import annotations

import shlex
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from .images import REPO

KIND_OFFLINE = REPO / "scripts" / "kind-offline"


@dataclass(frozen=True)
class OfflineToolchain:
    kind: Path
    kubectl: Path
    node_image: str
    postgres_image: str
    seaweedfs_image: str
    xcom_sidecar_image: str

    @property
    def images(self) -> list[str]:
        """The chart's images this toolchain replaces, to load into the nodes."""
        return [self.postgres_image, self.seaweedfs_image, self.xcom_sidecar_image]

    def kind_config(self, source: Path, dest: Path) -> Path:
        """`source` with every node on the offline node image."""
        config = yaml.safe_load(source.read_text())
        for node in config["nodes"]:
            node["image"] = self.node_image
        dest.write_text(yaml.safe_dump(config, sort_keys=False))
        return dest

    def values(self) -> dict[str, Any]:
        """Chart values that use the offline images (air-gapped cluster: a mirror's refs)."""
        return {
            "global": {"objectStore": {"provider": "seaweedfs"}},
            "postgresql": {"image": _image(self.postgres_image)},
            "objectstore": {"seaweedfs": {"image": _image(self.seaweedfs_image)}},
            "airflow": {
                "podOperator": {"xcomSidecarImage": _image(self.xcom_sidecar_image, policy=False)}
            },
        }


def _image(ref: str, policy: bool = True) -> dict[str, str]:
    repository, tag = ref.rsplit(":", 1)
    image = {"registry": "", "repository": repository, "tag": tag, "digest": ""}
    return {**image, "pullPolicy": "Never"} if policy else image


def status() -> str:
    """ "warm", or "cold: <what is missing>" (scripts/kind-offline status)."""
    proc = subprocess.run(
        [str(KIND_OFFLINE), "status"], capture_output=True, text=True, timeout=60, check=False
    )
    return proc.stdout.strip() or f"cold: kind-offline status failed: {proc.stderr.strip()}"


def toolchain_env() -> dict[str, str]:
    """`scripts/kind-offline env`: where the cache keeps each tool and image."""
    proc = subprocess.run(
        [str(KIND_OFFLINE), "env"], capture_output=True, text=True, timeout=60, check=True
    )
    env = {}
    for line in proc.stdout.splitlines():
        key, _, value = line.partition("=")
        env[key] = shlex.split(value)[0] if value else ""
    return env


def load() -> OfflineToolchain:
    """The toolchain of a warm cache (call status() first)."""
    env = toolchain_env()
    return OfflineToolchain(
        kind=Path(env["KIND_BIN"]),
        kubectl=Path(env["KUBECTL_BIN"]),
        node_image=env["KIND_NODE_IMAGE"],
        postgres_image=env["OFFLINE_POSTGRES_IMAGE"],
        seaweedfs_image=env["OFFLINE_SEAWEEDFS_IMAGE"],
        xcom_sidecar_image=env["OFFLINE_XCOM_SIDECAR_IMAGE"],
    )

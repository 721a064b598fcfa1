"""A real Kubernetes control plane with simulated nodes: KWOK (Kubernetes WithOut Kubelet).

`kwokctl --runtime binary` runs etcd, kube-apiserver (Pod Security and ResourceQuota admission,
RBAC), kube-controller-manager, kube-scheduler and the kwok controller as processes: no
containers, ready in seconds. All binaries come from the offline toolchain cache
(scripts/kind-offline toolchain), so nothing is downloaded. Nodes are API objects that the kwok
controller keeps Ready; pods bound to them turn Running, and pods owned by Jobs complete.
"""

from __future__ import annotations

import os
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kubernetes import client, config

from tests.e2e.kube import Kube
from tests.e2e.offline import toolchain_env

# What kwokctl runs; all built by `scripts/kind-offline toolchain`.
BINARIES = (
    "kwokctl",
    "kwok",
    "etcd",
    "kube-apiserver",
    "kube-controller-manager",
    "kube-scheduler",
    "kubectl",
)
# The annotation the kwok controller (as kwokctl configures it) manages nodes by.
KWOK_NODE_ANNOTATION = {"kwok.x-k8s.io/node": "fake"}
STORAGE_CLASS = "kwok-static"


def toolchain_dir() -> tuple[Path | None, str]:
    """(the binaries' folder, "") when the offline toolchain is built; (None, why) when not."""
    try:
        folder = Path(toolchain_env()["KUBE_BIN_DIR"])
    except subprocess.CalledProcessError as exc:
        return None, f"scripts/kind-offline env failed: {exc.stderr.strip()}"
    missing = [b for b in BINARIES if not os.access(folder / b, os.X_OK)]
    if missing:
        return None, (
            f"the offline toolchain cache is cold ({', '.join(missing)} missing in {folder}): "
            "run scripts/kind-offline toolchain (~10 min cold, seconds warm)"
        )
    return folder, ""


@dataclass
class KwokCluster:
    """One kwokctl cluster in `workdir`; `create()` it, `delete()` it."""

    bin_dir: Path
    workdir: Path
    name: str = field(default_factory=lambda: f"trainyard-{os.getpid()}")
    created_seconds: float = 0.0

    @property
    def kubeconfig(self) -> Path:
        return self.workdir / "kubeconfig"

    @property
    def env(self) -> dict[str, str]:
        return {
            **os.environ,
            "KWOK_WORKDIR": str(self.workdir / "kwok"),
            "KUBECONFIG": str(self.kubeconfig),
        }

    def kwokctl(self, *args: str, timeout: float = 180) -> str:
        proc = subprocess.run(
            [str(self.bin_dir / "kwokctl"), "--name", self.name, *args],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
            env=self.env,
        )
        if proc.returncode != 0:
            raise RuntimeError(f"kwokctl {' '.join(args)} failed:\n{proc.stderr[-4000:]}")
        return proc.stdout

    def create(self, *extra: str) -> None:
        """`extra`: more kwokctl flags (e.g. --disable-qps-limits)."""
        started = time.monotonic()
        binaries = {
            "kube-apiserver": "kube-apiserver",
            "kube-controller-manager": "kube-controller-manager",
            "kube-scheduler": "kube-scheduler",
            "kwok-controller": "kwok",
            "etcd": "etcd",
        }
        flags = [f"--{flag}-binary={self.bin_dir / name}" for flag, name in binaries.items()]
        self.kwokctl(
            "create",
            "cluster",
            "--runtime=binary",
            f"--kubeconfig={self.kubeconfig}",
            "--wait=120s",
            *flags,
            # Pre-made volumes bind within a second (default: a 15 s claim sync, which held the
            # first install's StatefulSets for ~40 s).
            "--extra-args=kube-controller-manager=pvclaimbinder-sync-period=1s",
            # The node lifecycle controller lifts each new node's not-ready taint through the
            # controller-manager's client (20 QPS by default): 208 nodes took 46 s, 4 s with
            # this. The scheduler keeps its defaults (the benchmark's --disable-qps-limits).
            "--extra-args=kube-controller-manager=kube-api-qps=200",
            "--extra-args=kube-controller-manager=kube-api-burst=400",
            *extra,
        )
        self.created_seconds = time.monotonic() - started

    def delete(self) -> None:
        self.kwokctl("delete", "cluster", f"--kubeconfig={self.kubeconfig}")

    def api(self) -> client.ApiClient:
        """A Kubernetes API client for this cluster, with room for 8 client threads (sweeps)."""
        configuration = client.Configuration()
        config.load_kube_config(str(self.kubeconfig), client_configuration=configuration)
        configuration.connection_pool_maxsize = 16
        return client.ApiClient(configuration)

    @property
    def kube(self) -> Kube:
        """kubectl against this cluster (the kind tests' wrapper)."""
        return Kube(self.bin_dir / "kubectl", self.kubeconfig)


def node(
    name: str,
    labels: dict[str, str],
    capacity: dict[str, str],
    taints: list[dict[str, str]] | None = None,
) -> dict[str, Any]:
    """A simulated node: the kwok controller keeps it Ready with this capacity."""
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": name,
            "annotations": dict(KWOK_NODE_ANNOTATION),
            "labels": {
                "kubernetes.io/hostname": name,
                "kubernetes.io/os": "linux",
                "kubernetes.io/arch": "amd64",
                "type": "kwok",
                **labels,
            },
        },
        "spec": {"taints": taints or []},
        "status": {"capacity": capacity, "allocatable": capacity},
    }


def static_storage(api: client.ApiClient, volumes: int, size: str = "100Gi") -> None:
    """A default StorageClass with pre-made volumes: nothing provisions here, and the chart's
    StatefulSets (Postgres, the object store) claim one each; the PV controller binds them."""
    storage = client.StorageV1Api(api)
    storage.create_storage_class(
        {
            "apiVersion": "storage.k8s.io/v1",
            "kind": "StorageClass",
            "metadata": {
                "name": STORAGE_CLASS,
                "annotations": {"storageclass.kubernetes.io/is-default-class": "true"},
            },
            "provisioner": "kubernetes.io/no-provisioner",
            "volumeBindingMode": "Immediate",
        }
    )
    core = client.CoreV1Api(api)
    for index in range(volumes):
        core.create_persistent_volume(
            {
                "apiVersion": "v1",
                "kind": "PersistentVolume",
                "metadata": {"name": f"static-{index:03d}"},
                "spec": {
                    "storageClassName": STORAGE_CLASS,
                    "capacity": {"storage": size},
                    "accessModes": ["ReadWriteOnce"],
                    "hostPath": {"path": f"/nonexistent/static-{index:03d}"},
                },
            }
        )

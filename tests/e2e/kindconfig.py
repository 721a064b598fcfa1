"""What tests/e2e/kind-config.yaml makes of each node (labels, taints), and who may schedule there.

kind passes each node's kubeadm patches to kubeadm; the labels and taints a node ends up with are
read from those patches the way kubeadm applies them, so the static tests can check them against
the chart's GPU tolerations without a cluster.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

KIND_CONFIG = Path(__file__).with_name("kind-config.yaml")
# kubeadm's default for a control-plane node whose nodeRegistration.taints is absent (kind
# removes it only from single-node clusters).
CONTROL_PLANE_TAINT = {"key": "node-role.kubernetes.io/control-plane", "effect": "NoSchedule"}


@dataclass(frozen=True)
class KindNode:
    role: str
    image: str
    labels: dict[str, str]
    taints: list[dict[str, str]]


def load(path: Path = KIND_CONFIG) -> list[KindNode]:
    config = yaml.safe_load(path.read_text())
    assert config["kind"] == "Cluster" and config["apiVersion"] == "kind.x-k8s.io/v1alpha4", path
    nodes = []
    for node in config["nodes"]:
        labels = {str(k): str(v) for k, v in (node.get("labels") or {}).items()}
        taints: list[dict[str, str]] | None = None
        for patch in node.get("kubeadmConfigPatches") or []:
            doc = yaml.safe_load(patch)
            if doc.get("kind") not in ("InitConfiguration", "JoinConfiguration"):
                continue
            registration = doc.get("nodeRegistration") or {}
            labels.update(_node_labels(registration.get("kubeletExtraArgs")))
            if "taints" in registration:
                taints = [{k: str(v) for k, v in t.items()} for t in registration["taints"] or []]
        if taints is None:
            taints = [dict(CONTROL_PLANE_TAINT)] if node["role"] == "control-plane" else []
        nodes.append(KindNode(node["role"], node.get("image", ""), labels, taints))
    return nodes


def _node_labels(extra_args: Any) -> dict[str, str]:
    """kubelet --node-labels from kubeletExtraArgs: a map (kubeadm v1beta3) or a name/value list
    (v1beta4)."""
    if not extra_args:
        return {}
    if isinstance(extra_args, list):
        extra_args = {a["name"]: a["value"] for a in extra_args}
    value = extra_args.get("node-labels", "")
    pairs = (item.split("=", 1) for item in value.split(",") if item)
    return {key: val for key, val in pairs}


def tolerates(tolerations: list[dict[str, Any]], taint: dict[str, str]) -> bool:
    """Kubernetes' matching of one taint by a pod's tolerations (core/v1 Toleration semantics)."""
    for tol in tolerations:
        if tol.get("effect") and tol["effect"] != taint["effect"]:
            continue
        operator = tol.get("operator", "Equal")
        if not tol.get("key"):
            if operator == "Exists":
                return True
            continue
        if tol["key"] != taint["key"]:
            continue
        if operator == "Exists" or tol.get("value", "") == taint.get("value", ""):
            return True
    return False


def admits(
    node: KindNode, tolerations: list[dict[str, Any]], node_selector: dict[str, str]
) -> bool:
    """Whether the scheduler may place a pod with these tolerations and selector on the node."""
    blocking = [t for t in node.taints if t["effect"] in ("NoSchedule", "NoExecute")]
    return all(tolerates(tolerations, t) for t in blocking) and all(
        node.labels.get(k) == v for k, v in node_selector.items()
    )

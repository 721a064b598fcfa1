"""On a failed kind test: what the cluster looked like, written to a folder for the reader.

Per namespace of the release: pod states (wide and YAML), `describe`, events in time order, the
logs of every container (and of its previous instance after a restart), Helm's view of the
release; per cluster: nodes; and `kind export logs` (kubelet, containerd, control plane).
Every step is best effort: a broken cluster must still leave whatever can be read.
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

from .kube import Kube


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("_")[:150]


def _save(path: Path, produce: Callable[[], str]) -> None:
    try:
        text = produce()
    except Exception as exc:  # each artifact on its own: one failure must not stop the dump
        text = f"(could not be collected: {type(exc).__name__}: {exc})\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def dump(
    kube: Kube,
    namespaces: list[str],
    dest: Path,
    helm: Callable[[list[str]], str] | None = None,
    kind_export: Callable[[Path], None] | None = None,
) -> Path:
    """Everything readable about `namespaces` into dest; returns dest."""
    dest.mkdir(parents=True, exist_ok=True)
    _save(dest / "nodes.txt", lambda: kube.run("describe", "nodes"))
    _save(dest / "nodes.yaml", lambda: kube.run("get", "nodes", "--output", "yaml"))
    for ns in namespaces:
        folder = dest / _safe(ns)
        kinds = "all,pvc,configmaps,secrets,networkpolicies,serviceaccounts,roles,rolebindings"
        _save(folder / "resources.txt", partial(kube.run, "get", kinds, "-n", ns, "-o", "wide"))
        _save(folder / "pods.yaml", partial(kube.run, "get", "pods", "-n", ns, "-o", "yaml"))
        _save(folder / "describe-pods.txt", partial(kube.run, "describe", "pods", "-n", ns))
        _save(
            folder / "events.txt",
            partial(kube.run, "get", "events", "-n", ns, "--sort-by=.lastTimestamp"),
        )
        try:
            pods = kube.get("pods", "-n", ns)["items"]
        except Exception:
            pods = []
        for pod in pods:
            _pod_logs(kube, ns, pod, folder / "logs")
    if helm is not None:
        _save(dest / "helm-status.txt", lambda: helm(["status"]))
        _save(dest / "helm-history.txt", lambda: helm(["history"]))
        _save(dest / "helm-values.yaml", lambda: helm(["get", "values", "--all"]))
    if kind_export is not None:
        try:
            kind_export(dest / "kind-logs")
        except Exception as exc:
            (dest / "kind-logs.txt").write_text(f"kind export logs failed: {exc}\n")
    return dest


def _pod_logs(kube: Kube, ns: str, pod: dict[str, Any], folder: Path) -> None:
    name = pod["metadata"]["name"]
    statuses = {
        s["name"]: s
        for s in [
            *(pod.get("status") or {}).get("initContainerStatuses", []),
            *(pod.get("status") or {}).get("containerStatuses", []),
        ]
    }
    spec = pod.get("spec") or {}
    for container in [*spec.get("initContainers", []), *spec.get("containers", [])]:
        cname = container["name"]
        base = f"{_safe(name)}.{_safe(cname)}"
        logs = partial(kube.run, "logs", name, "-n", ns, "-c", cname)
        _save(folder / f"{base}.log", logs)
        if statuses.get(cname, {}).get("restartCount", 0):
            _save(folder / f"{base}.previous.log", partial(logs, "--previous"))


def kind_exporter(kind: Path, cluster: str) -> Callable[[Path], None]:
    def export(folder: Path) -> None:
        subprocess.run(
            [str(kind), "export", "logs", str(folder), "--name", cluster],
            capture_output=True,
            timeout=300,
            check=True,
        )

    return export

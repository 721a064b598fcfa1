"""kubectl against the kind cluster, and a recorder of the pods a pipeline run creates."""

from __future__ import annotations

import base64
import datetime as dt
import json
import os
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


class KubectlError(Exception):
    pass


@dataclass(frozen=True)
class Kube:
    kubectl: Path
    kubeconfig: Path

    @property
    def env(self) -> dict[str, str]:
        return {**os.environ, "KUBECONFIG": str(self.kubeconfig)}

    def run(self, *args: str, input: str | None = None, timeout: float = 300) -> str:
        proc = subprocess.run(
            [str(self.kubectl), *args],
            input=input,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
            env=self.env,
        )
        if proc.returncode != 0:
            raise KubectlError(f"kubectl {' '.join(args)}: {proc.stderr.strip()}")
        return proc.stdout

    def get(self, *args: str) -> dict[str, Any]:
        result: dict[str, Any] = json.loads(self.run("get", *args, "--output", "json"))
        return result

    def secret(self, namespace: str, name: str) -> dict[str, str]:
        data = self.get("secret", name, "--namespace", namespace).get("data") or {}
        return {key: base64.b64decode(value).decode() for key, value in data.items()}

    def apply(self, obj: dict[str, Any]) -> None:
        self.run("apply", "--filename", "-", input=json.dumps(obj))

    def nodes(self) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = self.get("nodes")["items"]
        return items

    def set_node_capacity(self, node: str, resource: str, count: int | None) -> None:
        """Advertise an extended resource in the node's status (None: remove it), as the
        Kubernetes docs' "Advertise Extended Resources for a Node" does. The kubelet keeps it
        and derives allocatable from it; the scheduler then places requests for it there."""
        path = "/status/capacity/" + resource.replace("~", "~0").replace("/", "~1")
        op = (
            {"op": "remove", "path": path}
            if count is None
            else {"op": "add", "path": path, "value": str(count)}
        )
        self.run(
            "patch",
            "node",
            node,
            "--subresource=status",
            "--type=json",
            "--patch",
            json.dumps([op]),
        )


@dataclass
class PodRecord:
    """What a pod looked like: enough to say where it ran, what it asked for, and when."""

    uid: str
    name: str
    namespace: str
    labels: dict[str, str]
    node: str = ""
    phase: str = ""
    limits: dict[str, str] = field(default_factory=dict)
    requests: dict[str, str] = field(default_factory=dict)
    tolerations: list[dict[str, Any]] = field(default_factory=list)
    node_selector: dict[str, str] = field(default_factory=dict)
    annotations: dict[str, str] = field(default_factory=dict)
    # When (the API server's and kubelet's times, whole seconds): the pod was created, the
    # scheduler bound it (PodScheduled), its main container started and finished.
    created: dt.datetime | None = None
    scheduled: dt.datetime | None = None
    started: dt.datetime | None = None
    finished: dt.datetime | None = None

    @property
    def task_id(self) -> str:
        """Airflow's task_id label, e.g. data_preparation.validate."""
        return self.labels.get("task_id", "")

    @property
    def task(self) -> str:
        """The task's name without its task group: validate, train, ..."""
        return self.task_id.rsplit(".", 1)[-1]

    @classmethod
    def from_object(cls, obj: dict[str, Any], namespace: str = "") -> PodRecord:
        """A record of a Pod object as the API returns it (kubectl get -o json)."""
        meta, spec = obj["metadata"], obj.get("spec") or {}
        status = obj.get("status") or {}
        limits: dict[str, str] = {}
        requests: dict[str, str] = {}
        for container in spec.get("containers", []):
            resources = container.get("resources") or {}
            limits.update(resources.get("limits") or {})
            requests.update(resources.get("requests") or {})
        scheduled = [
            c.get("lastTransitionTime")
            for c in status.get("conditions") or []
            if c.get("type") == "PodScheduled" and c.get("status") == "True"
        ]
        state = _main_container_state(spec, status)
        running, terminated = state.get("running") or {}, state.get("terminated") or {}
        return cls(
            uid=meta["uid"],
            name=meta["name"],
            namespace=meta.get("namespace", namespace),
            labels=meta.get("labels") or {},
            node=spec.get("nodeName", ""),
            phase=status.get("phase", ""),
            limits=limits,
            requests=requests,
            tolerations=spec.get("tolerations") or [],
            node_selector=spec.get("nodeSelector") or {},
            annotations=meta.get("annotations") or {},
            created=parse_time(meta.get("creationTimestamp")),
            scheduled=parse_time(scheduled[0] if scheduled else None),
            started=parse_time(running.get("startedAt") or terminated.get("startedAt")),
            finished=parse_time(terminated.get("finishedAt")),
        )

    def merged(self, previous: PodRecord | None) -> PodRecord:
        """This record, with what an earlier one of the same pod knew and this one lacks (a
        deletion event may come without the node; a state without the start time)."""
        if previous is None:
            return self
        for name in ("node", "created", "scheduled", "started", "finished"):
            if not getattr(self, name):
                setattr(self, name, getattr(previous, name))
        return self


def _main_container_state(spec: dict[str, Any], status: dict[str, Any]) -> dict[str, Any]:
    """The state of the pod's main container: `base` (Airflow's name for it in worker and pod
    operator pods) where there is one, else the first container."""
    statuses = status.get("containerStatuses") or []
    names = [c.get("name") for c in spec.get("containers", [])]
    main = "base" if "base" in names else (names[0] if names else None)
    for container in statuses:
        if container.get("name") == main:
            state: dict[str, Any] = container.get("state") or {}
            return state
    return {}


def parse_time(value: str | None) -> dt.datetime | None:
    """An API timestamp (RFC 3339, `2026-01-01T10:00:00Z`) as an aware datetime."""
    if not value:
        return None
    return dt.datetime.fromisoformat(value.replace("Z", "+00:00"))


class PodRecorder:
    """Watches pods in a namespace (kubectl get --watch) and keeps the last state of each.

    Trainer pods that succeed are deleted right away (on_finish_action=delete_succeeded_pod), so
    where they ran can only be seen while they exist: a watch sees every change of every pod.
    """

    def __init__(self, kube: Kube, namespace: str, selector: str) -> None:
        self.kube, self.namespace, self.selector = kube, namespace, selector
        self.pods: dict[str, PodRecord] = {}
        self.started = time.monotonic()
        # Seconds from the recorder's start to the first pod seen Running.
        self.first_running_s: float | None = None
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._stop = threading.Event()
        self._proc: subprocess.Popen[str] | None = None
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            self._proc = subprocess.Popen(
                [
                    str(self.kube.kubectl),
                    "get",
                    "pods",
                    "--namespace",
                    self.namespace,
                    "--selector",
                    self.selector,
                    "--watch",
                    "--output",
                    "json",
                ],
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,
                text=True,
                env=self.kube.env,
            )
            assert self._proc.stdout is not None
            decoder = json.JSONDecoder()
            buffer = ""
            for line in self._proc.stdout:
                buffer += line
                # `--output json` with --watch prints one JSON document per change, over lines.
                while buffer.strip():
                    try:
                        obj, end = decoder.raw_decode(buffer.lstrip())
                    except json.JSONDecodeError:
                        break
                    buffer = buffer.lstrip()[end:]
                    self._record(obj)
            self._proc.wait()
            if not self._stop.is_set():
                time.sleep(1)  # the watch ended (API server restart, timeout): watch again

    def _record(self, obj: dict[str, Any]) -> None:
        if obj.get("kind") == "List":
            for item in obj.get("items", []):
                self._record(item)
            return
        record = PodRecord.from_object(obj, self.namespace)
        with self._changed:
            if record.phase == "Running" and self.first_running_s is None:
                self.first_running_s = time.monotonic() - self.started
            self.pods[record.uid] = record.merged(self.pods.get(record.uid))
            self._changed.notify_all()

    def snapshot(self) -> list[PodRecord]:
        with self._lock:
            return list(self.pods.values())

    def wait_for(self, predicate: Any, timeout_s: float, stop: threading.Event) -> PodRecord | None:
        """The first recorded pod matching predicate; None if `stop` is set or time runs out."""
        deadline = time.monotonic() + timeout_s
        with self._changed:
            while time.monotonic() < deadline and not stop.is_set():
                for pod in self.pods.values():
                    if predicate(pod):
                        return pod
                self._changed.wait(timeout=1.0)
        return None

    def close(self) -> None:
        self._stop.set()
        if self._proc is not None:
            self._proc.kill()
        self._thread.join(timeout=10)

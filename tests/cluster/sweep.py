"""Runs a sweep's trainer pods on the simulated fleet, as Airflow and the pod operator would.

Airflow runs at most `limit` mapped `train` tasks at once (`max_active_tis_per_dag`, from the
platform config's max_parallel_trials); each task's operator creates its pod and, once the
trial is over, deletes it (`on_finish_action: delete_succeeded_pod`). Here a trial is over as
soon as its pod runs (a simulated node runs nothing), or never (`finish=False`: every pod stays,
to measure scheduling alone). Every observation checks that no node's GPUs are over-committed.

Under a ResourceQuota the API server charges a pod's GPUs at creation, but gives them back
only when the controller-manager's quota controller has seen the deletion (milliseconds to a
second later). Airflow starts the next trial seconds after one ends; this loop starts it
50 ms later, so with `quota_gpus` a refusal while the sweep's live pods fit the quota is
that lag: the pod is submitted again (counted), not recorded as refused.
"""

from __future__ import annotations

import contextlib
import json
import socket
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from kubernetes import client
from kubernetes.client.exceptions import ApiException

from .fleet import GPU_RESOURCE, GPUS_PER_NODE

POLL_SECONDS = 0.05


def gpus_of(pod: dict[str, Any]) -> int:
    """GPUs a pod requests (the API server defaults requests to limits for extended resources)."""
    total = 0
    for container in pod["spec"]["containers"]:
        resources = container.get("resources") or {}
        for kind in ("requests", "limits"):
            if GPU_RESOURCE in (resources.get(kind) or {}):
                total += int(resources[kind][GPU_RESOURCE])
                break
    return total


def list_pods(core: client.CoreV1Api, namespace: str) -> list[dict[str, Any]]:
    """The namespace's pods as plain JSON (the client's models cost seconds for 500 pods)."""
    response = core.list_namespaced_pod(namespace, _preload_content=False)
    items: list[dict[str, Any]] = json.loads(response.data)["items"]
    return items


@dataclass
class SweepResult:
    trials: int
    limit: int
    seconds_to_all_bound: float = 0.0
    seconds_to_all_submitted: float = 0.0
    # pod name -> node it was bound to
    placements: dict[str, str] = field(default_factory=dict)
    # Refused creations (the operator's task would fail): pod name -> API message.
    rejected: dict[str, str] = field(default_factory=dict)
    finished: int = 0
    most_pending: int = 0  # most pods at once that existed but were not bound
    unschedulable_messages: set[str] = field(default_factory=set)
    most_gpus_requested: int = 0  # most GPUs at once requested by the sweep's pods
    most_gpus_bound: int = 0  # most GPUs at once on nodes, as the API server lists the pods
    quota_lag_retries: int = 0  # refusals on stale quota usage, submitted again
    watch_error: str | None = None  # why the bind times are the poll's, when they are
    overcommitted: list[str] = field(default_factory=list)

    @property
    def pods_per_second(self) -> float:
        return self.trials / self.seconds_to_all_bound if self.seconds_to_all_bound else 0.0

    @property
    def seconds_per_trial(self) -> float:
        return self.seconds_to_all_bound / self.trials


class BindWatch:
    """When each pod of a namespace was first seen bound, from a watch: the sweep's figures are
    exact to the event, not to the next poll (a 50 ms poll is a third of an 8-trial sweep).

    Like an informer, it resumes from the last resourceVersion it saw when the API server ends
    the stream (it drops watchers that fall behind). The newline-delimited JSON is read here:
    the client's own raw watch splits lines with str.splitlines, which also breaks at
    characters a pod's JSON may hold."""

    def __init__(self, core: client.CoreV1Api, namespace: str) -> None:
        self.bound_at: dict[str, float] = {}
        self.error: Exception | None = None
        self._core, self._namespace = core, namespace
        self._stopped = threading.Event()
        listed = core.list_namespaced_pod(namespace, _preload_content=False)
        self._version = json.loads(listed.data)["metadata"]["resourceVersion"]
        # Opened before the sweep starts: no bind can happen before the watch sees it.
        self._response = self._open()
        self._thread = threading.Thread(target=self._follow, daemon=True)
        self._thread.start()

    def _open(self) -> Any:
        return self._core.list_namespaced_pod(
            self._namespace, watch=True, resource_version=self._version, _preload_content=False
        )

    def _follow(self) -> None:
        while True:
            try:
                self._read(self._response)
            except Exception as exc:  # closed by stop(), or broken
                if not self._stopped.is_set():
                    self.error = exc
                return
            if self._stopped.is_set():
                return
            self._response = self._open()

    def _read(self, response: Any) -> None:
        pending = b""
        for chunk in response.stream(1 << 16):
            pending += chunk
            *lines, pending = pending.split(b"\n")
            for line in filter(None, lines):
                self._record(json.loads(line))

    def _record(self, event: dict[str, Any]) -> None:
        pod = event.get("object") or {}
        if event.get("type") == "ERROR":  # e.g. 410 Gone: too far behind to resume
            raise RuntimeError(f"watch error: {pod}")
        self._version = (pod.get("metadata") or {}).get("resourceVersion", self._version)
        if event.get("type") in ("ADDED", "MODIFIED") and (pod.get("spec") or {}).get("nodeName"):
            self.bound_at.setdefault(pod["metadata"]["name"], time.monotonic())

    def last_bound(self, names: list[str], wait_s: float = 5) -> float | None:
        """When the last of `names` was bound (the poll may see a bind before its event
        arrives: waits up to `wait_s` for it); None if the watch missed one."""
        deadline = time.monotonic() + wait_s
        while True:
            times = [self.bound_at.get(name) for name in names]
            if None not in times:
                return max(t for t in times if t is not None)
            if time.monotonic() > deadline or not self._thread.is_alive():
                return None
            time.sleep(0.01)

    def stop(self) -> None:
        self._stopped.set()
        # close() would wait for the reading thread's TLS read; a shutdown ends that read.
        sock = getattr(getattr(self._response, "connection", None), "sock", None)
        with contextlib.suppress(OSError):
            if sock is not None:
                sock.shutdown(socket.SHUT_RDWR)
        self._thread.join(5)
        self._response.close()


def run_sweep(
    api: client.ApiClient,
    pods: list[dict[str, Any]],
    limit: int,
    finish: bool,
    timeout: float = 120,
    quota_gpus: int | None = None,
) -> SweepResult:
    """Submit `pods` with at most `limit` in flight, until each was bound (and, with `finish`,
    deleted again) or `timeout`; the pods that remain are left for the caller to inspect.
    `quota_gpus`: the namespace's GPU quota, to tell its controller's lag from a real excess."""
    core = client.CoreV1Api(api)
    namespace = pods[0]["metadata"]["namespace"]
    result = SweepResult(trials=len(pods), limit=limit)
    queue = list(pods)
    in_flight: dict[str, int] = {}  # pod name -> GPUs
    binds = BindWatch(core, namespace)
    started = time.monotonic()

    def create(pod: dict[str, Any]) -> tuple[str, str | None]:
        try:
            core.create_namespaced_pod(namespace, pod)
        except ApiException as exc:
            return pod["metadata"]["name"], f"{exc.status} {exc.reason}: {exc.body}"
        return pod["metadata"]["name"], None

    with ThreadPoolExecutor(8) as executor:
        while time.monotonic() - started < timeout:
            room = limit - len(in_flight)
            batch, queue = queue[:room], queue[room:]
            retry = []
            for (name, error), pod in zip(executor.map(create, batch), batch, strict=True):
                if not error:
                    in_flight[name] = gpus_of(pod)
                elif _quota_lag(error, quota_gpus, sum(in_flight.values()) + gpus_of(pod)):
                    retry.append(pod)
                else:
                    result.rejected[name] = error
            result.quota_lag_retries += len(retry)
            queue = retry + queue
            if not queue and not result.seconds_to_all_submitted:
                result.seconds_to_all_submitted = time.monotonic() - started
            bound = _observe(core, namespace, in_flight, result)
            if finish:
                names = [n for n in bound if n in in_flight]
                list(executor.map(lambda n: _delete(core, namespace, n), names))
                for name in names:
                    del in_flight[name]
                result.finished += len(names)
            if len(result.placements) + len(result.rejected) == result.trials:
                last = binds.last_bound(list(result.placements))
                if last is None:  # the watch broke: the poll's time, later by up to a poll
                    result.watch_error = str(binds.error or "a bind was not seen")
                result.seconds_to_all_bound = (last or time.monotonic()) - started
                break
            time.sleep(POLL_SECONDS)
    binds.stop()
    return result


def _quota_lag(error: str, quota_gpus: int | None, gpus_with_pod: int) -> bool:
    """A refusal over the quota although the live pods and this one fit in it."""
    return quota_gpus is not None and "exceeded quota" in error and gpus_with_pod <= quota_gpus


def _observe(
    core: client.CoreV1Api, namespace: str, in_flight: dict[str, int], result: SweepResult
) -> list[str]:
    """Record placements, pending pods and per-node GPU use; the names bound so far."""
    listed = list_pods(core, namespace)
    per_node: Counter[str] = Counter()
    bound = []
    pending = 0
    for pod in listed:
        node_name = pod["spec"].get("nodeName")
        if node_name:
            per_node[node_name] += gpus_of(pod)  # every pod of the namespace, not only ours
        name = pod["metadata"]["name"]
        if name not in in_flight:
            continue
        if node_name:
            result.placements.setdefault(name, node_name)
            bound.append(name)
        else:
            pending += 1
            for condition in pod.get("status", {}).get("conditions", []):
                if condition.get("reason") == "Unschedulable":
                    result.unschedulable_messages.add(condition.get("message", ""))
    result.most_pending = max(result.most_pending, pending)
    result.most_gpus_requested = max(result.most_gpus_requested, sum(in_flight.values()))
    result.most_gpus_bound = max(result.most_gpus_bound, sum(per_node.values()))
    result.overcommitted += [f"{n}: {g} GPUs" for n, g in per_node.items() if g > GPUS_PER_NODE]
    return bound


def _delete(core: client.CoreV1Api, namespace: str, name: str) -> None:
    # What the operator does with a succeeded pod; grace 0: no kubelet to confirm it here.
    core.delete_namespaced_pod(name, namespace, grace_period_seconds=0)


def delete_all(api: client.ApiClient, namespace: str) -> None:
    core = client.CoreV1Api(api)
    core.delete_collection_namespaced_pod(namespace, grace_period_seconds=0)
    deadline = time.monotonic() + 60
    while list_pods(core, namespace) and time.monotonic() < deadline:
        time.sleep(0.2)


def wait_for_quota(api: client.ApiClient, namespace: str, used: int, timeout: float = 60) -> None:
    """Until every ResourceQuota of the namespace has a status (the controller filled it in:
    before that the API server refuses pods) and charges `used` GPUs."""
    core = client.CoreV1Api(api)
    deadline = time.monotonic() + timeout
    while True:
        quotas = core.list_namespaced_resource_quota(namespace).items
        charged = [
            int((q.status.used or {}).get(f"requests.{GPU_RESOURCE}", -1))
            for q in quotas
            if q.status and q.status.hard
        ]
        if quotas and len(charged) == len(quotas) and set(charged) == {used}:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"quota of {namespace} not at {used} GPUs: {quotas}")
        time.sleep(0.2)

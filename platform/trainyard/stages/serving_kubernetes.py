"""Roll out the chart's model-server Deployment: new pod-template annotations roll its pods
(like `kubectl rollout restart`) so the new pods load the moved `champion` alias; done when
the rollout is, as `kubectl rollout status` judges it.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Mapping
from typing import Any

from trainyard.stages.serving import ServingError

log = logging.getLogger(__name__)

# The chart's annotations: replicas for the first rollout (the Deployment starts at 0,
# there is nothing to serve before a champion exists) and the version being served.
REPLICAS_ANNOTATION = "trainyard.io/replicas"
VERSION_ANNOTATION = "trainyard.io/model-version"
ROLLED_OUT_ANNOTATION = "trainyard.io/rolled-out-at"


def target_replicas(deployment: Mapping[str, Any]) -> int:
    """Keep a scaled Deployment's replicas; scale one at 0 to its annotated count (≥ 1)."""
    current = int(deployment.get("spec", {}).get("replicas") or 0)
    if current > 0:
        return current
    annotations = deployment.get("metadata", {}).get("annotations") or {}
    value = annotations.get(REPLICAS_ANNOTATION, "1")
    try:
        return max(1, int(value))
    except ValueError:
        raise ServingError(f"annotation {REPLICAS_ANNOTATION}={value!r} is not a number") from None


def rollout_patch(version: str, replicas: int, now: dt.datetime) -> dict[str, Any]:
    """A strategic-merge patch: new template annotations roll the pods, like `kubectl rollout
    restart`, and record which version the new pods were started for."""
    return {
        "spec": {
            "replicas": replicas,
            "template": {
                "metadata": {
                    "annotations": {
                        VERSION_ANNOTATION: version,
                        ROLLED_OUT_ANNOTATION: now.isoformat(timespec="seconds"),
                    }
                }
            },
        }
    }


def rollout_state(deployment: Mapping[str, Any]) -> tuple[bool, str]:
    """(done, what is left) for a Deployment as the API returns it, as `kubectl rollout
    status` judges it. Raises when the Deployment reports its progress deadline exceeded."""
    metadata, spec = deployment.get("metadata", {}), deployment.get("spec", {})
    status = deployment.get("status") or {}
    if status.get("observedGeneration", 0) < metadata.get("generation", 0):
        return False, "the controller has not seen the new template yet"
    for condition in status.get("conditions") or []:
        if condition.get("type") == "Progressing" and (
            condition.get("reason") == "ProgressDeadlineExceeded"
        ):
            raise ServingError(f"rollout stalled: {condition.get('message', '')}")
    wanted = int(spec.get("replicas") or 0)
    updated = int(status.get("updatedReplicas") or 0)
    total = int(status.get("replicas") or 0)
    available = int(status.get("availableReplicas") or 0)
    if updated < wanted:
        return False, f"{updated} of {wanted} new replicas created"
    if total > updated:
        return False, f"{total - updated} old replicas still terminating"
    if available < updated:
        return False, f"{available} of {updated} new replicas available"
    return True, f"{available} replicas available"


class KubernetesDeployment:
    def __init__(self, name: str, namespace: str, url: str, timeout_s: float) -> None:
        self.name, self.namespace, self.url, self.timeout_s = name, namespace, url, timeout_s

    def describe(self) -> str:
        return f"deployment/{self.name} in {self.namespace}"

    def _clients(self) -> tuple[Any, Any, Any]:
        from kubernetes import client, config  # noqa: PLC0415  (only on Kubernetes)
        from kubernetes.config.config_exception import ConfigException  # noqa: PLC0415

        try:
            config.load_incluster_config()
        except ConfigException:
            try:
                config.load_kube_config()  # outside a pod: the operator's kubeconfig
            except (ConfigException, OSError) as exc:
                raise ServingError(
                    f"no Kubernetes credentials for {self.describe()}: {exc}"
                ) from exc
        api = client.ApiClient()
        return client.AppsV1Api(api), client.CoreV1Api(api), api

    def _read(self, apps: Any, api: Any) -> dict[str, Any]:
        try:
            deployment = apps.read_namespaced_deployment(self.name, self.namespace)
        except Exception as exc:  # ApiException, connection errors: a failed rollout
            raise ServingError(f"cannot read {self.describe()}: {_api_reason(exc)}") from exc
        value: dict[str, Any] = api.sanitize_for_serialization(deployment)
        return value

    def _patch(self, apps: Any, body: dict[str, Any]) -> None:
        try:
            apps.patch_namespaced_deployment(self.name, self.namespace, body)
        except Exception as exc:  # ApiException: RBAC, missing Deployment
            raise ServingError(f"cannot patch {self.describe()}: {_api_reason(exc)}") from exc

    def roll_out(self, model_name: str, version: str) -> None:
        apps, core, api = self._clients()
        current = self._read(apps, api)
        replicas = target_replicas(current)
        self._patch(apps, rollout_patch(version, replicas, dt.datetime.now(dt.UTC)))
        deadline = time.monotonic() + self.timeout_s
        left = ""
        while time.monotonic() < deadline:
            done, left = rollout_state(self._read(apps, api))
            if done:
                log.info("%s rolled out for %s v%s: %s", self.describe(), model_name, version, left)
                return
            time.sleep(3)
        raise ServingError(
            f"{self.describe()} not rolled out within {self.timeout_s:.0f}s ({left}); "
            f"pods: {self._pod_problems(core, current)}"
        )

    def _pod_problems(self, core: Any, deployment: Mapping[str, Any]) -> str:
        """Why the new pods are not ready: waiting/terminated reasons, for the error message."""
        labels = deployment.get("spec", {}).get("selector", {}).get("matchLabels", {})
        selector = ",".join(f"{k}={v}" for k, v in labels.items())
        try:
            pods = core.list_namespaced_pod(self.namespace, label_selector=selector).items
        except Exception as exc:
            return f"(cannot list: {_api_reason(exc)})"
        problems = []
        for pod in pods:
            for status in pod.status.container_statuses or []:
                state = status.state
                reason = (state.waiting and state.waiting.reason) or (
                    state.terminated and state.terminated.reason
                )
                if reason or not status.ready:
                    problems.append(f"{pod.metadata.name}: {reason or 'not ready'}")
        return "; ".join(problems) or "none reported"

    def retire(self) -> None:
        apps, _, _ = self._clients()
        self._patch(apps, {"spec": {"replicas": 0}})


def _api_reason(exc: Exception) -> str:
    status, reason = getattr(exc, "status", None), getattr(exc, "reason", None)
    return f"{status} {reason}" if status else str(exc)

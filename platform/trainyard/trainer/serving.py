"""Roll the model server out to a new champion and prove it answers.

The platform tells trainer pods where the server is, through their environment:

- `TRAINYARD_SERVING_URL`: where `/invocations` answers (both runtimes).
- `TRAINYARD_SERVING_DEPLOYMENT` (+ `_NAMESPACE`): a Kubernetes Deployment running
  `mlflow models serve -m models:/<name>@champion` (the chart's serving component).
  Rolling it out = a new pod-template annotation, so new pods load the moved alias.
- `TRAINYARD_SERVING_LOCAL_DIR`: the standalone runtime's model server, a local
  `mlflow models serve` process this module restarts (pid file and log there).

With neither, there is no server and deploy moves the alias only.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlsplit

import numpy as np
import requests

from trainyard.errors import StageError
from trainyard.trainer.registry import champion_uri

log = logging.getLogger(__name__)

URL_ENV = "TRAINYARD_SERVING_URL"
DEPLOYMENT_ENV = "TRAINYARD_SERVING_DEPLOYMENT"
NAMESPACE_ENV = "TRAINYARD_SERVING_NAMESPACE"
LOCAL_DIR_ENV = "TRAINYARD_SERVING_LOCAL_DIR"
TIMEOUT_ENV = "TRAINYARD_SERVING_TIMEOUT_S"
DEFAULT_TIMEOUT_S = 600.0

# The chart's annotations: replicas for the first rollout (the Deployment starts at 0,
# there is nothing to serve before a champion exists) and the version being served.
REPLICAS_ANNOTATION = "trainyard.io/replicas"
VERSION_ANNOTATION = "trainyard.io/model-version"
ROLLED_OUT_ANNOTATION = "trainyard.io/rolled-out-at"


class ServingError(StageError):
    """The model server did not come up with the new model, or answered wrongly."""


class ModelServer(Protocol):
    url: str

    def describe(self) -> str: ...

    def roll_out(self, model_name: str, version: str) -> None:
        """Return once the server serves `models:/<name>@champion` anew, or raise."""

    def retire(self) -> None:
        """Stop serving (there is no champion left to serve)."""


def from_environment(env: Mapping[str, str] = os.environ) -> ModelServer | None:
    url = env.get(URL_ENV)
    deployment, local_dir = env.get(DEPLOYMENT_ENV), env.get(LOCAL_DIR_ENV)
    if not (deployment or local_dir):
        return None
    if not url:
        raise ServingError(f"{DEPLOYMENT_ENV} or {LOCAL_DIR_ENV} is set but {URL_ENV} is not")
    try:
        timeout_s = float(env.get(TIMEOUT_ENV, DEFAULT_TIMEOUT_S))
    except ValueError:
        raise ServingError(f"{TIMEOUT_ENV}={env[TIMEOUT_ENV]!r} is not a number") from None
    if deployment:
        namespace = env.get(NAMESPACE_ENV) or "default"
        return KubernetesDeployment(deployment, namespace, url, timeout_s)
    assert local_dir is not None
    return LocalModelServer(Path(local_dir), url, timeout_s)


# --- smoke test ------------------------------------------------------------------------------


def smoke_test(url: str, rows: np.ndarray, expected: np.ndarray, timeout_s: float = 60) -> int:
    """POST `rows` to `/invocations`; the served classes must equal `expected`. Returns rows."""
    try:
        response = requests.post(
            url.rstrip("/") + "/invocations",
            json={"inputs": rows.tolist()},
            timeout=timeout_s,
        )
    except requests.RequestException as exc:
        raise ServingError(f"smoke test: {url}/invocations unreachable: {exc}") from exc
    if response.status_code != 200:
        raise ServingError(
            f"smoke test: {url}/invocations answered {response.status_code}: {response.text[:300]}"
        )
    try:
        predictions = np.asarray(response.json()["predictions"], dtype=np.float64)
    except (ValueError, KeyError, TypeError) as exc:
        raise ServingError(f"smoke test: unexpected answer {response.text[:300]!r}") from exc
    if predictions.shape != expected.shape:
        raise ServingError(
            f"smoke test: predictions have shape {predictions.shape}, expected {expected.shape}"
        )
    served = predictions.argmax(axis=1)
    wrong = int((served != expected.argmax(axis=1)).sum())
    if wrong:
        raise ServingError(
            f"smoke test: the server disagrees with the registered model on {wrong} of "
            f"{len(rows)} rows (is it serving another version?)"
        )
    return len(rows)


# --- Kubernetes ------------------------------------------------------------------------------


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


# --- standalone ------------------------------------------------------------------------------


class LocalModelServer:
    """`mlflow models serve` for the champion as a local process, restarted on each rollout.

    It runs in its own session with its output in a log file, so it outlives the deploy
    process; `trainyard down` stops it through the pid file.
    """

    def __init__(self, folder: Path, url: str, timeout_s: float = DEFAULT_TIMEOUT_S) -> None:
        self.folder, self.url, self.timeout_s = folder, url, timeout_s
        self.pid_file = folder / "model-server.pid"
        self.log_file = folder / "model-server.log"

    def describe(self) -> str:
        return f"local model server at {self.url}"

    def roll_out(self, model_name: str, version: str) -> None:
        # The laptop runtime's process tools, imported only here: this module runs in trainer
        # pods, whose image has none of the laptop's dependencies (psutil).
        from trainyard.standalone.processes import ManagedProcess, ServiceError  # noqa: PLC0415

        self.retire()
        address = urlsplit(self.url)
        server = ManagedProcess(
            "model server",
            [
                sys.executable,
                "-m",
                "mlflow",
                "models",
                "serve",
                "-m",
                champion_uri(model_name),
                "--env-manager",
                "local",
                "-h",
                address.hostname or "127.0.0.1",
                "-p",
                str(address.port or 80),
                "--workers",
                "1",
            ],
            self.log_file,
            # mlflow execs `uvicorn` by name: this interpreter's scripts come first on PATH.
            env={"PATH": os.pathsep.join([str(Path(sys.executable).parent), os.environ["PATH"]])},
        )
        server.start()
        self.folder.mkdir(parents=True, exist_ok=True)
        self.pid_file.write_text(str(server.pid))
        try:
            seconds = server.wait_until(self._pings, self.timeout_s, "answer on /ping")
        except ServiceError as exc:
            raise ServingError(str(exc)) from exc
        log.info("%s serves %s v%s (up in %.1fs)", self.describe(), model_name, version, seconds)

    def _pings(self) -> bool:
        return requests.get(self.url.rstrip("/") + "/ping", timeout=2).status_code == 200

    def running_pid(self) -> int | None:
        from trainyard.standalone.processes import pid_alive  # noqa: PLC0415

        try:
            pid = int(self.pid_file.read_text())
        except (FileNotFoundError, ValueError):
            return None
        return pid if pid_alive(pid) else None

    def retire(self) -> None:
        from trainyard.standalone.processes import stop_group  # noqa: PLC0415

        pid = self.running_pid()
        if pid is not None:
            stop_group(pid, grace_s=15)
        self.pid_file.unlink(missing_ok=True)

"""KubernetesPodOperator settings for trainer pods, built from the platform config.

Imported only on the Kubernetes runtime: the Kubernetes client costs ~1 s to import.
"""

from __future__ import annotations

import json
from typing import Any

from kubernetes.client import ApiClient
from kubernetes.client import models as k8s

from trainyard.pipeline.platform import PlatformConfig, StagePod

SHM_VOLUME = {"name": "dshm", "emptyDir": {"medium": "Memory"}}
SHM_MOUNT = {"name": "dshm", "mountPath": "/dev/shm"}


class _Payload:
    """What ApiClient.deserialize expects: an object with a JSON `data` attribute."""

    def __init__(self, value: Any) -> None:
        self.data = json.dumps(value)


def to_model(value: Any, kind: str) -> Any:
    """A Kubernetes manifest fragment (camelCase dict, as in the chart) as a client model."""
    return ApiClient().deserialize(_Payload(value), kind)


def pod_kwargs(config: PlatformConfig, gpu: bool, pod: StagePod | None = None) -> dict[str, Any]:
    """The pod of a stage: the platform's trainer settings, with `pod`'s (a pipeline spec's
    stage: its image, resources, GPU count, volumes) on top."""
    trainer, gpus, pod = config.trainer, config.gpu, pod or StagePod()
    resources = pod.resources or trainer.resources
    limits = dict(resources.get("limits", {}))
    requests = dict(resources.get("requests", {}))
    gpu_count = gpus.count if pod.gpus is None else pod.gpus
    gpu = gpu and gpu_count > 0
    kwargs: dict[str, Any] = {
        "namespace": trainer.namespace,
        "image": pod.image or trainer.image,
        "image_pull_policy": trainer.image_pull_policy,
        "service_account_name": trainer.service_account,
        "labels": {"app.kubernetes.io/part-of": "trainyard", **trainer.labels},
        "annotations": trainer.annotations,
        "env_from": [
            k8s.V1EnvFromSource(secret_ref=k8s.V1SecretEnvSource(name=name))
            for name in trainer.env_from_secrets
        ],
        "volumes": [to_model(v, "V1Volume") for v in [*trainer.volumes, *pod.volumes]],
        "volume_mounts": [
            to_model(m, "V1VolumeMount") for m in [*trainer.volume_mounts, *pod.volume_mounts]
        ],
        "image_pull_secrets": [
            k8s.V1LocalObjectReference(name=n) for n in trainer.image_pull_secrets
        ],
        "schedule_timeout_seconds": trainer.schedule_timeout_seconds,
        "startup_timeout_seconds": trainer.startup_timeout_seconds,
        # How often the operator looks whether its pod started (default 5 s): a stage waited
        # 2.5 s on average after its pod was running; one read of the pod a second is nothing
        # to the API server.
        "startup_check_interval_seconds": 1,
        "on_finish_action": "delete_succeeded_pod",  # keep failed pods for debugging
        "get_logs": True,
        "log_events_on_failure": True,
        # The trainer writes its one error line to the termination log, which the pod operator
        # puts in the task's exception (the failure alert's line); a crash that wrote none
        # leaves the log's tail there instead.
        "termination_message_policy": "FallbackToLogsOnError",
        "durable": True,  # a restarted worker reattaches to the running pod
        # The triggerer's async hook, unlike the sync one, has no in-cluster fallback.
        "in_cluster": True,
        # The XCom sidecar must pass the pod's runAsNonRoot (its image, kubernetes_default's
        # xcom_sidecar_container_image, may default to root): nobody, nothing else.
        "xcom_sidecar_container_security_context": to_model(
            {
                "runAsUser": 65534,
                "runAsNonRoot": True,
                "allowPrivilegeEscalation": False,
                "readOnlyRootFilesystem": True,
                "capabilities": {"drop": ["ALL"]},
            },
            "V1SecurityContext",
        ),
        "security_context": to_model(
            {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}},
            "V1PodSecurityContext",
        ),
        "container_security_context": to_model(
            {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}},
            "V1SecurityContext",
        ),
    }
    if gpu and gpus.enabled:
        limits[gpus.resource_name] = str(gpu_count)
        kwargs["tolerations"] = [to_model(t, "V1Toleration") for t in gpus.tolerations]
        kwargs["node_selector"] = gpus.node_selector
        if gpus.affinity:
            kwargs["affinity"] = to_model(gpus.affinity, "V1Affinity")
        if gpus.runtime_class_name:
            kwargs["runtime_class_name"] = gpus.runtime_class_name
        if (pod.processes or config.train_processes) > 1:
            # NCCL between the pod's training processes goes through /dev/shm; a
            # container's default is 64 MiB.
            kwargs["volumes"].append(to_model(SHM_VOLUME, "V1Volume"))
            kwargs["volume_mounts"].append(to_model(SHM_MOUNT, "V1VolumeMount"))
    if limits or requests:
        kwargs["container_resources"] = k8s.V1ResourceRequirements(
            limits=limits or None, requests=requests or None
        )
    return kwargs

"""Platform configuration: what the DAG needs to know about the cluster it runs on.

One JSON document, written by the Helm chart into a ConfigMap (Kubernetes) or by
`trainyard up` (standalone), found through `TRAINYARD_PLATFORM_CONFIG`. The DAG
holds no cluster literals: images, namespaces, GPU settings, tolerations and
endpoints all come from here. Secrets never do: the config names Kubernetes
Secrets to mount, or, standalone, the services' credentials are in the
environment of the Airflow processes.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from trainyard import __version__

log = logging.getLogger(__name__)

ENV_VAR = "TRAINYARD_PLATFORM_CONFIG"
RUNTIMES = ("kubernetes", "standalone")


class PlatformConfigError(ValueError):
    """The platform configuration is missing or malformed; the message names the key."""


@dataclass(frozen=True)
class GpuConfig:
    enabled: bool = False
    count: int = 1
    resource_name: str = "nvidia.com/gpu"
    tolerations: list[dict[str, Any]] = field(default_factory=list)
    node_selector: dict[str, str] = field(default_factory=dict)
    affinity: dict[str, Any] = field(default_factory=dict)
    runtime_class_name: str | None = None


@dataclass(frozen=True)
class TrainerConfig:
    image: str = f"trainyard/trainer:{__version__}"  # the chart sets it; this tree's build
    image_pull_policy: str = "IfNotPresent"
    namespace: str = "ml-training"
    service_account: str | None = None
    # Plain settings for every trainer process/pod (endpoints, tracking URI).
    env: dict[str, str] = field(default_factory=dict)
    # Kubernetes Secrets whose keys become env vars (credentials).
    env_from_secrets: list[str] = field(default_factory=list)
    resources: dict[str, dict[str, str]] = field(default_factory=dict)
    labels: dict[str, str] = field(default_factory=dict)
    annotations: dict[str, str] = field(default_factory=dict)
    volumes: list[dict[str, Any]] = field(default_factory=list)
    volume_mounts: list[dict[str, Any]] = field(default_factory=list)
    # Secrets (in the trainer namespace) the kubelet pulls the trainer image with.
    image_pull_secrets: list[str] = field(default_factory=list)
    # How long the pod operator waits for a trainer pod to be scheduled (an autoscaled GPU
    # pool adds a node in minutes) and then to start (pulling a CUDA image takes minutes).
    # The standalone runtime runs processes and ignores both.
    schedule_timeout_seconds: int = 900
    startup_timeout_seconds: int = 900


@dataclass(frozen=True)
class StagePod:
    """One stage's own pod settings (a pipeline spec's), over the platform's trainer ones."""

    image: str | None = None
    resources: dict[str, dict[str, str]] = field(default_factory=dict)
    gpus: int | None = None  # None: the platform's GPU count
    processes: int | None = None  # None: one per GPU
    volumes: list[dict[str, Any]] = field(default_factory=list)
    volume_mounts: list[dict[str, Any]] = field(default_factory=list)


@dataclass(frozen=True)
class NotifyConfig:
    smtp_to: list[str] = field(default_factory=list)
    smtp_conn_id: str = "smtp_default"
    slack_conn_id: str | None = None


@dataclass(frozen=True)
class PlatformConfig:
    runtime: str = "kubernetes"
    data_root: str = "s3://datasets/digits"
    work_root: str = "s3://datasets/runs"
    storage_conn_id: str = "trainyard_s3"
    model_name: str = "digits"
    experiment: str = "trainyard-digits"
    max_parallel_trials: int = 4
    task_retries: int = 2
    retry_delay_seconds: int = 60
    execution_timeout_minutes: int = 60
    # When the scheduler starts a run of the training DAG (a cron expression or preset such as
    # "@daily"); None: manual runs only. The laptop platform has no daily data feed and writes
    # None: a scheduled run there would wait for data it never gets, holding the DAG's one
    # active run (max_active_runs=1) and queueing the user's runs behind it.
    schedule: str | None = "@daily"
    sensor_poke_seconds: int = 60
    sensor_timeout_minutes: int = 12 * 60
    # A run not finished this many minutes after it was queued is alerted (Airflow deadline
    # alert, through the notify channels); 0: no deadline.
    deadline_minutes: int = 0
    # The Airflow executor of the DAG's inline tasks (the data sensor, the Python tasks on
    # XComs) when it is not the default one: on Kubernetes the chart's LocalExecutor in the
    # scheduler pod, which spares each of them a worker pod. None: the default executor.
    inline_executor: str | None = None
    # Trials wait for their trainer pod in the triggerer instead of their worker pod. Each
    # deferred trial then needs a second worker pod to collect its result: ~25 s more per
    # trial on kind (tests/e2e/timeline.py), for one freed worker pod per running trial,
    # which max_parallel_trials already bounds.
    deferrable_trials: bool = False
    # The model servers of more pipelines' models on this platform: model name → the
    # TRAINYARD_SERVING_* settings its deploy stage gets (the platform's own model's are in
    # trainer.env). A model named in neither is deployed by moving its alias alone.
    model_servers: dict[str, dict[str, str]] = field(default_factory=dict)
    # Teams' pipeline specs this platform runs besides its own (dags/team_pipelines.py builds
    # one DAG per spec): spec files, or folders whose *.yaml/*.yml files are all specs (a
    # team's ConfigMap mounted by the chart, whose keys are unknown at render time). `trainyard
    # up --pipeline SPEC` on the laptop, global.pipelines in the chart's values.
    pipelines: list[str] = field(default_factory=list)
    # The shipped digits DAG (dags/ml_training_pipeline.py); false: that file defines no DAG
    # (global.pipelines.digits.enabled in the chart's values).
    builtin_pipeline: bool = True
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    gpu: GpuConfig = field(default_factory=GpuConfig)
    notify: NotifyConfig = field(default_factory=NotifyConfig)

    @property
    def standalone(self) -> bool:
        return self.runtime == "standalone"

    @property
    def train_processes(self) -> int:
        """Data-parallel processes per trial: one per GPU a training pod gets."""
        return self.gpu.count if self.gpu.enabled and not self.standalone else 1


_NESTED = {"trainer": TrainerConfig, "gpu": GpuConfig, "notify": NotifyConfig}


def _build(cls: type[Any], data: Any, where: str) -> Any:
    if not isinstance(data, dict):
        raise PlatformConfigError(f"{where}: expected an object, got {type(data).__name__}")
    known = {f.name: f for f in fields(cls)}
    unknown = sorted(set(data) - set(known))
    if unknown:
        # Written by a newer chart or `trainyard up` (a rolling upgrade's old pods, a rollback's
        # new ones read it too): the keys this code knows still hold, so the DAGs stay up.
        log.warning(
            "platform config %s: ignoring keys this trainyard does not know: %s",
            where or "(top level)",
            ", ".join(unknown),
        )
    values = {}
    for name, value in data.items():
        if name in unknown:
            continue
        key = f"{where}.{name}" if where else name
        if name in _NESTED and cls is PlatformConfig:
            values[name] = _build(_NESTED[name], value, key)
        else:
            values[name] = _check_type(known[name].type, value, key)
    return cls(**values)


def _check_type(annotation: Any, value: Any, key: str) -> Any:
    text = str(annotation)
    expected: tuple[type, ...]
    if text.startswith("bool"):
        expected = (bool,)
    elif text.startswith("int"):
        expected = (int,)
    elif text.startswith("str | None"):
        expected = (str, type(None))
    elif text.startswith("str"):
        expected = (str,)
    elif text.startswith("list"):
        expected = (list,)
    elif text.startswith("dict"):
        expected = (dict,)
    else:
        return value
    if not isinstance(value, expected) or (expected == (int,) and isinstance(value, bool)):
        raise PlatformConfigError(
            f"{key}: expected {' or '.join(t.__name__ for t in expected)}, got {value!r}"
        )
    return value


def parse(data: dict[str, Any]) -> PlatformConfig:
    config: PlatformConfig = _build(PlatformConfig, data, "")
    if config.runtime not in RUNTIMES:
        raise PlatformConfigError(f"runtime: {config.runtime!r} is not one of {list(RUNTIMES)}")
    if config.max_parallel_trials < 1:
        raise PlatformConfigError("max_parallel_trials: must be at least 1")
    if config.schedule is not None and not config.schedule.strip():
        raise PlatformConfigError("schedule: empty; null for manual runs only")
    if config.deadline_minutes < 0:
        raise PlatformConfigError("deadline_minutes: must not be negative (0: no deadline)")
    if config.gpu.enabled and config.gpu.count < 1:
        raise PlatformConfigError("gpu.count: must be at least 1 when gpu.enabled")
    for name in ("schedule_timeout_seconds", "startup_timeout_seconds"):
        if getattr(config.trainer, name) < 1:
            raise PlatformConfigError(f"trainer.{name}: must be at least 1")
    return config


def load(path: str | os.PathLike[str] | None = None) -> PlatformConfig:
    """The platform config from `path` or $TRAINYARD_PLATFORM_CONFIG; defaults if neither."""
    location = path or os.environ.get(ENV_VAR)
    if not location:
        return PlatformConfig()
    try:
        data = json.loads(Path(location).read_text())
    except FileNotFoundError:
        raise PlatformConfigError(f"{ENV_VAR}={location}: file not found") from None
    except json.JSONDecodeError as exc:
        raise PlatformConfigError(f"{location}: not valid JSON ({exc})") from None
    return parse(data)

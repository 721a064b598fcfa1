"""A pipeline spec, read and checked: what the DAG factory builds a DAG from."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

DEFAULT_MAX_TRIALS = 16


@dataclass(frozen=True)
class Stage:
    """One stage's pod (Kubernetes) or process (laptop): the team's command in its image."""

    name: str
    command: list[str]
    args: list[str] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)
    image: str = "cpu"  # which variant of the spec's image: cpu | gpu
    gpus: int | None = None  # None: none (prepare), the platform's count (train)
    processes: int | None = None  # train only; None: one per GPU
    resources: dict[str, dict[str, str]] = field(default_factory=dict)
    volumes: list[dict[str, Any]] = field(default_factory=list)
    volume_mounts: list[dict[str, Any]] = field(default_factory=list)


@dataclass(frozen=True)
class Metric:
    name: str
    direction: str  # max | min
    threshold: float
    min_improvement: float = 0.0
    label: str = ""
    select_by: str = ""

    @property
    def threshold_param(self) -> str:
        """The run parameter holding the threshold: min_accuracy, max_rmse."""
        return f"{'min' if self.direction == 'max' else 'max'}_{self.label}"


@dataclass(frozen=True)
class PipelineSpec:
    name: str
    path: Path  # the spec file; the laptop runs the stages in its folder
    input_url: str
    model_name: str
    experiment: str
    metric: Metric
    search_space: dict[str, list[Any]]
    prepare: list[Stage]
    train: Stage
    description: str = ""
    owner: str = "ml-platform"
    tags: list[str] = field(default_factory=list)
    schedule: str | None = None
    schedule_given: bool = False  # False: the platform's schedule
    work_url: str | None = None
    cpu_image: str | None = None  # None: the platform's trainer image
    gpu_image: str | None = None
    model_description: str = ""
    serve: bool = True
    search_options: list[str] | None = None  # None: any option name
    max_trials: int = DEFAULT_MAX_TRIALS
    parallel_trials: int | None = None
    params: dict[str, dict[str, Any]] = field(default_factory=dict)
    deadline_minutes: int | None = None

    @property
    def folder(self) -> Path:
        return self.path.parent

    def image_for(self, stage: Stage) -> str | None:
        if stage.image == "gpu":
            return self.gpu_image or self.cpu_image
        return self.cpu_image

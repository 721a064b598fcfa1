"""The trial's MLflow run: opened once, resumed by every retry.

The experiment and run name come from the contract's environment; the run is tagged with the
Airflow DAG run, the pipeline and the trial, so a run in MLflow leads back to the task that made
it. A retry passes the run id its checkpoint recorded and continues that run.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

from trainyard.sdk.environment import StageEnvironment, read_environment

if TYPE_CHECKING:
    import mlflow


def run_tags(environment: StageEnvironment) -> dict[str, str]:
    """The tags that link a run to the pipeline task (only those the platform set)."""
    tags = {
        "airflow.dag_run_id": environment.dag_run_id,
        "trainyard.pipeline": environment.pipeline,
        "trainyard.trial": None if environment.trial is None else str(environment.trial),
        "trainyard.stage": environment.stage,
    }
    return {key: value for key, value in tags.items() if value is not None}


def start_trial_run(
    environment: StageEnvironment | None = None,
    *,
    resume_run_id: str | None = None,
    experiment: str | None = None,
    run_name: str | None = None,
    tags: Mapping[str, str] | None = None,
) -> mlflow.ActiveRun:
    """Start (or, with `resume_run_id`, resume) the trial's run; use it as a context manager.

    `experiment` and `run_name` override the environment's TRAINYARD_EXPERIMENT and
    TRAINYARD_RUN_NAME; without either, the experiment is a ContractError naming the variable.
    """
    # Imported here: MLflow takes a second to import, and stages without a run never need it.
    import mlflow  # noqa: PLC0415

    env = environment or read_environment()
    if resume_run_id:
        return mlflow.start_run(run_id=resume_run_id)
    name = experiment or env.require("experiment").experiment
    mlflow.set_experiment(name)
    return mlflow.start_run(
        run_name=run_name or env.run_name, tags={**run_tags(env), **(tags or {})}
    )

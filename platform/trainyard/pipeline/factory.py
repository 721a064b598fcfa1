"""The DAG factory: a pipeline spec (trainyard.spec) and the platform config make one DAG.

Every pipeline has the same shape, the platform's:

    wait_for_training_data → data_preparation [the spec's prepare stages, in order]
      → generate_hyperparams → train (mapped over the search space)
      → select_best → evaluate (the champion gate) → decide_deployment
      → deploy | skip_deployment → notify

The spec's stages run the team's commands in the team's image; select_best, the gate and
deploy are the platform's (`python -m trainyard.stages`, the platform's image) and know no
model: only the spec's metric, its direction and the registered model's name.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Callable
from pathlib import Path
from typing import Any

from airflow.providers.amazon.aws.sensors.s3 import S3KeySensor
from airflow.providers.standard.operators.empty import EmptyOperator
from airflow.sdk import DAG, Asset, Param, TaskGroup, TriggerRule, chain, get_current_context, task

from trainyard.pipeline import alerts, gate, grid, notifications, selection
from trainyard.pipeline.platform import PlatformConfig, StagePod
from trainyard.pipeline.pod_tasks import PodTasks
from trainyard.spec import PipelineSpec, Stage, references

PREPARE_GROUP = "data_preparation"
PLATFORM_STAGES = ["python", "-m", "trainyard.stages"]
SERVING_ENV_PREFIX = "TRAINYARD_SERVING_"
# Where a Kubernetes container's one-line error goes (its terminationMessagePath); the laptop's
# stage runner gives each process a file of its own.
TERMINATION_LOG = "/dev/termination-log"
RUN_ID_PATH = "{{ run_id | replace(':', '') | replace('+', '') }}"


class StageOutputError(KeyError):
    """A stage's result lacks a key a later stage's arguments name."""

    def __str__(self) -> str:
        return str(self.args[0])


def stage_output(ti: Any, task_id: str, key: str) -> Any:
    """`${stages.<stage>.<key>}` in a run: the value, or an error naming what is missing."""
    result = ti.xcom_pull(task_ids=task_id)
    if not isinstance(result, dict) or key not in result:
        keys = sorted(result) if isinstance(result, dict) else result
        raise StageOutputError(f"{task_id} returned no {key!r} (its return.json: {keys})")
    return result[key]


class PipelineDag:
    """The names a spec's `${...}` references stand for, resolved for one platform."""

    def __init__(self, spec: PipelineSpec, platform: PlatformConfig) -> None:
        self.spec, self.platform = spec, platform
        self.model_name = self.resolve(spec.model_name)
        self.experiment = self.resolve(spec.experiment)
        self.input_url = self.resolve(spec.input_url)
        self.work_url = self.resolve(
            spec.work_url or f"${{platform.work_root}}/{spec.name}/{{{{ ds }}}}/{RUN_ID_PATH}"
        )
        self.pods = PodTasks(platform)

    def value(self, name: str) -> str | None:
        """A reference's value at DAG build time; None for `${trial.*}` (set per trial)."""
        fixed = {
            "platform.data_root": self.platform.data_root,
            "platform.work_root": self.platform.work_root,
            "platform.model_name": self.platform.model_name,
            "platform.experiment": self.platform.experiment,
            "pipeline": self.spec.name,
        }
        if name in fixed:
            return fixed[name]
        late = {
            "input": "input_url",
            "work": "work_url",
            "experiment": "experiment",
            "model_name": "model_name",
        }
        if name in late:
            return str(getattr(self, late[name]))
        output = references.STAGE_OUTPUT.match(name)
        if output:
            stage, key = output.groups()
            return f"{{{{ stage_output(ti, '{PREPARE_GROUP}.{stage}', '{key}') }}}}"
        return None

    def resolve(self, text: str) -> str:
        return references.substitute(text, self.value)

    def env(self, stage: str) -> dict[str, str]:
        """The contract's environment of every stage (docs/trainer-contract.md)."""
        env = {
            "TRAINYARD_PIPELINE": self.spec.name,
            "TRAINYARD_STAGE": stage,
            "TRAINYARD_DAG_RUN_ID": "{{ run_id }}",
            "TRAINYARD_DS": "{{ ds }}",
            "TRAINYARD_WORK_URL": self.work_url,
        }
        if not self.platform.standalone:
            env["TRAINYARD_TERMINATION_LOG"] = TERMINATION_LOG
        return env

    def stage_pod(self, stage: Stage) -> StagePod:
        return StagePod(
            image=self.spec.image_for(stage),
            resources=stage.resources,
            gpus=stage.gpus if stage.gpus is not None else (None if stage.name == "train" else 0),
            processes=self.processes(stage) if stage.name == "train" else None,
            volumes=stage.volumes,
            volume_mounts=stage.volume_mounts,
        )

    def processes(self, stage: Stage) -> int:
        if stage.processes:
            return stage.processes
        if stage.gpus is not None and self.platform.gpu.enabled and not self.platform.standalone:
            return max(stage.gpus, 1)
        return self.platform.train_processes

    def serving_env(self) -> dict[str, str]:
        """The deploy stage's model server: the platform's own model's (in the trainer env),
        one the platform names for this model, or none (the alias move is the deployment)."""
        if self.spec.serve and self.model_name == self.platform.model_name:
            return {}
        own = self.platform.model_servers.get(self.model_name) if self.spec.serve else None
        blank = {k: "" for k in self.platform.trainer.env if k.startswith(SERVING_ENV_PREFIX)}
        return {**blank, **(own or {})}

    def user_task(self, stage: Stage, group: str | None = None, **kwargs: Any) -> Any:
        task_id = f"{group}.{stage.name}" if group else stage.name
        return self.pods.operator_class()(
            **self.pods.kwargs(
                stage.name,
                gpu=bool(stage.gpus),
                cmds=stage.command,
                env={**self.env(task_id), **{k: self.resolve(v) for k, v in stage.env.items()}},
                pod=self.stage_pod(stage),
            ),
            arguments=[self.resolve(a) for a in stage.args],
            **self.local_kwargs(),
            **kwargs,
        )

    def platform_task(self, stage: str, options: dict[str, Any], **kwargs: Any) -> Any:
        env = {**self.env(stage), **(self.serving_env() if stage == gate.DEPLOY_TASK else {})}
        return self.pods.task(stage, options, cmds=PLATFORM_STAGES, env=env, **kwargs)

    def local_kwargs(self) -> dict[str, Any]:
        """The laptop runs a team's commands in the spec's folder (the image's WORKDIR)."""
        return {"cwd": str(self.spec.folder)} if self.platform.standalone else {}

    def params(self) -> dict[str, Param]:
        metric, spec = self.spec.metric, self.spec
        options = spec.search_options
        params = {
            "search_space": Param(
                spec.search_space,
                type="object",
                description="option → list of values; every combination is a trial"
                + (f"; options: {', '.join(options)}" if options else ""),
            ),
            "max_trials": Param(spec.max_trials, type="integer", minimum=1),
            "checkpoint_every": Param(
                1, type="integer", minimum=1, description="epochs between a trial's checkpoints"
            ),
        }
        for name, param in spec.params.items():
            fields = {k: v for k, v in param.items() if k != "default"}
            params[name] = Param(param["default"], **fields)
        bound = "minimum" if metric.direction == "max" else "maximum"
        params[metric.threshold_param] = Param(
            metric.threshold, type="number", description=f"the candidate's {metric.label}: {bound}"
        )
        params["min_improvement"] = Param(
            metric.min_improvement,
            type="number",
            minimum=0,
            description=f"over the champion's {metric.label}",
        )
        params["force_deploy"] = Param(
            False, type="boolean", description="promote even a version that was rolled back"
        )
        return params

    def trial_env(self) -> dict[str, str]:
        index = "{{ ti.map_index }}"
        return {
            "TRAINYARD_EXPERIMENT": self.experiment,
            "TRAINYARD_RUN_NAME": "{{ trial_labels(params.search_space, params.max_trials)"
            "[ti.map_index] }}",
            "TRAINYARD_TRIAL": index,
            "TRAINYARD_CHECKPOINT_URL": self.checkpoint_url("{{ '%03d' % ti.map_index }}"),
            "TRAINYARD_CHECKPOINT_EVERY": "{{ params.checkpoint_every }}",
            "TRAINYARD_PROCESSES": str(self.processes(self.spec.train)),
        }

    def checkpoint_url(self, index: str) -> str:
        return f"{self.work_url}/checkpoints/trial-{index}.pt"

    def build(self) -> DAG:
        spec, platform = self.spec, self.platform
        metric = spec.metric
        alerting = dataclasses.replace(
            platform,
            deadline_minutes=(
                platform.deadline_minutes
                if spec.deadline_minutes is None
                else spec.deadline_minutes
            ),
        )
        champion = Asset(
            name=f"{self.model_name}_champion", uri=f"mlflow://models/{self.model_name}/champion"
        )
        train_args = [self.resolve(a) for a in spec.train.args]
        allowed_options = spec.search_options
        processes = self.processes(spec.train)

        with DAG(
            dag_id=spec.name,
            schedule=spec.schedule if spec.schedule_given else platform.schedule,
            start_date=dt.datetime(2026, 1, 1, tzinfo=dt.UTC),
            catchup=False,
            max_active_runs=1,
            doc_md=spec.description or None,
            tags=["trainyard", *spec.tags],
            user_defined_macros={"trial_labels": grid.trial_labels, "stage_output": stage_output},
            on_failure_callback=alerts.RunFailureAlert(alerting),
            deadline=alerts.deadline(alerting),
            default_args={
                "owner": spec.owner,
                "retries": platform.task_retries,
                "retry_delay": dt.timedelta(seconds=platform.retry_delay_seconds),
                "execution_timeout": dt.timedelta(minutes=platform.execution_timeout_minutes),
                "on_failure_callback": alerts.record_error,
            },
            params=self.params(),
        ) as dag:
            wait_for_training_data = S3KeySensor(
                task_id="wait_for_training_data",
                bucket_key=self.input_url,
                aws_conn_id=platform.storage_conn_id,
                deferrable=True,
                poke_interval=platform.sensor_poke_seconds,
                timeout=platform.sensor_timeout_minutes * 60,
                executor=platform.inline_executor,
            )

            with TaskGroup(PREPARE_GROUP) as data_preparation:
                prepared = [self.user_task(stage, PREPARE_GROUP) for stage in spec.prepare]
                if prepared:
                    chain(*prepared)
                else:
                    EmptyOperator(task_id="nothing")

            @task(executor=platform.inline_executor)
            def generate_hyperparams(arguments: list[str]) -> list[list[str]]:
                """One full train argument list per trial: the stage's rendered arguments, its
                `${trial.*}` set, then the trial's options as flags."""
                context = get_current_context()
                params = context["params"]
                trials = grid.expand(params["search_space"], params["max_trials"], allowed_options)
                return trial_arguments(
                    arguments,
                    trials,
                    lambda index: self.resolve_rendered_checkpoint(context, index),
                    processes,
                )

            trials = generate_hyperparams(train_args)
            train = self.pods.partial(
                "train",
                gpu=True,
                cmds=spec.train.command,
                env={
                    **self.env("train"),
                    **self.trial_env(),
                    **{k: self.resolve(v) for k, v in spec.train.env.items()},
                },
                pod=self.stage_pod(spec.train),
                max_active_tis_per_dag=spec.parallel_trials or platform.max_parallel_trials,
                map_index_template="{{ trial_labels(params.search_space, params.max_trials)"
                "[ti.map_index] }}",
                **self.local_kwargs(),
            ).expand(arguments=trials)

            @task(
                trigger_rule=TriggerRule.ALL_DONE_MIN_ONE_SUCCESS,
                multiple_outputs=True,
                executor=platform.inline_executor,
            )
            def select_best(results: list[Any]) -> dict[str, Any]:
                return selection.select_best(results, metric.select_by, metric.direction)

            # Indexed by key: multiple_outputs (a typed XComArg does not say so).
            best: Any = select_best(train.output)

            evaluate = self.platform_task(
                "evaluate",
                {
                    "model_uri": best["model_uri"],
                    "run_id": best["run_id"],
                    "model_name": self.model_name,
                    "metric": metric.name,
                    "label": metric.label,
                    "direction": metric.direction,
                    "threshold": f"{{{{ params.{metric.threshold_param} }}}}",
                    "min_improvement": "{{ params.min_improvement }}",
                },
                multiple_outputs=True,
            )

            @task.branch(executor=platform.inline_executor)
            def decide_deployment(deploy: bool) -> str:
                return gate.branch_for(deploy)

            deploy = self.platform_task(
                "deploy",
                {
                    "model_uri": best["model_uri"],
                    "run_id": best["run_id"],
                    "model_name": self.model_name,
                    "tag": "airflow.dag_run_id={{ run_id }}",
                    "force_deploy": "{{ params.force_deploy }}",
                },
                task_id=gate.DEPLOY_TASK,
                outlets=[champion],
            )
            skip_deployment = EmptyOperator(task_id=gate.SKIP_TASK)

            @task(
                trigger_rule=TriggerRule.NONE_FAILED_MIN_ONE_SUCCESS,
                executor=platform.inline_executor,
            )
            def notify(best: dict[str, Any], evaluation: dict[str, Any]) -> dict[str, Any]:
                context = get_current_context()
                deployment = context["ti"].xcom_pull(task_ids=gate.DEPLOY_TASK)
                summary = notifications.summarize(context["run_id"], best, evaluation, deployment)
                summary["channels"] = notifications.send(summary, alerting, context)
                return summary

            chain(wait_for_training_data, data_preparation, trials)
            branch = decide_deployment(evaluate.output["deploy"])
            summary = notify(best, evaluate.output)
            chain(evaluate, branch, [deploy, skip_deployment], summary)
        return dag

    def resolve_rendered_checkpoint(self, context: Any, index: int) -> str:
        """This trial's checkpoint URL in a running task (the work prefix rendered)."""
        rendered: str = context["task"].render_template(
            self.checkpoint_url(f"{index:03d}"), context
        )
        return rendered


def trial_arguments(
    arguments: list[str],
    trials: list[dict[str, Any]],
    checkpoint: Callable[[int], str],
    processes: int,
) -> list[list[str]]:
    """One full train argument list per trial: the train stage's (rendered) arguments with
    their `${trial.*}` set, then the trial's options as `--<option> <value>`."""
    lists = []
    for index, trial in enumerate(trials):
        values = {
            "trial.index": str(index),
            "trial.label": grid.trial_label(trial),
            "trial.checkpoint": checkpoint(index),
            "trial.processes": str(processes),
        }
        own = [references.substitute(a, values.get) for a in arguments]
        lists.append(own + grid.option_flags(trial))
    return lists


def build_dag(spec: PipelineSpec, platform: PlatformConfig) -> DAG:
    return PipelineDag(spec, platform).build()


def spec_folder_dags(folder: str | Path, platform: PlatformConfig) -> dict[str, DAG]:
    """One DAG per spec file in `folder` (a bad spec fails the DAG file with its one line)."""
    from trainyard.spec import load_folder  # noqa: PLC0415

    return {spec.name: build_dag(spec, platform) for spec in load_folder(folder)}

"""
### ML training pipeline

Daily (the platform's `schedule`; manual runs only on the laptop): wait for the
day's data in the object store → validate, preprocess and engineer features →
train a hyperparameter grid as mapped (GPU) pod tasks → select the best trial →
gate it against the MLflow `champion` (fails closed) → deploy (move the
`champion` alias, roll the model server out, smoke-test it, and move the alias
back if it fails) or skip → notify. A failed run, and a run past its deadline,
alert through the same channels as notify.

Every trainer step is `python -m trainyard.trainer <stage>`: a pod on
Kubernetes, a local process in standalone mode, chosen by the platform config
(`TRAINYARD_PLATFORM_CONFIG`). The sensor and the small Python steps run inline
(on Kubernetes: the scheduler pod's LocalExecutor, no worker pod of their own).
Trigger with a config to override the search space, epochs or the gate's thresholds.
"""

from __future__ import annotations

import datetime as dt

from airflow.providers.amazon.aws.sensors.s3 import S3KeySensor
from airflow.providers.standard.operators.empty import EmptyOperator
from airflow.sdk import (
    DAG,
    Asset,
    Param,
    TaskGroup,
    TriggerRule,
    chain,
    get_current_context,
    task,
)

from trainyard.pipeline import alerts, gate, grid, notifications, selection
from trainyard.pipeline.platform import load as load_platform
from trainyard.pipeline.pod_tasks import PodTasks
from trainyard.trainer import config as trainer_config
from trainyard.trainer.schema import daily_data_url

platform = load_platform()
pods = PodTasks(platform)

DATA = daily_data_url(platform.data_root, "{{ ds }}")
WORK = platform.work_root + "/{{ ds }}/{{ run_id | replace(':', '') | replace('+', '') }}"
# A mapped trial is shown by its hyperparameters ("optimizer=adam lr=0.001 batch_size=32").
TRIAL_LABEL = "{{ trial_labels(params.search_space, params.max_trials)[ti.map_index] }}"
CHAMPION = Asset(
    name=f"{platform.model_name}_champion", uri=f"mlflow://models/{platform.model_name}/champion"
)

with DAG(
    dag_id="ml_training_pipeline",
    # "@daily" unless the platform says otherwise; the laptop platform: manual runs only.
    schedule=platform.schedule,
    start_date=dt.datetime(2026, 1, 1, tzinfo=dt.UTC),
    catchup=False,
    max_active_runs=1,
    doc_md=__doc__,
    tags=["trainyard", "training", "mlflow"],
    user_defined_macros={"trial_labels": grid.trial_labels},
    # A failed run alerts with its failed task, that task's one-line error and log URL;
    # a run still going `deadline_minutes` after being queued alerts too.
    on_failure_callback=alerts.RunFailureAlert(platform),
    deadline=alerts.deadline(platform),
    default_args={
        "owner": "ml-platform",
        "retries": platform.task_retries,
        "retry_delay": dt.timedelta(seconds=platform.retry_delay_seconds),
        "execution_timeout": dt.timedelta(minutes=platform.execution_timeout_minutes),
        "on_failure_callback": alerts.record_error,
    },
    params={
        "search_space": Param(
            {"optimizer": ["adam", "adamw"], "lr": [0.001, 0.003], "batch_size": [32]},
            type="object",
            description="option → list of values; every combination is a trial; options: "
            + ", ".join(grid.OPTIONS),
        ),
        "max_trials": Param(16, type="integer", minimum=1, description="refuse larger grids"),
        "epochs": Param(trainer_config.DEFAULTS.epochs, type="integer", minimum=1, maximum=500),
        "seed": Param(42, type="integer", description="data split seed"),
        "checkpoint_every": Param(
            1, type="integer", minimum=1, description="epochs between a trial's checkpoints"
        ),
        "min_accuracy": Param(
            trainer_config.DEFAULT_MIN_ACCURACY, type="number", minimum=0, maximum=1
        ),
        "min_improvement": Param(
            trainer_config.DEFAULT_MIN_IMPROVEMENT,
            type="number",
            minimum=0,
            maximum=1,
            description="over the champion's accuracy",
        ),
        "force_deploy": Param(
            False, type="boolean", description="promote even a version that was rolled back"
        ),
    },
) as dag:
    wait_for_training_data = S3KeySensor(
        task_id="wait_for_training_data",
        bucket_key=DATA,
        aws_conn_id=platform.storage_conn_id,
        deferrable=True,
        poke_interval=platform.sensor_poke_seconds,
        timeout=platform.sensor_timeout_minutes * 60,
        executor=platform.inline_executor,
    )

    with TaskGroup("data_preparation") as data_preparation:
        validate = pods.task("validate", {"data": DATA})
        preprocess = pods.task(
            "preprocess", {"data": DATA, "output": WORK + "/prepared", "seed": "{{ params.seed }}"}
        )
        features = pods.task(
            "features",
            {"prepared": WORK + "/prepared", "output": WORK + "/features"},
            multiple_outputs=True,
        )
        chain(validate, preprocess, features)
        manifest_url = features.output["manifest_url"]

    @task(executor=platform.inline_executor)
    def generate_hyperparams(manifest_url: str, checkpoints: str) -> list[list[str]]:
        context = get_current_context()
        params = context["params"]
        trials = grid.expand(params["search_space"], params["max_trials"])
        return grid.train_arguments(
            trials,
            manifest_url,
            platform.experiment,
            params["epochs"],
            context["run_id"],
            processes=platform.train_processes,
            checkpoint_root=checkpoints,
            checkpoint_every=params["checkpoint_every"],
        )

    train = pods.partial(
        "train",
        gpu=True,
        max_active_tis_per_dag=platform.max_parallel_trials,
        map_index_template=TRIAL_LABEL,
    ).expand(arguments=generate_hyperparams(manifest_url, WORK + "/checkpoints"))

    @task(
        trigger_rule=TriggerRule.ALL_DONE_MIN_ONE_SUCCESS,
        multiple_outputs=True,
        executor=platform.inline_executor,
    )
    def select_best(results: list) -> dict:
        return selection.select_best(results)

    best = select_best(train.output)

    evaluate = pods.task(
        "evaluate",
        {
            "model_uri": best["model_uri"],
            "run_id": best["run_id"],
            "features": manifest_url,
            "model_name": platform.model_name,
            "min_accuracy": "{{ params.min_accuracy }}",
            "min_improvement": "{{ params.min_improvement }}",
        },
        multiple_outputs=True,
    )

    @task.branch(executor=platform.inline_executor)
    def decide_deployment(deploy: bool) -> str:
        return gate.branch_for(deploy)

    deploy = pods.task(
        "deploy",
        {
            "model_uri": best["model_uri"],
            "run_id": best["run_id"],
            "model_name": platform.model_name,
            "features": manifest_url,
            "tag": "airflow.dag_run_id={{ run_id }}",
            "force_deploy": "{{ params.force_deploy }}",
        },
        task_id=gate.DEPLOY_TASK,
        outlets=[CHAMPION],
    )
    skip_deployment = EmptyOperator(task_id=gate.SKIP_TASK)

    @task(trigger_rule=TriggerRule.NONE_FAILED_MIN_ONE_SUCCESS, executor=platform.inline_executor)
    def notify(best: dict, evaluation: dict) -> dict:
        context = get_current_context()
        deployment = context["ti"].xcom_pull(task_ids=gate.DEPLOY_TASK)
        summary = notifications.summarize(context["run_id"], best, evaluation, deployment)
        summary["channels"] = notifications.send(summary, platform, context)
        return summary

    chain(wait_for_training_data, data_preparation)
    branch = decide_deployment(evaluate.output["deploy"])
    chain(evaluate, branch, [deploy, skip_deployment], notify(best, evaluate.output))

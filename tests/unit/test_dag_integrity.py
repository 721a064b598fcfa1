"""The DAG file: imports cleanly, has the designed shape, and stays light to parse."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

DAGS = Path(__file__).resolve().parents[2] / "dags"
DAG_ID = "ml_training_pipeline"


def load_dag(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, **config):  # type: ignore[no-untyped-def]
    from airflow.dag_processing.dagbag import DagBag  # noqa: PLC0415

    path = tmp_path / "platform.json"
    path.write_text(json.dumps(config))
    monkeypatch.setenv("TRAINYARD_PLATFORM_CONFIG", str(path))
    bag = DagBag(dag_folder=str(DAGS))
    assert bag.import_errors == {}
    return bag.dags[DAG_ID]


@pytest.fixture
def dag(tmp_path, monkeypatch):
    return load_dag(tmp_path, monkeypatch, runtime="standalone")


def test_tasks_and_dependencies_are_as_designed(dag):
    downstream = {task.task_id: sorted(task.downstream_task_ids) for task in dag.tasks}
    assert downstream == {
        "wait_for_training_data": ["data_preparation.validate"],
        "data_preparation.validate": ["data_preparation.preprocess"],
        "data_preparation.preprocess": ["data_preparation.features"],
        # Its manifest_url output feeds the trials; the gate and deploy know no data set.
        "data_preparation.features": ["generate_hyperparams"],
        "generate_hyperparams": ["train"],
        "train": ["select_best"],
        "select_best": ["deploy", "evaluate", "notify"],
        "evaluate": ["decide_deployment", "notify"],
        "decide_deployment": ["deploy", "skip_deployment"],
        "deploy": ["notify"],
        "skip_deployment": ["notify"],
        "notify": [],
    }


def test_schedule_defaults_and_params(dag):
    assert dag.schedule == "@daily" or str(dag.timetable.summary) == "@daily"
    assert dag.catchup is False
    assert dag.max_active_runs == 1
    assert dag.doc_md and "champion" in dag.doc_md
    assert {"trainyard", "training"} <= set(dag.tags)
    assert dag.default_args["retries"] >= 0
    assert dag.default_args["retry_delay"].total_seconds() > 0
    assert dag.default_args["execution_timeout"].total_seconds() > 0
    params = dag.params.dump()
    assert params["min_accuracy"] == 0.90
    assert params["min_improvement"] == 0.005
    assert params["epochs"] == 10
    assert set(params["search_space"]) == {"optimizer", "lr", "batch_size"}


def test_param_defaults_are_the_trainers(dag):
    from digits import config  # noqa: PLC0415
    from trainyard.pipeline import grid  # noqa: PLC0415

    params = dag.params.dump()
    assert params["epochs"] == config.TrainConfig().epochs
    assert params["min_accuracy"] == config.DEFAULT_MIN_ACCURACY
    assert params["min_improvement"] == config.DEFAULT_MIN_IMPROVEMENT
    grid.expand(params["search_space"], params["max_trials"], config.SEARCHABLE)  # a valid grid


def test_trials_read_the_manifest_url_from_the_features_task(dag):
    arguments = dag.get_task("generate_hyperparams").op_args[0]
    manifest = arguments[arguments.index("--features") + 1]
    assert manifest == ("{{ stage_output(ti, 'data_preparation.features', 'manifest_url') }}")


def test_the_gate_and_deploy_are_the_platforms_stages_on_the_specs_metric(dag):
    evaluate, deploy = dag.get_task("evaluate"), dag.get_task("deploy")
    assert evaluate.cmds == deploy.cmds == ["python", "-m", "trainyard.stages"]
    arguments = evaluate.arguments
    option = {arguments[i]: arguments[i + 1] for i in range(1, len(arguments) - 1, 2)}
    assert option["--metric"] == "test_accuracy" and option["--direction"] == "max"
    assert option["--threshold"] == "{{ params.min_accuracy }}"
    assert "--features" not in deploy.arguments


def test_each_trial_is_labelled_by_its_hyperparameters(dag):
    """The map index label is the trial's, the same text as its MLflow run name."""
    from types import SimpleNamespace  # noqa: PLC0415

    from trainyard.pipeline import factory, grid  # noqa: PLC0415

    params = {"search_space": {"optimizer": ["adam", "sgd"], "lr": [0.1]}, "max_trials": 4}
    template = dag.get_template_env().from_string(dag.get_task("train").map_index_template)
    labels = [
        template.render(params=params, ti=SimpleNamespace(map_index=index)) for index in (0, 1)
    ]
    assert labels == ["optimizer=adam lr=0.1", "optimizer=sgd lr=0.1"]
    trials = grid.expand(params["search_space"], 4)
    commands = factory.trial_arguments(["--run-name", "${trial.label}"], trials, str, 1)
    assert labels == [command[command.index("--run-name") + 1] for command in commands]


def test_trigger_rules_let_failed_trials_through_and_fail_closed(dag):
    assert dag.get_task("select_best").trigger_rule == "all_done_min_one_success"
    assert dag.get_task("notify").trigger_rule == "none_failed_min_one_success"
    assert dag.get_task("evaluate").trigger_rule == "all_success"
    assert dag.get_task("evaluate").multiple_outputs is True


def test_sensor_is_deferrable_and_waits_for_the_days_file(dag):
    sensor = dag.get_task("wait_for_training_data")
    assert sensor.deferrable is True
    assert sensor.bucket_key == "s3://datasets/digits/daily/{{ ds }}/features.parquet"
    assert sensor.poke_interval > 0 and sensor.timeout > 0


def test_training_is_mapped_and_bounded(dag):
    train = dag.get_task("train")
    assert train.is_mapped
    assert train.max_active_tis_per_dag == 4  # platform default
    assert dag.get_task("deploy").outlets[0].name == "digits_champion"


def test_standalone_runs_the_trainer_as_a_local_process(dag):
    from trainyard.pipeline.local_pod import LocalPodOperator  # noqa: PLC0415

    validate = dag.get_task("data_preparation.validate")
    assert isinstance(validate, LocalPodOperator)
    assert validate.cmds == ["python", "-m", "digits"]
    assert validate.arguments[0] == "validate"


def test_kubernetes_runtime_builds_gpu_pods_from_the_platform_config(tmp_path, monkeypatch):
    """The same DAG file on the Kubernetes runtime: a real pod spec, built without a cluster."""
    from airflow.providers.cncf.kubernetes.operators.pod import (  # noqa: PLC0415
        KubernetesPodOperator,
    )

    from trainyard.pipeline.platform import parse  # noqa: PLC0415
    from trainyard.pipeline.pod_tasks import PodTasks  # noqa: PLC0415

    config = {
        "runtime": "kubernetes",
        "trainer": {
            "image": "registry.example/trainyard/trainer:1.2.3",
            "namespace": "ml-training",
            "service_account": "trainyard-trainer",
            "env": {"MLFLOW_TRACKING_URI": "http://mlflow.trainyard:5000"},
            "env_from_secrets": ["trainyard-object-store"],
            "resources": {"requests": {"cpu": "1", "memory": "2Gi"}, "limits": {"memory": "4Gi"}},
        },
        "gpu": {
            "enabled": True,
            "count": 2,
            "runtime_class_name": "nvidia",
            "tolerations": [
                {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}
            ],
            "node_selector": {"trainyard.io/pool": "gpu"},
            "affinity": {
                "nodeAffinity": {
                    "requiredDuringSchedulingIgnoredDuringExecution": {
                        "nodeSelectorTerms": [
                            {
                                "matchExpressions": [
                                    {
                                        "key": "nvidia.com/gpu.product",
                                        "operator": "In",
                                        "values": ["NVIDIA-H100"],
                                    }
                                ]
                            }
                        ]
                    }
                }
            },
        },
    }
    dag = load_dag(tmp_path, monkeypatch, **config)
    assert isinstance(dag.get_task("evaluate"), KubernetesPodOperator)
    # Trials wait in their worker pod unless the platform defers them; no other step defers.
    assert dag.get_task("train").partial_kwargs["deferrable"] is False
    assert dag.get_task("evaluate").deferrable is False
    deferred = load_dag(tmp_path, monkeypatch, **config, deferrable_trials=True)
    assert deferred.get_task("train").partial_kwargs["deferrable"] is True
    assert deferred.get_task("evaluate").deferrable is False

    pods = PodTasks(parse(config))
    kwargs = pods.kwargs("train", gpu=True, cmds=["python", "-m", "digits"])
    trainer = KubernetesPodOperator(**kwargs, arguments=["train"])
    pod = trainer.build_pod_request_obj(dry_run=True)
    spec, container = pod.spec, pod.spec.containers[0]
    assert pod.metadata.namespace == "ml-training"
    assert container.image == "registry.example/trainyard/trainer:1.2.3"
    assert container.command == ["python", "-m", "digits"]
    assert container.args == ["train"]
    assert container.resources.limits == {"memory": "4Gi", "nvidia.com/gpu": "2"}
    assert container.resources.requests == {"cpu": "1", "memory": "2Gi"}
    assert container.env_from[0].secret_ref.name == "trainyard-object-store"
    assert {e.name: e.value for e in container.env}["MLFLOW_TRACKING_URI"].startswith("http://")
    assert spec.tolerations[0].key == "nvidia.com/gpu"
    assert spec.node_selector == {"trainyard.io/pool": "gpu"}
    assert spec.runtime_class_name == "nvidia"
    assert spec.service_account_name == "trainyard-trainer"
    terms = spec.affinity.node_affinity.required_during_scheduling_ignored_during_execution
    assert terms.node_selector_terms[0].match_expressions[0].values == ["NVIDIA-H100"]
    assert container.security_context.allow_privilege_escalation is False
    # The trainer's error line (or a crash's log tail) becomes the task's exception.
    assert container.termination_message_policy == "FallbackToLogsOnError"
    assert spec.security_context.run_as_non_root is True
    assert pod.metadata.labels["app.kubernetes.io/part-of"] == "trainyard"

    # CPU fallback: the same task without GPU limits, tolerations or selectors.
    cpu = PodTasks(parse({**config, "gpu": {**config["gpu"], "enabled": False}}))
    kwargs = cpu.kwargs("train", gpu=True, cmds=["python", "-m", "digits"])
    pod = KubernetesPodOperator(**kwargs, arguments=["train"])
    pod = pod.build_pod_request_obj(dry_run=True)
    assert "nvidia.com/gpu" not in (pod.spec.containers[0].resources.limits or {})
    assert not pod.spec.tolerations and not pod.spec.node_selector


def test_dag_file_does_not_import_heavy_modules(tmp_path):
    """Parsing must stay cheap: no torch, MLflow, pandas or Kubernetes client at parse time."""
    config = tmp_path / "platform.json"
    config.write_text(json.dumps({"runtime": "standalone"}))
    probe = (
        "import sys, runpy\n"
        f"runpy.run_path({str(DAGS / 'ml_training_pipeline.py')!r})\n"
        "heavy = [m for m in ('torch', 'mlflow', 'pandas', 'sklearn', 'kubernetes')"
        " if m in sys.modules]\n"
        "print(','.join(heavy))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "TRAINYARD_PLATFORM_CONFIG": str(config)},
    )
    assert out.stdout.strip().splitlines()[-1:] in ([], [""]), out.stdout


INLINE_TASKS = {
    "wait_for_training_data",
    "generate_hyperparams",
    "select_best",
    "decide_deployment",
    "notify",
}


def test_inline_tasks_take_the_platforms_inline_executor_and_pod_tasks_do_not(
    tmp_path, monkeypatch
):
    """On Kubernetes the sensor and the Python tasks on XComs run in the chart's inline
    executor (no worker pod each); every trainer step keeps the default executor, whose
    worker pod launches its trainer pod. Without an inline executor nothing names one."""
    dag = load_dag(tmp_path, monkeypatch, runtime="kubernetes", inline_executor="LocalExecutor")
    executors = {task.task_id: task.executor for task in dag.tasks}
    assert {t for t, e in executors.items() if e == "LocalExecutor"} == INLINE_TASKS
    assert {e for t, e in executors.items() if t not in INLINE_TASKS} == {None}
    plain = load_dag(tmp_path, monkeypatch, runtime="standalone")
    assert {task.executor for task in plain.tasks} == {None}

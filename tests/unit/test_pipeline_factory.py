"""The DAG factory: any spec gets the platform's shape, the team's commands in the team's image,
and the platform's own stages in the platform's image."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from tests.unit.test_pipeline_spec import minimal
from trainyard.pipeline.factory import build_dag
from trainyard.pipeline.platform import parse
from trainyard.spec import load

pytestmark = pytest.mark.unit

SHAPE = {
    "wait_for_training_data",
    "data_preparation.validate",
    "generate_hyperparams",
    "train",
    "select_best",
    "evaluate",
    "decide_deployment",
    "deploy",
    "skip_deployment",
    "notify",
}
SERVING = {"TRAINYARD_SERVING_URL": "http://digits:8080", "TRAINYARD_SERVING_DEPLOYMENT": "d"}


def spec_file(tmp_path: Path, **changes) -> Path:  # type: ignore[no-untyped-def]
    document = minimal()
    document["image"] = {"cpu": "team/diabetes:1.0", "gpu": "team/diabetes:1.0-cuda"}
    document["stages"]["train"].update(
        gpus=2,
        volumes=[{"name": "ckpt", "persistentVolumeClaim": {"claimName": "team-ckpt"}}],
        volumeMounts=[{"name": "ckpt", "mountPath": "/ckpt"}],
        resources={"limits": {"memory": "8Gi"}},
    )
    document.update(changes)
    path = tmp_path / "diabetes.yaml"
    path.write_text(yaml.safe_dump(document))
    return path


def env_of(value) -> dict:  # type: ignore[no-untyped-def]
    """An operator's env_vars: a dict until the pod is built, V1EnvVars after."""
    return dict(value) if isinstance(value, dict) else {e.name: e.value for e in value}


def kubernetes(**extra):  # type: ignore[no-untyped-def]
    return parse(
        {
            "runtime": "kubernetes",
            "trainer": {"image": "trainyard/trainer:9", "env": dict(SERVING)},
            "gpu": {"enabled": True, "count": 1, "node_selector": {"pool": "gpu"}},
            **extra,
        }
    )


def test_a_teams_spec_gets_the_platforms_shape_on_the_laptop(tmp_path):
    dag = build_dag(load(spec_file(tmp_path)), parse({"runtime": "standalone"}))
    assert dag.dag_id == "diabetes" and set(dag.task_ids) == SHAPE
    validate = dag.get_task("data_preparation.validate")
    assert validate.cmds == ["bash", "validate.sh"]
    assert validate.arguments == ["s3://datasets/diabetes/daily/{{ ds }}/data.csv"]
    # The team's relative paths are the spec folder's, as the image's WORKDIR holds them.
    assert validate.cwd == str(tmp_path.resolve())
    assert dag.get_task("evaluate").cwd is None
    params = dag.params.dump()
    assert params["max_rmse"] == 80 and params["min_improvement"] == 0.0
    assert params["search_space"] == {"alpha": [0.1, 1.0]}
    env = validate.env_vars
    assert env["TRAINYARD_PIPELINE"] == "diabetes" and env["TRAINYARD_DS"] == "{{ ds }}"
    assert env["TRAINYARD_WORK_URL"].startswith("s3://datasets/runs/diabetes/{{ ds }}/")
    assert "TRAINYARD_TERMINATION_LOG" not in env  # the laptop's stage runner sets its own


def test_on_kubernetes_each_stage_runs_in_its_image_with_its_resources(tmp_path):
    dag = build_dag(load(spec_file(tmp_path)), kubernetes())
    validate = dag.get_task("data_preparation.validate")
    assert validate.image == "team/diabetes:1.0"
    assert validate.node_selector in ({}, None)  # a CPU stage: no GPU pool, no CUDA image
    env = env_of(validate.env_vars)
    assert env["TRAINYARD_TERMINATION_LOG"] == "/dev/termination-log"

    train = dag.get_task("train").partial_kwargs
    assert train["image"] == "team/diabetes:1.0-cuda"
    assert train["container_resources"].limits == {"memory": "8Gi", "nvidia.com/gpu": "2"}
    assert train["node_selector"] == {"pool": "gpu"}
    assert [v.name for v in train["volumes"]] == ["ckpt", "dshm"]  # two processes: shm too
    assert [m.mount_path for m in train["volume_mounts"]] == ["/ckpt", "/dev/shm"]
    trial_env = env_of(train["env_vars"])
    assert trial_env["TRAINYARD_PROCESSES"] == "2"
    assert trial_env["TRAINYARD_EXPERIMENT"] == "trainyard-diabetes-regressor"
    assert trial_env["TRAINYARD_CHECKPOINT_URL"].endswith(
        "/checkpoints/trial-{{ '%03d' % ti.map_index }}.pt"
    )

    for task_id in ("evaluate", "deploy"):
        platform_stage = dag.get_task(task_id)
        assert platform_stage.image == "trainyard/trainer:9", task_id
        assert platform_stage.cmds == ["python", "-m", "trainyard.stages"], task_id


def test_a_model_the_platform_serves_nothing_for_is_deployed_by_its_alias_alone(tmp_path):
    spec = load(spec_file(tmp_path))
    deploy = build_dag(spec, kubernetes()).get_task("deploy")
    env = env_of(deploy.env_vars)
    assert env["TRAINYARD_SERVING_URL"] == env["TRAINYARD_SERVING_DEPLOYMENT"] == ""

    own = {"TRAINYARD_SERVING_URL": "http://diabetes:8080", "TRAINYARD_SERVING_LOCAL_DIR": "/s"}
    deploy = build_dag(spec, kubernetes(model_servers={"diabetes-regressor": own})).get_task(
        "deploy"
    )
    env = env_of(deploy.env_vars)
    assert env["TRAINYARD_SERVING_URL"] == "http://diabetes:8080"
    assert env["TRAINYARD_SERVING_DEPLOYMENT"] == ""


def test_the_spec_schedule_wins_and_its_absence_takes_the_platforms(tmp_path):
    platform = parse({"runtime": "standalone", "schedule": None})
    assert build_dag(load(spec_file(tmp_path)), platform).schedule is None
    dag = build_dag(load(spec_file(tmp_path, schedule="0 3 * * *")), platform)
    assert dag.schedule == "0 3 * * *"

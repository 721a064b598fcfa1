"""dags/ over a platform config like the chart renders with global.pipelines set: the team's specs
(a mounted ConfigMap folder) are DAGs in their own image, the shipped digits DAG is switched off."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

REPO = Path(__file__).resolve().parents[2]
DAGS = REPO / "dags"
DIABETES = REPO / "examples" / "diabetes" / "pipeline.yaml"


def dag_bag(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, **config):  # type: ignore[no-untyped-def]
    from airflow.dag_processing.dagbag import DagBag  # noqa: PLC0415

    path = tmp_path / "platform.json"
    path.write_text(json.dumps({"runtime": "kubernetes", **config}))
    monkeypatch.setenv("TRAINYARD_PLATFORM_CONFIG", str(path))
    return DagBag(dag_folder=str(DAGS))


def configmap_folder(tmp_path: Path) -> Path:
    """A folder as the kubelet mounts a ConfigMap: keys are links into a hidden data folder."""
    folder = tmp_path / "configmaps" / "team-a"
    data = folder / "..2026_01_01_00_00_00.000000001"
    data.mkdir(parents=True)
    shutil.copy(DIABETES, data / "diabetes_regression.yaml")
    (folder / "..data").symlink_to(data.name)
    (folder / "diabetes_regression.yaml").symlink_to("..data/diabetes_regression.yaml")
    return folder


def test_a_teams_configmap_folder_is_its_dags_and_digits_can_be_off(tmp_path, monkeypatch):
    folder = configmap_folder(tmp_path)
    bag = dag_bag(tmp_path, monkeypatch, pipelines=[str(folder)], builtin_pipeline=False)
    assert bag.import_errors == {}
    assert set(bag.dag_ids) == {"diabetes_regression"}
    dag = bag.dags["diabetes_regression"]
    image = "registry.example.com/ml/diabetes-trainer:0.1.0"  # the spec's image.cpu
    assert dag.get_task("data_preparation.validate").image == image
    assert dag.get_task("train").partial_kwargs["image"] == image


def test_digits_stays_on_beside_a_spec_file(tmp_path, monkeypatch):
    bag = dag_bag(tmp_path, monkeypatch, pipelines=[str(DIABETES)])
    assert bag.import_errors == {}
    assert set(bag.dag_ids) == {"diabetes_regression", "ml_training_pipeline"}


def test_an_empty_folder_and_a_name_twice_are_one_line_import_errors(tmp_path, monkeypatch):
    empty = tmp_path / "configmaps" / "missing"
    empty.mkdir(parents=True)  # an optional ConfigMap volume whose ConfigMap does not exist
    bag = dag_bag(tmp_path, monkeypatch, pipelines=[str(empty)], builtin_pipeline=False)
    (error,) = bag.import_errors.values()
    assert f"{empty}: no pipeline spec files (.yaml, .yml)" in error

    twice = dag_bag(
        tmp_path,
        monkeypatch,
        pipelines=[str(DIABETES), str(configmap_folder(tmp_path))],
        builtin_pipeline=False,
    )
    (error,) = twice.import_errors.values()
    assert "name: 'diabetes_regression' is also the name of" in error

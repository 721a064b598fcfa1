"""Pipeline specs: the shipped digits spec loads, and every mistake is one line naming the file
and the field."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from trainyard.spec import SpecError, load, load_folder

pytestmark = pytest.mark.unit

DIGITS = Path(__file__).resolve().parents[2] / "dags" / "pipelines" / "digits.yaml"


def minimal() -> dict[str, Any]:
    return {
        "apiVersion": "trainyard/v1",
        "name": "diabetes",
        "input": {"url": "s3://datasets/diabetes/daily/{{ ds }}/data.csv"},
        "model": {"name": "diabetes-regressor"},
        "metric": {"name": "rmse", "direction": "min", "threshold": 80},
        "search": {"space": {"alpha": [0.1, 1.0]}},
        "stages": {
            "prepare": [
                {"name": "validate", "command": ["bash", "validate.sh"], "args": ["${input}"]}
            ],
            "train": {"command": ["python", "train.py"], "args": ["--data", "${input}"]},
        },
    }


def write(tmp_path: Path, document: Any, name: str = "pipeline.yaml") -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(document) if not isinstance(document, str) else document)
    return path


def error_of(tmp_path: Path, document: Any) -> str:
    path = write(tmp_path, document)
    with pytest.raises(SpecError) as raised:
        load(path)
    message = str(raised.value)
    assert "\n" not in message and message.startswith(f"{path}: "), message
    return message[len(f"{path}: ") :]


def test_the_shipped_digits_spec_loads():
    spec = load(DIGITS)
    assert spec.name == "ml_training_pipeline"
    assert [s.name for s in spec.prepare] == ["validate", "preprocess", "features"]
    assert spec.metric.threshold_param == "min_accuracy"
    assert spec.metric.select_by == "val_accuracy"
    assert spec.train.image == "gpu" and spec.prepare[0].image == "cpu"


def test_a_minimal_spec_gets_the_defaults(tmp_path):
    spec = load(write(tmp_path, minimal()))
    assert spec.experiment == "trainyard-diabetes-regressor"
    assert spec.metric.label == "rmse" and spec.metric.threshold_param == "max_rmse"
    assert spec.metric.min_improvement == 0.0
    assert spec.serve is True and spec.search_options is None and spec.max_trials == 16
    assert spec.schedule_given is False
    assert spec.folder == tmp_path.resolve()


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (lambda d: d.update(colour="red"), "(top level): unknown field 'colour'"),
        (lambda d: d["metric"].pop("direction"), "metric: 'direction' is missing"),
        (lambda d: d["metric"].update(direction="up"), "metric.direction: 'up' is not one of"),
        (lambda d: d["metric"].update(threshold="high"), "metric.threshold: 'high' is not of type"),
        (lambda d: d["stages"]["train"].update(gpu=1), "stages.train: unknown field 'gpu'"),
        (
            lambda d: d["stages"]["train"].update(command="python train.py"),
            "stages.train.command: 'python train.py' is not of type 'array'",
        ),
        (lambda d: d["search"].update(space={}), "search.space: {} should be non-empty"),
        (lambda d: d["search"]["space"].update(Alpha=[1]), "search.space: 'Alpha' does not match"),
        (lambda d: d.update(apiVersion="v2"), "apiVersion: 'trainyard/v1' was expected"),
        (lambda d: d["input"].update(url="/data/x.csv"), "input.url: '/data/x.csv' does not match"),
    ],
)
def test_a_wrong_field_is_named(tmp_path, change, expected):
    document = minimal()
    change(document)
    assert expected in error_of(tmp_path, document)


def test_references_are_checked_when_the_spec_is_read(tmp_path):
    document = minimal()
    document["stages"]["train"]["args"] = ["--data", "${inputs}"]
    assert error_of(tmp_path, document).startswith(
        "stages.train.args[1]: unknown reference ${inputs}"
    )

    document = minimal()
    document["stages"]["prepare"][0]["args"] = ["${trial.label}"]
    assert "exists only in the train stage" in error_of(tmp_path, document)

    document = minimal()
    document["stages"]["prepare"][0]["args"] = ["${stages.features.url}"]
    assert "no earlier prepare stage is named 'features'" in error_of(tmp_path, document)

    document = minimal()
    document["stages"]["train"]["args"] = ["${stages.validate.rows}", "${trial.checkpoint}"]
    load(write(tmp_path, document))  # an earlier stage's output, a trial's value: fine


def test_stage_names_and_search_options_are_consistent(tmp_path):
    document = minimal()
    document["stages"]["prepare"].append(dict(document["stages"]["prepare"][0]))
    assert "two stages are named 'validate'" in error_of(tmp_path, document)

    document = minimal()
    document["search"]["options"] = ["l1_ratio"]
    assert "search.space: ['alpha'] not in search.options" in error_of(tmp_path, document)


def test_a_file_that_is_not_yaml_or_is_missing_is_one_line(tmp_path):
    assert error_of(tmp_path, "name: [unclosed").startswith("not YAML")
    with pytest.raises(SpecError, match="cannot be read"):
        load(tmp_path / "absent.yaml")


def test_a_folder_of_specs_refuses_two_with_one_name(tmp_path):
    write(tmp_path, minimal(), "a.yaml")
    write(tmp_path, minimal(), "b.yml")
    (tmp_path / "notes.txt").write_text("not a spec")
    with pytest.raises(SpecError, match="'diabetes' is also the name of"):
        load_folder(tmp_path)
    (tmp_path / "b.yml").unlink()
    assert [s.name for s in load_folder(tmp_path)] == ["diabetes"]


DOC = DIGITS.parents[2] / "docs" / "pipeline-spec.md"


def schema_fields(node: dict[str, Any], prefix: str = "") -> list[str]:
    """Dotted names of the schema's object fields (`metric.selectBy`), stages' fields apart."""
    names = []
    for key, child in node.get("properties", {}).items():
        name = f"{prefix}{key}"
        names.append(name)
        if child.get("type") == "object" and key not in ("stages", "params"):
            names += schema_fields(child, f"{name}.")
    return names


def test_the_reference_documents_every_field_and_its_example_is_a_valid_spec(tmp_path):
    from trainyard.spec import schema  # noqa: PLC0415

    text = DOC.read_text()
    missing = [name for name in schema_fields(schema()) if f"`{name}" not in text]
    assert not missing, f"docs/pipeline-spec.md does not document {missing}"
    example = text.split("```yaml\n", 1)[1].split("```", 1)[0]
    spec = load(write(tmp_path, example))
    assert spec.metric.threshold_param == "max_rmse"

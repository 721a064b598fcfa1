"""values.yaml <-> values.schema.json parity, and bad values rejected at render time."""

from __future__ import annotations

import json
import runpy
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from .conftest import CHART, REPO, render_chart, render_error

pytestmark = pytest.mark.chart

# The values reference generator: its walk over a schema is the one these tests check.
VALUES_REFERENCE = REPO / "scripts" / "values-reference"
schema_paths = runpy.run_path(str(VALUES_REFERENCE))["schema_paths"]

# Every chart with values: the umbrella and each application subchart.
CHARTS = [CHART, *sorted(p for p in (CHART / "charts").iterdir() if (p / "values.yaml").is_file())]


def load(chart: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    values = yaml.safe_load((chart / "values.yaml").read_text()) or {}
    schema = json.loads((chart / "values.schema.json").read_text())
    return values, schema


def value_paths(values: Any, prefix: str = "") -> set[str]:
    paths: set[str] = set()
    if isinstance(values, dict):
        for key, value in values.items():
            path = f"{prefix}.{key}" if prefix else key
            paths.add(path)
            paths |= value_paths(value, path)
    return paths


@pytest.mark.parametrize("chart", CHARTS, ids=lambda p: p.name)
def test_every_value_is_in_the_schema_with_a_description(chart: Path) -> None:
    values, schema = load(chart)
    in_schema = schema_paths(schema, schema)
    missing = sorted(value_paths(values) - set(in_schema))
    assert not missing, f"{chart.name}: values.yaml keys missing from values.schema.json: {missing}"


@pytest.mark.parametrize("chart", CHARTS, ids=lambda p: p.name)
def test_every_schema_property_is_described_and_in_values(chart: Path) -> None:
    values, schema = load(chart)
    in_values = value_paths(values)
    for path, sub in schema_paths(schema, schema).items():
        assert len(sub.get("description", "")) >= 10, f"{chart.name}: {path} has no description"
        # `global` and `enabled` of a subchart are given by the umbrella chart, not its values.yaml.
        if chart != CHART and path.split(".")[0] in ("global", "enabled"):
            continue
        assert path in in_values, f"{chart.name}: schema property {path} is not in values.yaml"


@pytest.mark.parametrize("chart", CHARTS, ids=lambda p: p.name)
def test_schema_is_strict(chart: Path) -> None:
    """Objects with declared properties reject unknown keys (typos fail at render time)."""
    _, schema = load(chart)
    assert schema["additionalProperties"] is False
    open_objects = {
        "postgresql",
        "objectstore",
        "mlflow",
        "airflow",
        "gpu",
        "serving",
        "common",
    }  # validated by subcharts
    for path, sub in schema_paths(schema, schema).items():
        if sub.get("type") == "object" and sub.get("properties") and path not in open_objects:
            assert sub.get("additionalProperties") is not True, path
            assert "additionalProperties" in sub, f"{chart.name}: {path} is not strict"


def test_readme_values_reference_is_generated_from_the_schemas() -> None:
    """charts/trainyard/README.md's values tables are exactly what the schemas say."""
    proc = subprocess.run(
        [sys.executable, str(VALUES_REFERENCE), "--check"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr


def test_mlflow_subchart_app_version_is_the_umbrella_app_version() -> None:
    """The MLflow image tag defaults to the subchart's appVersion: keep it the trainyard version."""
    umbrella = yaml.safe_load((CHART / "Chart.yaml").read_text())
    mlflow = yaml.safe_load((CHART / "charts" / "mlflow" / "Chart.yaml").read_text())
    assert mlflow["appVersion"] == umbrella["appVersion"]


# ---- bad values fail at render time, naming the key ------------------------------------


@pytest.mark.parametrize(
    ("values", "names"),
    [
        ({"mlflow": {"workers": "two"}}, ["workers"]),
        ({"global": {"objectStore": {"provider": "ceph"}}}, ["provider"]),
        ({"postgresql": {"enabled": "no"}}, ["enabled"]),
        ({"global": {"externalDatabase": {"port": "5432"}}}, ["port"]),
        ({"mlflow": {"replicas": 0}}, ["replicas"]),
        ({"postgresql": {"persistence": {"size": "lots"}}}, ["size"]),
        ({"mlflow": {"auth": {"defaultPermission": "ALL"}}}, ["defaultPermission"]),
        (
            {"mlflow": {"securityContext": {"allowPrivilegeEscalation": True}}},
            ["allowPrivilegeEscalation"],
        ),
        ({"global": {"objectStore": {"buckets": {"datasets": "Not_A_Bucket"}}}}, ["datasets"]),
        ({"mlflow": {"wrokers": 2}}, ["wrokers"]),
        ({"globl": {}}, ["globl"]),
    ],
    ids=[
        "wrong-type",
        "unknown-provider",
        "bool-as-string",
        "port-as-string",
        "zero-replicas",
        "bad-quantity",
        "bad-enum",
        "privilege-escalation",
        "bad-bucket-name",
        "typo-subchart",
        "typo-umbrella",
    ],
)
def test_schema_rejects_bad_values(helm: str, values: dict, names: list[str]) -> None:
    message = render_error(values, helm=helm)
    for name in names:
        assert name in message, message


EXTERNAL_STORE = {
    "provider": "external",
    "existingSecret": "s3-creds",
    "external": {"endpoint": "https://s3.example.com"},
}


@pytest.mark.parametrize(
    ("values", "key"),
    [
        (
            {"global": {"objectStore": {**EXTERNAL_STORE, "external": {"endpoint": ""}}}},
            "global.objectStore.external.endpoint",
        ),
        (
            {"global": {"objectStore": {**EXTERNAL_STORE, "existingSecret": ""}}},
            "global.objectStore.existingSecret",
        ),
        ({"postgresql": {"enabled": False}}, "global.externalDatabase.host"),
        (
            {
                "postgresql": {"enabled": False},
                "global": {"externalDatabase": {"host": "db.example.com"}},
            },
            "global.database.existingSecret",
        ),
        ({"global": {"externalDatabase": {"host": "db.example.com"}}}, "postgresql.enabled"),
        ({"mlflow": {"ingress": {"enabled": True}}}, "mlflow.ingress.host"),
        (
            {
                "global": {
                    "database": {"databases": {"mlflowAuth": {"name": "auth", "user": "other"}}}
                }
            },
            "global.database.databases.mlflowAuth.user",
        ),
    ],
    ids=[
        "external-store-without-endpoint",
        "external-store-without-credentials",
        "postgres-disabled-without-external",
        "external-db-without-secret",
        "external-db-with-postgres-enabled",
        "ingress-without-host",
        "auth-db-other-user",
    ],
)
def test_inconsistent_values_fail_naming_the_key(helm: str, values: dict, key: str) -> None:
    message = render_error(values, helm=helm)
    assert key in message, message


def test_valid_external_setup_renders(helm: str) -> None:
    objects = render_chart(
        {
            "postgresql": {"enabled": False},
            "global": {
                "externalDatabase": {"host": "db.example.com"},
                "database": {"existingSecret": "db-creds"},
                "objectStore": EXTERNAL_STORE,
            },
        },
        helm=helm,
    )
    assert objects

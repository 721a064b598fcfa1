"""Airflow's platform settings come from one file, and both runtimes get them the same way.

The chart (`helm template`) and the standalone runtime (`AirflowStack.env()`, what `trainyard up`
gives every Airflow process) are both real here; only their outputs are compared.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from trainyard.standalone import airflow_settings
from trainyard.standalone.airflow_stack import AirflowStack
from trainyard.standalone.services import S3Server

from .conftest import CHART, one, render_chart

pytestmark = pytest.mark.chart

SETTINGS = CHART / "charts" / "airflow" / "files" / "airflow-settings.yaml"
PLACEHOLDER = re.compile(r"\{[a-z_]+\}")


def env_names(part: str) -> set[str]:
    """The AIRFLOW__* names a part of the settings file sets, placeholders left as they are."""
    config = airflow_settings.load()[part]
    return set(airflow_settings.as_env(config))


def chart_env(helm: str) -> dict[str, str]:
    objects = render_chart(helm=helm)
    data: dict[str, str] = one(objects, "ConfigMap", "trainyard-airflow-config")["data"]
    return data


def standalone_env(tmp_path: Path) -> dict[str, str]:
    stack = AirflowStack(
        tmp_path / "airflow",
        tmp_path / "dags",
        S3Server(tmp_path / "s3"),
        "http://mlflow",
        tmp_path,
    )
    return stack.env()


def test_python_reads_the_charts_file() -> None:
    """The package's file is a link to the chart's, not a copy that could drift."""
    assert airflow_settings.SETTINGS_FILE.is_symlink()
    assert airflow_settings.SETTINGS_FILE.resolve() == SETTINGS.resolve()


def test_both_runtimes_get_the_same_shared_settings(helm: str, tmp_path: Path) -> None:
    kubernetes, standalone = chart_env(helm), standalone_env(tmp_path)
    shared = env_names("shared")
    assert shared, "the settings file has no shared settings"
    assert shared <= kubernetes.keys(), sorted(shared - kubernetes.keys())
    assert shared <= standalone.keys(), sorted(shared - standalone.keys())
    # Same values too: the chart's default buckets, XCom threshold and compression are the
    # standalone runtime's.
    differ = {name: (kubernetes[name], standalone[name]) for name in shared}
    differ = {name: pair for name, pair in differ.items() if pair[0] != pair[1]}
    assert not differ, differ


def test_each_runtime_gets_its_own_part(helm: str, tmp_path: Path) -> None:
    kubernetes, standalone = chart_env(helm), standalone_env(tmp_path)
    assert env_names("kubernetes") <= kubernetes.keys()
    assert env_names("standalone") <= standalone.keys()
    assert kubernetes["AIRFLOW__CORE__EXECUTOR"] == "KubernetesExecutor,LocalExecutor"
    assert standalone["AIRFLOW__CORE__EXECUTOR"] == "LocalExecutor"
    # Every placeholder was filled, on both sides.
    for env, part in ((kubernetes, "kubernetes"), (standalone, "standalone")):
        names = env_names("shared") | env_names(part)
        assert not [env[name] for name in names if PLACEHOLDER.search(env[name])]

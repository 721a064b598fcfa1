"""airflow.dagBundles: S3 DAG bundles from values, after the image's own DAG folder. The rendered
bundle list is handed to Airflow's own DagBundlesManager, which builds every bundle from it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from .conftest import (
    CHART,
    NAMESPACE,
    RELEASE,
    containers,
    env_of,
    one,
    pod_spec,
    render_chart,
    render_error,
    render_notes,
    tool,
)
from .fakekube import fake_kube
from .test_airflow import airflow_config

pytestmark = pytest.mark.chart

KEY = "AIRFLOW__DAG_PROCESSOR__DAG_BUNDLE_CONFIG_LIST"
ON_STORE = {"name": "team-a", "s3": {"bucket": "team-dags", "prefix": "team-a/"}}
ELSEWHERE = {
    "name": "ext-dags",
    "s3": {"bucket": "their-bucket", "connectionSecret": {"name": "ext-s3", "key": "uri"}},
    "refreshInterval": 30,
}
COMPONENTS = ("api-server", "scheduler", "dag-processor", "triggerer")


def bundles(*items: dict[str, Any]) -> dict[str, Any]:
    return {"airflow": {"dagBundles": list(items)}}


def bucket_init_buckets(objects: list[dict]) -> list[str]:
    (job,) = [o for o in objects if o["kind"] == "Job" and "bucket-init" in o["metadata"]["name"]]
    env = env_of(pod_spec(job)["containers"][0])
    return str(env["BUCKETS"]).split(",")


def airflow_builds(config_list: str) -> list[dict[str, Any]]:
    """Airflow 3.3's DagBundlesManager, configured with the chart's list: each bundle's class,
    built with its kwargs (no connection is opened)."""
    code = (
        "import json\n"
        "from airflow.dag_processing.bundles.manager import DagBundlesManager\n"
        "print(json.dumps([{'name': b.name, 'type': type(b).__name__,"
        " 'bucket': getattr(b, 'bucket_name', None), 'prefix': getattr(b, 'prefix', None),"
        " 'conn': getattr(b, 'aws_conn_id', None), 'refresh': b.refresh_interval}"
        " for b in DagBundlesManager().get_all_dag_bundles()]))\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code],
        env={**os.environ, KEY: config_list},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    built: list[dict[str, Any]] = json.loads(proc.stdout.strip().splitlines()[-1])
    return built


def test_no_bundles_leaves_airflows_default() -> None:
    objects = render_chart()
    assert KEY not in airflow_config(objects)
    assert "dags" not in bucket_init_buckets(objects)


def test_bundles_follow_the_images_own_and_airflow_builds_them(helm: str) -> None:
    objects = render_chart(bundles(ON_STORE, ELSEWHERE), helm=helm)
    built = airflow_builds(airflow_config(objects)[KEY])
    built[0].pop("refresh")  # the image's folder: Airflow's [dag_processor] refresh_interval
    assert built == [
        # The image's DAGs keep the bundle name Airflow gave them before.
        {"name": "dags-folder", "type": "LocalDagBundle", "bucket": None, "prefix": None,
         "conn": None},
        {"name": "team-a", "type": "S3DagBundle", "bucket": "team-dags", "prefix": "team-a/",
         "conn": "trainyard_s3", "refresh": 60},
        {"name": "ext-dags", "type": "S3DagBundle", "bucket": "their-bucket", "prefix": "",
         "conn": "trainyard_bundle_ext_dags", "refresh": 30},
    ]  # fmt: skip
    # The release's store gets the bucket of the bundle on it; the other's is not ours.
    assert bucket_init_buckets(objects)[-1] == "team-dags"
    assert "their-bucket" not in bucket_init_buckets(objects)


def test_a_bundles_connection_comes_from_its_secret_in_every_airflow_pod() -> None:
    """Every Airflow container and the worker pods (a task's worker fetches its DAG's bundle)
    read the connection from the Secret; no object holds its value."""
    objects = render_chart(bundles(ELSEWHERE))
    expected = {"secretKeyRef": {"name": "ext-s3", "key": "uri", "optional": True}}
    for component in COMPONENTS:
        deployment = one(objects, "Deployment", f"{RELEASE}-airflow-{component}")
        for container in pod_spec(deployment)["containers"]:
            env = env_of(container)
            assert env["AIRFLOW_CONN_TRAINYARD_BUNDLE_EXT_DAGS"] == expected, component
    template = one(objects, "ConfigMap", f"{RELEASE}-airflow-pod-template")
    worker = yaml.safe_load(template["data"]["pod_template.yaml"])["spec"]
    assert env_of(containers(worker)[-1])["AIRFLOW_CONN_TRAINYARD_BUNDLE_EXT_DAGS"] == expected


@pytest.mark.parametrize(
    ("values", "message"),
    [
        (bundles({"name": "dags-folder", "s3": {"bucket": "team-dags"}}), "image's own bundle"),
        (bundles({"name": "team-a", "s3": {"bucket": "Team_Dags"}}), "bucket"),
        (bundles({"name": "team-a"}), "s3"),
        (bundles({"name": "team-a", "s3": {"bucket": "x-y-z", "region": "eu"}}), "region"),
        (
            {**bundles(*[{"name": f"t{i}", "s3": {"bucket": f"dags-{i}"}} for i in range(6)])},
            "maxVolumes=64 is too low: 10 buckets",
        ),
    ],
    ids=["reserved-name", "bad-bucket", "no-s3", "unknown-key", "store-too-small"],
)
def test_a_bad_bundle_fails_the_render_naming_it(values: dict, message: str) -> None:
    error = render_error(values)
    assert message in error, error


@pytest.mark.parametrize(
    ("secret_data", "message"),
    [
        (None, 'its connectionSecret "ext-s3" does not exist in namespace trainyard'),
        ({"token": "eA=="}, 'Secret "ext-s3" has no key "uri" (it has: token)'),
        ({"uri": "eA=="}, ""),
    ],
    ids=["missing-secret", "missing-key", "present"],
)
def test_a_bundles_missing_secret_fails_the_install_in_one_line(
    helm: str, tmp_path: Path, secret_data: dict | None, message: str
) -> None:
    """Against a cluster (a fake API server that `lookup` reads): a connection Secret that is not
    there, or lacks its key, fails `helm install` naming the bundle and the Secret; the pods'
    references are optional, so one that goes missing later cannot stop Airflow."""
    live: list[dict[str, Any]] = [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}}
    ]
    if secret_data is not None:
        live.append({
            "apiVersion": "v1", "kind": "Secret", "data": secret_data,
            "metadata": {"name": "ext-s3", "namespace": NAMESPACE},
        })  # fmt: skip
    values = tmp_path / "values.yaml"
    values.write_text(json.dumps(bundles(ELSEWHERE)))
    with fake_kube(live, tmp_path, NAMESPACE) as fake:
        args = [RELEASE, str(CHART), "--namespace", NAMESPACE, "--values", str(values)]
        error = fake.helm_template(tool(helm), args, check=False)
    if message:
        assert f"airflow.dagBundles[0] (ext-dags): {message}" in error, error
    else:
        assert error == ""


def test_notes_list_the_pipelines_model_servers_and_bundles() -> None:
    import copy  # noqa: PLC0415

    from .test_pipelines import DIABETES, NAME  # noqa: PLC0415

    values = {**bundles(ON_STORE, ELSEWHERE), "global": {"pipelines": {"specs": {NAME: DIABETES}}}}
    notes = render_notes(copy.deepcopy(values))
    assert f"Pipelines:       ml_training_pipeline (digits, the image's), {NAME}" in notes
    model = DIABETES["model"]["name"]
    assert (
        f"Model servers:   {RELEASE}-serving (digits), "
        f"{RELEASE}-serving-diabetes-regression ({model})" in notes
    )
    assert (
        "DAG bundle:      team-a: DAG files in s3://team-dags/team-a/ on this release's store"
        in notes
    )
    assert "ext-dags: DAG files in s3://their-bucket/ (connection from Secret ext-s3)" in notes
    assert "team-dags" in notes.split("Buckets:")[1].splitlines()[0]


def test_notes_say_where_a_days_data_goes_and_how_long_a_run_waits() -> None:
    """A first run that explains itself (issue 26): the exact key of today's file, how to put
    a sample there, how to trigger, and what the schedule does while no data comes."""
    import datetime as dt  # noqa: PLC0415

    days = {dt.datetime.now(dt.UTC).date().isoformat()}
    notes = render_notes()
    days.add(dt.datetime.now(dt.UTC).date().isoformat())  # rendered across midnight
    assert any(f"s3://datasets/digits/daily/{d}/features.parquet" in notes for d in days), notes
    assert "python -m digits publish --root s3://datasets/digits --date" in notes
    assert "waits for its day's file up to\n                   720 min" in notes
    manual = render_notes({"pipeline": {"schedule": ""}})
    assert "Schedule:        none" in manual
    assert "First run" not in render_notes(
        {"global": {"pipelines": {"digits": {"enabled": False}}}}
    )

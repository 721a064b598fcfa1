"""Trainer pods' own identity (global.training.identity): rendered consistently, least privilege.

Whether the store and MLflow really refuse everything else is checked on kind
(tests/e2e/trainer_rights.py); here: what the chart renders and refuses to render.
"""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest

from .conftest import (
    MINIO,
    RELEASE,
    TRAINING_NAMESPACE,
    containers,
    env_of,
    find,
    pod_spec,
    render_chart,
    render_error,
    render_notes,
)

pytestmark = pytest.mark.chart


def _data(secret: dict[str, Any]) -> dict[str, str]:
    return {k: base64.b64decode(v).decode() for k, v in secret["data"].items()}


def _platform(objects: list[dict[str, Any]]) -> dict[str, Any]:
    (cm,) = [c for c in find(objects, "ConfigMap") if "platform.json" in c.get("data", {})]
    result: dict[str, Any] = json.loads(cm["data"]["platform.json"])
    return result


def test_trainer_pods_load_an_identity_of_their_own_with_one_set_of_credentials() -> None:
    objects = render_chart()
    (source,) = find(objects, "Secret", f"{RELEASE}-trainer-identity")
    (copy,) = find(objects, "Secret", f"{RELEASE}-trainer")
    (store,) = find(objects, "Secret", f"{RELEASE}-seaweedfs-identities")
    assert copy["metadata"]["namespace"] == TRAINING_NAMESPACE
    assert source["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"
    assert "helm.sh/resource-policy" not in (copy["metadata"].get("annotations") or {})
    variables = _data(copy)
    assert variables == _data(source)  # one render, one set of generated values
    assert variables["MLFLOW_TRACKING_USERNAME"] == "trainer"
    (identity,) = json.loads(_data(store)["s3.json"])["identities"]
    assert identity["credentials"] == [
        {
            "accessKey": variables["AWS_ACCESS_KEY_ID"],
            "secretKey": variables["AWS_SECRET_ACCESS_KEY"],
        }
    ]
    # Read the datasets bucket, write only under the work prefix; no Admin, no Tagging.
    assert identity["actions"] == [
        "Read:datasets", "List:datasets",
        "Read:datasets/runs/*", "List:datasets/runs/*", "Write:datasets/runs/*",
    ]  # fmt: skip
    admin = _data(find(objects, "Secret", f"{RELEASE}-objectstore")[0])
    assert variables["AWS_ACCESS_KEY_ID"] not in admin.values()
    assert _platform(objects)["trainer"]["env_from_secrets"][0] == f"{RELEASE}-trainer"


def test_seaweedfs_reads_the_identities_file_and_keeps_its_admin_pair_in_env() -> None:
    objects = render_chart()
    (store,) = [s for s in find(objects, "StatefulSet") if "seaweedfs" in s["metadata"]["name"]]
    (weed,) = containers(pod_spec(store))
    assert "-s3.config=/etc/seaweedfs/s3.json" in weed["args"]
    assert {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"} <= set(env_of(weed))
    volumes = {v["name"]: v for v in pod_spec(store)["volumes"]}
    assert volumes["identities"]["secret"]["secretName"] == f"{RELEASE}-seaweedfs-identities"
    # A changed policy restarts SeaweedFS (it reads the file at start).
    before = store["spec"]["template"]["metadata"]["annotations"]["trainyard.io/trainer-policy"]
    wider = render_chart({"global": {"training": {"identity": {"write": ["datasets"]}}}})
    (after,) = [s for s in find(wider, "StatefulSet") if "seaweedfs" in s["metadata"]["name"]]
    assert (
        after["spec"]["template"]["metadata"]["annotations"]["trainyard.io/trainer-policy"]
        != before
    )


def test_the_mlflow_user_job_grants_the_pipelines_own_experiments_and_models() -> None:
    spec = {
        "apiVersion": "trainyard/v1",
        "name": "team_a",
        "input": {"url": "s3://datasets/a/{{ ds }}.parquet"},
        "model": {"name": "team-a-model"},
        "metric": {"name": "rmse", "direction": "min", "threshold": 60},
        "search": {"space": {"alpha": [0.1]}},
        "stages": {"train": {"command": ["train"]}},
    }
    objects = render_chart({"global": {"pipelines": {"specs": {"team_a": spec}}}})
    (job,) = [j for j in find(objects, "Job") if "trainer-user" in j["metadata"]["name"]]
    (container,) = containers(pod_spec(job))
    env = env_of(container)
    assert json.loads(env["EXPERIMENTS"]) == ["trainyard-digits", "trainyard-team-a-model"]
    assert json.loads(env["MODELS"]) == ["digits", "team-a-model"]
    assert env["TRAINER_USERNAME"] == "trainer"
    assert env["TRAINER_PASSWORD"]["secretKeyRef"] == {
        "name": f"{RELEASE}-trainer-identity",
        "key": "MLFLOW_TRACKING_PASSWORD",
    }


def test_minio_and_opting_out_keep_the_secret_you_create() -> None:
    for values in (MINIO, {"global": {"training": {"identity": {"create": False}}}}):
        objects = render_chart(values)
        assert not find(objects, "Secret", f"{RELEASE}-trainer-identity"), values
        assert not [j for j in find(objects, "Job") if "trainer-user" in j["metadata"]["name"]]
        platform = _platform(objects)
        assert platform["trainer"]["env_from_secrets"][0] == f"{RELEASE}-trainer-credentials"


@pytest.mark.parametrize(
    ("values", "message"),
    [
        (
            {"training": {"credentialsSecretName": "mine"}},
            "training.credentialsSecretName is set (mine) while the chart creates the trainer "
            "identity",
        ),
        (
            {"global": {"training": {"identity": {"write": ["datasets/other"]}}}},
            "global.training.identity.write (datasets/other) does not cover datasets/runs",
        ),
    ],
)
def test_a_conflicting_identity_setting_is_refused_naming_the_value(
    values: dict[str, Any], message: str
) -> None:
    assert message in render_error(values)


def test_notes_say_what_trainer_pods_may_do() -> None:
    notes = render_notes()
    assert "with an identity of their own (Secret trainyard-trainer" in notes
    assert "may read\n                   datasets and write datasets/runs only" in notes
    assert "MISSING" not in notes

"""Chart hardening for real GPU clusters (issue 13): what a kind cluster cannot show.

Private registries, patient pod timeouts for autoscaled GPU pools, the device plugin's
per-platform settings, external Postgres with TLS verification and the smaller wiring fixes.
Everything is rendered by the real helm binaries; trainer pods are built by the real
KubernetesPodOperator from the rendered platform.json.
"""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
from typing import Any

import pytest

from .conftest import RELEASE, one, pod_spec, render_chart, render_error
from .test_airflow import airflow_python, platform_json

pytestmark = pytest.mark.chart

SERVING = f"{RELEASE}-serving"

BUILD_OPERATORS = r"""
import json, sys
from airflow.providers.cncf.kubernetes.operators.pod import KubernetesPodOperator
from kubernetes.client import ApiClient
from trainyard.pipeline import platform
from trainyard.pipeline.pod_tasks import PodTasks

out = []
for document in json.load(sys.stdin):
    config = platform.parse(document)
    operator = KubernetesPodOperator(**PodTasks(config).kwargs("train", gpu=True),
                                     arguments=["train"])
    pod = operator.build_pod_request_obj(dry_run=True)
    out.append({
        "pod": ApiClient().sanitize_for_serialization(pod),
        "schedule_timeout_seconds": operator.schedule_timeout_seconds,
        "startup_timeout_seconds": operator.startup_timeout_seconds,
    })
print(json.dumps(out))
"""


def build_operators(documents: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The DAG's `train` operator for each platform.json: its pod and its timeouts."""
    with tempfile.TemporaryDirectory() as home:
        proc = subprocess.run(
            [airflow_python(), "-c", BUILD_OPERATORS],
            input=json.dumps(documents),
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
            env={**os.environ, "AIRFLOW_HOME": home, "AIRFLOW__CORE__LOAD_EXAMPLES": "False"},
        )
    assert proc.returncode == 0, proc.stderr[-3000:]
    built: list[dict[str, Any]] = json.loads(proc.stdout.strip().splitlines()[-1])
    return built


# ---- 1. private registries reach trainer pods and the model server -------------------------


def test_pull_secrets_reach_trainer_pods_and_the_model_server(helm: str) -> None:
    values = {
        "global": {"imagePullSecrets": ["regcred"]},
        "training": {"imagePullSecrets": ["gpu-registry", "regcred"]},
    }
    objects = render_chart(values, helm=helm)
    config = platform_json(objects)
    assert config["trainer"]["image_pull_secrets"] == ["regcred", "gpu-registry"]
    serving = pod_spec(one(objects, "Deployment", SERVING))
    assert serving["imagePullSecrets"] == [{"name": "regcred"}]
    # none configured: none rendered, none passed to the operator
    assert platform_json(render_chart(helm=helm))["trainer"]["image_pull_secrets"] == []
    assert "imagePullSecrets" not in pod_spec(one(render_chart(helm=helm), "Deployment", SERVING))


def test_trainer_pods_built_from_the_chart_pull_with_the_secrets_and_wait_for_a_gpu() -> None:
    values = {
        "global": {"imagePullSecrets": ["regcred"]},
        "training": {
            "imagePullSecrets": ["gpu-registry"],
            "podTimeouts": {"scheduleSeconds": 1800, "startupSeconds": 1200},
        },
        "gpu": {"enabled": True},
    }
    custom, default = build_operators(
        [platform_json(render_chart(values)), platform_json(render_chart())]
    )
    assert custom["pod"]["spec"]["imagePullSecrets"] == [
        {"name": "regcred"},
        {"name": "gpu-registry"},
    ]
    assert (custom["schedule_timeout_seconds"], custom["startup_timeout_seconds"]) == (1800, 1200)
    # The defaults fit a cold GPU node (15 minutes each), not the provider's 120 s.
    assert (default["schedule_timeout_seconds"], default["startup_timeout_seconds"]) == (900, 900)
    assert not default["pod"]["spec"].get("imagePullSecrets")


# ---- 3. GPU pods are allowed to wait for a GPU ---------------------------------------------


def test_pod_timeouts_come_from_values(helm: str) -> None:
    trainer = platform_json(render_chart(helm=helm))["trainer"]
    assert trainer["schedule_timeout_seconds"] == 900
    assert trainer["startup_timeout_seconds"] == 900
    values = {"training": {"podTimeouts": {"scheduleSeconds": 60, "startupSeconds": 3600}}}
    trainer = platform_json(render_chart(values, helm=helm))["trainer"]
    assert (trainer["schedule_timeout_seconds"], trainer["startup_timeout_seconds"]) == (60, 3600)


def test_pod_timeouts_are_checked(helm: str) -> None:
    message = render_error({"training": {"podTimeouts": {"scheduleSeconds": 0}}}, helm=helm)
    assert "scheduleSeconds" in message

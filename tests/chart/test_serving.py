"""Model serving: the champion behind an MLflow model server, and the deploy step's RBAC."""

from __future__ import annotations

import json

import pytest
import yaml

from .conftest import (
    CHART,
    NAMESPACE,
    RELEASE,
    TRAINING_NAMESPACE,
    env_of,
    find,
    one,
    pod_spec,
    render_chart,
    render_error,
)

pytestmark = pytest.mark.chart

SERVING = f"{RELEASE}-serving"


def test_model_server_serves_the_champion(helm: str) -> None:
    objects = render_chart(helm=helm)
    deployment = one(objects, "Deployment", SERVING)
    (container,) = pod_spec(deployment)["containers"]
    assert container["command"] == ["mlflow"]
    args = container["args"]
    assert args[:4] == ["models", "serve", "-m", "models:/digits@champion"]
    assert args[args.index("--env-manager") + 1] == "local"
    assert args[args.index("-h") + 1] == "0.0.0.0"
    assert args[args.index("-p") + 1] == "8080"
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert container[probe]["httpGet"]["path"] == "/ping"
    env = env_of(container)
    ref = env["MLFLOW_TRACKING_URI"]["configMapKeyRef"]
    platform = one(objects, "ConfigMap", ref["name"])
    assert platform["data"][ref["key"]] == f"http://{RELEASE}-mlflow.{NAMESPACE}.svc:5000"
    assert env["MLFLOW_TRACKING_PASSWORD"]["secretKeyRef"] == {
        "name": f"{RELEASE}-mlflow-auth",
        "key": "admin-password",
    }
    # nothing to serve before the first champion: install --wait must not block on it
    assert deployment["spec"]["replicas"] == 0
    assert deployment["metadata"]["annotations"]["trainyard.io/replicas"] == "1"
    service = one(objects, "Service", SERVING)
    assert service["spec"]["selector"].items() <= (
        deployment["spec"]["template"]["metadata"]["labels"].items()
    )


def test_deploy_step_may_patch_exactly_the_serving_deployment(helm: str) -> None:
    objects = render_chart(helm=helm)
    role = one(objects, "Role", f"{SERVING}-deployer")
    assert role["metadata"]["namespace"] == NAMESPACE
    rules = {(r["apiGroups"][0], r["resources"][0]): r for r in role["rules"]}
    deployments = rules[("apps", "deployments")]
    assert deployments["resourceNames"] == [SERVING]
    assert {"get", "patch"} <= set(deployments["verbs"])
    assert not {"create", "delete", "update"} & set(deployments["verbs"])
    assert set(rules) == {("apps", "deployments")}  # no pods, no logs (tests/chart/test_rbac.py)
    binding = one(objects, "RoleBinding", f"{SERVING}-deployer")
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": f"{RELEASE}-trainer", "namespace": TRAINING_NAMESPACE}
    ]
    trainer = one(objects, "ServiceAccount", f"{RELEASE}-trainer")
    assert trainer["metadata"]["namespace"] == TRAINING_NAMESPACE


def test_trainer_pods_are_told_where_the_model_server_is() -> None:
    objects = render_chart()
    platform = json.loads(one(objects, "ConfigMap", f"{RELEASE}-platform")["data"]["platform.json"])
    env = platform["trainer"]["env"]
    assert env["TRAINYARD_SERVING_DEPLOYMENT"] == SERVING
    assert env["TRAINYARD_SERVING_NAMESPACE"] == NAMESPACE
    assert env["TRAINYARD_SERVING_URL"] == f"http://{SERVING}.{NAMESPACE}.svc:8080"
    one(objects, "Deployment", env["TRAINYARD_SERVING_DEPLOYMENT"])
    off = render_chart({"serving": {"enabled": False}})
    off_env = json.loads(one(off, "ConfigMap", f"{RELEASE}-platform")["data"]["platform.json"])
    assert "TRAINYARD_SERVING_URL" not in off_env["trainer"]["env"]


def test_smoke_test_traffic_from_trainer_pods_is_admitted() -> None:
    policy = one(render_chart(), "NetworkPolicy", f"{SERVING}-model-server")
    rule = policy["spec"]["ingress"][0]
    assert rule["ports"] == [{"port": 8080, "protocol": "TCP"}]
    namespaces = [
        p["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"]
        for p in rule["from"]
        if "namespaceSelector" in p
    ]
    assert namespaces == [TRAINING_NAMESPACE]


def test_serving_follows_the_pipeline_model_and_can_be_disabled() -> None:
    objects = render_chart({"pipeline": {"modelName": "mnist"}, "serving": {"modelName": "mnist"}})
    args = pod_spec(one(objects, "Deployment", SERVING))["containers"][0]["args"]
    assert "models:/mnist@champion" in args
    assert "pipeline.modelName" in render_error({"pipeline": {"modelName": "mnist"}})
    off = render_chart({"serving": {"enabled": False}})
    assert not [o for o in off if o["metadata"]["name"].startswith(SERVING)]
    assert not find(off, "Role", f"{SERVING}-deployer")


@pytest.mark.parametrize("subchart", ["airflow", "serving"])
def test_trainyard_image_subcharts_carry_the_umbrella_app_version(subchart: str) -> None:
    """Their images default to the subchart appVersion: keep it the trainyard version."""
    umbrella = yaml.safe_load((CHART / "Chart.yaml").read_text())
    chart = yaml.safe_load((CHART / "charts" / subchart / "Chart.yaml").read_text())
    assert chart["appVersion"] == umbrella["appVersion"]

"""global.pipelines: teams' specs from values become mounted files and platform.json's `pipelines`;
a bad inline spec fails the render with Helm's schema error naming the field."""

from __future__ import annotations

import copy
import json
import subprocess
import sys
from typing import Any

import pytest
import yaml

from trainyard.pipeline.platform import parse as parse_platform

from .conftest import (
    CHART,
    NAMESPACE,
    RELEASE,
    REPO,
    find,
    kubernetes_validate,
    one,
    pod_spec,
    render_chart,
    render_error,
)

pytestmark = pytest.mark.chart

EMBED = REPO / "scripts" / "embed-pipeline-schema"
SPEC_SCHEMA = REPO / "platform" / "trainyard" / "spec" / "pipeline.schema.json"
DIABETES: dict[str, Any] = yaml.safe_load((REPO / "examples/diabetes/pipeline.yaml").read_text())
NAME = DIABETES["name"]
BASE = "/opt/trainyard/pipelines"
COMPONENTS = ("api-server", "scheduler", "dag-processor", "triggerer")


def pipelines(**settings: Any) -> dict[str, Any]:
    return {"global": {"pipelines": settings}}


def platform_json(objects: list[dict]) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(
        one(objects, "ConfigMap", f"{RELEASE}-platform")["data"]["platform.json"]
    )
    return data


def airflow_pods(objects: list[dict]) -> dict[str, dict[str, Any]]:
    """Every Airflow pod spec: the four Deployments and the workers' pod template."""
    pods = {c: pod_spec(one(objects, "Deployment", f"{RELEASE}-airflow-{c}")) for c in COMPONENTS}
    template = one(objects, "ConfigMap", f"{RELEASE}-airflow-pod-template")
    pods["worker"] = yaml.safe_load(template["data"]["pod_template.yaml"])["spec"]
    return pods


def pipeline_mounts(pod: dict[str, Any]) -> dict[str, tuple[dict, dict]]:
    """mount path -> (volume, mount) of the pod's main container, pipelines volumes only."""
    volumes = {v["name"]: v for v in pod["volumes"] if v["name"].startswith("pipelines-")}
    main = pod["containers"][0]
    return {
        m["mountPath"]: (volumes[m["name"]], m)
        for m in main.get("volumeMounts", [])
        if m["name"] in volumes
    }


def test_the_embedded_spec_schema_is_the_spec_loaders() -> None:
    """One source of truth: values.schema.json's copy is pipeline.schema.json, verbatim."""
    embedded = json.loads((CHART / "values.schema.json").read_text())["$defs"]["pipelineSpec"]
    assert embedded == json.loads(SPEC_SCHEMA.read_text()), "run scripts/embed-pipeline-schema"
    proc = subprocess.run(
        [sys.executable, str(EMBED), "--check"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr


def test_defaults_have_no_team_pipelines_and_the_digits_dag() -> None:
    objects = render_chart()
    assert not find(objects, "ConfigMap", f"{RELEASE}-pipelines")
    for component, pod in airflow_pods(objects).items():
        assert pipeline_mounts(pod) == {}, component
    config = platform_json(objects)
    # Keys of 0.4 only when not their default: the last release's pods, which read this
    # ConfigMap during a rolling upgrade, refused keys they did not know.
    assert "pipelines" not in config and "builtin_pipeline" not in config
    platform = parse_platform(config)
    assert platform.pipelines == [] and platform.builtin_pipeline is True


def test_an_inline_spec_is_a_mounted_file_in_platform_json(helm: str) -> None:
    objects = render_chart(pipelines(specs={NAME: DIABETES}), helm=helm)
    configmap = one(objects, "ConfigMap", f"{RELEASE}-pipelines")
    assert yaml.safe_load(configmap["data"][f"{NAME}.yaml"]) == DIABETES
    for component, pod in airflow_pods(objects).items():
        mounts = pipeline_mounts(pod)
        volume, mount = mounts[f"{BASE}/inline"]
        assert volume["configMap"]["name"] == f"{RELEASE}-pipelines", component
        assert mount["readOnly"] is True and "subPath" not in mount, component
    config = platform_json(objects)
    assert config["pipelines"] == [f"{BASE}/inline/{NAME}.yaml"]
    assert "builtin_pipeline" not in config
    parse_platform(config)  # the DAG's loader takes what the chart writes
    deployments = [
        o for o in objects if o["kind"] == "Deployment" and "airflow" in o["metadata"]["name"]
    ]
    assert kubernetes_validate([configmap, *deployments], ("1.34.0",)) == []


def test_digits_can_be_turned_off() -> None:
    config = platform_json(render_chart(pipelines(digits={"enabled": False})))
    assert config["builtin_pipeline"] is False
    assert parse_platform(config).builtin_pipeline is False


def test_a_teams_configmap_is_an_optional_folder_mount(helm: str) -> None:
    values = pipelines(existingConfigMaps=["team-a-pipelines", "team-b"])
    objects = render_chart(values, helm=helm)
    assert not find(objects, "ConfigMap", f"{RELEASE}-pipelines")  # no inline specs
    for component, pod in airflow_pods(objects).items():
        mounts = pipeline_mounts(pod)
        for name in ("team-a-pipelines", "team-b"):
            volume, mount = mounts[f"{BASE}/configmaps/{name}"]
            # Missing: an empty folder (the DAG file's import error), not Airflow down.
            assert volume["configMap"] == {"name": name, "optional": True}, component
            assert mount["readOnly"] is True, component
    assert platform_json(objects)["pipelines"] == [
        f"{BASE}/configmaps/team-a-pipelines",
        f"{BASE}/configmaps/team-b",
    ]


def bad(change: Any) -> dict[str, Any]:
    spec = copy.deepcopy(DIABETES)
    change(spec)
    return pipelines(specs={NAME: spec})


@pytest.mark.parametrize(
    ("values", "names"),
    [
        (bad(lambda s: s["metric"].update(direction="up")), ["metric", "direction"]),
        (bad(lambda s: s["stages"]["train"].update(gpu=1)), ["stages", "train", "gpu"]),
        (bad(lambda s: s.pop("model")), ["model"]),
        (pipelines(specs={"bad-name": DIABETES}), ["bad-name"]),
        (pipelines(existingConfigMaps=["Team_A"]), ["existingConfigMaps"]),
    ],
    ids=["bad-enum", "unknown-key-in-a-ref", "missing-required", "bad-key", "bad-configmap-name"],
)
def test_a_bad_spec_fails_the_render_naming_the_field(
    helm: str, values: dict, names: list[str]
) -> None:
    message = render_error(values, helm=helm)
    assert "global" in message and "pipelines" in message, message
    for name in names:
        assert name in message, message


def test_an_inline_specs_name_is_its_key() -> None:
    """The key is the file name and the spec's name the DAG id: one name, so ids are unique."""
    message = render_error(pipelines(specs={"diabetes": DIABETES}))
    assert f'global.pipelines.specs.diabetes: name is "{NAME}"; it must be the key' in message
    clash = {**DIABETES, "name": "ml_training_pipeline"}
    message = render_error(pipelines(specs={"ml_training_pipeline": clash}))
    assert "global.pipelines.digits.enabled=false" in message, message
    render_chart(pipelines(digits={"enabled": False}, specs={"ml_training_pipeline": clash}))


SERVER = f"{RELEASE}-serving-diabetes-regression"  # the key diabetes_regression, DNS-safe


def test_a_served_inline_spec_gets_a_model_server_of_its_own(helm: str) -> None:
    """One release, many models: the team's champion is served by its own Deployment and
    Service, which the platform's own server's selector never matches; the deploy step of that
    pipeline is told where it is (platform.json's model_servers), and may patch it."""
    from trainyard.pipeline.factory import PipelineDag  # noqa: PLC0415
    from trainyard.spec import parse as parse_spec  # noqa: PLC0415

    objects = render_chart(pipelines(specs={NAME: DIABETES}), helm=helm)
    model = DIABETES["model"]["name"]
    server = one(objects, "Deployment", SERVER)
    args = pod_spec(server)["containers"][0]["args"]
    assert f"models:/{model}@champion" in args
    own = one(objects, "Deployment", f"{RELEASE}-serving")
    assert f"models:/{own_model(objects)}@champion" in pod_spec(own)["containers"][0]["args"]
    team_labels = server["spec"]["template"]["metadata"]["labels"]
    for selector in (own["spec"]["selector"]["matchLabels"], service_selector(objects, own)):
        assert not selector.items() <= team_labels.items(), "the platform's server selects it"
    assert service_selector(objects, server) == server["spec"]["selector"]["matchLabels"]
    assert team_labels["trainyard.io/pipeline"] == NAME
    role = one(objects, "Role", f"{RELEASE}-serving-deployer")
    assert set(role["rules"][0]["resourceNames"]) == {f"{RELEASE}-serving", SERVER}

    platform = parse_platform(platform_json(objects))
    assert platform.model_servers == {
        model: {
            "TRAINYARD_SERVING_DEPLOYMENT": SERVER,
            "TRAINYARD_SERVING_NAMESPACE": NAMESPACE,
            "TRAINYARD_SERVING_URL": f"http://{SERVER}.{NAMESPACE}.svc:8080",
        }
    }
    env = PipelineDag(parse_spec(DIABETES, CHART / "values.yaml"), platform).serving_env()
    assert env["TRAINYARD_SERVING_DEPLOYMENT"] == SERVER
    policies = [
        o for o in objects if o["kind"] == "NetworkPolicy" and "serving" in o["metadata"]["name"]
    ]
    assert any(
        p["spec"]["podSelector"]["matchLabels"].items() <= team_labels.items() for p in policies
    ), "no NetworkPolicy admits the team's server's callers"
    service = one(objects, "Service", SERVER)
    assert kubernetes_validate([server, service, role, *policies], ("1.34.0",)) == []


def own_model(objects: list[dict]) -> str:
    return str(platform_json(objects)["model_name"])


def service_selector(objects: list[dict], deployment: dict) -> dict[str, str]:
    selector: dict[str, str] = one(objects, "Service", deployment["metadata"]["name"])["spec"][
        "selector"
    ]
    return selector


@pytest.mark.parametrize(
    "values",
    [
        pipelines(specs={NAME: {**DIABETES, "model": {**DIABETES["model"], "serve": False}}}),
        {**pipelines(specs={NAME: DIABETES}), "serving": {"enabled": False}},
    ],
    ids=["serve-false", "serving-disabled"],
)
def test_no_server_for_a_model_that_is_not_served(values: dict) -> None:
    objects = render_chart(values)
    assert not find(objects, "Deployment", SERVER)
    assert "model_servers" not in platform_json(objects)


def test_a_served_models_name_must_be_literal_on_the_cluster() -> None:
    templated = {**DIABETES, "model": {"name": "${pipeline}-model"}}
    message = render_error(pipelines(specs={NAME: templated}))
    assert f"global.pipelines.specs.{NAME}.model.name" in message and "literal" in message
    render_chart(
        pipelines(specs={NAME: {**templated, "model": {"name": "${pipeline}", "serve": False}}})
    )

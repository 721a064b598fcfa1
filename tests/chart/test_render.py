"""The chart lints, renders, validates against Kubernetes schemas and passes checkov."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from .conftest import (
    CHART,
    CI_VALUES,
    KUBERNETES_VERSIONS,
    NAMESPACE,
    RELEASE,
    TRAINING_NAMESPACE,
    checkov,
    containers,
    kubernetes_validate,
    pod_spec,
    render_chart,
    run_helm,
    tool,
    workloads,
)

pytestmark = pytest.mark.chart

# Scenario name -> values files: the defaults and every ci/*.yaml.
SCENARIOS = {"defaults": [], **{path.stem: [path] for path in CI_VALUES}}


def render_scenario(name: str, helm: str = "helm3") -> list[dict]:
    return render_chart(values_files=SCENARIOS[name], helm=helm)


def test_ci_values_files_exist() -> None:
    names = {path.name for path in CI_VALUES}
    assert {
        "kind-values.yaml",
        "external-values.yaml",
        "minio-values.yaml",
        "gpu-values.yaml",
    } <= names


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_lint_strict(helm: str, scenario: str) -> None:
    args = ["lint", "--strict", str(CHART)]
    for path in SCENARIOS[scenario]:
        args += ["--values", str(path)]
    out = run_helm(helm, args)
    assert "0 chart(s) failed" in out


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_renders_and_validates_against_kubernetes_schemas(helm: str, scenario: str) -> None:
    objects = render_scenario(scenario, helm)
    assert objects, "nothing rendered"
    errors = kubernetes_validate(objects)
    assert not errors, "\n".join(errors)


def test_kubernetes_validate_bundles_the_versions_we_check() -> None:
    import subprocess  # noqa: PLC0415

    out = subprocess.run(
        [
            str(tool("python")),
            "-c",
            "import kubernetes_validate.utils as u; print('\\n'.join(u.all_versions()))",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    for version in KUBERNETES_VERSIONS:
        assert version in out


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_checkov_passes_except_documented_skips(scenario: str) -> None:
    objects = render_scenario(scenario)
    report = checkov(objects)
    failed = [
        f"{c['check_id']} {c['resource']}: {c['check_name']}"
        for c in report["results"]["failed_checks"]
    ]
    assert not failed, "\n".join(failed)
    assert report["results"]["passed_checks"], "checkov checked nothing"
    for check in report["results"]["skipped_checks"]:
        # Every skip lives in the chart as `checkov.io/skip#: CKV_...=<reason>`.
        reason = check.get("check_result", {}).get("suppress_comment") or ""
        assert len(reason) > 20, (
            f"{check['check_id']} on {check['resource']} skipped without a reason"
        )


def test_checkov_skip_annotations_all_have_reasons() -> None:
    for obj in render_scenario("defaults"):
        for key, value in (obj["metadata"].get("annotations") or {}).items():
            if key.startswith("checkov.io/skip"):
                check, _, reason = value.partition("=")
                assert check.startswith("CKV"), value
                assert len(reason.split()) >= 5, f"{obj['kind']}/{obj['metadata']['name']}: {value}"


def test_every_object_is_namespaced_and_labelled(helm: str) -> None:
    for scenario in SCENARIOS:
        for obj in render_scenario(scenario, helm):
            meta = obj["metadata"]
            ident = f"{scenario}: {obj['kind']}/{meta['name']}"
            if obj["kind"] == "Namespace":  # cluster-scoped: the training namespace
                assert "namespace" not in meta, ident
            else:
                # The release namespace, or the training namespace for trainer objects and the
                # pod launchers' Roles there.
                assert meta.get("namespace") in (NAMESPACE, TRAINING_NAMESPACE), ident
            labels = meta.get("labels") or {}
            for key in (
                "app.kubernetes.io/name",
                "app.kubernetes.io/instance",
                "app.kubernetes.io/component",
                "app.kubernetes.io/part-of",
                "app.kubernetes.io/managed-by",
                "helm.sh/chart",
            ):
                assert labels.get(key), f"{ident} lacks label {key}"
            assert labels["app.kubernetes.io/instance"] == RELEASE
            assert labels["app.kubernetes.io/part-of"] == "trainyard"
            assert len(meta["name"]) <= 63, ident


def test_workload_selectors_match_pod_labels() -> None:
    for scenario in SCENARIOS:
        for obj in render_scenario(scenario):
            if obj["kind"] in ("Deployment", "StatefulSet"):
                selector = obj["spec"]["selector"]["matchLabels"]
                labels = obj["spec"]["template"]["metadata"]["labels"]
                assert selector.items() <= labels.items(), obj["metadata"]["name"]
                assert "app.kubernetes.io/version" not in selector


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_pod_security_everywhere(scenario: str) -> None:
    """Non-root, no privilege escalation, no capabilities, RuntimeDefault seccomp, read-only
    root filesystem, no service-account token, requests and limits: on every container."""
    found = 0
    for obj in workloads(render_scenario(scenario)):
        spec = pod_spec(obj)
        ident = f"{obj['kind']}/{obj['metadata']['name']}"
        if obj["metadata"]["name"].endswith("-nvidia-device-plugin"):
            # The one exception (opt-in, checkov skips say why): root, to write the kubelet's
            # device-plugin socket directory. Still no privileges and no capabilities.
            assert spec["securityContext"]["runAsUser"] == 0, ident
            (container,) = spec["containers"]
            sc = container["securityContext"]
            assert sc["allowPrivilegeEscalation"] is False and not sc.get("privileged"), ident
            assert sc["capabilities"] == {"drop": ["ALL"]}, ident
            assert spec["automountServiceAccountToken"] is False, ident
            continue
        assert spec["securityContext"]["runAsNonRoot"] is True, ident
        assert spec["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault", ident
        assert spec["automountServiceAccountToken"] is False, ident
        assert spec.get("serviceAccountName"), ident
        assert not spec.get("hostNetwork") and not spec.get("hostPID") and not spec.get("hostIPC")
        for container in containers(spec):
            found += 1
            where = f"{ident} container {container['name']}"
            sc = container["securityContext"]
            assert sc["allowPrivilegeEscalation"] is False, where
            assert sc["runAsNonRoot"] is True, where
            assert sc["capabilities"]["drop"] == ["ALL"], where
            assert "add" not in sc["capabilities"], where
            assert sc.get("privileged") is not True, where
            assert sc["readOnlyRootFilesystem"] is True, where
            for kind in ("requests", "limits"):
                assert {"cpu", "memory"} <= set(container["resources"][kind]), where
    assert found >= 5


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_images_are_pinned(scenario: str) -> None:
    for obj in workloads(render_scenario(scenario)):
        for container in containers(pod_spec(obj)):
            image = container["image"]
            name, _, tag = image.rpartition(":")
            assert name and tag and tag != "latest", f"{container['name']}: {image}"
            assert container["imagePullPolicy"] in ("IfNotPresent", "Always", "Never")


def test_long_running_containers_have_probes() -> None:
    for obj in render_scenario("defaults") + render_scenario("minio-values"):
        if obj["kind"] not in ("Deployment", "StatefulSet"):
            continue
        for container in pod_spec(obj)["containers"]:
            for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
                assert probe in container, f"{obj['metadata']['name']}/{container['name']} {probe}"


def test_no_remote_chart_dependencies() -> None:
    charts = [CHART, *[p for p in (CHART / "charts").iterdir() if p.is_dir()]]
    for chart in charts:
        meta = yaml.safe_load((chart / "Chart.yaml").read_text())
        assert meta["apiVersion"] == "v2"
        for dep in meta.get("dependencies", []):
            assert not dep.get("repository"), f"{chart.name}: {dep}"
            assert (CHART / "charts" / dep["name"] / "Chart.yaml").is_file()
    assert not list((CHART / "charts").glob("*.tgz")), "no packaged (fetched) subcharts"
    assert not (CHART / "Chart.lock").exists()


def test_chart_metadata() -> None:
    meta = yaml.safe_load((CHART / "Chart.yaml").read_text())
    assert meta["name"] == "trainyard"
    major, minor, patch = (int(x) for x in meta["version"].split("."))
    assert (major, minor, patch) >= (0, 1, 0)
    assert meta["appVersion"]
    assert meta["kubeVersion"].startswith(">=1.29")
    conditions = {d["name"]: d.get("condition") for d in meta["dependencies"]}
    assert conditions["postgresql"] == "postgresql.enabled"
    assert conditions["mlflow"] == "mlflow.enabled"


def test_helm_versions_are_the_pinned_ones() -> None:
    assert run_helm("helm3", ["version", "--template", "{{.Version}}"]).startswith("v3.17.")
    assert run_helm("helm4", ["version", "--template", "{{.Version}}"]).startswith("v4.1.")


def test_helm_tests_are_test_hooks(helm: str) -> None:
    objects = render_chart(helm=helm)
    hooks = [
        o for o in objects if (o["metadata"].get("annotations") or {}).get("helm.sh/hook") == "test"
    ]
    checks = {pod_spec(o)["containers"][0]["command"][-1] for o in hooks}
    assert checks == {"postgres", "s3", "mlflow", "trainer-credentials"}
    for pod in hooks:
        assert pod["kind"] == "Pod"
        assert pod["spec"]["restartPolicy"] == "Never"
        assert (
            "before-hook-creation" in pod["metadata"]["annotations"]["helm.sh/hook-delete-policy"]
        )


def test_only_helm_tests_are_hooks() -> None:
    """No install/upgrade hooks: everything works with `helm install --wait` and Argo CD."""
    for scenario in SCENARIOS:
        for obj in render_scenario(scenario):
            hook = (obj["metadata"].get("annotations") or {}).get("helm.sh/hook")
            assert hook in (None, "test"), f"{obj['kind']}/{obj['metadata']['name']}: {hook}"


def test_tests_can_be_disabled() -> None:
    objects = render_chart({"tests": {"enabled": False}, "bucketInit": {"enabled": False}})
    assert not [o for o in objects if "test" in o["metadata"]["name"].split("-")]
    assert not [o for o in objects if o["kind"] == "Job" and "bucket-init" in o["metadata"]["name"]]


def test_release_and_namespace_names_flow_everywhere() -> None:
    objects = render_chart(release="ml", namespace="research")
    assert {o["metadata"].get("namespace") for o in objects} == {
        "research",
        TRAINING_NAMESPACE,
        None,  # the Namespace object
    }
    same = render_chart({"global": {"training": {"namespace": ""}}}, release="ml", namespace="r")
    assert {o["metadata"]["namespace"] for o in same} == {"r"}
    names = {o["metadata"]["name"] for o in objects}
    assert {"ml-postgresql", "ml-seaweedfs", "ml-mlflow", "ml-platform"} <= names


def test_chart_holds_only_text_sources() -> None:
    for path in CHART.rglob("*"):
        if path.is_file():
            assert (
                path.suffix in {".yaml", ".yml", ".tpl", ".txt", ".json", ".md", ""}
                or path.name == ".helmignore"
            ), path
            Path(path).read_text()

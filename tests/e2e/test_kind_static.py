"""Everything of the kind path that can be checked without a cluster: the kind config's nodes
against the chart's GPU scheduling, the kind values files against Helm 3/4 and the schemas, and
the images loaded into kind against the images the rendered chart runs."""

from __future__ import annotations

import functools
import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.chart.conftest import (
    APP_VERSION,
    HELMS,
    containers,
    kubernetes_validate,
    pod_spec,
    render_chart,
    run_helm,
    workloads,
)
from tests.chart.test_airflow import build_trainer_pods

from . import images, kindconfig, previous_chart
from .kindenv import (
    CHART,
    FAKE_GPU_VALUES,
    FAKE_GPUS,
    GPU_NODE_LABEL,
    KIND_VALUES,
    TEAMS_VALUES,
)
from .kube import Kube
from .release import InstalledRelease, without_conn_id
from .scenario import Endpoints

pytestmark = pytest.mark.chart

MODES = {"cpu": [KIND_VALUES], "fake-gpu": [KIND_VALUES, FAKE_GPU_VALUES]}


def render(mode: str, helm: str = "helm3") -> list[dict[str, Any]]:
    return render_chart(values_files=MODES[mode], helm=helm)


def platform_json(objects: list[dict[str, Any]]) -> dict[str, Any]:
    config: dict[str, Any]
    (config,) = [
        json.loads(o["data"]["platform.json"])
        for o in objects
        if o["kind"] == "ConfigMap" and "platform.json" in o.get("data", {})
    ]
    return config


@functools.cache
def trainer_pod(mode: str, helm: str) -> dict[str, Any]:
    """The DAG's real `train` pod for the mode's platform.json (Airflow builds it; seconds)."""
    pods = build_trainer_pods([platform_json(render(m, helm)) for m in MODES])
    return dict(zip(MODES, pods, strict=True))[mode]


def nodes() -> tuple[kindconfig.KindNode, kindconfig.KindNode]:
    loaded = kindconfig.load()
    assert [n.role for n in loaded] == ["control-plane", "worker"]
    return loaded[0], loaded[1]


# ---- the kind config ------------------------------------------------------------------------


def test_kind_config_pins_one_node_image_by_digest_and_a_supported_kubernetes() -> None:
    control_plane, worker = nodes()
    assert control_plane.image == worker.image
    match = re.fullmatch(r"kindest/node:v(\d+)\.(\d+)\.(\d+)@sha256:[0-9a-f]{64}", worker.image)
    assert match, f"node image not pinned by digest: {worker.image}"
    minimum = yaml.safe_load((CHART / "Chart.yaml").read_text())["kubeVersion"]
    major, minor = re.search(r"(\d+)\.(\d+)", minimum).groups()  # type: ignore[union-attr]
    assert (int(match[1]), int(match[2])) >= (int(major), int(minor)), minimum
    # The kubeadm patches are in v1beta3 form (kubeletExtraArgs a map): kind generates v1beta4
    # from Kubernetes 1.36 on, where they would need rewriting as name/value lists.
    assert (int(match[1]), int(match[2])) < (1, 36), "convert the kubeadm patches to v1beta4"


def test_worker_is_the_gpu_pool_with_the_charts_default_taint() -> None:
    _, worker = nodes()
    gpu_defaults = yaml.safe_load((CHART / "charts" / "gpu" / "values.yaml").read_text())
    assert worker.taints == [gpu_defaults["nodePool"]["taint"]]
    key, value = GPU_NODE_LABEL
    assert worker.labels.get(key) == value


def test_control_plane_is_schedulable_for_the_platform() -> None:
    """kind keeps the control-plane taint when a cluster has workers; the platform's pods
    tolerate nothing, so kind-config.yaml clears it (an empty taint list)."""
    control_plane, _ = nodes()
    assert control_plane.taints == []


@pytest.mark.parametrize("helm", HELMS)
def test_fake_gpu_trials_can_only_land_on_the_worker(helm: str) -> None:
    """The real train pod (the DAG's KubernetesPodOperator from the rendered platform.json):
    the worker admits it, the control plane does not (its selector), and the fake capacity
    covers every parallel trial."""
    control_plane, worker = nodes()
    config = platform_json(render("fake-gpu", helm))
    assert config["gpu"]["enabled"] is True
    spec = trainer_pod("fake-gpu", helm)["spec"]
    tolerations, selector = spec.get("tolerations", []), spec.get("nodeSelector", {})
    assert selector, "the fake-GPU values must pin trials to the pool by its label"
    assert kindconfig.admits(worker, tolerations, selector)
    assert not kindconfig.admits(control_plane, tolerations, selector)
    limit = int(spec["containers"][0]["resources"]["limits"][config["gpu"]["resource_name"]])
    assert limit * config["max_parallel_trials"] <= FAKE_GPUS


@pytest.mark.parametrize("helm", HELMS)
def test_cpu_fallback_runs_everything_on_the_control_plane(helm: str) -> None:
    control_plane, worker = nodes()
    objects = render("cpu", helm)
    config = platform_json(objects)
    assert config["gpu"]["enabled"] is False
    specs = [trainer_pod("cpu", helm)["spec"]] + [pod_spec(o) for o in workloads(objects)]
    assert len(specs) > 5
    for spec in specs:
        tolerations, selector = spec.get("tolerations", []), spec.get("nodeSelector", {})
        assert kindconfig.admits(control_plane, tolerations, selector), spec
        # ...and nothing of the platform takes the GPU pool's place.
        assert not kindconfig.admits(worker, tolerations, selector), spec
        for container in containers(spec):
            assert "nvidia.com/gpu" not in (container.get("resources") or {}).get("limits", {})


def test_the_gpu_pool_runs_only_the_images_loaded_there() -> None:
    """KindEnv.load_images loads only the trainer and XCom sidecar images into the GPU pool's
    node: no rendered workload may land there, and the trainer pod runs nothing else."""
    _, worker = nodes()
    objects = render("fake-gpu")
    for spec in [pod_spec(o) for o in workloads(objects)]:
        assert not kindconfig.admits(worker, spec.get("tolerations", []),
                                     spec.get("nodeSelector", {})), spec  # fmt: skip
    # Besides the trainer: the pod operator's XCom sidecar (KindEnv.gpu_pool_images offline).
    trainer = trainer_pod("fake-gpu", "helm3")["spec"]
    sidecar = yaml.safe_load((CHART / "charts" / "airflow" / "values.yaml").read_text())
    sidecar = sidecar["podOperator"]["xcomSidecarImage"]
    used = {images.repository(c["image"]) for c in containers(trainer)}
    assert used == {
        images.TRAINER_REPOSITORY,
        images.repository(f"{sidecar['registry']}/{sidecar['repository']}"),
    }, used


def test_fake_gpu_values_run_no_device_plugin() -> None:
    names = [o["metadata"]["name"] for o in render("fake-gpu")]
    assert not [n for n in names if "device-plugin" in n]


# ---- the values files -----------------------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("helm", HELMS)
def test_kind_values_lint_render_and_validate(helm: str, mode: str) -> None:
    """Both helm majors take the values (schema included) and every object is valid
    Kubernetes; ci/kind-fake-gpu-values.yaml is only ever used on top of kind-values.yaml."""
    args = ["lint", "--strict", str(CHART)]
    for path in MODES[mode]:
        args += ["--values", str(path)]
    assert "0 chart(s) failed" in run_helm(helm, args)
    errors = kubernetes_validate(render(mode, helm))
    assert not errors, "\n".join(errors)


def test_kind_requests_fit_a_small_runner() -> None:
    """Everything the CPU-mode platform requests at once fits a 4-core, 8 GiB Docker host."""
    cpu = memory = 0.0
    for obj in workloads(render("cpu")):
        if obj["kind"] == "Pod":  # helm test hooks run later, alone
            continue
        for container in pod_spec(obj)["containers"]:
            requests = container["resources"]["requests"]
            cpu += _cpu(requests["cpu"])
            memory += _gib(requests["memory"])
    assert cpu <= 2.0 and memory <= 6.0, (cpu, memory)


def _cpu(value: str) -> float:
    return float(value[:-1]) / 1000 if value.endswith("m") else float(value)


def _gib(value: str) -> float:
    units = {"Ki": 2**-20, "Mi": 2**-10, "Gi": 1.0}
    return float(value[:-2]) * units[value[-2:]]


# ---- what the fixture looks up in a release ---------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
def test_release_lookups_find_exactly_what_the_fixture_reads(mode: str, tmp_path: Path) -> None:
    """The kind fixture finds Services, Secrets and ConfigMaps in `helm get manifest` by their
    labels (release.py); here the same lookups run over the rendered manifest, so a renamed
    label or key fails without a cluster."""
    objects = render(mode)
    by_name = {(o["kind"], o["metadata"]["name"]): o for o in objects}
    release = InstalledRelease(
        Kube(tmp_path / "kubectl", tmp_path / "kubeconfig"),
        tmp_path,
        "trainyard",
        "trainyard",
        "ml-training",
    )
    release._manifest = objects  # what `helm get manifest` returns on a cluster

    platform_cm = by_name["ConfigMap", release.name_of("ConfigMap", "platform-config", "trainyard")]
    config = json.loads(platform_cm["data"]["platform.json"])
    assert config["trainer"]["env_from_secrets"] and config["trainer"]["namespace"]
    store_secret = by_name["Secret", platform_cm["data"]["OBJECT_STORE_CREDENTIALS_SECRET"]]
    assert {"access-key-id", "secret-access-key"} <= set(store_secret["data"])
    for component, name in (("tracking-server", "mlflow"), ("secrets", "airflow")):
        secret = by_name["Secret", release.name_of("Secret", component, name)]
        assert "admin-password" in secret["data"], secret["metadata"]["name"]

    airflow = by_name["ConfigMap", release.name_of("ConfigMap", "config", "airflow")]["data"]
    xcom = without_conn_id(airflow["AIRFLOW__COMMON_IO__XCOM_OBJECTSTORAGE_PATH"])
    logs = airflow["AIRFLOW__LOGGING__REMOTE_BASE_LOG_FOLDER"]
    # The scenario's defaults are the chart's defaults.
    assert (xcom, logs) == (Endpoints.xcom_url, Endpoints.logs_url)
    assert (config["data_root"], config["model_name"]) == (
        Endpoints.data_root,
        Endpoints.model_name,
    )

    ports = {
        (component, port_name): release.service_port(component, port_name, name)
        for component, port_name, name in (
            ("api-server", "http", "airflow"),
            ("tracking-server", "http", "mlflow"),
            ("object-store", "s3", None),
            ("model-server", "http", "serving"),
        )
    }
    assert ports[("api-server", "http")] == ("trainyard-airflow-api-server", 8080)
    assert ports[("object-store", "s3")] == ("trainyard-seaweedfs", 8333)
    for service, _ in ports.values():
        assert ("Service", service) in by_name

    values = yaml.safe_load((CHART / "charts" / "airflow" / "values.yaml").read_text())
    assert values["auth"]["adminUsername"]  # read from `helm get values --all`
    values = yaml.safe_load((CHART / "charts" / "mlflow" / "values.yaml").read_text())
    assert values["auth"]["adminUsername"]


# ---- images ---------------------------------------------------------------------------------


def built() -> set[str]:
    return {images.normalize(ref) for ref in images.built_images()}


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("helm", HELMS)
def test_images_loaded_into_kind_are_exactly_those_the_chart_runs(helm: str, mode: str) -> None:
    rendered = {images.normalize(i) for i in images.rendered_images(render(mode, helm))}
    public = {images.normalize(i) for i in images.PUBLIC_IMAGES}
    loaded = built() | public
    assert rendered == loaded, (
        f"rendered but not loaded: {sorted(rendered - loaded)}; "
        f"loaded but not rendered: {sorted(loaded - rendered)}"
    )


def test_public_images_are_not_built_here_and_the_built_ones_are_never_pulled() -> None:
    ours = built()
    public = {images.normalize(i) for i in images.PUBLIC_IMAGES}
    assert not ours & public
    objects = render("cpu")
    for obj in workloads(objects):
        for container in containers(pod_spec(obj)):
            if images.normalize(container["image"]) in ours:
                # A missing load fails at once (ErrImageNeverPull), not as a registry pull.
                assert container["imagePullPolicy"] == "Never", container["name"]
    assert platform_json(objects)["trainer"]["image_pull_policy"] == "Never"


def test_rendered_images_include_pod_templates_and_the_trainer() -> None:
    found = images.rendered_images(render("cpu"))
    config = platform_json(render("cpu"))
    assert config["trainer"]["image"] in found
    template = next(
        yaml.safe_load(text)
        for o in render("cpu")
        if o["kind"] == "ConfigMap"
        for text in o.get("data", {}).values()
        if "kind: Pod" in text
    )
    assert template["spec"]["containers"][0]["image"] in found


def test_previous_chart_installs_on_kind_with_the_images_built_here(tmp_path: Path) -> None:
    """The upgrade test's starting point (the last release, previous_chart.py) renders with its
    own kind values, and runs no image this tree does not build or preload (the upgrade test
    would fail otherwise)."""
    previous = previous_chart.last_release(images.REPO)
    chart = previous_chart.export(images.REPO, previous, tmp_path)
    values = chart / "ci" / "kind-values.yaml"
    assert values.is_file(), f"{previous.source} has no ci/kind-values.yaml"
    out = run_helm("helm3", ["template", "trainyard", str(chart), "--values", str(values)])
    needed = {
        images.normalize(i)
        for i in images.rendered_images([d for d in yaml.safe_load_all(out) if d])
    }
    public = {images.normalize(i) for i in images.PUBLIC_IMAGES | images.PREVIOUS_RELEASE_IMAGES}
    # The kind test runs this tree's images under the release's appVersion tags.
    app_version = str(yaml.safe_load((chart / "Chart.yaml").read_text())["appVersion"])
    ours = {images.retagged(r, APP_VERSION, app_version) for r in built()}
    assert needed - public - ours == set(), previous


@pytest.mark.parametrize(
    ("ref", "expected"),
    [
        ("trainyard/airflow:0.1.0", "docker.io/trainyard/airflow:0.1.0"),
        ("postgres", "docker.io/library/postgres:latest"),
        ("docker.io/library/postgres:18", "docker.io/library/postgres:18"),
        ("quay.io/minio/minio:RELEASE.x", "quay.io/minio/minio:RELEASE.x"),
        ("localhost:5000/a/b:1", "localhost:5000/a/b:1"),
        ("busybox@sha256:" + "0" * 64, "docker.io/library/busybox@sha256:" + "0" * 64),
    ],
)
def test_image_refs_normalize_as_containerd_stores_them(ref: str, expected: str) -> None:
    assert images.normalize(ref) == expected


def test_kind_values_files_are_those_the_fixture_uses() -> None:
    for path in (KIND_VALUES, FAKE_GPU_VALUES, TEAMS_VALUES):
        assert Path(path).is_file() and yaml.safe_load(path.read_text())

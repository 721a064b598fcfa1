"""Chart defects that the first install on a real cluster (kind, tests/e2e/test_kind.py) surfaced,
each pinned here at the cheapest level that can see it. Render-level tests had passed them all.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml

from .conftest import (
    CHART,
    NAMESPACE,
    RELEASE,
    REPO,
    containers,
    env_of,
    find,
    one,
    pod_spec,
    render_chart,
    run_helm,
    workloads,
)
from .test_airflow import build_trainer_pods, platform_json

pytestmark = pytest.mark.chart
AIRFLOW_DOCKERFILE = REPO / "images" / "airflow" / "Dockerfile"


def airflow_pod_specs(objects: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    specs = {
        o["metadata"]["name"]: pod_spec(o)
        for o in workloads(objects)
        if o["metadata"]["labels"].get("app.kubernetes.io/name") == "airflow"
    }
    template = one(objects, "ConfigMap", f"{RELEASE}-airflow-pod-template")
    specs["worker pod template"] = yaml.safe_load(template["data"]["pod_template.yaml"])["spec"]
    return specs


def test_no_airflow_mount_hides_the_pipeline_modules_of_the_image() -> None:
    """A ConfigMap mounted at /opt/trainyard hid /opt/trainyard/lib (the image's PYTHONPATH):
    the DAG failed to import in the dag-processor and every worker pod."""
    pythonpath = re.search(r"PYTHONPATH=(\S+)", AIRFLOW_DOCKERFILE.read_text())
    assert pythonpath, "images/airflow/Dockerfile sets no PYTHONPATH"
    for folder in pythonpath[1].split(":"):
        for name, spec in airflow_pod_specs(render_chart()).items():
            for container in containers(spec):
                for mount in container.get("volumeMounts", []):
                    path = mount["mountPath"].rstrip("/")
                    assert not (folder + "/").startswith(path + "/"), (name, mount, folder)


def test_the_api_servers_passwords_file_is_writable() -> None:
    """SimpleAuthManager opens its passwords file with "a+"/"r+": on the read-only Secret mount
    the api-server crashed at startup ("Read-only file system")."""
    objects = render_chart({"airflow": {"auth": {"manager": "simple"}}})
    spec = pod_spec(one(objects, "Deployment", f"{RELEASE}-airflow-api-server"))
    config = one(objects, "ConfigMap", f"{RELEASE}-airflow-config")["data"]
    folder = str(Path(config["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE"]).parent)
    volumes = {v["name"]: v for v in spec["volumes"]}
    (main,) = spec["containers"]
    (mount,) = [m for m in main["volumeMounts"] if m["mountPath"] == folder]
    assert not mount.get("readOnly") and "emptyDir" in volumes[mount["name"]]
    # ... filled from the Secret before the server starts.
    (copy,) = [c for c in spec["initContainers"] if c["name"] == "passwords-file"]
    sources = {m["mountPath"]: volumes[m["name"]] for m in copy["volumeMounts"]}
    assert sources[folder] is volumes[mount["name"]]
    assert any("secret" in v for v in sources.values())
    # ... owner-writable: a plain copy of the 0440 Secret file stayed read-only for the server.
    assert copy["command"][:3] == ["install", "-m", "0600"], copy["command"]


def kubernetes_connection(env: dict[str, Any]) -> dict[str, Any]:
    import json  # noqa: PLC0415

    value = env["AIRFLOW_CONN_KUBERNETES_DEFAULT"]
    connection: dict[str, Any] = json.loads(value)
    return connection


def test_pod_operator_connection_in_workers_and_triggerer() -> None:
    """Deferred trainer pods: the triggerer's async hook has no in-cluster fallback and died
    with "Invalid kube-config file"; the XCom sidecar defaulted to an image from Docker Hub."""
    specs = airflow_pod_specs(render_chart())
    for name in ("worker pod template", f"{RELEASE}-airflow-triggerer"):
        (container,) = [c for c in specs[name]["containers"] if c["name"] in ("base", "triggerer")]
        connection = kubernetes_connection(env_of(container))
        assert connection["conn_type"] == "kubernetes"
        assert connection["extra"]["in_cluster"] is True
        assert (
            connection["extra"]["xcom_sidecar_container_image"] == "docker.io/library/alpine:3.24.2"
        )
    image = {"registry": "mirror.example.com", "repository": "tools/busybox", "tag": "1.36"}
    mirror = {"airflow": {"podOperator": {"xcomSidecarImage": {**image, "digest": ""}}}}
    specs = airflow_pod_specs(render_chart(mirror))
    (base,) = [c for c in specs["worker pod template"]["containers"] if c["name"] == "base"]
    extra = kubernetes_connection(env_of(base))["extra"]
    assert extra["xcom_sidecar_container_image"] == "mirror.example.com/tools/busybox:1.36"


def render_chart_version(tmp_path: Path, version: str) -> list[dict[str, Any]]:
    chart = tmp_path / version / "trainyard"
    shutil.copytree(CHART, chart)
    meta = yaml.safe_load((chart / "Chart.yaml").read_text())
    meta["version"] = version
    (chart / "Chart.yaml").write_text(yaml.safe_dump(meta, sort_keys=False))
    text = run_helm("helm3", ["template", RELEASE, str(chart)])
    return [doc for doc in yaml.safe_load_all(text) if doc]


def test_jobs_are_new_objects_whenever_their_pod_template_changes(tmp_path: Path) -> None:
    """`helm upgrade` to a new chart version failed: the bucket-init Job kept its name while
    its pod template's labels (helm.sh/chart) changed, and a Job's template is immutable."""
    before = {
        j["metadata"]["name"]: j for j in find(render_chart_version(tmp_path, "9.0.0"), "Job")
    }
    after = {j["metadata"]["name"]: j for j in find(render_chart_version(tmp_path, "9.0.1"), "Job")}
    assert before and len(before) == len(after)
    for name, job in after.items():
        if name in before:
            assert before[name]["spec"]["template"] == job["spec"]["template"], name
    # Values that only reach the pod template (resources) also make new Jobs.
    base = {j["metadata"]["name"] for j in find(render_chart(), "Job")}
    resources = {"requests": {"cpu": "30m", "memory": "64Mi"}, "limits": {"memory": "128Mi"}}
    changed = {"bucketInit": {"resources": resources}, "postgresql": {"ensureDatabases": {
        "resources": resources}}}  # fmt: skip
    assert not base & {j["metadata"]["name"] for j in find(render_chart(changed), "Job")}
    assert base == {j["metadata"]["name"] for j in find(render_chart(), "Job")}


def test_trainer_pods_xcom_sidecar_runs_as_non_root_from_the_pinned_image() -> None:
    """Every trainer pod has runAsNonRoot; the provider's sidecar (alpine, root by default) was
    refused by the kubelet, and its image came from Docker Hub whatever the chart said."""
    objects = render_chart()
    specs = airflow_pod_specs(objects)
    (base,) = [c for c in specs["worker pod template"]["containers"] if c["name"] == "base"]
    connection = env_of(base)["AIRFLOW_CONN_KUBERNETES_DEFAULT"]
    (pod,) = build_trainer_pods(
        [platform_json(objects)], {"AIRFLOW_CONN_KUBERNETES_DEFAULT": connection}
    )
    assert pod["spec"]["securityContext"]["runAsNonRoot"] is True
    (sidecar,) = [c for c in pod["spec"]["containers"] if c["name"] == "airflow-xcom-sidecar"]
    assert sidecar["image"] == "docker.io/library/alpine:3.24.2"
    context = sidecar["securityContext"]
    assert context["runAsNonRoot"] is True and context["runAsUser"] != 0
    assert context["allowPrivilegeEscalation"] is False
    assert context["capabilities"] == {"drop": ["ALL"]}


def test_seaweedfs_has_room_for_the_volumes_every_bucket_grows() -> None:
    """SeaweedFS grows 7 volumes per collection at the first write; with -volume.max=0 (free
    disk / volume size) the fourth bucket, mlflow, had none: every model upload failed."""
    objects = render_chart({"global": {"objectStore": {"provider": "seaweedfs"}}})
    (store,) = [s for s in find(objects, "StatefulSet") if "seaweedfs" in s["metadata"]["name"]]
    (container,) = containers(pod_spec(store))
    flags = dict(a.lstrip("-").split("=", 1) for a in container["args"] if "=" in a)
    buckets = yaml.safe_load((CHART / "values.yaml").read_text())["global"]["objectStore"][
        "buckets"
    ]
    assert int(flags["volume.max"]) >= 7 * (len(buckets) + 1), flags
    low = {"global": {"objectStore": {"provider": "seaweedfs"}},
           "objectstore": {"seaweedfs": {"maxVolumes": 20}}}  # fmt: skip
    with pytest.raises(Exception, match="maxVolumes=20 is too low"):
        render_chart(low)


def test_mlflow_answers_a_port_forward_on_any_local_port() -> None:
    """MLflow's DNS-rebinding guard matches the Host header against --allowed-hosts (fnmatch
    where a pattern has "*"): only 127.0.0.1:5000 was allowed, and a port-forward to another
    local port got 403 "Invalid Host header" for every API call."""
    import fnmatch  # noqa: PLC0415

    objects = render_chart()
    (deployment,) = [
        d for d in find(objects, "Deployment") if d["metadata"]["name"].endswith("-mlflow")
    ]
    (server,) = [c for c in containers(pod_spec(deployment)) if c["name"] == "mlflow"]
    (flag,) = [a for a in server["args"] if a.startswith("--allowed-hosts=")]
    allowed = flag.split("=", 1)[1].split(",")

    def accepted(host: str) -> bool:
        return any(fnmatch.fnmatch(host, a) if "*" in a else host == a for a in allowed)

    for host in ("127.0.0.1:42867", "localhost:15000", f"{RELEASE}-mlflow.{NAMESPACE}.svc:5000"):
        assert accepted(host), (host, allowed)
    assert not accepted("evil.example.com") and not accepted("evil.example.com:5000")


def test_helm_test_pods_keep_their_logs_for_helm_test_logs() -> None:
    """`helm test --logs` failed with "unable to get pod logs": hook-succeeded deleted the pods
    before Helm read their logs."""
    tests = [
        o
        for o in render_chart()
        if o["metadata"].get("annotations", {}).get("helm.sh/hook") == "test"
    ]
    assert tests
    for pod in tests:
        policy = pod["metadata"]["annotations"]["helm.sh/hook-delete-policy"].split(",")
        assert "hook-succeeded" not in policy and "before-hook-creation" in policy

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
from pathlib import Path
from typing import Any

import pytest
import yaml

from .conftest import (
    CHART,
    NAMESPACE,
    RELEASE,
    REPO,
    TRAINING_NAMESPACE,
    env_of,
    find,
    kubernetes_validate,
    one,
    pod_spec,
    render_chart,
    render_error,
    render_notes,
    tool,
)
from .test_airflow import airflow_python, build_operators, platform_json

pytestmark = pytest.mark.chart

SERVING = f"{RELEASE}-serving"

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


# ---- 4. the device plugin's settings are right where they are used -------------------------

DOCS = REPO / "docs" / "gpu-clusters.md"
TABLE_MARK = "<!-- device-plugin-table: tests/chart/test_gpu_clusters.py reads this table -->"


def device_plugin_table() -> list[dict[str, str]]:
    """The per-platform table of docs/gpu-clusters.md, one dict per row (cells unquoted)."""
    lines = DOCS.read_text().splitlines()
    start = lines.index(TABLE_MARK)
    rows = []
    for line in lines[start + 1 :]:
        if not line.startswith("|"):
            break
        rows.append([cell.strip() for cell in line.strip("|").split("|")])
    header, _, *body = rows
    return [dict(zip(header, row, strict=True)) for row in body]


def cell(row: dict[str, str], value: str) -> str:
    """A table cell's leading `code` value: "`false`" -> "false", '`""`' -> ""."""
    text = row[f"`{value}`"]
    assert text.startswith("`"), (value, text)
    return text.split("`")[1].strip('"')


def test_docs_table_covers_gke_eks_aks_and_the_gpu_operator() -> None:
    table = device_plugin_table()
    platforms = " ".join(row["platform"] for row in table)
    for name in ("GKE", "EKS", "AKS", "GPU Operator"):
        assert name in platforms
    for row in table:
        assert cell(row, "gpu.devicePlugin.enabled") in ("true", "false"), row
        # the plugin runs where nobody else runs one, and only there
        assert (cell(row, "gpu.devicePlugin.enabled") == "true") == (
            row["runs the plugin"] == "this chart"
        ), row
    for row in table:
        if "GKE" in row["platform"]:
            assert cell(row, "gpu.devicePlugin.enabled") == "false"
            assert cell(row, "gpu.devicePlugin.priorityClassName") == ""


def test_ci_gpu_values_match_their_row_of_the_docs_table(helm: str) -> None:
    (row,) = [r for r in device_plugin_table() if "ci/gpu-values.yaml" in r["platform"]]
    values = yaml.safe_load((CHART / "ci" / "gpu-values.yaml").read_text())["gpu"]
    assert str(values["devicePlugin"]["enabled"]).lower() == cell(row, "gpu.devicePlugin.enabled")
    assert values["devicePlugin"]["priorityClassName"] == cell(
        row, "gpu.devicePlugin.priorityClassName"
    )
    assert values["runtimeClassName"] == cell(row, "gpu.runtimeClassName")
    assert "cloud.google.com/gke-accelerator" not in values["nodePool"]["labels"]
    (daemonset,) = find(
        render_chart(values_files=[CHART / "ci" / "gpu-values.yaml"], helm=helm), "DaemonSet"
    )
    spec = pod_spec(daemonset)
    assert spec["priorityClassName"] == values["devicePlugin"]["priorityClassName"]
    terms = spec["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
    assert terms["nodeSelectorTerms"] == [
        {
            "matchExpressions": [
                {"key": key, "operator": "In", "values": [value]}
                for key, value in values["nodePool"]["labels"].items()
            ]
        }
    ]


PLUGIN = {"devicePlugin": {"enabled": True}, "nodePool": {"labels": {"pool": "gpu"}}}


def test_device_plugin_has_no_priority_class_by_default(helm: str) -> None:
    (daemonset,) = find(render_chart({"gpu": PLUGIN}, helm=helm), "DaemonSet")
    assert "priorityClassName" not in pod_spec(daemonset)


def test_device_plugin_runs_with_the_gpu_runtime_class(helm: str) -> None:
    (daemonset,) = find(
        render_chart({"gpu": {**PLUGIN, "runtimeClassName": "nvidia"}}, helm=helm), "DaemonSet"
    )
    assert pod_spec(daemonset)["runtimeClassName"] == "nvidia"
    (daemonset,) = find(render_chart({"gpu": PLUGIN}, helm=helm), "DaemonSet")
    assert "runtimeClassName" not in pod_spec(daemonset)


def test_device_plugin_needs_the_gpu_nodes_labels(helm: str) -> None:
    message = render_error({"gpu": {"devicePlugin": {"enabled": True}}}, helm=helm)
    assert "gpu.nodePool.labels" in message and "gpu.devicePlugin.nodeSelector" in message
    values = {"gpu": {"devicePlugin": {"enabled": True, "nodeSelector": {"gpu": "yes"}}}}
    (daemonset,) = find(render_chart(values, helm=helm), "DaemonSet")
    terms = pod_spec(daemonset)["affinity"]["nodeAffinity"][
        "requiredDuringSchedulingIgnoredDuringExecution"
    ]["nodeSelectorTerms"]
    assert terms == [{"matchExpressions": [{"key": "gpu", "operator": "In", "values": ["yes"]}]}]
    # no label only GPU feature discovery sets, anywhere
    assert "nvidia.com/gpu.present" not in json.dumps(daemonset)


def test_device_plugin_is_refused_where_gke_runs_its_own(helm: str) -> None:
    gke = {"cloud.google.com/gke-accelerator": "nvidia-l4"}
    values = {"gpu": {"devicePlugin": {"enabled": True}, "nodePool": {"labels": gke}}}
    assert "GKE already runs" in render_error(values, helm=helm)
    opted_out = {**gke, "gke-no-default-nvidia-gpu-device-plugin": "true"}
    values = {"gpu": {"devicePlugin": {"enabled": True}, "nodePool": {"labels": opted_out}}}
    assert find(render_chart(values, helm=helm), "DaemonSet")
    critical = {
        "gpu": {
            "devicePlugin": {"enabled": True, "priorityClassName": "system-node-critical"},
            "nodePool": {"labels": opted_out},
        }
    }
    assert "kube-system" in render_error(critical, helm=helm)
    assert find(render_chart(critical, helm=helm, namespace="kube-system"), "DaemonSet")


# ---- 8. smaller: MLflow port, trainer credentials reported before the first run ------------


def test_model_server_takes_the_mlflow_port_from_the_mlflow_service(helm: str) -> None:
    objects = render_chart({"mlflow": {"service": {"port": 5123}}}, helm=helm)
    service = one(objects, "Service", f"{RELEASE}-mlflow")
    assert service["spec"]["ports"][0]["port"] == 5123
    (container,) = pod_spec(one(objects, "Deployment", SERVING))["containers"]
    ref = env_of(container)["MLFLOW_TRACKING_URI"]["configMapKeyRef"]
    uri = one(objects, "ConfigMap", ref["name"])["data"][ref["key"]]
    assert uri == f"http://{RELEASE}-mlflow.{NAMESPACE}.svc:5123"
    assert ":5000" not in json.dumps(container)


TOKEN_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"
CREATE = f"kubectl -n {TRAINING_NAMESPACE} create secret generic {RELEASE}-trainer-credentials"
# The Secret you create: without the chart's trainer identity (MinIO, external stores, opt-out).
UNMANAGED: dict[str, Any] = {"global": {"training": {"identity": {"create": False}}}}


def credentials_test_pod(objects: list[dict[str, Any]]) -> dict[str, Any]:
    return one(objects, "Pod", f"{RELEASE}-test-trainer-credentials")


def test_helm_test_checks_the_trainer_credentials_secret(helm: str) -> None:
    objects = render_chart(UNMANAGED, helm=helm)
    pod = credentials_test_pod(objects)
    assert pod["metadata"]["annotations"]["helm.sh/hook"] == "test"
    # in the release namespace: `helm test --logs` reads logs only there
    assert pod["metadata"]["namespace"] == NAMESPACE
    spec = pod["spec"]
    assert spec["serviceAccountName"] == f"{RELEASE}-test-credentials"
    assert spec["automountServiceAccountToken"] is False
    assert any(v["name"] == "kube-api-access" for v in spec["volumes"])
    (container,) = spec["containers"]
    assert container["command"][-1] == "trainer-credentials"
    env = env_of(container)
    assert env["TRAINING_NAMESPACE"] == TRAINING_NAMESPACE
    assert env["TRAINER_CREDENTIALS"] == f"{RELEASE}-trainer-credentials"
    assert env["CREATE_COMMAND"].startswith(CREATE)
    for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "MLFLOW_TRACKING_PASSWORD"):
        assert f"--from-literal={key}=" in env["CREATE_COMMAND"]
    custom = render_chart(
        {**UNMANAGED, "training": {"credentialsSecretName": "my-creds"}}, helm=helm
    )
    assert env_of(credentials_test_pod(custom)["spec"]["containers"][0])[
        "CREATE_COMMAND"
    ].startswith(f"kubectl -n {TRAINING_NAMESPACE} create secret generic my-creds")


RUN_CHECK = r"""
import io, json, runpy, sys, urllib.error, urllib.request
script, mode = sys.argv[1], sys.argv[2]

def urlopen(request, timeout=None, context=None):
    path = "/namespaces/ml-training/secrets/trainyard-trainer-credentials"
    assert request.full_url.endswith(path), request.full_url
    if mode == "missing":
        raise urllib.error.HTTPError(request.full_url, 404, "Not Found", {}, io.BytesIO(b"{}"))
    return io.BytesIO(json.dumps({"data": {"AWS_ACCESS_KEY_ID": "eA=="}}).encode())

urllib.request.urlopen = urlopen
sys.argv = [script, "trainer-credentials"]
runpy.run_path(script, run_name="__main__")
"""


@pytest.mark.parametrize(("mode", "says"), [("missing", "does not exist"), ("keys", "lacks")])
def test_credentials_check_fails_with_the_command_that_creates_the_secret(
    mode: str, says: str, tmp_path: Path
) -> None:
    """The test pod's script, run here against a fake API server answer."""
    objects = render_chart(UNMANAGED)
    scripts = one(objects, "ConfigMap", f"{RELEASE}-platform-scripts")["data"]
    script = tmp_path / "smoke_test.py"
    script.write_text(scripts["smoke_test.py"])
    account = tmp_path / "sa"
    account.mkdir()
    (account / "token").write_text("token")
    env = {
        k: v
        for k, v in env_of(credentials_test_pod(objects)["spec"]["containers"][0]).items()
        if isinstance(v, str)
    }
    # The pod's token and CA paths, pointed at a temp dir (no CA: the fake answers in-process).
    source = script.read_text().replace(TOKEN_DIR, str(account))
    script.write_text(source.replace('cafile=f"{account}/ca.crt"', "cafile=None"))
    proc = subprocess.run(
        [airflow_python(), "-c", RUN_CHECK, str(script), mode],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={**os.environ, **env},
    )
    assert proc.returncode == 1, proc.stderr[-2000:]
    assert says in proc.stderr
    assert CREATE in proc.stderr


def test_notes_report_a_missing_trainer_credentials_secret(helm: str) -> None:
    notes = render_notes(UNMANAGED, helm=helm)
    assert f"MISSING:         Secret {RELEASE}-trainer-credentials" in notes
    assert CREATE in notes


# ---- 2. external Postgres with TLS verification ---------------------------------------------

CA_PATH = "/etc/trainyard/database-ca/ca.crt"


def external_database(ssl_mode: str, **extra: Any) -> dict[str, Any]:
    return {
        "postgresql": {"enabled": False},
        "global": {
            "database": {"existingSecret": "db-passwords"},
            "externalDatabase": {"host": "db.example.com", "sslMode": ssl_mode, **extra},
        },
    }


def database_containers(objects: list[dict[str, Any]]) -> list[tuple[str, dict, dict]]:
    """(ident, pod spec, container) of every container that connects to Postgres."""
    found = []
    for obj in objects:
        if obj["kind"] not in ("Deployment", "StatefulSet", "Job", "Pod"):
            continue
        spec = pod_spec(obj)
        for container in [*spec.get("initContainers", []), *spec["containers"]]:
            if "PGHOST" in env_of(container):
                found.append((f"{obj['metadata']['name']}/{container['name']}", spec, container))
    return found


@pytest.mark.parametrize("ssl_mode", ["verify-ca", "verify-full"])
def test_verified_tls_mounts_the_ca_where_every_driver_reads_it(helm: str, ssl_mode: str) -> None:
    values = external_database(ssl_mode, caSecretName="db-ca", caBundleKey="rds-bundle.pem")
    objects = render_chart(values, helm=helm)
    connecting = database_containers(objects)
    names = {ident.split("/")[0] for ident, _, _ in connecting}
    # Airflow (migrations and every component), MLflow (migration and server), the helm test
    assert {
        f"{RELEASE}-airflow-scheduler",
        f"{RELEASE}-airflow-api-server",
        f"{RELEASE}-airflow-dag-processor",
        f"{RELEASE}-airflow-triggerer",
        f"{RELEASE}-mlflow",
        f"{RELEASE}-test-postgres",
    } <= names
    for ident, spec, container in connecting:
        env = env_of(container)
        assert env["PGSSLMODE"] == ssl_mode, ident
        assert env["PGSSLROOTCERT"] == CA_PATH, ident
        mounts = {m["name"]: m for m in container.get("volumeMounts", [])}
        assert mounts["database-ca"]["mountPath"] == "/etc/trainyard/database-ca", ident
        assert mounts["database-ca"]["readOnly"] is True, ident
        volumes = {v["name"]: v for v in spec["volumes"]}
        assert volumes["database-ca"]["secret"]["secretName"] == "db-ca", ident
        assert volumes["database-ca"]["secret"]["items"] == [
            {"key": "rds-bundle.pem", "path": "ca.crt"}
        ], ident
    # MLflow's SQLAlchemy URLs name the bundle too (psycopg passes it to libpq)
    (mlflow,) = [c for i, _, c in connecting if i == f"{RELEASE}-mlflow/mlflow"]
    uri = next(a for a in mlflow["args"] if a.startswith("--backend-store-uri="))
    assert uri.endswith(f"?sslmode={ssl_mode}&sslrootcert={CA_PATH}")
    # and the objects stay valid Kubernetes objects
    assert not kubernetes_validate(objects, ("1.34.0",))


@pytest.mark.parametrize("ssl_mode", ["verify-ca", "verify-full"])
def test_verified_tls_without_a_ca_is_refused(helm: str, ssl_mode: str) -> None:
    message = render_error(external_database(ssl_mode), helm=helm)
    assert "global.externalDatabase.caSecretName" in message and ssl_mode in message


def test_unverified_tls_needs_no_ca(helm: str) -> None:
    objects = render_chart(external_database("require"), helm=helm)
    assert database_containers(objects)
    for ident, spec, container in database_containers(objects):
        assert "PGSSLROOTCERT" not in env_of(container), ident
        assert "database-ca" not in {v["name"] for v in spec["volumes"]}, ident


def test_notes_confirm_an_existing_trainer_credentials_secret(helm: str, tmp_path: Path) -> None:
    """With the Secret in the cluster (a fake API server answers NOTES' lookup), no warning."""
    import shutil  # noqa: PLC0415

    from .fakekube import fake_kube  # noqa: PLC0415

    chart = tmp_path / "trainyard"
    shutil.copytree(CHART, chart)
    (chart / "templates" / "notes-rendered.yaml").write_text(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: notes\ndata:\n  notes: |\n"
        '{{ include (print $.Template.BasePath "/NOTES.txt") . | indent 4 }}\n'
    )
    secret = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": f"{RELEASE}-trainer-credentials", "namespace": TRAINING_NAMESPACE},
        "data": {},
    }
    notes = {}
    for present in (True, False):
        with fake_kube([secret] if present else [], tmp_path, NAMESPACE) as fake:
            proc = subprocess.run(
                [
                    str(tool(helm)),
                    "template",
                    RELEASE,
                    str(chart),
                    "--namespace",
                    NAMESPACE,
                    "--dry-run=server",
                    "--disable-openapi-validation",
                    "--set",
                    "global.training.identity.create=false",
                    "--show-only",
                    "templates/notes-rendered.yaml",
                ],
                capture_output=True,
                text=True,
                timeout=120,
                check=False,
                env={**os.environ, "KUBECONFIG": str(fake.kubeconfig)},
            )
            assert proc.returncode == 0, proc.stderr[-2000:]
            notes[present] = yaml.safe_load(proc.stdout)["data"]["notes"]
            path = f"/api/v1/namespaces/{TRAINING_NAMESPACE}/secrets/{RELEASE}-trainer-credentials"
            assert ("GET", path) in fake.requests
    assert "MISSING" not in notes[True] and CREATE not in notes[True]
    assert "It exists" in notes[True]
    assert "MISSING" in notes[False] and CREATE in notes[False]

"""Airflow 3 subchart: components, KubernetesExecutor wiring, secrets, RBAC, platform config."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import tempfile
from typing import Any

import pytest
import yaml

from trainyard.pipeline.platform import parse as parse_platform

from .conftest import (
    APP_VERSION,
    NAMESPACE,
    RELEASE,
    REPO,
    TRAINING_NAMESPACE,
    containers,
    env_of,
    find,
    one,
    pod_spec,
    render_chart,
    render_error,
    render_notes,
)

pytestmark = pytest.mark.chart
# What the chart's default GPU taint (nvidia.com/gpu=present:NoSchedule) needs.
GPU_TOLERATION = {
    "key": "nvidia.com/gpu",
    "operator": "Equal",
    "value": "present",
    "effect": "NoSchedule",
}

COMPONENTS = ("api-server", "scheduler", "dag-processor", "triggerer")
EXECUTION_API = f"http://{RELEASE}-airflow-api-server.{NAMESPACE}.svc:8080/execution/"


def deployment(objects: list[dict], component: str) -> dict:
    return one(objects, "Deployment", f"{RELEASE}-airflow-{component}")


def airflow_config(objects: list[dict], release: str = RELEASE) -> dict[str, str]:
    data: dict[str, str] = one(objects, "ConfigMap", f"{release}-airflow-config")["data"]
    return data


def pod_template(objects: list[dict]) -> dict:
    cm = one(objects, "ConfigMap", f"{RELEASE}-airflow-pod-template")
    template: dict = yaml.safe_load(cm["data"]["pod_template.yaml"])
    return template


def platform_json(objects: list[dict]) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(
        one(objects, "ConfigMap", f"{RELEASE}-platform")["data"]["platform.json"]
    )
    return data


def test_four_components_with_probes_resources_and_replicas(helm: str) -> None:
    values = {
        "airflow": {
            "scheduler": {"replicas": 2},
            "triggerer": {
                "replicas": 3,
                "resources": {
                    "requests": {"cpu": "123m", "memory": "321Mi"},
                    "limits": {"cpu": "1", "memory": "1Gi"},
                },
            },
        }
    }
    objects = render_chart(values, helm=helm)
    for component in COMPONENTS:
        dep = deployment(objects, component)
        main = pod_spec(dep)["containers"][0]
        assert main["name"] == component
        assert main["args"][0] == component
        for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
            assert probe in main, f"{component} {probe}"
        assert {"cpu", "memory"} <= set(main["resources"]["limits"])
        assert {"cpu", "memory"} <= set(main["resources"]["requests"])
        annotations = dep["spec"]["template"]["metadata"]["annotations"]
        assert len(annotations["checksum/config"]) == 64
    api = pod_spec(deployment(objects, "api-server"))["containers"][0]
    assert api["readinessProbe"]["httpGet"]["path"] == "/api/v2/monitor/health"
    assert deployment(objects, "scheduler")["spec"]["replicas"] == 2
    triggerer = deployment(objects, "triggerer")
    assert triggerer["spec"]["replicas"] == 3
    assert pod_spec(triggerer)["containers"][0]["resources"]["requests"]["cpu"] == "123m"


def test_config_changes_roll_the_pods() -> None:
    base = deployment(render_chart(), "api-server")
    changed = deployment(
        render_chart({"airflow": {"config": {"core": {"parallelism": 8}}}}), "api-server"
    )
    key = "checksum/config"
    assert (
        base["spec"]["template"]["metadata"]["annotations"][key]
        != changed["spec"]["template"]["metadata"]["annotations"][key]
    )


def test_kubernetes_executor_and_pod_template(helm: str) -> None:
    objects = render_chart(helm=helm)
    config = airflow_config(objects)
    # The inline executor beside it, for the DAG's sensor and small Python tasks.
    assert config["AIRFLOW__CORE__EXECUTOR"] == "KubernetesExecutor,LocalExecutor"
    assert config["AIRFLOW__KUBERNETES_EXECUTOR__NAMESPACE"] == NAMESPACE
    template_path = config["AIRFLOW__KUBERNETES_EXECUTOR__POD_TEMPLATE_FILE"]
    template = pod_template(objects)
    assert template["kind"] == "Pod"
    assert [c["name"] for c in template["spec"]["containers"]] == ["base"]
    base = template["spec"]["containers"][0]
    assert "command" not in base, "the executor's args run through the image entrypoint"
    assert base["envFrom"] == [{"configMapRef": {"name": f"{RELEASE}-airflow-config"}}]
    assert template["spec"]["serviceAccountName"] == f"{RELEASE}-airflow-worker"
    # ...mounted where the scheduler reads it
    scheduler = deployment(objects, "scheduler")
    spec = pod_spec(scheduler)
    mount = next(m for m in spec["containers"][0]["volumeMounts"] if m["name"] == "pod-template")
    volume = next(v for v in spec["volumes"] if v["name"] == "pod-template")
    assert volume["configMap"]["name"] == f"{RELEASE}-airflow-pod-template"
    assert template_path == f"{mount['mountPath']}/pod_template.yaml"
    assert "checksum/pod-template" in scheduler["spec"]["template"]["metadata"]["annotations"]


def test_every_airflow_pod_reads_the_one_config_and_the_platform_config() -> None:
    objects = render_chart()
    specs = [pod_spec(deployment(objects, c)) for c in COMPONENTS]
    specs.append(pod_template(objects)["spec"])
    platform_cm = f"{RELEASE}-platform"
    config = airflow_config(objects)
    assert config["TRAINYARD_PLATFORM_CONFIG"] == "/opt/trainyard/config/platform.json"
    for spec in specs:
        volume = next(v for v in spec["volumes"] if v["name"] == "platform-config")
        assert volume["configMap"]["name"] == platform_cm
        for container in containers(spec):
            if container["name"] == "passwords-file":
                continue  # copies a file; runs no Airflow code
            assert {"configMapRef": {"name": f"{RELEASE}-airflow-config"}} in container["envFrom"]
            mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
            assert mounts["platform-config"] == "/opt/trainyard/config"


def test_execution_api_url_resolves_to_the_api_server_service(helm: str) -> None:
    objects = render_chart(helm=helm)
    url = airflow_config(objects)["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"]
    assert url == EXECUTION_API
    service = one(objects, "Service", f"{RELEASE}-airflow-api-server")
    assert service["spec"]["ports"][0]["port"] == 8080
    api = deployment(objects, "api-server")
    assert (
        service["spec"]["selector"].items() <= api["spec"]["template"]["metadata"]["labels"].items()
    )
    moved = render_chart(
        {"airflow": {"apiServer": {"service": {"port": 9090}}}}, release="ml", namespace="ops"
    )
    assert (
        airflow_config(moved, "ml")["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"]
        == "http://ml-airflow-api-server.ops.svc:9090/execution/"
    )


def test_xcom_logging_database_and_connection() -> None:
    objects = render_chart({"airflow": {"xcom": {"thresholdBytes": 4096}}})
    config = airflow_config(objects)
    assert config["AIRFLOW__CORE__XCOM_BACKEND"] == (
        "airflow.providers.common.io.xcom.backend.XComObjectStorageBackend"
    )
    assert config["AIRFLOW__COMMON_IO__XCOM_OBJECTSTORAGE_PATH"] == (
        "s3://trainyard_s3@airflow-xcom/xcom"
    )
    assert config["AIRFLOW__COMMON_IO__XCOM_OBJECTSTORAGE_THRESHOLD"] == "4096"
    assert config["AIRFLOW__COMMON_IO__XCOM_OBJECTSTORAGE_COMPRESSION"] == "gzip"
    assert config["AIRFLOW__LOGGING__REMOTE_LOGGING"] == "True"
    assert config["AIRFLOW__LOGGING__REMOTE_BASE_LOG_FOLDER"] == "s3://airflow-logs/logs"
    assert config["AIRFLOW__LOGGING__REMOTE_LOG_CONN_ID"] == "trainyard_s3"
    assert config["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"] == (
        f"postgresql+psycopg2://airflow@{RELEASE}-postgresql.{NAMESPACE}.svc:5432/airflow"
    )
    for container in [
        *(pod_spec(deployment(objects, c))["containers"][0] for c in COMPONENTS),
        pod_template(objects)["spec"]["containers"][0],
    ]:
        env = env_of(container)
        names = [e["name"] for e in container["env"]]
        # defined once, from the object-store Secret through $(VAR) expansion
        assert names.count("AIRFLOW_CONN_TRAINYARD_S3") == 1
        assert names.index("AWS_ACCESS_KEY_ID") < names.index("AIRFLOW_CONN_TRAINYARD_S3")
        assert env["AWS_ACCESS_KEY_ID"]["secretKeyRef"]["name"] == f"{RELEASE}-objectstore"
        conn = json.loads(env["AIRFLOW_CONN_TRAINYARD_S3"])
        assert conn == {
            "conn_type": "aws",
            "login": "$(AWS_ACCESS_KEY_ID)",
            "password": "$(AWS_SECRET_ACCESS_KEY)",
            "extra": {
                "endpoint_url": f"http://{RELEASE}-seaweedfs.{NAMESPACE}.svc:8333",
                "region_name": "us-east-1",
            },
        }


def test_worker_pods_get_no_database_or_signing_secrets() -> None:
    env = env_of(pod_template(render_chart())["spec"]["containers"][0])
    for name in ("PGPASSWORD", "AIRFLOW__CORE__FERNET_KEY", "AIRFLOW__API_AUTH__JWT_SECRET"):
        assert name not in env
    scheduler = env_of(pod_spec(deployment(render_chart(), "scheduler"))["containers"][0])
    assert scheduler["PGPASSWORD"]["secretKeyRef"]["key"] == "airflow-password"


def test_user_config_wins_over_derived_settings() -> None:
    values = {"airflow": {"config": {"core": {"parallelism": 64}, "webserver": {"x": True}}}}
    config = airflow_config(render_chart(values))
    assert config["AIRFLOW__CORE__PARALLELISM"] == "64"
    assert config["AIRFLOW__WEBSERVER__X"] == "true"
    off = airflow_config(render_chart({"airflow": {"remoteLogging": {"enabled": False}}}))
    assert off["AIRFLOW__LOGGING__REMOTE_LOGGING"] == "False"


def test_migrations_run_in_init_containers_not_hooks_or_jobs() -> None:
    objects = render_chart()
    assert not [j for j in find(objects, "Job") if "airflow" in j["metadata"]["name"]]
    scheduler = pod_spec(deployment(objects, "scheduler"))
    # Each waits for the database first (a fresh Postgres is not up yet), then does its job.
    (script,) = scheduler["initContainers"][0]["args"]
    assert script.startswith("airflow db check --retry ")
    assert "&& airflow db migrate" in script
    assert deployment(objects, "scheduler")["spec"]["strategy"]["type"] == "Recreate"
    for component in ("api-server", "dag-processor", "triggerer"):
        init = pod_spec(deployment(objects, component))["initContainers"][0]
        (script,) = init["args"]
        assert script.startswith("airflow db check --retry ")
        assert "&& exec airflow db check-migrations --migration-wait-timeout " in script


def test_generated_airflow_secrets_and_admin_password_file(helm: str) -> None:
    objects = render_chart({"airflow": {"auth": {"manager": "simple"}}}, helm=helm)
    secret = one(objects, "Secret", f"{RELEASE}-airflow")
    assert secret["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"
    data = {k: base64.b64decode(v).decode() for k, v in secret["data"].items()}
    assert set(data) == {
        "fernet-key",
        "jwt-secret",
        "api-secret-key",
        "admin-password",
        "passwords.json",
    }
    assert len(base64.urlsafe_b64decode(data["fernet-key"])) == 32
    assert json.loads(data["passwords.json"]) == {"admin": data["admin-password"]}
    config = airflow_config(objects)
    assert config["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS"] == "admin:admin"
    api = pod_spec(deployment(objects, "api-server"))
    mount = next(m for m in api["containers"][0]["volumeMounts"] if m["name"] == "passwords")
    assert config["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE"] == (
        f"{mount['mountPath']}/passwords.json"
    )
    env = env_of(api["containers"][0])
    for name, key in (
        ("AIRFLOW__CORE__FERNET_KEY", "fernet-key"),
        ("AIRFLOW__API_AUTH__JWT_SECRET", "jwt-secret"),
        ("AIRFLOW__API__SECRET_KEY", "api-secret-key"),
    ):
        assert env[name]["secretKeyRef"] == {"name": f"{RELEASE}-airflow", "key": key}


def test_each_airflow_secret_can_come_from_an_existing_secret() -> None:
    values = {
        "airflow": {
            "keys": {"jwt": {"existingSecret": "my-jwt", "key": "token-key"}},
            "auth": {"existingSecret": "my-admin"},
        }
    }
    objects = render_chart(values)
    secret = one(objects, "Secret", f"{RELEASE}-airflow")
    assert set(secret["data"]) == {"fernet-key", "api-secret-key"}
    api = pod_spec(deployment(objects, "api-server"))
    env = env_of(api["containers"][0])
    assert env["AIRFLOW__API_AUTH__JWT_SECRET"]["secretKeyRef"] == {
        "name": "my-jwt",
        "key": "token-key",
    }
    scheduler = pod_spec(deployment(objects, "scheduler"))
    admin = env_of(scheduler["initContainers"][0])["TRAINYARD_ADMIN_PASSWORD"]
    assert admin["secretKeyRef"] == {"name": "my-admin", "key": "admin-password"}
    simple = render_chart(
        {"airflow": {"auth": {"manager": "simple", "existingSecret": "my-admin"}}}
    )
    api = pod_spec(deployment(simple, "api-server"))
    volume = next(v for v in api["volumes"] if v["name"] == "passwords-secret")
    assert volume["secret"]["secretName"] == "my-admin"
    everything = {
        "airflow": {
            "keys": {k: {"existingSecret": "mine"} for k in ("fernet", "jwt", "apiSession")},
            "auth": {"existingSecret": "my-admin"},
        }
    }
    assert not find(render_chart(everything), "Secret", f"{RELEASE}-airflow")


def test_only_api_clients_mount_a_service_account_token() -> None:
    objects = render_chart()
    for component in COMPONENTS:
        spec = pod_spec(deployment(objects, component))
        has_token = any(v["name"] == "kube-api-access" for v in spec["volumes"])
        assert has_token == (component != "dag-processor"), component
    assert any(v["name"] == "kube-api-access" for v in pod_template(objects)["spec"]["volumes"])


def test_airflow_can_be_disabled() -> None:
    objects = render_chart({"airflow": {"enabled": False}})
    assert not [o for o in objects if "airflow" in o["metadata"]["name"]]


def test_notes_show_the_airflow_login(helm: str) -> None:
    notes = render_notes(helm=helm)
    assert "Airflow" in notes
    assert f"get secret {RELEASE}-airflow -o jsonpath='{{.data.admin-password}}'" in notes


# ---- platform config -> trainer pod --------------------------------------------------------

BUILD_OPERATORS = r"""
import json, sys
from airflow.providers.cncf.kubernetes.operators.pod import KubernetesPodOperator
from kubernetes.client import ApiClient
from trainyard.pipeline import platform
from trainyard.pipeline.pod_tasks import PodTasks

out = []
for document in json.load(sys.stdin):
    config = platform.parse(document)
    trainer = PodTasks(config).kwargs("train", gpu=True, cmds=["python", "-m", "digits"])
    operator = KubernetesPodOperator(**trainer,
                                     arguments=["train"])
    pod = operator.build_pod_request_obj(dry_run=True)
    out.append({
        "pod": ApiClient().sanitize_for_serialization(pod),
        "schedule_timeout_seconds": operator.schedule_timeout_seconds,
        "startup_timeout_seconds": operator.startup_timeout_seconds,
    })
print(json.dumps(out))
"""


def airflow_python() -> str:
    """This interpreter: the test extra installs Airflow and the cncf-kubernetes provider."""
    probe = "import airflow.providers.cncf.kubernetes, trainyard.pipeline.pod_tasks"
    found = subprocess.run([sys.executable, "-c", probe], capture_output=True, check=False)
    assert found.returncode == 0, (
        "Airflow and its cncf-kubernetes provider are test dependencies: run `make test` "
        f"(pip install -e '.[test]'); {found.stderr.decode()[-500:]}"
    )
    return sys.executable


def build_operators(
    documents: list[dict[str, Any]], env: dict[str, str] | None = None
) -> list[dict[str, Any]]:
    """The DAG's `train` operator for each platform.json document: its pod (a Kubernetes
    camelCase dict) and its schedule/startup timeouts.

    Runs the project's Airflow in a subprocess with its own AIRFLOW_HOME (nothing leaks into
    this process or the user's ~/airflow).
    """
    python = airflow_python()
    with tempfile.TemporaryDirectory() as home:
        proc = subprocess.run(
            [python, "-c", BUILD_OPERATORS],
            input=json.dumps(documents),
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
            env={
                **os.environ,
                "AIRFLOW_HOME": home,
                "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
                **(env or {}),
            },
        )
    assert proc.returncode == 0, proc.stderr[-3000:]
    built: list[dict[str, Any]] = json.loads(proc.stdout.strip().splitlines()[-1])
    return built


def build_trainer_pods(
    documents: list[dict[str, Any]], env: dict[str, str] | None = None
) -> list[dict[str, Any]]:
    """The DAG's `train` pods from platform.json documents, as Kubernetes (camelCase) dicts."""
    return [built["pod"] for built in build_operators(documents, env)]


def test_trainer_pods_from_the_chart_platform_config_carry_the_gpu_settings() -> None:
    gpu = {
        "enabled": True,
        "count": 2,
        "resourceName": "nvidia.com/gpu",
        "nodePool": {
            "labels": {"cloud.google.com/gke-accelerator": "nvidia-l4"},
            "taint": {"key": "nvidia.com/gpu", "value": "present", "effect": "NoSchedule"},
        },
        "runtimeClassName": "nvidia",
        "affinity": {
            "nodeAffinity": {
                "requiredDuringSchedulingIgnoredDuringExecution": {
                    "nodeSelectorTerms": [
                        {
                            "matchExpressions": [
                                {"key": "gpu-type", "operator": "In", "values": ["l4"]}
                            ]
                        }
                    ]
                }
            }
        },
    }
    on = platform_json(render_chart({"gpu": gpu}))
    off = platform_json(render_chart({"gpu": {**gpu, "enabled": False}}))
    with_gpu, without_gpu = build_trainer_pods([on, off])

    spec = with_gpu["spec"]
    base = spec["containers"][0]
    assert base["args"] == ["train"]
    assert base["resources"]["limits"]["nvidia.com/gpu"] == "2"
    assert GPU_TOLERATION in spec["tolerations"]
    assert spec["nodeSelector"] == {"cloud.google.com/gke-accelerator": "nvidia-l4"}
    assert spec["runtimeClassName"] == "nvidia"
    assert spec["affinity"] == gpu["affinity"]
    assert with_gpu["metadata"]["namespace"] == TRAINING_NAMESPACE
    assert spec["serviceAccountName"] == f"{RELEASE}-trainer"
    assert {"secretRef": {"name": f"{RELEASE}-trainer"}} in base["envFrom"]  # its own identity
    env = {e["name"]: e.get("value") for e in base["env"]}
    assert env["MLFLOW_TRACKING_URI"] == f"http://{RELEASE}-mlflow.{NAMESPACE}.svc:5000"
    assert env["AWS_ENDPOINT_URL_S3"] == f"http://{RELEASE}-seaweedfs.{NAMESPACE}.svc:8333"

    # gpu.enabled=false: the CPU fallback, the same pod without any GPU field
    spec = without_gpu["spec"]
    base = spec["containers"][0]
    assert "nvidia.com/gpu" not in base["resources"].get("limits", {})
    assert not spec.get("tolerations")
    assert not spec.get("nodeSelector")
    assert "runtimeClassName" not in spec
    assert "affinity" not in spec or not spec["affinity"]
    assert base["resources"]["limits"] == {"cpu": "4", "memory": "8Gi"}


def test_platform_json_follows_the_values() -> None:
    values = {
        "global": {"objectStore": {"buckets": {"datasets": "acme-data"}}},
        "pipeline": {"modelName": "mnist", "maxParallelTrials": 8, "deadlineMinutes": 240},
        "serving": {"modelName": "mnist"},
        "training": {"extraEnvFromSecrets": ["hf-token"], "env": {"HF_HOME": "/tmp/hf"}},
        "gpu": {"nodePool": {"taint": {"key": "sku", "value": "", "effect": "NoExecute"}}},
    }
    config = platform_json(render_chart(values))
    assert config["data_root"] == "s3://acme-data/digits"
    assert config["model_name"] == "mnist"
    assert config["max_parallel_trials"] == 8
    assert config["deadline_minutes"] == 240
    assert parse_platform(config).deadline_minutes == 240  # what the DAG reads
    assert platform_json(render_chart())["deadline_minutes"] == 0  # off unless set
    assert config["trainer"]["env_from_secrets"] == [f"{RELEASE}-trainer", "hf-token"]
    assert config["trainer"]["env"]["HF_HOME"] == "/tmp/hf"
    assert config["gpu"]["tolerations"] == [
        {"key": "sku", "operator": "Exists", "effect": "NoExecute"}
    ]


def test_the_dags_schedule_follows_the_values() -> None:
    """pipeline.schedule reaches platform.json; "" (the kind values') runs manual-only, so no
    scheduled run at midnight waits for data and holds the DAG's one active run."""
    assert platform_json(render_chart())["schedule"] == "@daily"
    early = platform_json(render_chart({"pipeline": {"schedule": "0 4 * * *"}}))
    assert parse_platform(early).schedule == "0 4 * * *"
    manual = platform_json(render_chart({"pipeline": {"schedule": ""}}))
    assert manual["schedule"] is None and parse_platform(manual).schedule is None
    kind_values = yaml.safe_load((REPO / "charts/trainyard/ci/kind-values.yaml").read_text())
    assert kind_values["pipeline"]["schedule"] == ""


@pytest.mark.parametrize(
    ("gpu", "name"),
    [
        ({"count": 0}, "count"),
        ({"count": "1"}, "count"),
        ({"enabled": "yes"}, "enabled"),
        ({"nodePool": {"taint": {"effect": "NoScheduleAtAll"}}}, "effect"),
        ({"nodePool": {"labels": {"pool": 1}}}, "pool"),
        ({"resourceName": "nvidia gpu"}, "resourceName"),
        ({"devicePlugin": {"migStrategy": "all"}}, "migStrategy"),
        ({"cuont": 1}, "cuont"),
    ],
    ids=[
        "count-0",
        "count-string",
        "enabled-string",
        "bad-effect",
        "label-int",
        "bad-name",
        "bad-mig",
        "typo",
    ],
)
def test_schema_rejects_bad_gpu_values(gpu: dict, name: str) -> None:
    assert name in render_error({"gpu": gpu})


def test_device_plugin_is_opt_in() -> None:
    assert not find(render_chart(), "DaemonSet")
    values = {
        "gpu": {
            "nodePool": {"labels": {"pool": "gpu"}},
            "devicePlugin": {
                "enabled": True,
                "migStrategy": "mixed",
                "timeSlicing": {"replicas": 4, "renameByDefault": False},
            },
        }
    }
    objects = render_chart(values)
    (daemonset,) = find(objects, "DaemonSet")
    spec = pod_spec(daemonset)
    image = spec["containers"][0]["image"]
    assert image.startswith("nvcr.io/nvidia/k8s-device-plugin:v") and "latest" not in image
    assert GPU_TOLERATION in spec["tolerations"]
    terms = spec["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
    assert terms["nodeSelectorTerms"][0]["matchExpressions"] == [
        {"key": "pool", "operator": "In", "values": ["gpu"]}
    ]
    config = yaml.safe_load(
        one(objects, "ConfigMap", daemonset["metadata"]["name"])["data"]["config.yaml"]
    )
    assert config["flags"]["migStrategy"] == "mixed"
    assert config["sharing"]["timeSlicing"]["resources"] == [
        {"name": "nvidia.com/gpu", "replicas": 4}
    ]
    assert not spec["containers"][0]["securityContext"].get("privileged")


def test_training_namespace_objects() -> None:
    objects = render_chart(
        {
            "training": {
                "resourceQuota": {"enabled": True, "hard": {"requests.nvidia.com/gpu": "8"}},
                "limitRange": {"enabled": True},
            }
        }
    )
    namespace = one(objects, "Namespace", TRAINING_NAMESPACE)
    assert namespace["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"
    for kind in ("ServiceAccount", "ResourceQuota", "LimitRange", "NetworkPolicy"):
        obj = one(objects, kind, f"{RELEASE}-trainer")
        assert obj["metadata"]["namespace"] == TRAINING_NAMESPACE
    quota = one(objects, "ResourceQuota", f"{RELEASE}-trainer")
    assert quota["spec"]["hard"] == {"requests.nvidia.com/gpu": "8"}
    existing = render_chart({"training": {"createNamespace": False}})
    assert not find(existing, "Namespace")
    # the object store admits trainer pods from the training namespace
    store = one(objects, "NetworkPolicy", f"{RELEASE}-seaweedfs-object-store")
    peers = store["spec"]["ingress"][0]["from"]
    assert {
        "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": TRAINING_NAMESPACE}},
        "podSelector": {
            "matchLabels": {
                "app.kubernetes.io/instance": RELEASE,
                "app.kubernetes.io/component": "trainer",
            }
        },
    } in peers


@pytest.mark.parametrize(
    ("values", "tag"),
    [
        ({}, f"{APP_VERSION}-gpu"),  # gpu.enabled is the default: the CUDA build
        ({"gpu": {"enabled": False}}, APP_VERSION),  # CPU fallback: the CPU build
        ({"training": {"image": {"variant": "cpu"}}}, APP_VERSION),  # GPU path, CPU code
        (
            {"gpu": {"enabled": False}, "training": {"image": {"variant": "gpu"}}},
            f"{APP_VERSION}-gpu",
        ),
        ({"training": {"image": {"tag": "1.2.3"}}}, "1.2.3"),  # an explicit tag wins
    ],
)
def test_trainer_image_follows_the_gpu_setting(values: dict, tag: str) -> None:
    image = platform_json(render_chart(values))["trainer"]["image"]
    assert image == f"trainyard/trainer:{tag}"


def test_trainer_image_variant_is_checked_by_the_schema() -> None:
    assert "variant" in render_error({"training": {"image": {"variant": "cuda"}}})


def test_the_dag_processor_preloads_the_pod_operator_from_the_image() -> None:
    """Each parse forks from the dag-processor: the chart starts it through the image's
    preloading `airflow` command, so the Kubernetes runtime's parses skip the provider import."""
    (container,) = pod_spec(deployment(render_chart(), "dag-processor"))["containers"]
    interpreter, script = container["command"]
    assert (interpreter, container["args"]) == ("python", ["dag-processor"])
    dockerfile = (REPO / "images" / "airflow" / "Dockerfile").read_text()
    folder, name = script.rsplit("/", 1)
    assert f"images/airflow/{name} {folder}/" in dockerfile


def test_the_inline_executor_reaches_airflow_and_the_dag_or_is_off() -> None:
    """airflow.inlineExecutor: both Airflow's executors and platform.json's inline_executor
    (the DAG's inline tasks ask for it); "" leaves only the KubernetesExecutor and no task
    asks for another (a task naming an executor Airflow lacks would never run)."""
    on = render_chart()
    assert airflow_config(on)["AIRFLOW__CORE__EXECUTOR"] == "KubernetesExecutor,LocalExecutor"
    assert platform_json(on)["inline_executor"] == "LocalExecutor"
    off = render_chart({"airflow": {"inlineExecutor": ""}})
    assert airflow_config(off)["AIRFLOW__CORE__EXECUTOR"] == "KubernetesExecutor"
    assert platform_json(off)["inline_executor"] is None


def test_trials_wait_in_their_worker_pod_unless_deferred() -> None:
    assert platform_json(render_chart())["deferrable_trials"] is False
    deferred = render_chart({"pipeline": {"deferrableTrials": True}})
    assert platform_json(deferred)["deferrable_trials"] is True

"""Wiring: what each pod references exists; components agree on hosts, databases, buckets."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlparse

import pytest
import yaml

from .conftest import (
    APP_VERSION,
    CHART,
    CI_VALUES,
    MINIO,
    NAMESPACE,
    RELEASE,
    containers,
    env_of,
    find,
    one,
    pod_spec,
    render_chart,
    render_notes,
    workloads,
)

pytestmark = pytest.mark.chart

SCENARIOS = {"defaults": [], **{path.stem: [path] for path in CI_VALUES}}


def ci_values(name: str) -> dict[str, Any]:
    return yaml.safe_load((CHART / "ci" / f"{name}.yaml").read_text())


def user_named_secrets(values: dict[str, Any]) -> set[str]:
    """Secrets the user said exist (existingSecret / tlsSecretName / caSecretName values)."""
    names: set[str] = set()

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                if key in ("existingSecret", "tlsSecretName", "caSecretName") and value:
                    names.add(value)
                walk(value)

    walk(values)
    return names


def volume_references(spec: dict[str, Any]) -> list[tuple[str, str, str | None]]:
    refs: list[tuple[str, str, str | None]] = []
    for volume in spec.get("volumes", []):
        if "configMap" in volume:
            for item in volume["configMap"].get("items", [{"key": None}]):
                refs.append(("ConfigMap", volume["configMap"]["name"], item["key"]))
        if "secret" in volume:
            for item in volume["secret"].get("items", [{"key": None}]):
                refs.append(("Secret", volume["secret"]["secretName"], item["key"]))
        if "persistentVolumeClaim" in volume:
            claim = volume["persistentVolumeClaim"]["claimName"]
            refs.append(("PersistentVolumeClaim", claim, None))
    return refs


def env_references(container: dict[str, Any]) -> list[tuple[str, str, str | None]]:
    refs: list[tuple[str, str, str | None]] = []
    for env in container.get("env", []):
        source = env.get("valueFrom", {})
        for ref_key, kind in (("secretKeyRef", "Secret"), ("configMapKeyRef", "ConfigMap")):
            if ref_key in source:
                refs.append((kind, source[ref_key]["name"], source[ref_key]["key"]))
    for env_from in container.get("envFrom", []):
        for ref_key, kind in (("secretRef", "Secret"), ("configMapRef", "ConfigMap")):
            if ref_key in env_from:
                refs.append((kind, env_from[ref_key]["name"], None))
    return refs


def references(spec: dict[str, Any]) -> list[tuple[str, str, str | None]]:
    """(kind, name, key) of everything a pod spec points at."""
    refs: list[tuple[str, str, str | None]] = [("ServiceAccount", spec["serviceAccountName"], None)]
    refs += volume_references(spec)
    for container in containers(spec):
        refs += env_references(container)
    return refs


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_everything_a_pod_references_is_rendered_or_named_by_the_user(
    helm: str, scenario: str
) -> None:
    objects = render_chart(values_files=SCENARIOS[scenario], helm=helm)
    given = user_named_secrets(ci_values(scenario)) if scenario != "defaults" else set()
    rendered = {(o["kind"], o["metadata"]["name"]): o for o in objects}
    for obj in workloads(objects):
        spec = pod_spec(obj)
        claim_templates = {
            t["metadata"]["name"] for t in obj["spec"].get("volumeClaimTemplates", [])
        }
        mounted = {m["name"] for c in containers(spec) for m in c.get("volumeMounts", [])}
        declared = {v["name"] for v in spec.get("volumes", [])} | claim_templates
        assert mounted <= declared, (
            f"{obj['metadata']['name']}: mounts {mounted - declared} undeclared"
        )
        for kind, name, key in references(spec):
            where = f"{obj['kind']}/{obj['metadata']['name']} -> {kind}/{name}" + (
                f"[{key}]" if key else ""
            )
            if kind == "Secret" and name in given:
                continue  # an existingSecret the user named: not ours to render
            assert (kind, name) in rendered, f"{where}: not rendered"
            if key:
                data = rendered[(kind, name)].get("data") or {}
                assert key in data, f"{where}: key missing (has {sorted(data)})"
    # and every user-named Secret really is used by some pod
    used = {
        name
        for o in workloads(objects)
        for kind, name, _ in references(pod_spec(o))
        if kind == "Secret"
    }
    ingress_tls = {
        t["secretName"] for o in find(objects, "Ingress") for t in o["spec"].get("tls", [])
    }
    assert given <= used | ingress_tls


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_services_select_pods_and_hosts_resolve_to_services(scenario: str) -> None:
    objects = render_chart(values_files=SCENARIOS[scenario])
    services = {o["metadata"]["name"]: o for o in find(objects, "Service")}
    pod_labels = [pod_spec_labels(o) for o in workloads(objects)]
    for name, svc in services.items():
        selector = svc["spec"]["selector"]
        assert any(selector.items() <= labels.items() for labels in pod_labels), (
            f"Service {name} selects nothing"
        )
    for sts in find(objects, "StatefulSet"):
        assert sts["spec"]["serviceName"] in services
        assert services[sts["spec"]["serviceName"]]["spec"]["clusterIP"] == "None"
    for ingress in find(objects, "Ingress"):
        for rule in ingress["spec"]["rules"]:
            for path in rule["http"]["paths"]:
                backend = path["backend"]["service"]
                ports = {p["name"] for p in services[backend["name"]]["spec"]["ports"]}
                assert backend["port"]["name"] in ports
    # every in-cluster host named anywhere (env, args) is a rendered Service, on one of its ports
    text = yaml.safe_dump_all(objects)
    for host, port in set(
        re.findall(rf"([a-z0-9-]+)\.{NAMESPACE}\.svc(?:\.cluster\.local)?:(\d+)", text)
    ):
        assert host in services, f"{host}.{NAMESPACE}.svc is not a rendered Service"
        assert int(port) in {p["port"] for p in services[host]["spec"]["ports"]}, f"{host}:{port}"


def pod_spec_labels(obj: dict[str, Any]) -> dict[str, str]:
    if obj["kind"] == "Pod":
        return dict(obj["metadata"]["labels"])
    return dict(obj["spec"]["template"]["metadata"]["labels"])


def mlflow_container(objects: list[dict], init: bool = False) -> dict[str, Any]:
    spec = pod_spec(one(objects, "Deployment", f"{RELEASE}-mlflow"))
    return spec["initContainers"][0] if init else spec["containers"][0]


def arg(container: dict[str, Any], name: str) -> str:
    values = [a.split("=", 1)[1] for a in container["args"] if a.startswith(f"--{name}=")]
    assert len(values) == 1, f"--{name}: {container['args']}"
    return values[0]


def ensure_lines(objects: list[dict]) -> list[tuple[str, str]]:
    script = one(objects, "ConfigMap", f"{RELEASE}-postgresql-scripts")["data"][
        "ensure-databases.sh"
    ]
    return re.findall(r'^ensure_database "([^"]+)" "([^"]+)"$', script, re.M)


def test_mlflow_database_uri_points_at_the_rendered_postgres(helm: str) -> None:
    objects = render_chart(helm=helm)
    server = mlflow_container(objects)
    uri = urlparse(arg(server, "backend-store-uri"))
    assert uri.scheme == "postgresql+psycopg"
    assert uri.password is None, "no password on the command line"
    service = one(objects, "Service", uri.hostname.split(".")[0])
    assert uri.hostname == f"{service['metadata']['name']}.{NAMESPACE}.svc"
    assert uri.port in {p["port"] for p in service["spec"]["ports"]}
    sts = one(objects, "StatefulSet", f"{RELEASE}-postgresql")
    assert (
        service["spec"]["selector"].items() <= sts["spec"]["template"]["metadata"]["labels"].items()
    )
    database, user = uri.path.lstrip("/"), uri.username
    assert (database, user) in ensure_lines(objects)
    env = env_of(server)
    assert env["PGPASSWORD"]["secretKeyRef"] == {
        "name": f"{RELEASE}-postgresql",
        "key": f"{user}-password",
    }
    assert env["PGHOST"] == uri.hostname and env["PGDATABASE"] == database and env["PGUSER"] == user
    # the auth app's database: a separate one, same user, also created by Postgres
    ini = auth_ini(objects)
    auth_uri = urlparse(re.search(r"^database_uri = (.+)$", ini, re.M).group(1))
    assert auth_uri.hostname == uri.hostname
    assert auth_uri.path.lstrip("/") != database
    assert (auth_uri.path.lstrip("/"), auth_uri.username) in ensure_lines(objects)
    # the migration init container upgrades exactly these two
    init_env = env_of(mlflow_container(objects, init=True))
    assert init_env["MLFLOW_BACKEND_STORE_URI"] == arg(server, "backend-store-uri")
    assert urlparse(init_env["MLFLOW_AUTH_DATABASE_URI"]) == auth_uri


def auth_ini(objects: list[dict]) -> str:
    import base64  # noqa: PLC0415

    secret = one(objects, "Secret", f"{RELEASE}-mlflow-auth")
    return base64.b64decode(secret["data"]["basic_auth.ini"]).decode()


def test_mlflow_artifacts_go_to_a_bucket_the_init_job_creates(helm: str) -> None:
    for values_files in ([], *[[p] for p in CI_VALUES]):
        objects = render_chart(values_files=values_files, helm=helm)
        server = mlflow_container(objects)
        destination = urlparse(arg(server, "artifacts-destination"))
        assert destination.scheme == "s3"
        (job,) = [j for j in find(objects, "Job") if "bucket-init" in j["metadata"]["name"]]
        job_env = env_of(pod_spec(job)["containers"][0])
        assert destination.netloc in job_env["BUCKETS"].split(",")
        assert "--serve-artifacts" in server["args"]
        server_env = env_of(server)
        for key in (
            "AWS_ENDPOINT_URL_S3",
            "AWS_DEFAULT_REGION",
            "AWS_ACCESS_KEY_ID",
            "AWS_SECRET_ACCESS_KEY",
        ):
            assert server_env[key] == job_env[key], key
        assert server_env["MLFLOW_S3_ENDPOINT_URL"] == server_env["AWS_ENDPOINT_URL_S3"]


def test_buckets_and_databases_include_airflow_for_part_two() -> None:
    objects = render_chart()
    (job,) = [j for j in find(objects, "Job") if "bucket-init" in j["metadata"]["name"]]
    buckets = env_of(pod_spec(job)["containers"][0])["BUCKETS"].split(",")
    assert set(buckets) == {"datasets", "mlflow", "airflow-xcom", "airflow-logs"}
    assert ("airflow", "airflow") in ensure_lines(objects)
    config = one(objects, "ConfigMap", f"{RELEASE}-platform")["data"]
    assert config["AIRFLOW_XCOM_URL"] == "s3://airflow-xcom"
    assert config["AIRFLOW_LOGS_URL"] == "s3://airflow-logs"
    assert config["MLFLOW_TRACKING_URI"] == f"http://{RELEASE}-mlflow.{NAMESPACE}.svc:5000"


def test_a_new_database_reruns_the_ensure_job_and_an_unchanged_list_does_not() -> None:
    def job_name(values: dict) -> str:
        (job,) = [
            j
            for j in find(render_chart(values), "Job")
            if "ensure-databases" in j["metadata"]["name"]
        ]
        return str(job["metadata"]["name"])

    base = job_name({})
    assert job_name({}) == base
    assert job_name({"mlflow": {"workers": 3}}) == base
    extra = {
        "global": {"database": {"databases": {"serving": {"name": "serving", "user": "serving"}}}}
    }
    assert job_name(extra) != base
    objects = render_chart(extra)
    assert ("serving", "serving") in ensure_lines(objects)
    assert "serving-password" in one(objects, "Secret", f"{RELEASE}-postgresql")["data"]


def test_external_provider_renders_no_in_cluster_store(helm: str) -> None:
    objects = render_chart(values_files=[CHART / "ci" / "external-values.yaml"], helm=helm)
    for obj in objects:
        name = obj["metadata"]["labels"]["app.kubernetes.io/name"]
        assert name not in ("minio", "seaweedfs", "postgresql"), (
            f"{obj['kind']}/{obj['metadata']['name']}"
        )
        assert "minio" not in obj["metadata"]["name"] and "seaweedfs" not in obj["metadata"]["name"]
    assert not find(objects, "StatefulSet")
    assert not find(objects, "PersistentVolumeClaim")
    server = mlflow_container(objects)
    env = env_of(server)
    assert env["AWS_ENDPOINT_URL_S3"] == "https://s3.eu-west-1.amazonaws.com"
    assert env["AWS_ACCESS_KEY_ID"]["secretKeyRef"]["name"] == "trainyard-s3"
    assert env["AWS_DEFAULT_REGION"] == "eu-west-1"
    assert arg(server, "artifacts-destination") == "s3://acme-trainyard-mlflow"
    uri = urlparse(arg(server, "backend-store-uri"))
    assert uri.hostname == "trainyard.abcdefgh.eu-west-1.rds.amazonaws.com"
    assert "sslmode=verify-full" in uri.query
    assert env["PGPASSWORD"]["secretKeyRef"] == {
        "name": "trainyard-database",
        "key": "mlflow-password",
    }
    assert env["MLFLOW_AUTH_ADMIN_PASSWORD"]["secretKeyRef"]["name"] == "trainyard-mlflow-admin"
    # nothing generated: every credential is the operator's
    assert not [s for s in find(objects, "Secret") if "admin-password" in (s.get("data") or {})]
    assert [s["metadata"]["name"] for s in find(objects, "Secret")] == [f"{RELEASE}-mlflow-auth"]
    assert "admin_password" not in auth_ini(objects)


def test_seaweedfs_provider_renders_seaweedfs_only() -> None:
    objects = render_chart(
        {
            "global": {"objectStore": {"provider": "seaweedfs", "region": "eu-central-1"}},
            "objectstore": {"seaweedfs": {"volumeSizeLimitMB": 256}},
        }
    )
    names = {o["metadata"]["labels"]["app.kubernetes.io/name"] for o in objects}
    assert "seaweedfs" in names and "minio" not in names
    sts = one(objects, "StatefulSet", f"{RELEASE}-seaweedfs")
    weed = pod_spec(sts)["containers"][0]
    assert "-s3" in weed["args"] and "-s3.port=8333" in weed["args"]
    assert "-master.volumeSizeLimitMB=256" in weed["args"]
    env = env_of(mlflow_container(objects))
    assert env["AWS_ENDPOINT_URL_S3"] == f"http://{RELEASE}-seaweedfs.{NAMESPACE}.svc:8333"
    assert env["AWS_DEFAULT_REGION"] == "eu-central-1"
    # the store's admin identity and every client use the same generated key pair
    assert env_of(weed)["AWS_ACCESS_KEY_ID"] == env["AWS_ACCESS_KEY_ID"]


def test_explicit_minio_runs_the_named_image(helm: str) -> None:
    """MinIO for teams that bring a maintained build (tests/chart/test_objectstore.py has the
    default store and the refusal of a MinIO without an image)."""
    objects = render_chart(MINIO, helm=helm)
    sts = one(objects, "StatefulSet", f"{RELEASE}-minio")
    minio = pod_spec(sts)["containers"][0]
    assert minio["image"] == "registry.example.com/minio/minio:RELEASE.2026-01-01T00-00-00Z"
    assert env_of(minio)["MINIO_ROOT_PASSWORD"]["secretKeyRef"] == {
        "name": f"{RELEASE}-objectstore",
        "key": "secret-access-key",
    }
    assert not find(objects, "StatefulSet", f"{RELEASE}-seaweedfs")


def test_mlflow_server_settings(helm: str) -> None:
    objects = render_chart(
        {
            "mlflow": {
                "workers": 5,
                "allowedHosts": ["mlflow.corp"],
                "ingress": {"enabled": True, "host": "ml.example.com"},
            }
        },
        helm=helm,
    )
    server = mlflow_container(objects)
    assert server["command"] == ["mlflow"] and server["args"][0] == "server"
    assert arg(server, "workers") == "5"
    assert arg(server, "app-name") == "basic-auth"
    hosts = arg(server, "allowed-hosts").split(",")
    svc = f"{RELEASE}-mlflow"
    for host in (
        svc,
        f"{svc}:5000",
        f"{svc}.{NAMESPACE}",
        f"{svc}.{NAMESPACE}.svc",
        f"{svc}.{NAMESPACE}.svc:5000",
        f"{svc}.{NAMESPACE}.svc.cluster.local:5000",
        "ml.example.com",
        "mlflow.corp",
    ):
        assert host in hosts, host
    assert "*" not in hosts
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert server[probe]["httpGet"]["path"] == "/health"
    env = env_of(server)
    assert env["MLFLOW_AUTH_CONFIG_PATH"] == "/etc/mlflow/auth/basic_auth.ini"
    ingress = one(objects, "Ingress", svc)
    assert ingress["spec"]["rules"][0]["host"] == "ml.example.com"


def test_mlflow_migrations_run_in_an_init_container_not_a_hook() -> None:
    objects = render_chart()
    init = mlflow_container(objects, init=True)
    assert init["name"] == "db-upgrade"
    assert init["command"] == ["python", "/scripts/db_upgrade.py"]
    script = one(objects, "ConfigMap", f"{RELEASE}-mlflow-scripts")["data"]["db_upgrade.py"]
    assert '"mlflow", "db", "upgrade"' in script
    assert "pg_advisory_lock" in script and "pg_advisory_unlock" in script
    compile(script, "db_upgrade.py", "exec")
    scripts = one(objects, "ConfigMap", f"{RELEASE}-platform-scripts")["data"]
    for name, source in scripts.items():
        compile(source, name, "exec")


def test_default_images(helm: str) -> None:
    objects = render_chart(helm=helm)
    assert mlflow_container(objects)["image"] == f"trainyard/mlflow:{APP_VERSION}"
    (job,) = [j for j in find(objects, "Job") if "bucket-init" in j["metadata"]["name"]]
    assert pod_spec(job)["containers"][0]["image"] == f"trainyard/mlflow:{APP_VERSION}"
    postgres = pod_spec(one(objects, "StatefulSet", f"{RELEASE}-postgresql"))["containers"][0]
    assert postgres["image"].startswith("docker.io/library/postgres:18.")
    mirrored = render_chart(
        {
            "global": {"imageRegistry": "mirror.example.com"},
            "mlflow": {"image": {"digest": "sha256:" + "a" * 64}},
        },
        helm=helm,
    )
    for obj in workloads(mirrored):
        for container in containers(pod_spec(obj)):
            assert container["image"].startswith("mirror.example.com/"), container["image"]
    assert mlflow_container(mirrored)["image"].endswith("@sha256:" + "a" * 64)


def test_postgres_18_data_directory_and_volume() -> None:
    objects = render_chart()
    sts = one(objects, "StatefulSet", f"{RELEASE}-postgresql")
    container = pod_spec(sts)["containers"][0]
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    # postgres 18 keeps PGDATA at /var/lib/postgresql/18/docker: mount the parent
    assert mounts["data"] == "/var/lib/postgresql"
    assert "PGDATA" not in env_of(container)
    (claim,) = sts["spec"]["volumeClaimTemplates"]
    assert claim["spec"]["resources"]["requests"]["storage"] == "8Gi"
    assert sts["spec"]["persistentVolumeClaimRetentionPolicy"]["whenDeleted"] == "Retain"
    assert env_of(container)["POSTGRES_PASSWORD_FILE"].startswith(mounts["credentials"])
    assert mounts["initdb"] == "/docker-entrypoint-initdb.d"
    small = render_chart(
        {"postgresql": {"persistence": {"enabled": False}}, "global": {"storageClass": "fast"}}
    )
    sts = one(small, "StatefulSet", f"{RELEASE}-postgresql")
    assert "volumeClaimTemplates" not in sts["spec"]
    assert {"name": "data", "emptyDir": {}} in pod_spec(sts)["volumes"]
    store = one(small, "StatefulSet", f"{RELEASE}-seaweedfs")
    assert store["spec"]["volumeClaimTemplates"][0]["spec"]["storageClassName"] == "fast"


def test_network_policies_cover_every_pod() -> None:
    objects = render_chart()
    policies = find(objects, "NetworkPolicy")
    for obj in workloads(objects):
        labels = pod_spec_labels(obj)
        assert any(
            p["spec"]["podSelector"]["matchLabels"].items() <= labels.items() for p in policies
        ), obj["metadata"]["name"]
    assert not find(
        render_chart({"global": {"networkPolicy": {"enabled": False}}}), "NetworkPolicy"
    )


def test_notes_tell_how_to_reach_each_ui_and_the_credentials(helm: str) -> None:
    notes = render_notes(helm=helm)
    assert f"port-forward svc/{RELEASE}-mlflow 5000:5000" in notes
    assert f"get secret {RELEASE}-mlflow-auth -o jsonpath='{{.data.admin-password}}'" in notes
    assert f"port-forward svc/{RELEASE}-seaweedfs 8333:8333" in notes
    assert f"port-forward svc/{RELEASE}-minio 9001:9001" in render_notes(MINIO, helm=helm)
    assert f"get secret {RELEASE}-objectstore" in notes
    assert f"helm test {RELEASE}" in notes
    external = render_notes(ci_values("external-values"), helm=helm)
    assert "get secret trainyard-mlflow-admin" in external
    assert "minio" not in external.lower()
    assert "(external)" in external

"""The move from MinIO to SeaweedFS (issue 23, item 4; docs/upgrading.md) at render level: the
opt-in objectStoreMigration Job and what the upgrade that switches the provider renders.

The copy itself (trainyard.objectstore_copy) is tested between two real SeaweedFS servers in
tests/integration/test_objectstore_copy.py; here: the Job runs that file from the tools image,
with both stores' endpoints and key pairs from the environment (Secrets), and the upgrade that
sets `global.objectStore.provider=seaweedfs` on a release whose MinIO runs renders SeaweedFS and
no MinIO object, while `auto` would go back to a MinIO StatefulSet that is still there.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path
from typing import Any

import dockerfile
import pytest

from .conftest import (
    MINIO,
    NAMESPACE,
    RELEASE,
    REPO,
    Manifest,
    checkov,
    env_of,
    find,
    kubernetes_validate,
    one,
    pod_spec,
    render_chart,
    render_error,
)
from .test_objectstore import live_minio, platform, render_upgrade, store_names

pytestmark = pytest.mark.chart

ENABLED: dict[str, Any] = {"objectStoreMigration": {"enabled": True}}
SWITCH: dict[str, Any] = {"global": {"objectStore": {"provider": "seaweedfs"}}, **ENABLED}
SCRIPT = "/opt/trainyard/objectstore_copy.py"
MINIO_ENDPOINT = f"http://{RELEASE}-minio.{NAMESPACE}.svc:9000"
SEAWEEDFS_ENDPOINT = f"http://{RELEASE}-seaweedfs.{NAMESPACE}.svc:8333"


def migration_jobs(objects: list[Manifest]) -> list[Manifest]:
    return [
        job
        for job in find(objects, "Job")
        if job["metadata"]["labels"]["app.kubernetes.io/component"] == "objectstore-migration"
    ]


def secret_ref(name: str, key: str) -> dict[str, Any]:
    return {"secretKeyRef": {"name": name, "key": key}}


def test_there_is_no_migration_job_by_default() -> None:
    assert migration_jobs(render_chart()) == []


def test_the_switch_from_a_running_minio_renders_seaweedfs_and_the_copy_from_minio(
    helm: str, tmp_path: Path
) -> None:
    """The upgrade of docs/upgrading.md: MinIO runs (its StatefulSet annotated to be kept),
    provider seaweedfs and the migration on. SeaweedFS, the same Secret, no MinIO object (Helm
    deletes what the release no longer renders, unless annotated `keep`), and a Job copying from
    MinIO's Service into SeaweedFS with that Secret's key pair on both sides."""
    kept = live_minio()
    kept["metadata"]["annotations"]["helm.sh/resource-policy"] = "keep"
    objects, _, requests = render_upgrade(helm, [kept], tmp_path, SWITCH)
    assert store_names(objects) == {"seaweedfs"}
    assert not [o for o in objects if o["metadata"]["name"].startswith(f"{RELEASE}-minio")]
    one(objects, "StatefulSet", f"{RELEASE}-seaweedfs")
    one(objects, "Secret", f"{RELEASE}-objectstore")
    assert platform(objects)["AWS_ENDPOINT_URL_S3"] == SEAWEEDFS_ENDPOINT
    assert all(method == "GET" for method, _ in requests), requests

    (job,) = migration_jobs(objects)
    spec = pod_spec(job)
    (copy,) = spec["containers"]
    assert copy["command"] == ["python", SCRIPT]
    assert "--wait=600" in copy["args"]
    assert "--verify-only" not in copy["args"]
    assert not [a for a in copy["args"] if a.startswith("--bucket")]  # every bucket
    env = env_of(copy)
    assert env["SOURCE_S3_ENDPOINT_URL"] == MINIO_ENDPOINT
    assert env["DEST_S3_ENDPOINT_URL"] == SEAWEEDFS_ENDPOINT
    secret = f"{RELEASE}-objectstore"
    for side in ("SOURCE_", "DEST_"):
        assert env[side + "AWS_ACCESS_KEY_ID"] == secret_ref(secret, "access-key-id")
        assert env[side + "AWS_SECRET_ACCESS_KEY"] == secret_ref(secret, "secret-access-key")
        assert env[side + "S3_ADDRESSING_STYLE"] == "path"
        assert env[side + "AWS_REGION"] == "us-east-1"
    # no key or endpoint on the command line, no literal credential anywhere
    assert not [a for a in copy["args"] if "http" in a or "key" in a.lower()]
    assert spec["restartPolicy"] == "Never"
    assert job["spec"]["backoffLimit"] == 2
    assert (
        copy["image"]
        == one(objects, "Job", bucket_init_name(objects))["spec"]["template"]["spec"]["containers"][
            0
        ]["image"]
    )


def bucket_init_name(objects: list[Manifest]) -> str:
    (job,) = [j for j in find(objects, "Job") if "bucket-init" in j["metadata"]["name"]]
    name: str = job["metadata"]["name"]
    return name


def test_with_auto_a_kept_minio_statefulset_is_the_store_again(tmp_path: Path) -> None:
    """Why the procedure sets the provider explicitly and keeps it set: the MinIO StatefulSet
    kept running for the copy still carries this release's name, so `auto` finds it."""
    kept = live_minio()
    kept["metadata"]["annotations"]["helm.sh/resource-policy"] = "keep"
    objects, _, _ = render_upgrade("helm3", [kept], tmp_path)
    assert store_names(objects) == {"minio"}


def test_the_job_is_refused_when_the_source_is_the_release_store(helm: str) -> None:
    message = render_error({**MINIO, **ENABLED}, helm=helm)
    (line,) = [line for line in message.splitlines() if "objectStoreMigration.enabled" in line]
    assert MINIO_ENDPOINT in line
    assert "global.objectStore.provider=seaweedfs" in line


def test_another_source_its_secret_buckets_and_verify_only() -> None:
    values: dict[str, Any] = {
        "objectStoreMigration": {
            "enabled": True,
            "source": {
                "endpoint": "https://s3.eu-west-1.amazonaws.com",
                "region": "eu-west-1",
                "addressingStyle": "virtual",
                "existingSecret": "old-store",
                "accessKeyIdKey": "id",
                "secretAccessKeyKey": "secret",
            },
            "buckets": ["datasets", "mlflow"],
            "workers": 8,
        }
    }
    (job,) = migration_jobs(render_chart(values))
    (copy,) = pod_spec(job)["containers"]
    env = env_of(copy)
    assert env["SOURCE_S3_ENDPOINT_URL"] == "https://s3.eu-west-1.amazonaws.com"
    assert env["SOURCE_AWS_REGION"] == "eu-west-1"
    assert env["SOURCE_S3_ADDRESSING_STYLE"] == "virtual"
    assert env["SOURCE_AWS_ACCESS_KEY_ID"] == secret_ref("old-store", "id")
    assert env["SOURCE_AWS_SECRET_ACCESS_KEY"] == secret_ref("old-store", "secret")
    assert env["DEST_AWS_ACCESS_KEY_ID"] == secret_ref(f"{RELEASE}-objectstore", "access-key-id")
    assert copy["args"] == ["--workers=8", "--wait=600", "--bucket=datasets", "--bucket=mlflow"]
    # verify-only is another Job (its name carries the pod template's hash): it runs anew
    values["objectStoreMigration"]["verifyOnly"] = True
    (check,) = migration_jobs(render_chart(values))
    assert pod_spec(check)["containers"][0]["args"][-1] == "--verify-only"
    assert check["metadata"]["name"] != job["metadata"]["name"]
    assert check["metadata"]["name"].startswith(f"{RELEASE}-objectstore-migration-")


def test_unknown_migration_keys_are_refused() -> None:
    message = render_error({"objectStoreMigration": {"enabled": True, "source": {"url": "x"}}})
    assert "url" in message


def test_the_job_validates_and_passes_checkov() -> None:
    """With the rest of the release (checkov's graph checks look for its NetworkPolicies)."""
    objects = render_chart(ENABLED)
    (job,) = migration_jobs(objects)
    assert not kubernetes_validate([job])
    report = checkov(objects)
    failed = [
        f"{c['check_id']} {c['resource']}: {c['check_name']}"
        for c in report["results"]["failed_checks"]
    ]
    assert not failed, "\n".join(failed)
    assert any("objectstore-migration" in c["resource"] for c in report["results"]["passed_checks"])


def test_the_tools_image_carries_the_package_file_the_job_runs() -> None:
    """One copy of the code: the tools image (images/mlflow) copies the package's module to the
    path the Job runs, and the module needs nothing the image lacks (standard library and
    botocore: no trainyard import)."""
    commands = dockerfile.parse_file(str(REPO / "images" / "mlflow" / "Dockerfile"))
    last_from = max(i for i, c in enumerate(commands) if c.cmd == "FROM")
    copies = [c.value for c in commands[last_from:] if c.cmd == "COPY"]
    assert ("platform/trainyard/objectstore_copy.py", SCRIPT) in copies
    tree = ast.parse((REPO / "platform" / "trainyard" / "objectstore_copy.py").read_text())
    modules = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            modules |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            modules.add(node.module.split(".")[0])
    assert modules - set(sys.stdlib_module_names) == {"botocore"}
    requirements = (REPO / "images" / "mlflow" / "requirements.txt").read_text()
    assert "boto3==" in requirements  # which brings botocore

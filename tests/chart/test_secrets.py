"""Generated secrets: random once, stable afterwards, never a default password.

How stability works: each generated Secret's template first `lookup`s the Secret it renders and
reuses every key it finds; only missing keys get a new random value. `helm template` (and so
these tests) never sees a cluster, so lookup always returns nothing here: these tests cover the
fallback path (generate) and prove that, apart from those generated values, two renders of the
same release are byte-identical - so once the Secret exists nothing else can change between
upgrades. The lookup path itself needs a cluster and is covered by the end-to-end tests on kind
(install, upgrade, compare the Secret). The Secrets carry `helm.sh/resource-policy: keep`.
"""

from __future__ import annotations

import base64
import copy
import json
import re
from typing import Any

import pytest
import yaml

from .conftest import (
    CHART,
    CI_VALUES,
    RELEASE,
    containers,
    env_of,
    find,
    one,
    pod_spec,
    render_chart,
    render_error,
    workloads,
)

pytestmark = pytest.mark.chart

GENERATED = {
    f"{RELEASE}-postgresql": {"postgres-password", "airflow-password", "mlflow-password"},
    f"{RELEASE}-objectstore": {"access-key-id", "secret-access-key"},
    f"{RELEASE}-mlflow-auth": {"admin-password", "flask-secret-key"},
    f"{RELEASE}-airflow": {"admin-password", "jwt-secret", "api-secret-key"},
    f"{RELEASE}-trainer-identity": {
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "MLFLOW_TRACKING_PASSWORD",
    },
}
DEFAULT_PASSWORDS = (
    "minioadmin",
    "password",
    "changeme",
    "admin123",
    "secret",
    "postgres",
    "mlflow",
    "admin",
)


def generated_secrets(objects: list[dict]) -> list[dict]:
    return [
        s
        for s in find(objects, "Secret")
        if (s["metadata"].get("annotations") or {}).get("trainyard.io/generated") == "true"
    ]


def without_generated_values(objects: list[dict]) -> list[dict]:
    """The objects with the generated random values blanked (the ini embeds the admin password),
    in the generated Secrets and in the copies the chart renders from them."""
    out = copy.deepcopy(objects)
    copies = [
        s for s in find(out, "Secret")
        if (s["metadata"].get("annotations") or {}).get("trainyard.io/copy-of")
    ]  # fmt: skip
    for secret in [*generated_secrets(out), *copies]:
        for key in list(secret.get("data", {})):
            secret["data"][key] = "<generated>"
    return out


@pytest.mark.parametrize(
    "values_files", [[], *[[p] for p in CI_VALUES]], ids=lambda v: v[0].stem if v else "defaults"
)
def test_two_renders_differ_only_in_generated_values(helm: str, values_files: list) -> None:
    # render_chart caches by arguments: a different (unused) release name would change names,
    # so bypass the cache by rendering through distinct but equivalent values.
    first = render_chart({}, values_files=values_files, helm=helm)
    second = render_chart({"tests": {"enabled": True}}, values_files=values_files, helm=helm)
    assert without_generated_values(first) == without_generated_values(second)


def test_generated_values_are_random_strong_and_kept(helm: str) -> None:
    first = render_chart({}, helm=helm)
    second = render_chart({"tests": {"enabled": True}}, helm=helm)
    secrets = {s["metadata"]["name"]: s for s in generated_secrets(first)}
    assert set(secrets) == set(GENERATED)
    for name, keys in GENERATED.items():
        secret = secrets[name]
        assert secret["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep", name
        assert secret["type"] == "Opaque"
        assert keys <= set(secret["data"]), name
        again = one(second, "Secret", name)
        for key in keys:
            value = base64.b64decode(secret["data"][key]).decode()
            assert re.fullmatch(r"[A-Za-z0-9]{20,}", value), f"{name}[{key}] is weak: {value!r}"
            assert value.lower() not in DEFAULT_PASSWORDS
            # random per render when no Secret exists yet (the lookup fallback)
            assert again["data"][key] != secret["data"][key], f"{name}[{key}] is not random"


def test_auth_ini_carries_the_generated_admin_password() -> None:
    secret = one(render_chart(), "Secret", f"{RELEASE}-mlflow-auth")
    password = base64.b64decode(secret["data"]["admin-password"]).decode()
    ini = base64.b64decode(secret["data"]["basic_auth.ini"]).decode()
    assert f"admin_password = {password}\n" in ini
    assert "admin_username = admin\n" in ini
    assert re.search(
        r"^database_uri = postgresql\+psycopg://mlflow@[^:]+:5432/mlflow_auth\?sslmode=disable$",
        ini,
        re.M,
    )
    assert "default_permission = READ" in ini


@pytest.mark.parametrize(
    ("values", "absent", "used"),
    [
        ({"global": {"database": {"existingSecret": "my-db"}}}, f"{RELEASE}-postgresql", "my-db"),
        (
            {"global": {"objectStore": {"existingSecret": "my-s3"}}},
            f"{RELEASE}-objectstore",
            "my-s3",
        ),
    ],
    ids=["database", "object-store"],
)
def test_existing_secret_replaces_the_generated_one(
    helm: str, values: dict, absent: str, used: str
) -> None:
    objects = render_chart(values, helm=helm)
    assert not find(objects, "Secret", absent)
    refs = secret_refs(objects)
    assert used in refs and absent not in refs


def secret_refs(objects: list[dict]) -> set[str]:
    """Names of the Secrets the pods mount or take env from."""
    names: set[str] = set()
    for obj in workloads(objects):
        spec = pod_spec(obj)
        names |= {v["secret"]["secretName"] for v in spec.get("volumes", []) if "secret" in v}
        for container in containers(spec):
            for env in container.get("env", []):
                if "secretKeyRef" in env.get("valueFrom", {}):
                    names.add(env["valueFrom"]["secretKeyRef"]["name"])
    return names


def test_existing_mlflow_admin_secret(helm: str) -> None:
    values = {
        "mlflow": {"auth": {"existingSecret": "mlflow-admin"}},
        "serving": {"mlflow": {"existingSecret": "mlflow-admin"}},
    }
    objects = render_chart(values, helm=helm)
    secret = one(objects, "Secret", f"{RELEASE}-mlflow-auth")
    assert "admin-password" not in secret["data"]
    assert "admin_password" not in base64.b64decode(secret["data"]["basic_auth.ini"]).decode()
    deployment = one(objects, "Deployment", f"{RELEASE}-mlflow")
    env = {e["name"]: e for e in pod_spec(deployment)["containers"][0]["env"]}
    assert env["MLFLOW_FLASK_SERVER_SECRET_KEY"]["valueFrom"]["secretKeyRef"] == {
        "name": "mlflow-admin",
        "key": "flask-secret-key",
    }
    assert env["MLFLOW_AUTH_ADMIN_PASSWORD"]["valueFrom"]["secretKeyRef"] == {
        "name": "mlflow-admin",
        "key": "admin-password",
    }
    test_pod = one(objects, "Pod", f"{RELEASE}-test-mlflow")
    assert "mlflow-admin" in json.dumps(test_pod)
    serving = env_of(pod_spec(one(objects, "Deployment", f"{RELEASE}-serving"))["containers"][0])
    assert serving["MLFLOW_TRACKING_PASSWORD"]["secretKeyRef"]["name"] == "mlflow-admin"
    # the model server cannot see mlflow.auth: forgetting it fails the render, naming the key
    error = render_error({"mlflow": {"auth": {"existingSecret": "mlflow-admin"}}}, helm=helm)
    assert "serving.mlflow.existingSecret" in error


@pytest.mark.parametrize(
    "values_files", [[], *[[p] for p in CI_VALUES]], ids=lambda v: v[0].stem if v else "defaults"
)
def test_no_credential_is_ever_a_literal(values_files: list) -> None:
    """Credentials reach pods only through secretKeyRef or mounted Secrets, never as values."""
    objects = render_chart(values_files=values_files)
    for obj in workloads(objects):
        for container in containers(pod_spec(obj)):
            for env in container.get("env", []):
                if re.search(r"PASSWORD|SECRET|ACCESS_KEY|TOKEN", env["name"]) and not env[
                    "name"
                ].endswith("_FILE"):
                    assert "valueFrom" in env and "value" not in env, (
                        f"{obj['metadata']['name']}: {env}"
                    )
            for text in (*container.get("args", []), *container.get("command", [])):
                assert not re.search(r"://[^/@\s]+:[^/@\s]+@", text), f"credential in a URL: {text}"
    for cm in find(objects, "ConfigMap"):
        # SIMPLE_AUTH_MANAGER_USERS is `<user>:<role>` (user "admin" has role "admin"), no password.
        data = {k: v for k, v in cm["data"].items() if not k.endswith("SIMPLE_AUTH_MANAGER_USERS")}
        dump = yaml.safe_dump(data).lower()
        for default in ("minioadmin", "admin:admin"):
            assert default not in dump, f"ConfigMap {cm['metadata']['name']} holds {default}"
        # an assignment of a literal (not $VAR, $(cmd) or a psql :'variable') to a password
        literal = re.search(r"password\w*\s*(=|:\s)\s*[\"']?[a-z0-9]{4,}", dump)
        assert not literal, (
            f"ConfigMap {cm['metadata']['name']}: {literal.group(0) if literal else ''}"
        )


def credential_defaults(node: Any, where: str) -> list[str]:
    """`where.key=value` for every non-empty value under a password/key-like name."""
    found: list[str] = []
    if isinstance(node, dict):
        for key, value in node.items():
            named_like_a_credential = re.search(r"password|secret|accesskey|token", key, re.I)
            # accessKeyIdKey, existingSecret, tlsSecretName...: they name a key or a Secret
            names_a_key = re.search(r"(IdKey|KeyKey|PasswordKey|existingSecret|SecretName)$", key)
            # bindPassword: {existingSecret, key}: a reference to a Secret; its fields are checked.
            a_reference = isinstance(value, dict)
            if named_like_a_credential and not names_a_key and not a_reference and value:
                found.append(f"{where}.{key}={value!r}")
            found += credential_defaults(value, f"{where}.{key}")
    return found


def test_no_default_password_in_values_files() -> None:
    for path in [CHART / "values.yaml", *CHART.glob("charts/*/values.yaml"), *CI_VALUES]:
        values = yaml.safe_load(path.read_text()) or {}
        assert not credential_defaults(values, path.name)

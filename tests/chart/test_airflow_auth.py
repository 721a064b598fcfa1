"""Who may use Airflow's UI and API: the FAB auth manager by default, SimpleAuthManager on request.

The rendered webserver_config.py is run by FAB itself in tests/images/test_airflow_image.py;
here its settings are read from the file as data.
"""

from __future__ import annotations

import ast
import base64
import json
from typing import Any

import yaml

from .conftest import (
    RELEASE,
    env_of,
    find,
    one,
    pod_spec,
    render_chart,
    render_error,
)
from .test_airflow import airflow_config, deployment

FAB = "airflow.providers.fab.auth_manager.fab_auth_manager.FabAuthManager"
OIDC_SECRET = {"existingSecret": "airflow-oidc", "key": "client-secret"}


def fab_config_file(objects: list[dict]) -> str:
    return str(
        one(objects, "ConfigMap", f"{RELEASE}-airflow-fab-config")["data"]["webserver_config.py"]
    )


def fab_settings(objects: list[dict]) -> dict[str, Any]:
    """The JSON webserver_config.py loads, read from the (syntactically valid) file."""
    module = ast.parse(fab_config_file(objects))
    for node in module.body:
        if isinstance(node, ast.Assign) and ast.unparse(node.targets[0]) == "_SETTINGS":
            assert isinstance(node.value, ast.Call)
            argument = node.value.args[0]
            assert isinstance(argument, ast.Constant)
            value: dict[str, Any] = json.loads(argument.value)
            return value
    raise AssertionError("webserver_config.py assigns no _SETTINGS")


def mounts_of(container: dict[str, Any]) -> dict[str, str]:
    return {m["name"]: m["mountPath"] for m in container.get("volumeMounts", [])}


def test_fab_is_the_default_auth_manager(helm: str) -> None:
    objects = render_chart(helm=helm)
    config = airflow_config(objects)
    assert config["AIRFLOW__CORE__AUTH_MANAGER"] == FAB
    assert not [key for key in config if "SIMPLE_AUTH_MANAGER" in key]
    api = pod_spec(deployment(objects, "api-server"))
    assert not [c for c in api["initContainers"] if c["name"] == "passwords-file"]
    (server,) = api["containers"]
    folder = mounts_of(server)["fab-config"]
    assert config["AIRFLOW__FAB__CONFIG_FILE"] == f"{folder}/webserver_config.py"
    volume = next(v for v in api["volumes"] if v["name"] == "fab-config")
    assert volume["configMap"]["name"] == f"{RELEASE}-airflow-fab-config"
    assert fab_settings(objects)["AUTH_TYPE"] == "db"


def test_the_migration_creates_the_first_admin_from_the_kept_secret(helm: str) -> None:
    objects = render_chart(helm=helm)
    migrate = pod_spec(deployment(objects, "scheduler"))["initContainers"][0]
    (script,) = migrate["args"]
    # Roles first: `users create` refuses a role that does not exist yet on a fresh database.
    assert (
        "&& airflow db migrate && airflow sync-perm && airflow users create --role Admin" in script
    )
    assert "--username 'admin'" in script
    assert '--password "$TRAINYARD_ADMIN_PASSWORD"' in script
    assert env_of(migrate)["TRAINYARD_ADMIN_PASSWORD"]["secretKeyRef"] == {
        "name": f"{RELEASE}-airflow",
        "key": "admin-password",
    }
    # `users create` builds FAB's app, which reads webserver_config.py.
    assert "fab-config" in mounts_of(migrate)
    secret = one(objects, "Secret", f"{RELEASE}-airflow")
    password = base64.b64decode(secret["data"]["admin-password"]).decode()
    others = [o for o in objects if o is not secret]
    assert password not in yaml.safe_dump_all(others)
    # Only the migrating component creates users: the others just wait for the schema.
    for component in ("api-server", "dag-processor", "triggerer"):
        init = pod_spec(deployment(objects, component))["initContainers"][0]
        assert "users create" not in init["args"][0]
        assert "TRAINYARD_ADMIN_PASSWORD" not in env_of(init)


def test_oauth_providers_reach_fab_with_their_secrets_only_in_the_environment(helm: str) -> None:
    providers = [
        {
            "name": "keycloak",
            "icon": "fa-key",
            "clientId": "airflow",
            "clientSecret": OIDC_SECRET,
            "apiBaseUrl": "https://idp.example.com/realms/ml/protocol/",
            "serverMetadataUrl": "https://idp.example.com/realms/ml/.well-known/openid-configuration",
        },
        {
            "name": "google",
            "clientId": "123.apps.googleusercontent.com",
            "clientSecret": {"existingSecret": "google-oauth", "key": "secret"},
            "apiBaseUrl": "https://www.googleapis.com/oauth2/v2/",
            "accessTokenUrl": "https://accounts.google.com/o/oauth2/token",
            "authorizeUrl": "https://accounts.google.com/o/oauth2/auth",
            "scope": "email profile",
            "extra": {"jwks_uri": "https://www.googleapis.com/oauth2/v3/certs"},
        },
    ]
    fab = {"type": "oauth", "oauth": {"providers": providers}}
    fab |= {"rolesMapping": {"airflow-admins": ["Admin"]}, "userRegistrationRole": "User"}
    objects = render_chart({"airflow": {"auth": {"fab": fab}}}, helm=helm)
    settings = fab_settings(objects)
    assert settings["AUTH_TYPE"] == "oauth"
    assert settings["AUTH_ROLES_MAPPING"] == {"airflow-admins": ["Admin"]}
    assert settings["AUTH_USER_REGISTRATION_ROLE"] == "User"
    keycloak, google = settings["OAUTH_PROVIDERS"]
    assert keycloak["name"] == "keycloak" and keycloak["token_key"] == "access_token"
    assert keycloak["remote_app"] == {
        "client_id": "airflow",
        "client_kwargs": {"scope": "openid email profile"},
        "api_base_url": "https://idp.example.com/realms/ml/protocol/",
        "server_metadata_url": providers[0]["serverMetadataUrl"],
    }
    assert google["remote_app"]["authorize_url"] == providers[1]["authorizeUrl"]
    assert google["remote_app"]["client_kwargs"] == {"scope": "email profile"}
    assert google["remote_app"]["jwks_uri"] == providers[1]["extra"]["jwks_uri"]
    # The client secrets: by name in the file, by secretKeyRef in the api-server only.
    api = pod_spec(deployment(objects, "api-server"))["containers"][0]
    env = env_of(api)
    for provider, spec in zip((keycloak, google), providers, strict=True):
        assert "client_secret" not in provider["remote_app"]
        ref = env[provider["client_secret_env"]]["secretKeyRef"]
        assert ref == {
            "name": spec["clientSecret"]["existingSecret"],
            "key": spec["clientSecret"]["key"],
        }
    # No password users: the first admin comes from the identity provider (rolesMapping).
    migrate = pod_spec(deployment(objects, "scheduler"))["initContainers"][0]
    assert "users create" not in migrate["args"][0]
    assert "airflow sync-perm" in migrate["args"][0]


def test_ldap_sign_in_with_a_bind_secret_and_a_ca(helm: str) -> None:
    ldap = {
        "server": "ldaps://ldap.example.com:636",
        "search": "ou=people,dc=example,dc=com",
        "bindUser": "cn=airflow,ou=services,dc=example,dc=com",
        "bindPassword": {"existingSecret": "ldap-bind", "key": "password"},
        "caSecret": "ldap-ca",
    }
    values = {"airflow": {"auth": {"fab": {"type": "ldap", "ldap": ldap}}}}
    objects = render_chart(values, helm=helm)
    settings = fab_settings(objects)
    assert settings["AUTH_TYPE"] == "ldap"
    assert settings["AUTH_LDAP_SERVER"] == ldap["server"]
    assert settings["AUTH_LDAP_SEARCH"] == ldap["search"]
    assert settings["AUTH_LDAP_BIND_USER"] == ldap["bindUser"]
    assert settings["AUTH_LDAP_UID_FIELD"] == "uid"
    assert "AUTH_LDAP_BIND_PASSWORD" not in settings
    api = pod_spec(deployment(objects, "api-server"))
    env = env_of(api["containers"][0])
    assert env["TRAINYARD_LDAP_BIND_PASSWORD"]["secretKeyRef"] == {
        "name": "ldap-bind",
        "key": "password",
    }
    assert "TRAINYARD_LDAP_BIND_PASSWORD" in fab_config_file(objects)
    ca = mounts_of(api["containers"][0])["ldap-ca"]
    assert settings["AUTH_LDAP_TLS_CACERTFILE"] == f"{ca}/ca.crt"
    volume = next(v for v in api["volumes"] if v["name"] == "ldap-ca")
    assert volume["secret"]["secretName"] == "ldap-ca"


def test_extra_fab_config_is_appended_as_python(helm: str) -> None:
    extra = "AUTH_ROLE_ADMIN = 'Admin'\nFAB_API_SWAGGER_UI = False\n"
    objects = render_chart({"airflow": {"auth": {"fab": {"extraConfig": extra}}}}, helm=helm)
    source = fab_config_file(objects)
    assert source.rstrip().endswith(extra.rstrip())
    ast.parse(source)


def test_the_simple_auth_manager_stays_an_explicit_choice(helm: str) -> None:
    objects = render_chart({"airflow": {"auth": {"manager": "simple"}}}, helm=helm)
    config = airflow_config(objects)
    assert config["AIRFLOW__CORE__AUTH_MANAGER"].endswith(".SimpleAuthManager")
    assert "AIRFLOW__FAB__CONFIG_FILE" not in config
    assert not find(objects, "ConfigMap", f"{RELEASE}-airflow-fab-config")
    (script,) = pod_spec(deployment(objects, "scheduler"))["initContainers"][0]["args"]
    assert script.endswith("&& airflow db migrate")


def test_incomplete_sign_in_settings_are_refused() -> None:
    for fab, field in (
        ({"type": "oauth"}, "providers"),
        ({"type": "ldap"}, "server"),
        ({"type": "saml"}, "type"),
    ):
        error = render_error({"airflow": {"auth": {"fab": fab}}})
        assert field in error, (fab, error)
    secretless = {
        "name": "okta",
        "clientId": "x",
        "clientSecret": {"existingSecret": "", "key": "k"},
    }
    error = render_error(
        {"airflow": {"auth": {"fab": {"type": "oauth", "oauth": {"providers": [secretless]}}}}}
    )
    assert "existingSecret" in error
    assert "manager" in render_error({"airflow": {"auth": {"manager": "keycloak"}}})

"""Promote a model: register it, move `champion` to it and keep the old one as `previous`,
then roll the model server out and smoke-test it.

Re-running deploy for the same run reuses the version already registered from
it, so a retried task does not pile up versions; but a version once rolled back
(tagged `trainyard.rolled_back=true`) is not promoted again unless `force` says so.
If the server does not come up with the new champion or answers wrongly,
`champion` goes back to `previous`, the server is rolled out again, and the stage
fails. `rollback` is that inverse on its own: `champion` goes back to `previous`.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import mlflow
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import RESOURCE_ALREADY_EXISTS, ErrorCode

from trainyard.errors import UserError
from trainyard.stages import serving
from trainyard.stages.registry import CHAMPION, PREVIOUS, champion_uri, read_aliases
from trainyard.stages.serving_kubernetes import KubernetesDeployment
from trainyard.stages.smoke import SmokeExample, load_example, smoke_test

log = logging.getLogger(__name__)

REGISTRATION_TIMEOUT_S = 300
REJECTED_TAG = "trainyard.rolled_back"


def _ensure_registered_model(client: MlflowClient, model_name: str) -> None:
    try:
        client.create_registered_model(
            model_name, description="Registered by the trainyard pipeline's deploy stage."
        )
    except MlflowException as exc:
        if exc.error_code != ErrorCode.Name(RESOURCE_ALREADY_EXISTS):
            raise


def _version_for_run(client: MlflowClient, model_name: str, run_id: str) -> str | None:
    versions = client.search_model_versions(f"name = '{model_name}' and run_id = '{run_id}'")
    ready = [v for v in versions if v.status == "READY"]
    return str(max(int(v.version) for v in ready)) if ready else None


def deploy(
    model_uri: str,
    run_id: str,
    model_name: str,
    tags: dict[str, str] | None = None,
    force: bool = False,
) -> dict[str, Any]:
    server = model_server()
    # Before anything moves: what the server will be asked, so a model that cannot be
    # smoke-tested is refused while the champion is untouched.
    example = load_example(model_uri) if server else None
    promoted = promote(model_uri, run_id, model_name, tags, force=force)
    if server is None:
        log.info("no model server configured: the alias move is the deployment")
        return {**promoted, "serving": None}
    assert example is not None
    return {**promoted, "serving": serve(server, promoted, example)}


def model_server(env: Mapping[str, str] = os.environ) -> serving.ModelServer | None:
    """The model server the platform names in the environment (see `serving`), or None."""
    url = env.get(serving.URL_ENV)
    deployment, local_dir = env.get(serving.DEPLOYMENT_ENV), env.get(serving.LOCAL_DIR_ENV)
    if not (deployment or local_dir):
        return None
    if not url:
        raise serving.ServingError(
            f"{serving.DEPLOYMENT_ENV} or {serving.LOCAL_DIR_ENV} is set but {serving.URL_ENV} "
            "is not"
        )
    try:
        timeout_s = float(env.get(serving.TIMEOUT_ENV, serving.DEFAULT_TIMEOUT_S))
    except ValueError:
        raise serving.ServingError(
            f"{serving.TIMEOUT_ENV}={env[serving.TIMEOUT_ENV]!r} is not a number"
        ) from None
    if deployment:
        namespace = env.get(serving.NAMESPACE_ENV) or "default"
        return KubernetesDeployment(deployment, namespace, url, timeout_s)
    assert local_dir is not None
    # Only the laptop runtime names a local folder; its rollout needs the laptop's psutil,
    # which the images do not have.
    from trainyard.stages.serving_local import LocalModelServer  # noqa: PLC0415

    return LocalModelServer(Path(local_dir), url, timeout_s)


def serve(
    server: serving.ModelServer, promoted: dict[str, Any], example: SmokeExample
) -> dict[str, Any]:
    name, version = promoted["model_name"], promoted["version"]
    started = time.monotonic()
    try:
        server.roll_out(name, version)
        checked = smoke_test(server.url, example)
    except serving.ServingError as exc:
        log.error("%s failed with %s v%s: %s", server.describe(), name, version, exc)
        try:
            outcome = restore(server, name, promoted["previous_version"])
        except UserError as failed:  # e.g. MLflow gone as well: say so, keep the first error
            outcome = f"and restoring the previous champion failed: {failed}"
        raise UserError(f"{server.describe()} failed with v{version}: {exc}; {outcome}") from exc
    seconds = round(time.monotonic() - started, 1)
    log.info("%s serves v%s; smoke test passed on %d rows", server.describe(), version, checked)
    return {
        "target": server.describe(),
        "url": server.url,
        "smoke_test_rows": checked,
        "rollout_seconds": seconds,
    }


def restore(server: serving.ModelServer, name: str, previous: str | None) -> str:
    """After a failed rollout: the alias back first, then the server (what is said happened)."""
    if previous is None:
        withdraw(name)
        server.retire()
        return "there was no previous champion: the alias was removed and the server stopped"
    restored = rollback(name)["version"]
    try:
        server.roll_out(name, restored)
    except serving.ServingError as exc:
        return f"champion is v{restored} again but the server did not come back: {exc}"
    return f"rolled back: champion is v{restored} again and served"


def withdraw(model_name: str) -> None:
    """Remove `champion` from a first version that could not be served."""
    client = MlflowClient()
    try:
        rejected = read_aliases(client, model_name).champion
        if rejected is not None:
            client.delete_registered_model_alias(model_name, CHAMPION)
            client.set_model_version_tag(model_name, rejected, REJECTED_TAG, "true")
    except MlflowException as exc:
        raise UserError(f"could not withdraw {model_name}@{CHAMPION}: {exc.message}") from exc


def promote(
    model_uri: str,
    run_id: str,
    model_name: str,
    tags: dict[str, str] | None = None,
    force: bool = False,
) -> dict[str, Any]:
    client = MlflowClient()
    try:
        _ensure_registered_model(client, model_name)
        version = _version_for_run(client, model_name, run_id)
        if version is not None:
            _refuse_rolled_back(client, model_name, version, force)
        if version is None:
            registered = mlflow.register_model(
                model_uri,
                model_name,
                tags=tags,
                await_registration_for=REGISTRATION_TIMEOUT_S,
            )
            version = str(registered.version)
        aliases = read_aliases(client, model_name)
        previous = aliases.champion if aliases.champion != version else aliases.previous
        # `previous` first: at every instant `champion` points at a servable version.
        if previous is not None:
            client.set_registered_model_alias(model_name, PREVIOUS, previous)
        client.set_registered_model_alias(model_name, CHAMPION, version)
    except MlflowException as exc:
        raise UserError(f"could not promote {model_uri} as {model_name}: {exc.message}") from exc
    log.info("%s v%s is champion (previous: %s)", model_name, version, previous)
    return {
        "model_name": model_name,
        "version": version,
        "previous_version": previous,
        "champion_uri": champion_uri(model_name),
        "run_id": run_id,
    }


def _refuse_rolled_back(client: MlflowClient, model_name: str, version: str, force: bool) -> None:
    """A version that was rolled back is not promoted again by a retry, unless forced."""
    tags = client.get_model_version(model_name, version).tags
    if tags.get(REJECTED_TAG) != "true":
        return
    if not force:
        raise UserError(
            f"{model_name} v{version} was rolled back before ({REJECTED_TAG}=true): not promoting "
            "it again; trigger the run with force_deploy=true to override"
        )
    log.warning("%s v%s was rolled back before; promoting it again (forced)", model_name, version)
    client.delete_model_version_tag(model_name, version, REJECTED_TAG)


def rollback(model_name: str) -> dict[str, Any]:
    client = MlflowClient()
    try:
        aliases = read_aliases(client, model_name)
        if aliases.previous is None:
            raise UserError(f"{model_name} has no '{PREVIOUS}' version to roll back to")
        rejected = aliases.champion
        client.set_registered_model_alias(model_name, CHAMPION, aliases.previous)
        client.delete_registered_model_alias(model_name, PREVIOUS)
        if rejected is not None:
            client.set_model_version_tag(model_name, rejected, REJECTED_TAG, "true")
    except MlflowException as exc:
        raise UserError(f"could not roll back {model_name}: {exc.message}") from exc
    log.info("%s: champion rolled back from v%s to v%s", model_name, rejected, aliases.previous)
    return {
        "model_name": model_name,
        "version": aliases.previous,
        "rolled_back_version": rejected,
        "champion_uri": champion_uri(model_name),
    }

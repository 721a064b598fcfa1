"""Promote a model: register it, move `champion` to it and keep the old one as `previous`.

Re-running deploy for the same run reuses the version already registered from
it, so a retried task does not pile up versions. `rollback` is the inverse:
`champion` goes back to `previous`.
"""

from __future__ import annotations

import logging
from typing import Any

import mlflow
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import RESOURCE_ALREADY_EXISTS, ErrorCode

from trainyard.errors import StageError
from trainyard.trainer.registry import CHAMPION, PREVIOUS, champion_uri, read_aliases

log = logging.getLogger(__name__)

REGISTRATION_TIMEOUT_S = 300


def _ensure_registered_model(client: MlflowClient, model_name: str) -> None:
    try:
        client.create_registered_model(
            model_name, description="Digits classifier trained by the trainyard pipeline."
        )
    except MlflowException as exc:
        if exc.error_code != ErrorCode.Name(RESOURCE_ALREADY_EXISTS):
            raise


def _version_for_run(client: MlflowClient, model_name: str, run_id: str) -> str | None:
    versions = client.search_model_versions(f"name = '{model_name}' and run_id = '{run_id}'")
    ready = [v for v in versions if v.status == "READY"]
    return str(max(int(v.version) for v in ready)) if ready else None


def deploy(
    model_uri: str, run_id: str, model_name: str, tags: dict[str, str] | None = None
) -> dict[str, Any]:
    client = MlflowClient()
    try:
        _ensure_registered_model(client, model_name)
        version = _version_for_run(client, model_name, run_id)
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
        raise StageError(f"could not promote {model_uri} as {model_name}: {exc.message}") from exc
    log.info("%s v%s is champion (previous: %s)", model_name, version, previous)
    return {
        "model_name": model_name,
        "version": version,
        "previous_version": previous,
        "champion_uri": champion_uri(model_name),
        "run_id": run_id,
    }


def rollback(model_name: str) -> dict[str, Any]:
    client = MlflowClient()
    try:
        aliases = read_aliases(client, model_name)
        if aliases.previous is None:
            raise StageError(f"{model_name} has no '{PREVIOUS}' version to roll back to")
        rejected = aliases.champion
        client.set_registered_model_alias(model_name, CHAMPION, aliases.previous)
        client.delete_registered_model_alias(model_name, PREVIOUS)
        if rejected is not None:
            client.set_model_version_tag(model_name, rejected, "trainyard.rolled_back", "true")
    except MlflowException as exc:
        raise StageError(f"could not roll back {model_name}: {exc.message}") from exc
    log.info("%s: champion rolled back from v%s to v%s", model_name, rejected, aliases.previous)
    return {
        "model_name": model_name,
        "version": aliases.previous,
        "rolled_back_version": rejected,
        "champion_uri": champion_uri(model_name),
    }

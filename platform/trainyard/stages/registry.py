"""MLflow model-registry reads shared by the evaluate and deploy stages.

Aliases, not stages: `champion` is what serving loads, `previous` is the
version to roll back to.
"""

from __future__ import annotations

from dataclasses import dataclass

from mlflow import MlflowClient
from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import RESOURCE_DOES_NOT_EXIST, ErrorCode

CHAMPION = "champion"
PREVIOUS = "previous"


def champion_uri(model_name: str) -> str:
    return f"models:/{model_name}@{CHAMPION}"


def version_uri(model_name: str, version: str) -> str:
    return f"models:/{model_name}/{version}"


def is_missing(exc: MlflowException) -> bool:
    return bool(exc.error_code == ErrorCode.Name(RESOURCE_DOES_NOT_EXIST))


@dataclass(frozen=True)
class Aliases:
    exists: bool
    champion: str | None
    previous: str | None


def read_aliases(client: MlflowClient, model_name: str) -> Aliases:
    """The model's alias → version map; a model that is not registered yet has none.

    Any other failure (unreachable server, permissions) propagates: callers that
    gate deployment must treat it as "unknown", never as "no champion".
    """
    try:
        model = client.get_registered_model(model_name)
    except MlflowException as exc:
        if is_missing(exc):
            return Aliases(exists=False, champion=None, previous=None)
        raise
    aliases = dict(model.aliases or {})
    return Aliases(exists=True, champion=aliases.get(CHAMPION), previous=aliases.get(PREVIOUS))

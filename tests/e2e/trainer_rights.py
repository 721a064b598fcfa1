"""What trainer pods' own identity may do, checked with real requests (global.training.identity).

Trainer pods run teams' code: their credentials read the datasets, write under the work prefix,
and make MLflow runs, models and aliases of their own. Everything else must be refused by the
store or by MLflow itself, not merely be absent from the trainer code.
"""

from __future__ import annotations

import dataclasses
import uuid
from typing import Any

import pytest
from botocore.exceptions import ClientError
from mlflow.exceptions import MlflowException
from mlflow.server.auth.client import AuthServiceClient

from .scenario import Endpoints, mlflow_credentials


def trainer_endpoints(endpoints: Endpoints, variables: dict[str, str]) -> Endpoints:
    """The same services, with the credentials trainer pods load."""
    return dataclasses.replace(
        endpoints,
        s3_access_key=variables["AWS_ACCESS_KEY_ID"],
        s3_secret_key=variables["AWS_SECRET_ACCESS_KEY"],
        mlflow_username=variables["MLFLOW_TRACKING_USERNAME"],
        mlflow_password=variables["MLFLOW_TRACKING_PASSWORD"],
    )


def refused(call: Any, *args: Any, **kwargs: Any) -> str:
    """The S3 error code or MLflow error of a request that must fail; fails the test if it
    succeeds."""
    try:
        call(*args, **kwargs)
    except ClientError as exc:
        return str(exc.response["Error"]["Code"])
    except MlflowException as exc:
        return str(exc.error_code)
    pytest.fail(f"{getattr(call, '__name__', call)}{args} succeeded with the trainer's credentials")


def assert_trainer_rights(endpoints: Endpoints, trainer: Endpoints, work_root: str) -> None:
    """`endpoints` holds the admin credentials, `trainer` the trainer pods'."""
    assert trainer.s3_access_key != endpoints.s3_access_key, "trainer pods hold the admin key pair"
    assert trainer.mlflow_username != endpoints.mlflow_username, "trainer pods are MLflow's admin"
    s3 = trainer.s3()
    datasets, _, data_prefix = endpoints.data_root.removeprefix("s3://").partition("/")
    work_bucket, _, work_prefix = work_root.removeprefix("s3://").partition("/")
    # Its job: read the day's data, write and delete under the work prefix.
    listed = s3.list_objects_v2(Bucket=datasets, Prefix=f"{data_prefix}/")
    assert listed.get("KeyCount", 0) > 0, f"the trainer lists nothing under {endpoints.data_root}"
    probe = f"{work_prefix}/rights-check/{uuid.uuid4().hex}"
    s3.put_object(Bucket=work_bucket, Key=probe, Body=b"ok")
    s3.delete_object(Bucket=work_bucket, Key=probe)
    # Nothing else: each a request the store answers with a refusal.
    logs_bucket = endpoints.logs_url.removeprefix("s3://").split("/", 1)[0]
    xcom_bucket = endpoints.xcom_url.removeprefix("s3://").split("/", 1)[0]
    outcomes = {
        "read Airflow's logs": refused(s3.list_objects_v2, Bucket=logs_bucket),
        "delete another bucket": refused(s3.delete_bucket, Bucket=xcom_bucket),
        "overwrite the datasets": refused(
            s3.put_object, Bucket=datasets, Key=f"{data_prefix}/rights-check", Body=b"x"
        ),
        "create a bucket": refused(s3.create_bucket, Bucket=f"rights-{uuid.uuid4().hex[:8]}"),
    }
    assert set(outcomes.values()) == {"AccessDenied"}, outcomes
    # MLflow: a model the trainer did not make (the admin's) keeps its aliases.
    other = f"not-the-trainers-{uuid.uuid4().hex[:8]}"
    with mlflow_credentials(endpoints) as admin:
        champion = admin.get_model_version_by_alias(endpoints.model_name, "champion")
        admin.create_registered_model(other)
        # A copy of the champion's version (the registry's own source form).
        version = admin.create_model_version(
            other, f"models:/{endpoints.model_name}/{champion.version}"
        )
        admin.set_registered_model_alias(other, "champion", version.version)
    with mlflow_credentials(trainer) as client:
        mlflow_outcomes = {
            "move another model's alias": refused(
                client.set_registered_model_alias, other, "champion", "1"
            ),
            "delete another model": refused(client.delete_registered_model, other),
            "read the admin user": refused(
                AuthServiceClient(endpoints.mlflow_url).get_user, str(endpoints.mlflow_username)
            ),
        }
        # Its own pipeline's model (made by its runs) it may read.
        assert client.get_model_version_by_alias(endpoints.model_name, "champion").version
    assert set(mlflow_outcomes.values()) == {"PERMISSION_DENIED"}, mlflow_outcomes

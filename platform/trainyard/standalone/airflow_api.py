"""Airflow 3's REST API (`/api/v2`) through its own generated client, `apache-airflow-client`.

What stays hand-written is what the client does not do: logging in (the auth
manager's `/auth/token` is not part of the API it is generated from), waiting
for a DAG to be parsed, and reading XCom values that `XComObjectStorageBackend`
offloaded to the object store (the API returns only the reference).
"""

from __future__ import annotations

import gzip
import json
import time
from enum import Enum
from typing import Any
from urllib.parse import urlsplit

import requests
from airflow_client.client import (
    ApiClient,
    Configuration,
    DAGApi,
    DAGPatchBody,
    DAGResponse,
    DagRunApi,
    DAGRunResponse,
    ImportErrorApi,
    MonitorApi,
    TaskInstanceApi,
    TaskInstanceResponse,
    TriggerDAGRunPostBody,
    XComApi,
)
from airflow_client.client.exceptions import ApiException, NotFoundException

__all__ = ["AirflowApi", "AirflowApiError", "ApiException", "state_name"]


class AirflowApiError(RuntimeError):
    pass


def access_token(url: str, username: str, password: str) -> str:
    """A JWT from the simple auth manager's token endpoint (not in the client)."""
    response = requests.post(
        f"{url.rstrip('/')}/auth/token",
        json={"username": username, "password": password},
        timeout=10,
    )
    if response.status_code >= 400:
        raise AirflowApiError(f"could not log in to {url}: HTTP {response.status_code}")
    return str(response.json()["access_token"])


def state_name(state: Any) -> str | None:
    """A DAG run's or task instance's state as its plain name ("success"), or None."""
    if state is None:
        return None
    return str(state.value if isinstance(state, Enum) else state)


class AirflowApi:
    """The client's API objects, logged in; plus the few calls composed of several of them."""

    def __init__(self, url: str, username: str, password: str) -> None:
        self.url = url.rstrip("/")
        configuration = Configuration(
            host=self.url, access_token=access_token(self.url, username, password)
        )
        self.client = ApiClient(configuration)
        self.dags = DAGApi(self.client)
        self.dag_runs = DagRunApi(self.client)
        self.task_instances_api = TaskInstanceApi(self.client)
        self.xcoms = XComApi(self.client)
        self.import_errors = ImportErrorApi(self.client)
        self.monitor = MonitorApi(self.client)

    def wait_for_dag(self, dag_id: str, timeout_s: float = 120) -> DAGResponse:
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                return self.dags.get_dag(dag_id)
            except NotFoundException:
                pass
            if time.monotonic() > deadline:
                errors = [
                    f"{e.filename}: {(e.stack_trace or '').strip().splitlines()[-1:]}"
                    for e in self.import_errors.get_import_errors().import_errors
                ]
                raise AirflowApiError(
                    f"DAG {dag_id} not parsed within {timeout_s:.0f}s; import errors: {errors}"
                )
            time.sleep(1)

    def unpause(self, dag_id: str) -> None:
        self.dags.patch_dag(dag_id, DAGPatchBody(is_paused=False))

    def trigger(
        self,
        dag_id: str,
        logical_date: str,
        conf: dict[str, Any] | None = None,
        run_id: str | None = None,
    ) -> DAGRunResponse:
        body = TriggerDAGRunPostBody.from_dict(
            {"logical_date": logical_date, "conf": conf or {}, "dag_run_id": run_id}
        )
        assert body is not None
        return self.dag_runs.trigger_dag_run(dag_id, body)

    def dag_run(self, dag_id: str, run_id: str) -> DAGRunResponse:
        return self.dag_runs.get_dag_run(dag_id, run_id)

    def task_instances(self, dag_id: str, run_id: str) -> list[TaskInstanceResponse]:
        items: list[TaskInstanceResponse] = self.task_instances_api.get_task_instances(
            dag_id, run_id, limit=500
        ).task_instances
        return items

    def log_tail(
        self, dag_id: str, run_id: str, ti: TaskInstanceResponse, try_number: int, lines: int = 30
    ) -> str:
        """The last lines of one try of a task instance's log, for a failure report."""
        response = self.task_instances_api.get_log(
            dag_id, run_id, ti.task_id, try_number, full_content=True, map_index=ti.map_index
        )
        entries = response.content.actual_instance or []
        text = [
            entry
            if isinstance(entry, str)
            else " ".join(
                str(part) for part in (getattr(entry, "level", None), entry.event) if part
            )
            for entry in entries
        ]
        return "\n".join(text[-lines:])

    def xcom(
        self, dag_id: str, run_id: str, task_id: str, key: str = "return_value", map_index: int = -1
    ) -> Any:
        entry = self.xcoms.get_xcom_entry(
            dag_id, task_id, run_id, key, map_index=map_index, deserialize=True, stringify=False
        )
        native = entry.actual_instance  # XComResponseNative, as deserialize=True asks
        assert native is not None, f"no XCom {key} of {dag_id}/{run_id}/{task_id}"
        return native.value


def offloaded_location(value: Any) -> tuple[str, str] | None:
    """(bucket, key) when `value` is XComObjectStorageBackend's reference to an offloaded value.

    The REST API returns what the metadata database holds: for large values that
    is a reference like `s3://<conn_id>@<bucket>/<key>.gz`, not the value.
    """
    if not isinstance(value, str) or not value.startswith("s3://"):
        return None
    parts = urlsplit(value)
    return parts.hostname or "", parts.path.lstrip("/")


def read_offloaded(value: Any, s3_client: Any) -> Any:
    """The value itself: inline values as they are, offloaded ones read from the store."""
    location = offloaded_location(value)
    if location is None:
        return value
    body = s3_client.get_object(Bucket=location[0], Key=location[1])["Body"].read()
    return json.loads(gzip.decompress(body) if location[1].endswith(".gz") else body)

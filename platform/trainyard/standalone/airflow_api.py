"""A small client for the Airflow 3 REST API (`/api/v2`), as the demo and tests use it."""

from __future__ import annotations

import gzip
import json
import time
from typing import Any
from urllib.parse import urlsplit

import requests


class AirflowApiError(RuntimeError):
    pass


class AirflowApi:
    def __init__(self, url: str, username: str, password: str) -> None:
        self.url = url.rstrip("/")
        self.session = requests.Session()
        response = self.session.post(
            f"{self.url}/auth/token", json={"username": username, "password": password}, timeout=10
        )
        self._check(response, "log in")
        self.session.headers["Authorization"] = f"Bearer {response.json()['access_token']}"

    @staticmethod
    def _check(response: requests.Response, what: str) -> None:
        if response.status_code >= 400:
            raise AirflowApiError(
                f"could not {what}: HTTP {response.status_code} {response.text[:500]}"
            )

    def get(self, path: str, **params: Any) -> Any:
        response = self.session.get(f"{self.url}/api/v2{path}", params=params, timeout=30)
        self._check(response, f"GET {path}")
        return response.json()

    def wait_for_dag(self, dag_id: str, timeout_s: float = 120) -> dict[str, Any]:
        deadline = time.monotonic() + timeout_s
        while True:
            response = self.session.get(f"{self.url}/api/v2/dags/{dag_id}", timeout=10)
            if response.status_code == 200:
                dag: dict[str, Any] = response.json()
                return dag
            if time.monotonic() > deadline:
                errors = self.get("/importErrors").get("import_errors", [])
                raise AirflowApiError(
                    f"DAG {dag_id} not parsed within {timeout_s:.0f}s; import errors: {errors}"
                )
            time.sleep(1)

    def unpause(self, dag_id: str) -> None:
        response = self.session.patch(
            f"{self.url}/api/v2/dags/{dag_id}", json={"is_paused": False}, timeout=10
        )
        self._check(response, f"unpause {dag_id}")

    def trigger(
        self,
        dag_id: str,
        logical_date: str,
        conf: dict[str, Any] | None = None,
        run_id: str | None = None,
    ) -> dict[str, Any]:
        body: dict[str, Any] = {"logical_date": logical_date, "conf": conf or {}}
        if run_id:
            body["dag_run_id"] = run_id
        response = self.session.post(
            f"{self.url}/api/v2/dags/{dag_id}/dagRuns", json=body, timeout=10
        )
        self._check(response, f"trigger {dag_id}")
        run: dict[str, Any] = response.json()
        return run

    def dag_run(self, dag_id: str, run_id: str) -> dict[str, Any]:
        run: dict[str, Any] = self.get(f"/dags/{dag_id}/dagRuns/{run_id}")
        return run

    def task_instances(self, dag_id: str, run_id: str) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = self.get(
            f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances", limit=500
        )["task_instances"]
        return items

    def xcom(
        self, dag_id: str, run_id: str, task_id: str, key: str = "return_value", map_index: int = -1
    ) -> Any:
        entry = self.get(
            f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/xcomEntries/{key}",
            map_index=map_index,
            deserialize=True,
            stringify=False,
        )
        return entry["value"]


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

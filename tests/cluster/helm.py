"""A trainyard release on the KWOK cluster: helm install/upgrade/rollback, and what the DAG reads.

The DAG's inputs are read back from the cluster, as Airflow's pods get them: platform.json from
the release's platform ConfigMap, `kubernetes_default` from the worker pod template.
"""

from __future__ import annotations

import json
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from kubernetes import client

from tests.chart.conftest import CHART

from .kwok import KwokCluster
from .trainer_pods import Release


class HelmError(Exception):
    pass


@dataclass
class HelmRelease:
    cluster: KwokCluster
    helm: Path
    name: str
    namespace: str

    def run(self, *args: str) -> str:
        proc = subprocess.run(
            [str(self.helm), *args, "--namespace", self.namespace],
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
            env=self.cluster.env,
        )
        if proc.returncode != 0:
            raise HelmError(f"{self.helm.name} {' '.join(args)}:\n{proc.stderr.strip()[-3000:]}")
        return proc.stdout

    def deploy(self, values: dict[str, Any], upgrade: bool = False) -> str:
        """`helm install|upgrade --wait --wait-for-jobs` with `values` (after values.yaml)."""
        with tempfile.NamedTemporaryFile("w", suffix=".json") as file:
            json.dump(values, file)
            file.flush()
            action = ["upgrade"] if upgrade else ["install"]
            return self.run(
                *action, self.name, str(CHART), "--values", file.name,
                "--wait", "--wait-for-jobs", "--timeout", "3m",
            )  # fmt: skip

    def rollback(self, revision: int) -> str:
        return self.run("rollback", self.name, str(revision), "--wait", "--timeout", "3m")

    def history(self) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = json.loads(
            self.run("history", self.name, "--output", "json")
        )
        return result

    def manifest(self) -> list[dict[str, Any]]:
        return [d for d in yaml.safe_load_all(self.run("get", "manifest", self.name)) if d]

    def _config_map(self, api: client.ApiClient, component: str) -> dict[str, str]:
        selector = f"app.kubernetes.io/instance={self.name},app.kubernetes.io/component={component}"
        (item,) = (
            client.CoreV1Api(api)
            .list_namespaced_config_map(self.namespace, label_selector=selector)
            .items
        )
        data: dict[str, str] = item.data
        return data

    def dag_inputs(self, api: client.ApiClient) -> Release:
        """platform.json and kubernetes_default as the release's Airflow workers get them."""
        platform = json.loads(self._config_map(api, "platform-config")["platform.json"])
        template = yaml.safe_load(self._config_map(api, "pod-template")["pod_template.yaml"])
        (base,) = [c for c in template["spec"]["containers"] if c["name"] == "base"]
        env = {e["name"]: e.get("value") for e in base["env"]}
        return Release(platform, env["AIRFLOW_CONN_KUBERNETES_DEFAULT"])

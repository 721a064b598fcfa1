"""One trainyard release on the kind cluster: install/upgrade with Helm, the credentials and
port-forwards the scenario needs, and what must survive an upgrade.

Names of Services and Secrets are looked up in the release's manifest by their labels, and the
storage locations in the ConfigMaps the chart rendered, so the tests follow the chart instead of
repeating its naming rules.
"""

from __future__ import annotations

import contextlib
import json
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from .kube import Kube, KubectlError
from .portforward import KubectlPortForward, Relay

if TYPE_CHECKING:
    from .scenario import Endpoints

HELM_TIMEOUT = "10m"


class HelmError(Exception):
    pass


@dataclass
class InstalledRelease:
    kube: Kube
    helm: Path
    release_name: str
    namespace: str
    training_namespace: str
    relays: list[Relay] = field(default_factory=list)
    # Where the installed chart came from, for messages.
    chart_source: str = "charts/trainyard of the working tree"
    # Set global.training.namespace to training_namespace (charts that know the key).
    override_training: bool = True
    # Journeys run against this release so far (the second one is run_upgrade_check).
    scenario_runs: int = 0
    # Values of the cluster itself, after every other file (offline: the locally built images).
    extra_values: dict[str, Any] = field(default_factory=dict)
    _manifest: list[dict[str, Any]] | None = field(default=None, repr=False)

    # --- Helm -------------------------------------------------------------------------------

    def helm_run(self, *args: str, timeout: float = 1800) -> str:
        proc = subprocess.run(
            [str(self.helm), *args, "--namespace", self.namespace],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
            env={**self.kube.env, "HELM_KUBECONTEXT": ""},
        )
        if proc.returncode != 0:
            raise HelmError(f"helm {' '.join(args)}:\n{proc.stderr.strip()}\n{proc.stdout[-3000:]}")
        return proc.stdout

    def deploy(self, chart: Path, values_files: list[Path], upgrade: bool = False) -> None:
        """`helm install` (or `upgrade`) --wait: returns once every pod is ready and the Jobs
        (databases, buckets) completed; then the trainer credentials (see below)."""
        overrides: dict[str, Any] = {}
        if self.override_training:
            # Each release trains in a namespace of its own: the training namespace is kept on
            # uninstall, and another release could not adopt it.
            overrides = {"global": {"training": {"namespace": self.training_namespace}}}
        try:
            with tempfile.TemporaryDirectory() as tmp:
                # After the chart's values files: the cluster's values, then this release's.
                written = []
                for index, extra in enumerate([self.extra_values, overrides]):
                    path = Path(tmp) / f"values-{index}.yaml"
                    path.write_text(json.dumps(extra))  # JSON is YAML
                    written.append(path)
                args = ["upgrade" if upgrade else "install", self.release_name, str(chart)]
                for path in [*values_files, *written]:
                    args += ["--values", str(path)]
                if not upgrade:
                    args.append("--create-namespace")
                self.helm_run(*args, "--wait", "--wait-for-jobs", "--timeout", HELM_TIMEOUT)
        finally:
            self._manifest = None
        # What the chart made of it (the release namespace where there is no override).
        self.training_namespace = self.platform_config()["trainer"]["namespace"]
        self.create_trainer_credentials()

    def helm_test(self) -> str:
        return self.helm_run("test", self.release_name, "--logs", "--timeout", "10m")

    def uninstall(self, wait: bool = True) -> None:
        """helm uninstall, then the namespaces (the chart keeps the training namespace and
        generated Secrets by design). wait=False after a test: the next test installs into
        namespaces of its own, and the pods' CPU frees up while it starts."""
        self.close_forwards()
        with contextlib.suppress(HelmError):
            self.helm_run("uninstall", self.release_name, "--wait", "--timeout", "10m")
        for namespace in (self.training_namespace, self.namespace):
            with contextlib.suppress(KubectlError):
                self.kube.run(
                    "delete", "namespace", namespace, "--ignore-not-found",
                    "--timeout=300s" if wait else "--wait=false",
                )  # fmt: skip

    def manifest(self) -> list[dict[str, Any]]:
        text = self.helm_run("get", "manifest", self.release_name)
        return [doc for doc in yaml.safe_load_all(text) if doc]

    def values(self) -> dict[str, Any]:
        result: dict[str, Any] = json.loads(
            self.helm_run("get", "values", self.release_name, "--all", "--output", "json")
        )
        return result

    # --- What the chart rendered --------------------------------------------------------------

    def objects(self, kind: str, component: str, name: str | None = None) -> list[dict[str, Any]]:
        if self._manifest is None:
            self._manifest = self.manifest()
        return [
            o
            for o in self._manifest
            if o["kind"] == kind
            and o["metadata"]["labels"].get("app.kubernetes.io/component") == component
            and (name is None or o["metadata"]["labels"].get("app.kubernetes.io/name") == name)
            and (o.get("spec") or {}).get("clusterIP") != "None"  # not the headless Services
        ]

    def name_of(self, kind: str, component: str, name: str | None = None) -> str:
        found = self.objects(kind, component, name)
        assert len(found) == 1, f"expected one {kind} {name}/{component}, found {len(found)}"
        return str(found[0]["metadata"]["name"])

    def configmap(self, name: str) -> dict[str, str]:
        data: dict[str, str] = self.kube.get("configmap", name, "-n", self.namespace)["data"]
        return data

    def platform_configmap(self) -> dict[str, str]:
        return self.configmap(self.name_of("ConfigMap", "platform-config", "trainyard"))

    def platform_config(self) -> dict[str, Any]:
        config: dict[str, Any] = json.loads(self.platform_configmap()["platform.json"])
        return config

    def airflow_config(self) -> dict[str, str]:
        return self.configmap(self.name_of("ConfigMap", "config", "airflow"))

    def secret(self, name: str) -> dict[str, str]:
        return self.kube.secret(self.namespace, name)

    # --- Credentials --------------------------------------------------------------------------

    def s3_credentials(self) -> tuple[str, str]:
        keys = self.secret(self.platform_configmap()["OBJECT_STORE_CREDENTIALS_SECRET"])
        return keys["access-key-id"], keys["secret-access-key"]

    def mlflow_credentials(self) -> tuple[str, str]:
        secret = self.secret(self.name_of("Secret", "tracking-server", "mlflow"))
        return self.values()["mlflow"]["auth"]["adminUsername"], secret["admin-password"]

    def airflow_credentials(self) -> tuple[str, str]:
        secret = self.secret(self.name_of("Secret", "secrets", "airflow"))
        return self.values()["airflow"]["auth"]["adminUsername"], secret["admin-password"]

    def trainer_identity_is_managed(self) -> bool:
        """The chart made the trainer's own identity (global.training.identity, on SeaweedFS)."""
        return bool(self.objects("Secret", "trainer-identity"))

    def trainer_credentials(self) -> dict[str, str]:
        """The variables trainer pods load (their Secret in the training namespace)."""
        trainer = self.platform_config()["trainer"]
        return self.kube.secret(trainer["namespace"], trainer["env_from_secrets"][0])

    def create_trainer_credentials(self) -> None:
        """The Secret trainer pods load in the training namespace, where the chart does not
        make their own identity (MinIO, an external store): an operator creates it after the
        install with the command the docs give; this does the same through the API."""
        if self.trainer_identity_is_managed():
            return
        trainer = self.platform_config()["trainer"]
        access_key, secret_key = self.s3_credentials()
        user, password = self.mlflow_credentials()
        self.kube.apply(
            {
                "apiVersion": "v1",
                "kind": "Secret",
                "metadata": {
                    "name": trainer["env_from_secrets"][0],
                    "namespace": trainer["namespace"],
                },
                "type": "Opaque",
                "stringData": {
                    "AWS_ACCESS_KEY_ID": access_key,
                    "AWS_SECRET_ACCESS_KEY": secret_key,
                    "MLFLOW_TRACKING_USERNAME": user,
                    "MLFLOW_TRACKING_PASSWORD": password,
                },
            }
        )

    # --- Endpoints ----------------------------------------------------------------------------

    def service_port(
        self, component: str, port_name: str, name: str | None = None
    ) -> tuple[str, int]:
        """The Service (not a headless one) of a component that has the named port."""
        services = [
            s
            for s in self.objects("Service", component, name)
            if any(p.get("name") == port_name for p in s["spec"]["ports"])
        ]
        assert len(services) == 1, f"expected one Service {component}:{port_name}: {services}"
        (port,) = [p["port"] for p in services[0]["spec"]["ports"] if p.get("name") == port_name]
        return str(services[0]["metadata"]["name"]), int(port)

    def forward(self, component: str, port_name: str, name: str | None = None) -> str:
        """A local URL for the Service's port (see portforward.py for why a relay)."""
        service, port = self.service_port(component, port_name, name)
        relay = Relay(
            KubectlPortForward(
                self.kube.kubectl, self.kube.kubeconfig, self.namespace, f"svc/{service}", port
            )
        )
        self.relays.append(relay)
        return relay.url

    def close_forwards(self) -> None:
        while self.relays:
            self.relays.pop().close()

    def endpoints(self) -> Endpoints:
        from .scenario import Endpoints  # noqa: PLC0415 (static tests must not need the scenario)

        self.close_forwards()
        airflow = self.airflow_config()
        platform = self.platform_config()
        access_key, secret_key = self.s3_credentials()
        airflow_user, airflow_password = self.airflow_credentials()
        mlflow_user, mlflow_password = self.mlflow_credentials()
        return Endpoints(
            airflow_url=self.forward("api-server", "http", "airflow"),
            airflow_user=airflow_user,
            airflow_password=airflow_password,
            mlflow_url=self.forward("tracking-server", "http", "mlflow"),
            # MinIO or SeaweedFS: whichever store the release runs, by its S3 port.
            s3_endpoint=self.forward("object-store", "s3"),
            s3_access_key=access_key,
            s3_secret_key=secret_key,
            serving_url=self.forward("model-server", "http", "serving"),
            mlflow_username=mlflow_user,
            mlflow_password=mlflow_password,
            model_name=platform["model_name"],
            data_root=platform["data_root"],
            xcom_url=without_conn_id(airflow["AIRFLOW__COMMON_IO__XCOM_OBJECTSTORAGE_PATH"]),
            logs_url=airflow["AIRFLOW__LOGGING__REMOTE_BASE_LOG_FOLDER"],
        )

    # --- Pods ---------------------------------------------------------------------------------

    def pods(self, component: str, namespace: str | None = None) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = self.kube.get(
            "pods",
            "--namespace",
            namespace or self.namespace,
            "--selector",
            f"app.kubernetes.io/instance={self.release_name},app.kubernetes.io/component={component}",
        )["items"]
        return items

    # --- Upgrade ------------------------------------------------------------------------------

    def state(self) -> dict[str, Any]:
        """What an upgrade must keep: every Secret's data and every volume claim's identity."""
        state: dict[str, Any] = {"secrets": {}, "volumes": {}}
        for namespace in (self.namespace, self.training_namespace):
            for secret in self.kube.get("secrets", "--namespace", namespace)["items"]:
                if secret.get("type") == "helm.sh/release.v1":
                    continue  # Helm's own release records change with every revision
                name = f"{namespace}/{secret['metadata']['name']}"
                state["secrets"][name] = secret.get("data") or {}
            for claim in self.kube.get("pvc", "--namespace", namespace)["items"]:
                name = f"{namespace}/{claim['metadata']['name']}"
                state["volumes"][name] = claim["spec"].get("volumeName", "")
        return state


def without_conn_id(url: str) -> str:
    """s3://trainyard_s3@airflow-xcom/xcom (Airflow's conn-id form) -> s3://airflow-xcom/xcom."""
    scheme, _, rest = url.partition("://")
    return f"{scheme}://{rest.split('@', 1)[-1]}"

"""The chart against a real API server: install, upgrade and rollback with Helm 3 and 4, every
object through validation and admission (Pod Security `restricted` on both namespaces), the
trainer pods the DAG builds admitted, and each ServiceAccount's rights from the real authorizer.
"""

from __future__ import annotations

import datetime as dt
import json
import time
from typing import Any

import pytest
from kubernetes import client

from tests.chart.conftest import tool
from trainyard.stages.serving_kubernetes import rollout_patch

from .conftest import REPORT, timed
from .fleet import Fleet
from .helm import HelmError, HelmRelease
from .kwok import KwokCluster
from .rbac import allowed
from .trainer_pods import PodBuilder

pytestmark = pytest.mark.cluster

RESTRICTED = {
    "pod-security.kubernetes.io/enforce": "restricted",
    "pod-security.kubernetes.io/warn": "restricted",
}


def values(fleet: Fleet, training_namespace: str, parallel: int) -> dict[str, Any]:
    return {
        "global": {"training": {"namespace": training_namespace}},
        "gpu": fleet.gpu_values("h100", 1),
        "training": {"podSecurityEnforce": "restricted"},
        "pipeline": {"maxParallelTrials": parallel},
    }


def new_release(cluster: KwokCluster, api: client.ApiClient, helm: str, name: str) -> HelmRelease:
    """A release namespace that enforces the restricted Pod Security Standard."""
    client.CoreV1Api(api).create_namespace({"metadata": {"name": name, "labels": RESTRICTED}})
    return HelmRelease(cluster, tool(helm), name, name)


def refused_pods(api: client.ApiClient, namespaces: list[str]) -> list[str]:
    """Events of controllers whose pods admission refused (Pod Security, quota, ...)."""
    core = client.CoreV1Api(api)
    return [
        f"{e.involved_object.kind}/{e.involved_object.name}: {e.message}"
        for ns in namespaces
        for e in core.list_namespaced_event(ns).items
        if e.reason == "FailedCreate"
    ]


def serving(api: client.ApiClient, release: HelmRelease) -> client.V1Deployment:
    selector = f"app.kubernetes.io/instance={release.name},app.kubernetes.io/name=serving"
    (deployment,) = (
        client.AppsV1Api(api)
        .list_namespaced_deployment(release.namespace, label_selector=selector)
        .items
    )
    return deployment


def install_scale_upgrade(
    cluster: KwokCluster,
    api: client.ApiClient,
    fleet: Fleet,
    installer: str,
    upgrader: str,
    name: str,
) -> HelmRelease:
    """Install release `name` with `installer`, scale the model server to 2 as the deploy step
    does (as the trainer's ServiceAccount, through its RBAC), upgrade with `upgrader`; the
    upgraded release."""
    release = new_release(cluster, api, installer, name)
    training = f"{name}-training"
    with timed(f"{installer} install --wait"):
        release.deploy(values(fleet, training, 4))
    assert refused_pods(api, [name, training]) == []
    inputs = release.dag_inputs(api)
    assert inputs.platform["max_parallel_trials"] == 4
    labels = client.CoreV1Api(api).read_namespace(training).metadata.labels
    assert labels["pod-security.kubernetes.io/enforce"] == "restricted"

    trainer = f"system:serviceaccount:{training}:{inputs.platform['trainer']['service_account']}"
    patch = rollout_patch("1", 2, dt.datetime.now(dt.UTC))
    cluster.kube.run(
        "--namespace", name, "patch", "deployment", serving(api, release).metadata.name,
        "--as", trainer, "--type", "strategic", "--patch", json.dumps(patch),
    )  # fmt: skip

    upgraded = HelmRelease(cluster, tool(upgrader), name, name)
    with timed(f"{upgrader} upgrade --wait (after {installer} install)"):
        upgraded.deploy(values(fleet, training, 8), upgrade=True)
    assert upgraded.dag_inputs(api).platform["max_parallel_trials"] == 8
    assert serving(api, release).spec.replicas == 2, "helm upgrade scaled the model server"
    assert refused_pods(api, [name, training]) == []
    return upgraded


@pytest.mark.parametrize(
    ("installer", "upgrader"),
    [("helm3", "helm3"), ("helm4", "helm4"), ("helm3", "helm4")],
    ids=["helm3", "helm4", "helm3-then-helm4"],
)
def test_install_upgrade_rollback(
    kwok_cluster: KwokCluster, api: client.ApiClient, fleet: Fleet, installer: str, upgrader: str
) -> None:
    name = f"ty-{installer}-{upgrader}"
    release = install_scale_upgrade(kwok_cluster, api, fleet, installer, upgrader, name)
    if installer == "helm4":
        # Server-side apply (Helm 4 keeps the method a release was installed with): the deploy
        # step owns .spec.replicas since it scaled the server; revision 1's `replicas: 0`
        # conflicts, and the rollback stops without scaling it.
        with pytest.raises(HelmError, match=r"conflict.*\.spec\.replicas"):
            release.rollback(1)
        assert serving(api, release).spec.replicas == 2
        # A rollback that changes something: one more upgrade, then back to the first
        # upgrade's revision, whose manifest holds the live count (no conflict).
        release.deploy(values(fleet, f"{name}-training", 16), upgrade=True)
        assert release.dag_inputs(api).platform["max_parallel_trials"] == 16
        with timed("helm4 rollback --wait"):
            release.rollback(2)
        assert serving(api, release).spec.replicas == 2, "helm rollback scaled the model server"
    else:
        with timed("helm3 rollback --wait"):
            release.rollback(1)
    assert release.dag_inputs(api).platform["max_parallel_trials"] == (
        8 if installer == "helm4" else 4
    )
    assert [r["status"] for r in release.history()][-1] == "deployed"
    assert refused_pods(api, [release.namespace, f"{release.namespace}-training"]) == []


@pytest.mark.xfail(
    strict=True,
    raises=AssertionError,
    reason="known defect (docs/upgrading.md): a client-side rollback (Helm 3, or Helm 4 on a "
    "release Helm 3 installed) to the install revision re-applies its stored replicas: 0 and "
    "stops the champion's model server",
)
def test_helm3_rollback_to_the_install_revision_keeps_the_model_server(
    kwok_cluster: KwokCluster, api: client.ApiClient, fleet: Fleet
) -> None:
    release = install_scale_upgrade(kwok_cluster, api, fleet, "helm3", "helm3", "ty-rollback")
    release.rollback(1)
    # The expected failure is this assertion alone (0 replicas), not an error before it.
    assert serving(api, release).spec.replicas == 2


@pytest.fixture(scope="module")
def release(kwok_cluster: KwokCluster, api: client.ApiClient, fleet: Fleet) -> HelmRelease:
    """A helm 4 release in a restricted namespace, trainer pods in a restricted one too."""
    release = new_release(kwok_cluster, api, "helm4", "ty-admission")
    release.deploy(values(fleet, "ty-admission-training", 4))
    return release


def test_trainer_pods_pass_restricted_pod_security(
    api: client.ApiClient, release: HelmRelease, pod_builder: PodBuilder
) -> None:
    """The pods the DAG builds from the release's platform.json (CPU stages, GPU trials with
    the XCom sidecar) are admitted by `restricted` Pod Security and the ServiceAccount admission
    (the trainer ServiceAccount exists), and they run."""
    inputs = release.dag_inputs(api)
    pods = pod_builder.build(inputs, trials=2, cpu_stages=("validate", "evaluate", "deploy"))
    core = client.CoreV1Api(api)
    for pod in pods:
        core.create_namespaced_pod(inputs.namespace, pod)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        phases = [p.status.phase for p in core.list_namespaced_pod(inputs.namespace).items]
        if phases.count("Running") == len(pods):
            break
        time.sleep(0.5)
    assert phases == ["Running"] * len(pods)
    core.delete_collection_namespaced_pod(inputs.namespace, grace_period_seconds=0)


def pods(where: str, *verbs: str) -> set[str]:
    return {f"{where}: {verb} pods" for verb in verbs}


POD_LAUNCHER = ("create", "delete", "get", "list", "patch", "watch")
# What each ServiceAccount (by its name after the release prefix) may do; anything else it asks
# the authorizer is refused. "serving" stands for the model server's Deployment, "credentials"
# for the trainer credentials Secret.
# The pod operator reads a failed pod's events (log_events_on_failure).
EVENTS = {f"training: {verb} events" for verb in ("get", "list", "watch")}
EXPECTED_RIGHTS: dict[str, set[str]] = {
    # Task logs of running worker pods.
    "airflow-api-server": pods("release", "get", "list") | {"release: get pods/log"},
    # The KubernetesExecutor's worker pods, in the release namespace only.
    "airflow-scheduler": pods("release", *POD_LAUNCHER),
    # Trainer pods: launched by workers, watched by the triggerer while deferred.
    "airflow-worker": pods("training", *POD_LAUNCHER)
    | {
        "training: create pods/exec",
        "training: get pods/exec",
        "training: get pods/log",
        *EVENTS,
    },
    "airflow-triggerer": pods("training", "delete", "get", "list", "watch")
    | {"training: get pods/log", *EVENTS},
    # The deploy step rolls the model server out: its Deployment, nothing else.
    "trainer": {"release: get apps/deployments serving", "release: patch apps/deployments serving"},
    # `helm test`'s check of the trainer credentials: that one Secret.
    "test-credentials": {"training: get secrets credentials"},
    "airflow-dag-processor": set(),
    "mlflow": set(),
    "seaweedfs": set(),
    "postgresql": set(),
    "serving": set(),
    "platform": set(),
}


def test_each_service_account_has_exactly_its_rights(
    api: client.ApiClient, release: HelmRelease
) -> None:
    """SubjectAccessReviews against the real RBAC authorizer, per ServiceAccount the release
    creates, in the release namespace, the training namespace and an unrelated one."""
    inputs = release.dag_inputs(api)
    namespaces = {
        "release": release.namespace,
        "training": inputs.namespace,
        "elsewhere": "default",
    }
    names = {"serving": serving(api, release).metadata.name,
             "credentials": inputs.platform["trainer"]["env_from_secrets"][0]}  # fmt: skip
    accounts = {
        o["metadata"]["name"].removeprefix(f"{release.name}-"):
            f"{o['metadata'].get('namespace', release.namespace)}/{o['metadata']['name']}"
        for o in release.manifest()
        if o["kind"] == "ServiceAccount"
    }  # fmt: skip
    assert set(accounts) == set(EXPECTED_RIGHTS)
    matrix = {name: allowed(api, account, namespaces, names) for name, account in accounts.items()}
    for name, rights in sorted(matrix.items()):
        REPORT.append(f"RBAC {name}: {', '.join(sorted(rights)) or 'nothing'}")
    # Trainer pods run user code: no reading of worker pods (their arguments carry Execution
    # API tokens), and pod launching only where trainer pods run.
    assert not {r for r in matrix["trainer"] if "pods" in r}
    for name in ("airflow-worker", "airflow-triggerer"):
        assert not {r for r in matrix[name] if r.startswith("release:")}, name
    assert matrix == EXPECTED_RIGHTS

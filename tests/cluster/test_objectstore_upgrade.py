"""Which object store a release runs, on a real API server (issue 23): an upgrade from release
0.3.0 (the last whose implicit default was MinIO; pinned, so that cutting a later release does
not turn this into an upgrade between two SeaweedFS releases) keeps its MinIO StatefulSet and its
claim, and a new install gets SeaweedFS.

No `--wait`: KWOK nodes run no containers and nothing here needs a pod to be ready; what counts
is what Helm and the controllers do to the objects. The detection itself (`lookup` of the
StatefulSet) is tested at render level against a fake API server in
tests/chart/test_objectstore.py.
"""

from __future__ import annotations

import json
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

from tests.chart.conftest import CHART, REPO, tool
from tests.e2e import previous_chart

from .conftest import timed
from .helm import HelmRelease
from .kwok import KwokCluster

pytestmark = pytest.mark.cluster

# Trainer pods in the release namespace: no training Namespace object shared between releases.
VALUES: dict[str, Any] = {"global": {"training": {"namespace": ""}}}
ARCHIVED = "quay.io/minio/minio:RELEASE.2025-09-07T16-13-09Z"
MINIO_RELEASE = "0.3.0"


def helm(release: HelmRelease, action: str, chart: Path) -> str:
    """`helm install|upgrade` of `chart` with VALUES (after its values.yaml), no --wait."""
    with tempfile.NamedTemporaryFile("w", suffix=".json") as file:
        json.dump(VALUES, file)
        file.flush()
        return release.run(action, release.name, str(chart), "--values", file.name)


def eventually(what: str, probe: Callable[[], Any], seconds: float = 30) -> Any:
    """probe()'s first truthy answer, polled every 0.2 s."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        found = probe()
        if found:
            return found
        time.sleep(0.2)
    raise AssertionError(f"{what}: not within {seconds:.0f} s")


def claims(core: client.CoreV1Api, namespace: str) -> dict[str, client.V1PersistentVolumeClaim]:
    return {
        c.metadata.name: c for c in core.list_namespaced_persistent_volume_claim(namespace).items
    }


def stores(apps: client.AppsV1Api, namespace: str) -> dict[str, client.V1StatefulSet]:
    """The release's object-store StatefulSets by app.kubernetes.io/name."""
    found = apps.list_namespaced_stateful_set(
        namespace, label_selector="app.kubernetes.io/component=object-store"
    ).items
    return {s.metadata.labels["app.kubernetes.io/name"]: s for s in found}


def test_upgrade_from_the_last_minio_release_keeps_minio_and_its_claim(
    kwok_cluster: KwokCluster, api: client.ApiClient, tmp_path: Path
) -> None:
    [minio] = [r for r in previous_chart.releases(REPO) if r.version == MINIO_RELEASE]
    previous = previous_chart.release_commit(REPO, minio)
    old_chart = previous_chart.export(REPO, previous, tmp_path)
    name = "ty-minio-kept"
    core, apps = client.CoreV1Api(api), client.AppsV1Api(api)
    core.create_namespace({"metadata": {"name": name}})
    release = HelmRelease(kwok_cluster, tool("helm3"), name, name)
    with timed(f"helm3 install {previous.version} (no --wait)"):
        helm(release, "install", old_chart)
    before = stores(apps, name)
    assert set(before) == {"minio"}, f"{previous.version} did not default to MinIO"
    (container,) = before["minio"].spec.template.spec.containers
    assert container.image == ARCHIVED
    claim = f"data-{before['minio'].metadata.name}-0"
    kept = eventually(f"claim {claim}", lambda: claims(core, name).get(claim))

    with timed("helm3 upgrade to this chart (no --wait)"):
        out = helm(release, "upgrade", CHART)
    after = stores(apps, name)
    assert set(after) == {"minio"}, "the upgrade switched stores"
    sts = after["minio"]
    assert sts.metadata.uid == before["minio"].metadata.uid
    assert sts.metadata.deletion_timestamp is None
    (container,) = sts.spec.template.spec.containers
    assert container.image == ARCHIVED, "the running image is kept, nothing to set"
    # the new revision's manifest holds it (Helm keeps managing it; nothing orphaned)
    assert [r["status"] for r in release.history()] == ["superseded", "deployed"]
    manifest = {(o["kind"], o["metadata"]["name"]) for o in release.manifest()}
    assert ("StatefulSet", sts.metadata.name) in manifest
    assert not [n for _, n in manifest if "seaweedfs" in n]
    now = claims(core, name)
    assert now[claim].metadata.uid == kept.metadata.uid
    assert now[claim].metadata.deletion_timestamp is None
    assert not [c for c in now if "seaweedfs" in c]
    platform = core.read_namespaced_config_map(f"{name}-platform", name).data
    assert platform["OBJECT_STORE_PROVIDER"] == "minio"
    assert platform["AWS_ENDPOINT_URL_S3"] == f"http://{name}-minio.{name}.svc:9000"
    # NOTES (helm upgrade prints them): the store was kept, and its image has the advisory
    assert "Kept:            this release already runs the chart's MinIO" in out
    assert "WARNING:         this MinIO release is older than" in out


def test_a_new_install_gets_seaweedfs(kwok_cluster: KwokCluster, api: client.ApiClient) -> None:
    """In a namespace that enforces Pod Security `restricted`: the store's pod is admitted."""
    name = "ty-seaweedfs-new"
    core, apps = client.CoreV1Api(api), client.AppsV1Api(api)
    restricted = {"pod-security.kubernetes.io/enforce": "restricted"}
    core.create_namespace({"metadata": {"name": name, "labels": restricted}})
    release = HelmRelease(kwok_cluster, tool("helm4"), name, name)
    with timed("helm4 install of this chart (no --wait)"):
        out = helm(release, "install", CHART)
    assert set(stores(apps, name)) == {"seaweedfs"}
    assert "Object store (seaweedfs)" in out and "minio" not in out.lower()
    # the StatefulSet controller's pod passes admission (a refusal would leave no pod)
    pod = f"{name}-seaweedfs-0"
    eventually(
        f"pod {pod}",
        lambda: [p for p in core.list_namespaced_pod(name).items if p.metadata.name == pod],
    )
    assert f"data-{name}-seaweedfs-0" in eventually("the store's claim", lambda: claims(core, name))

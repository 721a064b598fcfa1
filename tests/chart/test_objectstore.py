"""The object store a release gets (issue 23): SeaweedFS for a new install, MinIO kept for a
release that already runs it, MinIO only with an image the user names, and NOTES that warn about
MinIO releases carrying the October 2025 advisory.

Detection of a running MinIO uses `lookup`, which `helm template` cannot answer: those renders
run against a fake API server that holds the live StatefulSet (`helm template --dry-run=server
--is-upgrade`, what `helm upgrade` renders), with Helm 3 and Helm 4. The KWOK tier
(tests/cluster/test_objectstore_upgrade.py) upgrades a real 0.3.0 release.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml

from .conftest import (
    CHART,
    MINIO,
    MINIO_IMAGE,
    NAMESPACE,
    RELEASE,
    Manifest,
    env_of,
    find,
    one,
    pod_spec,
    render_chart,
    render_error,
    render_notes,
    tool,
)
from .fakekube import fake_kube

pytestmark = pytest.mark.chart

# The default of chart 0.3.x: the last image MinIO's community edition published.
ARCHIVED = "quay.io/minio/minio:RELEASE.2025-09-07T16-13-09Z"
FIXED = "RELEASE.2025-10-15T17-29-55Z"
WARNING = "WARNING:         this MinIO release is older than RELEASE.2025-10-15T17-29-55Z"


def minio_values(tag: str = "", digest: str = "") -> dict[str, Any]:
    image = {"registry": "quay.io", "repository": "minio/minio", "tag": tag, "digest": digest}
    return {
        "global": {"objectStore": {"provider": "minio"}},
        "objectstore": {"minio": {"image": image}},
    }


def store_names(objects: list[Manifest]) -> set[str]:
    """app.kubernetes.io/name of every object-store object."""
    return {
        o["metadata"]["labels"]["app.kubernetes.io/name"]
        for o in objects
        if o["metadata"].get("labels", {}).get("app.kubernetes.io/component") == "object-store"
    }


def platform(objects: list[Manifest]) -> dict[str, str]:
    data: dict[str, str] = one(objects, "ConfigMap", f"{RELEASE}-platform")["data"]
    return data


# ---- a new install -------------------------------------------------------------------------


def test_a_new_install_runs_seaweedfs_and_no_minio_at_all(helm: str) -> None:
    objects = render_chart(helm=helm)
    assert "minio" not in json.dumps(objects).lower()
    sts = one(objects, "StatefulSet", f"{RELEASE}-seaweedfs")
    one(objects, "Service", f"{RELEASE}-seaweedfs")
    one(objects, "Service", f"{RELEASE}-seaweedfs-hl")
    secret = one(objects, "Secret", f"{RELEASE}-objectstore")
    assert {"access-key-id", "secret-access-key"} <= set(secret["data"])
    assert store_names(objects) == {"seaweedfs"}
    assert platform(objects)["OBJECT_STORE_PROVIDER"] == "seaweedfs"
    endpoint = f"http://{RELEASE}-seaweedfs.{NAMESPACE}.svc:8333"
    assert platform(objects)["AWS_ENDPOINT_URL_S3"] == endpoint
    (weed,) = pod_spec(sts)["containers"]
    assert weed["image"] == "docker.io/chrislusf/seaweedfs:4.48"
    assert sts["metadata"]["labels"]["app.kubernetes.io/version"] == "4.48"
    # the buckets are created by the bucket-init Job, against this store
    (job,) = [j for j in find(objects, "Job") if "bucket-init" in j["metadata"]["name"]]
    (init,) = pod_spec(job)["containers"]
    assert env_of(init)["AWS_ENDPOINT_URL_S3"] == endpoint


def test_seaweedfs_is_set_up_for_production() -> None:
    """Persistence kept on uninstall, requests and limits, the three probes, Pod Security
    `restricted`, and the S3 admin identity from the generated Secret, kept across upgrades."""
    objects = render_chart()
    sts = one(objects, "StatefulSet", f"{RELEASE}-seaweedfs")
    spec = pod_spec(sts)
    (weed,) = spec["containers"]
    (claim,) = sts["spec"]["volumeClaimTemplates"]
    assert claim["spec"]["resources"]["requests"]["storage"] == "20Gi"
    assert sts["spec"]["persistentVolumeClaimRetentionPolicy"] == {
        "whenDeleted": "Retain",
        "whenScaled": "Retain",
    }
    assert {"name": "data", "mountPath": "/data"} in weed["volumeMounts"]
    assert set(weed["resources"]) == {"requests", "limits"}
    assert {"startupProbe", "readinessProbe", "livenessProbe"} <= set(weed)
    pod, container = spec["securityContext"], weed["securityContext"]
    assert pod["runAsNonRoot"] and pod["seccompProfile"] == {"type": "RuntimeDefault"}
    assert container["allowPrivilegeEscalation"] is False
    assert container["capabilities"] == {"drop": ["ALL"]}
    assert container["readOnlyRootFilesystem"] is True
    assert spec["automountServiceAccountToken"] is False
    env = env_of(weed)
    for name, key in (("AWS_ACCESS_KEY_ID", "access-key-id"),
                      ("AWS_SECRET_ACCESS_KEY", "secret-access-key")):  # fmt: skip
        assert env[name] == {"secretKeyRef": {"name": f"{RELEASE}-objectstore", "key": key}}
    secret = one(objects, "Secret", f"{RELEASE}-objectstore")
    assert secret["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"


# ---- MinIO, named by the user --------------------------------------------------------------


def test_minio_without_an_image_is_refused_with_one_line(helm: str) -> None:
    message = render_error(minio_values(), helm=helm)
    (line,) = [line for line in message.splitlines() if "objectstore.minio.image.tag" in line]
    assert "global.objectStore.provider=minio" in line
    assert "no images since October 2025" in line


@pytest.mark.parametrize(
    ("values", "image"),
    [
        (MINIO, MINIO_IMAGE),
        (minio_values(digest="sha256:" + "a" * 64), "quay.io/minio/minio@sha256:" + "a" * 64),
    ],
    ids=["tag", "digest"],
)
def test_minio_runs_the_image_it_is_given(helm: str, values: dict[str, Any], image: str) -> None:
    objects = render_chart(values, helm=helm)
    (container,) = pod_spec(one(objects, "StatefulSet", f"{RELEASE}-minio"))["containers"]
    assert container["image"] == image
    assert store_names(objects) == {"minio"}
    assert not find(objects, "StatefulSet", f"{RELEASE}-seaweedfs")
    assert platform(objects)["OBJECT_STORE_PROVIDER"] == "minio"


@pytest.mark.parametrize(
    "tag",
    ["RELEASE.2025-09-07T16-13-09Z", "RELEASE.2024-12-18T13-15-44Z", "RELEASE.2025-10-15T17-29-54Z",
     "RELEASE.2025-04-22T22-12-26Z-cpuv1"],
)  # fmt: skip
def test_notes_warn_about_a_minio_release_with_the_advisory(tag: str) -> None:
    notes = render_notes(minio_values(tag))
    assert f"MinIO image:     quay.io/minio/minio:{tag}" in notes
    assert WARNING in notes
    assert "Kept:" not in notes  # named, not kept


@pytest.mark.parametrize(
    "values",
    [
        minio_values(FIXED),
        minio_values("RELEASE.2026-02-01T00-00-00Z"),
        minio_values(digest="sha256:" + "b" * 64),  # no tag: nothing to compare
        MINIO,
        {},  # SeaweedFS
        {"global": {"objectStore": {"provider": "seaweedfs"}}},
    ],
    ids=["security-release", "newer", "digest-only", "maintained-build", "default", "seaweedfs"],
)
def test_notes_do_not_warn_otherwise(values: dict[str, Any]) -> None:
    notes = render_notes(values)
    assert "WARNING" not in notes
    assert "advisory" not in notes


def test_notes_warning_with_helm4() -> None:
    assert WARNING in render_notes(minio_values("RELEASE.2025-09-07T16-13-09Z"), helm="helm4")


# ---- an upgrade of a release that runs MinIO ------------------------------------------------


def live_minio(image: str = ARCHIVED, release: str = RELEASE) -> Manifest:
    """The MinIO StatefulSet of a release installed by chart 0.3.x (what `lookup` returns)."""
    return {
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "metadata": {
            "name": f"{RELEASE}-minio",
            "namespace": NAMESPACE,
            "labels": {"app.kubernetes.io/name": "minio", "app.kubernetes.io/instance": release},
            "annotations": {
                "meta.helm.sh/release-name": release,
                "meta.helm.sh/release-namespace": NAMESPACE,
            },
        },
        "spec": {"template": {"spec": {"containers": [{"name": "minio", "image": image}]}}},
    }


NOTES_TEMPLATE = "templates/notes-rendered.yaml"


def render_upgrade(
    helm: str, live: list[Manifest], tmp: Path, values: dict[str, Any] | None = None
) -> tuple[list[Manifest], str, list[tuple[str, str]]]:
    """What `helm upgrade` renders with `live` in the cluster: the objects, NOTES and the
    requests the fake API server answered."""
    chart = tmp / "chart" / "trainyard"
    shutil.copytree(CHART, chart)
    # NOTES.txt wrapped into a ConfigMap, as render_notes does (helm template skips NOTES)
    (chart / NOTES_TEMPLATE).write_text(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: notes\ndata:\n  notes: |\n"
        '{{ include (print $.Template.BasePath "/NOTES.txt") . | indent 4 }}\n'
    )
    values_file = tmp / "values.json"
    values_file.write_text(json.dumps(values or {}))
    with fake_kube(live, tmp, NAMESPACE) as fake:
        args = [RELEASE, str(chart), "--namespace", NAMESPACE, "--values", str(values_file)]
        rendered = fake.helm_template(tool(helm), [*args, "--is-upgrade"])
        requests = list(fake.requests)
    docs = [d for d in yaml.safe_load_all(rendered) if d]
    (notes,) = [d["data"]["notes"] for d in docs if d["metadata"]["name"] == "notes"]
    return [d for d in docs if d["metadata"]["name"] != "notes"], notes, requests


def test_an_upgrade_keeps_the_running_minio_and_its_image(helm: str, tmp_path: Path) -> None:
    """0.3.x's implicit default was MinIO: the upgrade with default values keeps that store,
    the image it runs (nothing to set) and the names of its StatefulSet and Services."""
    objects, notes, requests = render_upgrade(helm, [live_minio()], tmp_path)
    sts = one(objects, "StatefulSet", f"{RELEASE}-minio")
    (container,) = pod_spec(sts)["containers"]
    assert container["image"] == ARCHIVED
    assert sts["spec"]["serviceName"] == f"{RELEASE}-minio-hl"
    assert sts["spec"]["persistentVolumeClaimRetentionPolicy"]["whenDeleted"] == "Retain"
    assert sts["metadata"]["labels"]["app.kubernetes.io/version"] == ARCHIVED.rpartition(":")[2]
    one(objects, "Service", f"{RELEASE}-minio")
    one(objects, "Service", f"{RELEASE}-minio-hl")
    assert store_names(objects) == {"minio"}
    assert "seaweedfs" not in json.dumps(objects)
    assert platform(objects)["OBJECT_STORE_PROVIDER"] == "minio"
    assert (
        platform(objects)["AWS_ENDPOINT_URL_S3"] == f"http://{RELEASE}-minio.{NAMESPACE}.svc:9000"
    )
    # the kept image carries the advisory: NOTES say so, and that the store was kept
    assert "Object store (minio)" in notes
    assert "Kept:            this release already runs the chart's MinIO" in notes
    assert f"MinIO image:     {ARCHIVED}" in notes
    assert WARNING in notes
    path = f"/apis/apps/v1/namespaces/{NAMESPACE}/statefulsets/{RELEASE}-minio"
    assert ("GET", path) in requests
    assert all(method == "GET" for method, _ in requests), requests
    # asked once per chart that wires the store (the umbrella and its subcharts), not once
    # per object: Helm's client throttles a render's API calls
    assert requests.count(("GET", path)) <= len(list((CHART / "charts").iterdir())) + 1


def test_an_upgrade_keeps_a_maintained_minio_without_a_warning(tmp_path: Path) -> None:
    objects, notes, _ = render_upgrade("helm3", [live_minio(MINIO_IMAGE)], tmp_path)
    (container,) = pod_spec(one(objects, "StatefulSet", f"{RELEASE}-minio"))["containers"]
    assert container["image"] == MINIO_IMAGE
    assert "Kept:" in notes and "WARNING" not in notes


@pytest.mark.parametrize(
    ("values", "store", "image"),
    [
        # an explicit provider always wins (moving stores: docs/upgrading.md)
        ({"global": {"objectStore": {"provider": "seaweedfs"}}}, "seaweedfs", None),
        # a named image wins over the running one
        (MINIO, "minio", MINIO_IMAGE),
        (minio_values(FIXED), "minio", f"quay.io/minio/minio:{FIXED}"),
        # provider minio named, image not: the running one is kept
        ({"global": {"objectStore": {"provider": "minio"}}}, "minio", ARCHIVED),
    ],
    ids=["seaweedfs", "minio-named-image", "minio-fixed-tag", "minio-kept-image"],
)
def test_an_explicit_choice_wins_over_the_running_store(
    values: dict[str, Any], store: str, image: str | None, tmp_path: Path
) -> None:
    objects, notes, _ = render_upgrade("helm3", [live_minio()], tmp_path, values)
    assert store_names(objects) == {store}
    assert platform(objects)["OBJECT_STORE_PROVIDER"] == store
    assert "Kept:" not in notes
    if image:
        (container,) = pod_spec(one(objects, "StatefulSet", f"{RELEASE}-minio"))["containers"]
        assert container["image"] == image
        assert (WARNING in notes) == (image == ARCHIVED)


@pytest.mark.parametrize(
    "live",
    [[], [live_minio(release="someone-else")]],
    ids=["nothing-running", "another-release's-statefulset"],
)
def test_seaweedfs_unless_this_release_runs_minio(
    helm: str, live: list[Manifest], tmp_path: Path
) -> None:
    """A StatefulSet of the same name that another release (or no release) made is not ours."""
    objects, notes, _ = render_upgrade(helm, live, tmp_path)
    assert store_names(objects) == {"seaweedfs"}
    assert "minio" not in json.dumps(objects).lower()
    assert "Object store (seaweedfs)" in notes


def test_a_new_minio_install_without_an_image_is_refused_against_a_cluster(
    tmp_path: Path,
) -> None:
    """With a cluster to ask and no MinIO running, provider minio still needs its image."""
    with pytest.raises(AssertionError, match=r"objectstore\.minio\.image\.tag"):
        render_upgrade("helm3", [], tmp_path, minio_values())

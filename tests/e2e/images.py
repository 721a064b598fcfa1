"""The container images of a kind run: which the chart references, which are built here, which
come from public registries.

Every image a kind run needs is loaded into the nodes before `helm install` (`kind load
docker-image`): the trainyard images from scripts/build-images, and the public ones the chart
uses as they are (PUBLIC_IMAGES), pulled on the host first. The cluster itself then pulls nothing,
and a host without registry access is a precise skip reason ("cannot pull X") instead of pods
stuck in ImagePullBackOff. tests/e2e/test_kind_static.py proves that these two sets together are
exactly what the rendered chart references.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[2]
BUILD_IMAGES = REPO / "scripts" / "build-images"
# Arguments that select the image set of a kind run (none: the default set, CPU torch).
BUILD_IMAGES_ARGS: tuple[str, ...] = ()

# Pulled from their registries (on the host, by the fixture) and loaded into kind: the chart runs
# them unchanged. Keep in step with charts/trainyard/charts/{postgresql,objectstore}/values.yaml;
# the static test fails when they differ. (The NVIDIA device plugin is off on kind.)
PUBLIC_IMAGES = frozenset(
    {
        "docker.io/library/postgres:18.1-trixie",
        "docker.io/chrislusf/seaweedfs:4.48",
    }
)
# Run by the last release only (the upgrade test's starting point), kept by its upgrade: MinIO,
# the default store of chart 0.3.x (this chart keeps the MinIO a release already runs).
PREVIOUS_RELEASE_IMAGES = frozenset({"quay.io/minio/minio:RELEASE.2025-09-07T16-13-09Z"})


def normalize(ref: str) -> str:
    """A Docker image reference in the fully qualified form containerd stores it under:
    trainyard/airflow:0.1.0 -> docker.io/trainyard/airflow:0.1.0,
    postgres -> docker.io/library/postgres:latest."""
    name, digest = ref.split("@", 1) if "@" in ref else (ref, "")
    first, _, rest = name.partition("/")
    if not rest or ("." not in first and ":" not in first and first != "localhost"):
        name = f"docker.io/{name}"
    if name.startswith("docker.io/") and name.count("/") == 1:
        name = name.replace("docker.io/", "docker.io/library/", 1)
    if ":" not in name.rsplit("/", 1)[-1] and not digest:
        name += ":latest"
    return f"{name}@{digest}" if digest else name


def built_images(args: Iterable[str] = BUILD_IMAGES_ARGS) -> list[str]:
    """The refs `scripts/build-images --print-images` prints (it builds nothing with that flag)."""
    proc = subprocess.run(
        [str(BUILD_IMAGES), "--print-images", *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        cwd=REPO,
    )
    assert proc.returncode == 0, f"build-images --print-images failed:\n{proc.stderr[-3000:]}"
    refs = [line.strip() for line in proc.stdout.splitlines() if line.strip()]
    assert refs, "scripts/build-images --print-images printed no image"
    return refs


def _pod_specs(obj: dict[str, Any]) -> Iterable[dict[str, Any]]:
    kind = obj.get("kind")
    spec = obj.get("spec") or {}
    if kind == "Pod":
        yield spec
    elif kind == "CronJob":
        yield spec["jobTemplate"]["spec"]["template"]["spec"]
    elif kind in ("Deployment", "StatefulSet", "DaemonSet", "Job", "ReplicaSet"):
        yield spec["template"]["spec"]
    elif kind == "ConfigMap":
        # Pod templates kept as text (Airflow's KubernetesExecutor worker pod template).
        for text in (obj.get("data") or {}).values():
            try:
                doc = yaml.safe_load(text)
            except yaml.YAMLError:
                continue
            if isinstance(doc, dict) and doc.get("kind") == "Pod":
                yield doc["spec"]


def rendered_images(objects: list[dict[str, Any]]) -> set[str]:
    """Every image the rendered chart makes Kubernetes run: containers and init containers of all
    workloads and pod templates, and the trainer image the DAG reads from platform.json."""
    images: set[str] = set()
    for obj in objects:
        for spec in _pod_specs(obj):
            for container in [*spec.get("initContainers", []), *spec.get("containers", [])]:
                images.add(container["image"])
        if obj.get("kind") == "ConfigMap" and "platform.json" in (obj.get("data") or {}):
            platform = json.loads(obj["data"]["platform.json"])
            images.add(platform["trainer"]["image"])
    return images


# The GPU pool's nodes run trainer pods only (nothing else tolerates their taint): the trainer
# image and the pod operator's XCom sidecar go there; every other image to the control plane
# alone, which halves what a kind run loads (KindEnv.load_images).
TRAINER_REPOSITORY = "docker.io/trainyard/trainer"


def retagged(ref: str, app_version: str, new_app_version: str) -> str:
    """A built image's ref under another appVersion (`-gpu` and other suffixes kept)."""
    name, tag = ref.rsplit(":", 1)
    return f"{name}:{tag.replace(app_version, new_app_version, 1)}"


def repository(ref: str) -> str:
    """The normalized repository of a reference, without tag or digest."""
    name = normalize(ref).split("@", 1)[0]
    return name.rsplit(":", 1)[0] if ":" in name.rsplit("/", 1)[-1] else name


def loaded_in_nodes(ref: str, nodes: Iterable[str]) -> bool:
    """Each of these kind nodes already holds this exact image (same image ID as in Docker): a
    kept cluster then skips the minute-long `kind load` of an unchanged image."""
    docker_id = subprocess.run(
        ["docker", "image", "inspect", "--format", "{{.Id}}", ref],
        capture_output=True, text=True, timeout=60, check=False,
    ).stdout.strip()  # fmt: skip
    if not docker_id:
        return False
    for node in nodes:
        proc = subprocess.run(
            ["docker", "exec", node, "crictl", "inspecti", "--output", "json", normalize(ref)],
            capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
        if proc.returncode != 0 or json.loads(proc.stdout)["status"]["id"] != docker_id:
            return False
    return True

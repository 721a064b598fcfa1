"""Names and label values fit Kubernetes' limits for every release name Helm accepts.

Helm accepts release names of up to 53 characters. With one, every Service name must still be
a DNS-1035 label (at most 63 characters: the API server refuses the Service otherwise), every
label value at most 63 characters, every StatefulSet name at most 52 (its pods carry the label
controller-revision-hash=<name>-<10-character hash>), and the names that refer to each other
(serviceName, volumes, roleRef, Service hosts in env) must still agree.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest

from .conftest import (
    CI_VALUES,
    MINIO,
    NAMESPACE,
    Manifest,
    containers,
    pod_spec,
    render_chart,
    workloads,
)

pytestmark = pytest.mark.chart

# The longest release name Helm accepts (helm install refuses 54).
LONGEST = "a" * 44 + "-release1"
assert len(LONGEST) == 53
SCENARIOS = {"defaults": [], **{path.stem: [path] for path in CI_VALUES}}

DNS1035_LABEL = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
DNS1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
DNS1123_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
SERVICE_HOST = re.compile(r"\b([a-z0-9][-a-z0-9]*)\.([a-z0-9][-a-z0-9]*)\.svc\b")


def ident(obj: Manifest) -> str:
    return f"{obj['kind']}/{obj['metadata']['name']}"


def label_maps(obj: Manifest) -> Iterator[tuple[str, dict[str, Any]]]:
    """Every label map of an object: its own, its pod template's, selectors."""
    yield "metadata.labels", obj["metadata"].get("labels") or {}
    spec = obj.get("spec") or {}
    if obj["kind"] in ("Deployment", "StatefulSet", "DaemonSet", "Job"):
        yield "template labels", spec["template"]["metadata"].get("labels") or {}
        yield "selector", (spec.get("selector") or {}).get("matchLabels") or {}
    if obj["kind"] in ("Service",):
        yield "selector", spec.get("selector") or {}
    if obj["kind"] == "NetworkPolicy":
        yield "podSelector", spec["podSelector"].get("matchLabels") or {}


def problems(objects: list[Manifest]) -> list[str]:
    found: list[str] = []
    seen: set[tuple[str, str | None, str]] = set()
    for obj in objects:
        name = obj["metadata"]["name"]
        key = (obj["kind"], obj["metadata"].get("namespace"), name)
        if key in seen:
            found.append(f"{ident(obj)}: rendered twice")
        seen.add(key)
        if len(name) > 253 or not DNS1123_SUBDOMAIN.match(name):
            found.append(f"{ident(obj)}: not a DNS-1123 subdomain")
        if obj["kind"] == "Service" and (len(name) > 63 or not DNS1035_LABEL.match(name)):
            found.append(f"{ident(obj)}: {len(name)} characters, not a DNS-1035 label")
        if obj["kind"] in ("Job", "Pod", "ServiceAccount", "Namespace") and (
            len(name) > 63 or not DNS1123_LABEL.match(name)
        ):
            # Jobs: the job-name label; Pods: the hostname; the rest: label-valued names.
            found.append(f"{ident(obj)}: {len(name)} characters, not a DNS-1123 label")
        if obj["kind"] == "StatefulSet" and len(name) > 52:
            found.append(f"{ident(obj)}: {len(name)} > 52 characters (controller-revision-hash)")
        for where, labels in label_maps(obj):
            for label, value in labels.items():
                text = str(value)
                if len(text) > 63 or not LABEL_VALUE.match(text):
                    found.append(f"{ident(obj)} {where} {label}={text!r} ({len(text)})")
    return found


def _refers_to(obj: Manifest) -> Iterator[tuple[str, str | None, str]]:
    """(kind, namespace, name) of every object `obj` names."""
    ns = obj["metadata"].get("namespace")
    if obj["kind"] == "StatefulSet":
        yield "Service", ns, obj["spec"]["serviceName"]
    if obj["kind"] == "RoleBinding":
        yield "Role", ns, obj["roleRef"]["name"]
        for subject in obj["subjects"]:
            yield "ServiceAccount", subject["namespace"], subject["name"]
    if obj["kind"] in WORKLOAD_KINDS:
        spec = pod_spec(obj)
        if spec.get("serviceAccountName"):
            yield "ServiceAccount", ns, spec["serviceAccountName"]
        for volume in spec.get("volumes") or []:
            sources = [volume, *((volume.get("projected") or {}).get("sources") or [])]
            for source in sources:
                if "configMap" in source and source["configMap"]["name"] != "kube-root-ca.crt":
                    yield "ConfigMap", ns, source["configMap"]["name"]
    if obj["kind"] in ("ConfigMap", *WORKLOAD_KINDS):
        # Every <service>.<release namespace>.svc host a component is told about.
        for host, namespace in SERVICE_HOST.findall(repr(obj)):
            if namespace == NAMESPACE:
                yield "Service", namespace, host


def references(objects: list[Manifest]) -> list[str]:
    """Names one object uses to find another that the same render creates."""
    names = {(o["kind"], o["metadata"].get("namespace"), o["metadata"]["name"]) for o in objects}
    return [
        f"{ident(obj)} refers to {kind} {namespace}/{name}, not rendered"
        for obj in objects
        for kind, namespace, name in _refers_to(obj)
        if (kind, namespace, name) not in names
    ]


WORKLOAD_KINDS = ("Deployment", "StatefulSet", "DaemonSet", "Job", "Pod")


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_longest_release_name_fits_every_limit(helm: str, scenario: str) -> None:
    objects = render_chart(values_files=SCENARIOS[scenario], helm=helm, release=LONGEST)
    assert any(o["kind"] == "Service" for o in objects)
    errors = problems(objects) + references(objects)
    assert not errors, "\n".join(errors)


def test_the_limits_check_catches_what_the_api_server_refuses() -> None:
    """The checks above can fail: the names a naive `<release>-<component>-hl` would give."""
    objects = render_chart(release=LONGEST)
    service = next(o for o in objects if o["kind"] == "Service")
    too_long = {**service, "metadata": {**service["metadata"], "name": LONGEST + "-postgresql-hl"}}
    assert problems([too_long])
    sts = next(o for o in objects if o["kind"] == "StatefulSet")
    renamed = {**sts, "spec": {**sts["spec"], "serviceName": "elsewhere"}}
    assert references([renamed, *[o for o in objects if o is not sts]])


def test_short_release_names_are_unchanged() -> None:
    """Names that fit stay as they were: renaming a StatefulSet's Service breaks upgrades."""
    names = {(o["kind"], o["metadata"]["name"]) for o in render_chart() + render_chart(MINIO)}
    assert {
        ("StatefulSet", "trainyard-postgresql"),
        ("Service", "trainyard-postgresql-hl"),
        ("Service", "trainyard-airflow-api-server"),
        ("StatefulSet", "trainyard-minio"),
        ("Service", "trainyard-minio-hl"),
        ("StatefulSet", "trainyard-seaweedfs"),
        ("Service", "trainyard-seaweedfs-hl"),
        ("ConfigMap", "trainyard-postgresql-scripts"),
        ("ConfigMap", "trainyard-airflow-pod-template"),
        ("Secret", "trainyard-mlflow-auth"),
        ("Role", "trainyard-serving-deployer"),
        ("NetworkPolicy", "trainyard-postgresql-database"),
    } <= names


def test_long_names_keep_their_component_and_differ_by_release() -> None:
    """Cut names keep the whole component (no `postgresq` beside `postgresq-hl`), and two long
    release names with a common prefix get different objects."""
    other = LONGEST[:-1] + "2"
    first = {(o["kind"], o["metadata"]["name"]) for o in render_chart(release=LONGEST)}
    second = {(o["kind"], o["metadata"]["name"]) for o in render_chart(release=other)}
    assert not first & second - {("Namespace", "ml-training")}
    services = sorted(name for kind, name in first if kind == "Service")
    for component in ("-postgresql", "-postgresql-hl", "-airflow-api-server", "-seaweedfs-hl"):
        assert any(name.endswith(component) for name in services), (component, services)


def test_trainer_pod_identity_fits_with_the_longest_release_name(helm: str) -> None:
    """platform.json names the trainer ServiceAccount and Secret the chart creates."""
    import json  # noqa: PLC0415

    objects = render_chart(release=LONGEST, helm=helm)
    config = json.loads(
        next(
            o
            for o in objects
            if o["kind"] == "ConfigMap" and "platform.json" in (o.get("data") or {})
        )["data"]["platform.json"]
    )
    trainer = config["trainer"]
    accounts = {o["metadata"]["name"] for o in objects if o["kind"] == "ServiceAccount"}
    assert trainer["service_account"] in accounts
    assert len(trainer["env_from_secrets"][0]) <= 253
    for value in trainer["labels"].values():
        assert len(value) <= 63 and LABEL_VALUE.match(value)
    for obj in workloads(objects):
        for container in containers(pod_spec(obj)):
            assert len(container["name"]) <= 63

"""Chart test harness: render charts/trainyard with the real helm binaries from scripts/bootstrap.

Everything here runs offline: `helm template` never talks to a cluster, Kubernetes schemas come
from kubernetes-validate and policy checks from checkov, both in the tools virtualenv
(.tools/venv, kept apart from the project's .venv because checkov pins many packages).
"""

from __future__ import annotations

import copy
import functools
import json
import os
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "charts" / "trainyard"
CI_VALUES = sorted((CHART / "ci").glob("*.yaml"))
# The tag of the trainyard images the chart runs by default.
APP_VERSION = yaml.safe_load((CHART / "Chart.yaml").read_text())["appVersion"]
TOOLS = Path(os.environ.get("TRAINYARD_TOOLS_DIR", REPO / ".tools"))
HELMS = ("helm3", "helm4")
# Kubernetes versions every rendered object must validate against (schemas bundled offline):
# the oldest the chart supports (Chart.yaml kubeVersion), 1.30 and 1.34.
KUBERNETES_VERSIONS = ("1.29.0", "1.30.0", "1.34.0")
RELEASE = "trainyard"
NAMESPACE = "trainyard"
# global.training.namespace by default: where the DAG launches trainer pods.
TRAINING_NAMESPACE = "ml-training"
# An install on MinIO: the provider named, and a maintained build's image (no MinIO default).
MINIO_IMAGE = "registry.example.com/minio/minio:RELEASE.2026-01-01T00-00-00Z"
MINIO: dict[str, Any] = {
    "global": {"objectStore": {"provider": "minio"}},
    "objectstore": {
        "minio": {
            "image": {
                "registry": "registry.example.com",
                "repository": "minio/minio",
                "tag": "RELEASE.2026-01-01T00-00-00Z",
            }
        }
    },
}

Manifest = dict[str, Any]


class HelmError(Exception):
    """`helm` exited non-zero; the message is its stderr."""


def tool(name: str) -> Path:
    """A tool from scripts/bootstrap; fails loudly (never skips) when it is missing."""
    paths = {
        "helm3": TOOLS / "bin" / "helm3",
        "helm4": TOOLS / "bin" / "helm4",
        "python": TOOLS / "venv" / "bin" / "python",
        "checkov": TOOLS / "venv" / "bin" / "checkov",
    }
    path = paths[name]
    if not os.access(path, os.X_OK):
        pytest.fail(
            f"{path} is missing: run scripts/bootstrap first (it provides helm 3/4, "
            "kubernetes-validate and checkov under .tools/)",
            pytrace=False,
        )
    return path


def run_helm(helm: str, args: list[str]) -> str:
    proc = subprocess.run(
        [str(tool(helm)), *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        # No kubeconfig, no repositories: prove the chart needs neither.
        env={**os.environ, "KUBECONFIG": "/dev/null", "HELM_REPOSITORY_CONFIG": "/dev/null"},
    )
    if proc.returncode != 0:
        raise HelmError(proc.stderr.strip() or proc.stdout.strip())
    return proc.stdout


@functools.lru_cache(maxsize=256)
def _template(
    helm: str,
    values_json: str,
    show_only: tuple[str, ...],
    values_files: tuple[str, ...],
    release: str,
    namespace: str,
) -> str:
    with tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False) as handle:
        handle.write(values_json)  # JSON is YAML
    try:
        args = ["template", release, str(CHART), "--namespace", namespace]
        for path in values_files:
            args += ["--values", path]
        args += ["--values", handle.name]
        for template in show_only:
            args += ["--show-only", template]
        return run_helm(helm, args)
    finally:
        os.unlink(handle.name)


def render_chart(
    values: dict[str, Any] | None = None,
    show_only: list[str] | None = None,
    helm: str = "helm3",
    values_files: list[Path] | None = None,
    release: str = RELEASE,
    namespace: str = NAMESPACE,
) -> list[Manifest]:
    """`helm template` the umbrella chart; the rendered objects, parsed. Raises HelmError.

    show_only takes template paths as helm prints them, e.g.
    "charts/mlflow/templates/deployment.yaml" (relative to charts/trainyard).
    """
    text = _template(
        helm,
        json.dumps(values or {}, sort_keys=True),
        tuple(show_only or ()),
        tuple(str(p) for p in values_files or ()),
        release,
        namespace,
    )
    return [copy.deepcopy(doc) for doc in yaml.safe_load_all(text) if doc]


def render_error(values: dict[str, Any], helm: str = "helm3", **kwargs: Any) -> str:
    """Render values that must be rejected; returns helm's error message."""
    with pytest.raises(HelmError) as info:
        render_chart(values, helm=helm, **kwargs)
    return str(info.value)


def platform_script(name: str, folder: Path) -> Path:
    """A script of the platform-scripts ConfigMap as Helm renders it, written into `folder`:
    the Jobs' and helm tests' code, run by the integration tests as the pods run it."""
    (configmap,) = render_chart(show_only=["templates/platform-scripts-configmap.yaml"])
    path = folder / name
    path.write_text(configmap["data"][name])
    return path


def render_notes(values: dict[str, Any] | None = None, helm: str = "helm3") -> str:
    """NOTES.txt as `helm install` would print it (helm template skips NOTES, so render a copy)."""
    import shutil  # noqa: PLC0415

    with tempfile.TemporaryDirectory() as tmp:
        chart = Path(tmp) / "trainyard"
        shutil.copytree(CHART, chart)
        # Helm parses every rendered template as YAML, so wrap NOTES.txt into a ConfigMap.
        (chart / "templates" / "notes-rendered.yaml").write_text(
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: notes\ndata:\n  notes: |\n"
            '{{ include (print $.Template.BasePath "/NOTES.txt") . | indent 4 }}\n'
        )
        with tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False) as handle:
            handle.write(json.dumps(values or {}))
        try:
            out = run_helm(
                helm,
                [
                    "template",
                    RELEASE,
                    str(chart),
                    "--namespace",
                    NAMESPACE,
                    "--values",
                    handle.name,
                    "--show-only",
                    "templates/notes-rendered.yaml",
                ],
            )
        finally:
            os.unlink(handle.name)
    notes: str = yaml.safe_load(out)["data"]["notes"]
    return notes


def find(objects: list[Manifest], kind: str, name: str | None = None) -> list[Manifest]:
    return [
        o for o in objects if o["kind"] == kind and (name is None or o["metadata"]["name"] == name)
    ]


def one(objects: list[Manifest], kind: str, name: str) -> Manifest:
    found = find(objects, kind, name)
    assert len(found) == 1, f"expected one {kind}/{name}, found {len(found)}: " + ", ".join(
        f"{o['kind']}/{o['metadata']['name']}" for o in objects
    )
    return found[0]


WORKLOAD_KINDS = ("Deployment", "StatefulSet", "DaemonSet", "Job", "CronJob", "Pod")


def pod_spec(obj: Manifest) -> dict[str, Any]:
    if obj["kind"] == "Pod":
        return obj["spec"]
    if obj["kind"] == "CronJob":
        return obj["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    return obj["spec"]["template"]["spec"]


def workloads(objects: list[Manifest]) -> Iterator[Manifest]:
    return (o for o in objects if o["kind"] in WORKLOAD_KINDS)


def containers(spec: dict[str, Any]) -> list[dict[str, Any]]:
    return [*spec.get("initContainers", []), *spec["containers"]]


def env_of(container: dict[str, Any]) -> dict[str, Any]:
    """name -> value (a string) or valueFrom (a dict)."""
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container.get("env", [])}


def kubernetes_validate(
    objects: list[Manifest], versions: tuple[str, ...] = KUBERNETES_VERSIONS
) -> list[str]:
    """Strict schema validation of every object, offline; the list of failures (empty: valid)."""
    script = r"""
import json, sys
import kubernetes_validate
objects, versions = json.load(sys.stdin)
errors = []
for version in versions:
    for obj in objects:
        ident = f"{version} {obj.get('kind')}/{obj.get('metadata', {}).get('name')}"
        try:
            kubernetes_validate.validate(obj, version, strict=True)
        except Exception as exc:  # ValidationError, SchemaNotFoundError, ...
            errors.append(f"{ident}: {type(exc).__name__}: {exc}")
print(json.dumps(errors))
"""
    proc = subprocess.run(
        [str(tool("python")), "-c", script],
        input=json.dumps([objects, list(versions)]),
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    errors: list[str] = json.loads(proc.stdout)
    return errors


def checkov(objects: list[Manifest]) -> dict[str, Any]:
    """checkov's Kubernetes checks over the rendered objects (offline); its JSON report."""
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "rendered.yaml").write_text(yaml.safe_dump_all(objects, sort_keys=False))
        proc = subprocess.run(
            [
                str(tool("checkov")),
                "--directory",
                tmp,
                "--framework",
                "kubernetes",
                "--output",
                "json",
                "--compact",
                "--skip-download",
            ],
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
            env={
                **os.environ,
                "BC_SKIP_MAPPING": "TRUE",
                "CHECKOV_RUN_SCA_PACKAGE_SCAN_V2": "false",
            },
            cwd=tmp,
        )
    # exit 1 = failed checks (reported in the JSON); anything else non-zero is a crash
    assert proc.returncode in (0, 1), proc.stderr[-3000:]
    report = json.loads(proc.stdout)
    if isinstance(report, list):  # one report per framework
        (report,) = [r for r in report if r.get("check_type") == "kubernetes"]
    if "results" not in report:  # "no resources" summary shape
        report = {
            "results": {"passed_checks": [], "failed_checks": [], "skipped_checks": []},
            "summary": report,
        }
    return report


@pytest.fixture(params=HELMS)
def helm(request: pytest.FixtureRequest) -> str:
    """Each test that takes `helm` runs with Helm 3 and with Helm 4."""
    tool(request.param)
    return str(request.param)


@pytest.fixture(scope="session", autouse=True)
def _tools_present() -> None:
    for name in ("helm3", "helm4", "python", "checkov"):
        tool(name)

"""The docs name only paths and values keys the chart has (issue 29).

README.md, docs/*.md and the chart README name in-container paths and values keys in backticks;
each one must exist: a path in a pod the chart renders (or a trainer pod the DAG builds from the
rendered platform.json), a key in a values schema. Fenced code blocks are examples, not checked.

Which backticked paths are in-container paths: those under a root that only containers use here
(CONTAINER_ROOTS). Host paths (`/usr/lib/postgresql/...`, `/var/cache/...`) and URL paths
(`/invocations`) are not under one. A path exists when a container mounts it or a directory
holding it (for a ConfigMap volume, only the ConfigMap's files), when a container's command,
arguments or environment names it, or when it is a parent directory of such a path.

Which backticked words are values keys: dotted names whose first part is a top-level key of the
umbrella chart (`gpu.devicePlugin.enabled`, `gpu.enabled=false`, `airflow.keys.*.existingSecret`,
`airflow.keys.{fernet,jwt}.existingSecret`). A key exists when a schema declares it or it lies
inside a map the schema leaves open (`gpu.nodePool.labels.<label>`).
"""

from __future__ import annotations

import fnmatch
import itertools
import json
import re
import runpy
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

from .conftest import CHART, CI_VALUES, REPO, Manifest, containers, pod_spec, render_chart
from .test_airflow import build_trainer_pods, platform_json

pytestmark = pytest.mark.chart

DOCS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md")), CHART / "README.md"]
schema_paths = runpy.run_path(str(REPO / "scripts" / "values-reference"))["schema_paths"]

# Top directories that are container paths in these docs: the images' and the chart's own
# (/opt/airflow, /opt/trainyard, the pod operator's /airflow/xcom, the scripts ConfigMaps at
# /scripts, /etc/trainyard, /etc/mlflow, /dev/shm, the stores' data, the device plugin's
# kubelet directory). A doc naming a host or URL path under one of them would be checked too.
CONTAINER_ROOTS = (
    "/opt",
    "/airflow",
    "/scripts",
    "/etc",
    "/dev",
    "/data",
    "/docker-entrypoint-initdb.d",
    "/var/lib",
    "/var/run",
)
_SEGMENT = r"[\w.<>*-]+"
# Not after a word, a dot, a colon or a slash: `s3://bucket/data/x` and `http://h/opt` are URLs.
PATH_RE = re.compile(
    r"(?<![\w.:/-])(?:"
    + "|".join(re.escape(root) for root in CONTAINER_ROOTS)
    + rf")(?:/{_SEGMENT})*/?(?![\w.-])"
)
_KEY_PART = r"(?:[A-Za-z0-9_]+|\*|\{[A-Za-z0-9_,]+\})"
KEY_RE = re.compile(rf"(?<![\w./@:-])([a-z][A-Za-z0-9]*)((?:\.{_KEY_PART})+)(?![\w/-])")
FENCE_RE = re.compile(r"^\s*(```|~~~)")


@dataclass
class ChartFacts:
    """What the docs are checked against."""

    # Paths that exist: files and directories, and every parent directory of them.
    paths: set[str] = field(default_factory=set)
    # Directories whose contents are written at run time (emptyDir, volumes, host paths):
    # anything below them exists as far as the docs are concerned.
    open_dirs: set[str] = field(default_factory=set)
    # Every values key (dotted) -> its schema.
    keys: dict[str, dict[str, Any]] = field(default_factory=dict)
    roots: set[str] = field(default_factory=set)

    def add_path(self, path: str) -> None:
        path = path.rstrip("/") or "/"
        self.paths.add(path)
        while "/" in path.strip("/"):
            path = path.rsplit("/", 1)[0]
            self.paths.add(path)

    def path_exists(self, path: str) -> bool:
        path = path.rstrip("/")
        # A placeholder (`<file>`) or `*` stands for any one name.
        pattern = "/".join(
            "[^/]+" if re.fullmatch(r"<[^>]*>|\*", part) else re.escape(part)
            for part in path.split("/")
        )
        if any(re.fullmatch(pattern, known) for known in self.paths):
            return True
        return any(path.startswith(d + "/") for d in self.open_dirs)

    def key_exists(self, key: str) -> bool:
        if "*" in key:
            return any(fnmatch.fnmatchcase(k, key) and "*" not in k for k in self.keys)
        if key in self.keys:
            return True
        parts = key.split(".")
        for i in range(len(parts) - 1, 0, -1):
            schema = self.keys.get(".".join(parts[:i]))
            if schema is not None:
                open_map = schema.get("additionalProperties", True) is not False
                return open_map and "propertyNames" not in schema and not schema.get("properties")
        return False


# ---- the check itself, on any text --------------------------------------------------------


def code_spans(text: str) -> Iterator[tuple[int, str]]:
    """(line number, content) of every inline code span outside fenced code blocks."""
    fenced = False
    for number, line in enumerate(text.splitlines(), 1):
        if FENCE_RE.match(line):
            fenced = not fenced
            continue
        if not fenced:
            for span in re.findall(r"`([^`]+)`", line):
                yield number, span


def values_keys(span: str, roots: Iterable[str]) -> Iterator[str]:
    """The values keys a code span names, braces expanded; `x.*` as the pattern it is."""
    for match in KEY_RE.finditer(span):
        if match.group(1) not in roots:
            continue
        parts = [match.group(1), *match.group(2)[1:].split(".")]
        if parts[-1] == "*":  # `gpu.*`: the key's children
            parts = parts[:-1]
        choices = [p[1:-1].split(",") if p.startswith("{") else [p] for p in parts]
        for combination in itertools.product(*choices):
            yield ".".join(combination)


def check_doc(text: str, facts: ChartFacts, name: str = "<text>") -> list[str]:
    """Every backticked in-container path and values key in `text` that the chart lacks."""
    problems = []
    for number, span in code_spans(text):
        for match in PATH_RE.finditer(span):
            if not facts.path_exists(match.group(0)):
                problems.append(
                    f"{name}:{number}: `{match.group(0)}` is no path in any rendered pod"
                )
        for key in values_keys(span, facts.roots):
            if not facts.key_exists(key):
                problems.append(f"{name}:{number}: `{key}` is no key of the values schemas")
    return problems


# ---- what the chart has ---------------------------------------------------------------------

# Path-like words in commands, arguments and environment values (PATH-style lists included).
WORD_PATH_RE = re.compile(r"(?<![\w.:/-])/[\w.@-]+(?:/[\w.@-]+)*")


def _pods(objects: list[Manifest]) -> Iterator[dict[str, Any]]:
    """Every pod spec: workloads, and Pods kept as text in ConfigMaps (the worker pod template)."""
    for obj in objects:
        if obj["kind"] in ("Deployment", "StatefulSet", "DaemonSet", "Job", "CronJob", "Pod"):
            yield pod_spec(obj)
        elif obj["kind"] == "ConfigMap":
            for value in (obj.get("data") or {}).values():
                if "kind: Pod" in value:
                    doc = yaml.safe_load(value)
                    if isinstance(doc, dict) and doc.get("kind") == "Pod":
                        yield doc["spec"]


def _words(container: dict[str, Any], config_maps: dict[str, dict[str, str]]) -> list[str]:
    """A container's command, arguments and environment values (envFrom ConfigMaps too)."""
    words = [*(container.get("command") or []), *(container.get("args") or [])]
    words += [e["value"] for e in container.get("env") or [] if "value" in e]
    for source in container.get("envFrom") or []:
        ref = source.get("configMapRef")
        if ref and ref["name"] in config_maps:
            words += config_maps[ref["name"]].values()
    return [str(word) for word in words]


def _collect(
    facts: ChartFacts, objects: list[Manifest], pods: Iterable[dict[str, Any]] = ()
) -> None:
    config_maps = {
        o["metadata"]["name"]: o.get("data") or {} for o in objects if o["kind"] == "ConfigMap"
    }
    for spec in [*_pods(objects), *pods]:
        volumes = {v["name"]: v for v in spec.get("volumes") or []}
        for volume in volumes.values():
            if "hostPath" in volume:
                facts.add_path(volume["hostPath"]["path"])
                facts.open_dirs.add(volume["hostPath"]["path"].rstrip("/"))
        for container in containers(spec):
            for word in _words(container, config_maps):
                for path in WORD_PATH_RE.findall(word):
                    facts.add_path(path)
            for mount in container.get("volumeMounts") or []:
                where = mount["mountPath"].rstrip("/")
                facts.add_path(where)
                if mount.get("subPath"):
                    continue  # one file, mounted as `where`
                volume = volumes.get(mount["name"], {})
                data = config_maps.get((volume.get("configMap") or {}).get("name", ""))
                if "configMap" in volume and data is not None:
                    items = volume["configMap"].get("items")
                    for name in [i["path"] for i in items] if items else data:
                        facts.add_path(f"{where}/{name}")
                else:
                    facts.open_dirs.add(where)


def chart_keys() -> dict[str, dict[str, Any]]:
    """Every key of the umbrella's schema and of each subchart's under its name."""
    umbrella = json.loads((CHART / "values.schema.json").read_text())
    keys: dict[str, dict[str, Any]] = schema_paths(umbrella, umbrella)
    for sub in sorted((CHART / "charts").glob("*/values.schema.json")):
        schema = json.loads(sub.read_text())
        name = sub.parent.name
        keys[name] = schema  # the subchart's own schema governs its keys
        for path, declared in schema_paths(schema, schema).items():
            if path.split(".")[0] != "global":  # the umbrella's global, seen by every chart
                keys[f"{name}.{path}"] = declared
    return keys


@pytest.fixture(scope="module")
def facts() -> ChartFacts:
    """Paths of every pod of a plain install and of each ci/*.yaml install, and of the trainer
    pods the DAG builds from their platform.json (with 2 GPUs too: its /dev/shm)."""
    facts = ChartFacts()
    renders = [render_chart(), *(render_chart(values_files=[path]) for path in CI_VALUES)]
    configs = [platform_json(objects) for objects in renders]
    configs.append(platform_json(render_chart({"gpu": {"count": 2}})))
    for objects in renders:
        _collect(facts, objects)
    _collect(facts, [], [pod["spec"] for pod in build_trainer_pods(configs)])
    facts.keys = chart_keys()
    facts.roots = {key for key in facts.keys if "." not in key}
    return facts


# ---- the tests --------------------------------------------------------------------------------


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: str(p.relative_to(REPO)))
def test_docs_name_only_paths_and_keys_the_chart_has(doc: Path, facts: ChartFacts) -> None:
    problems = check_doc(doc.read_text(), facts, str(doc.relative_to(REPO)))
    assert problems == [], "\n".join(problems)


def test_the_check_reports_a_planted_wrong_path_and_key(facts: ChartFacts, tmp_path: Path) -> None:
    original = (REPO / "docs" / "gpu-clusters.md").read_text()
    right = "`/opt/trainyard/config/platform.json`"
    assert right in original
    copy = tmp_path / "gpu-clusters.md"
    copy.write_text(
        original.replace(right, "`/opt/trainyard/platform.json`", 1).replace(
            "`gpu.devicePlugin.enabled`", "`gpu.devicePlugin.enable`", 1
        )
    )
    problems = check_doc(copy.read_text(), facts, copy.name)
    assert len(problems) == 2, problems
    assert "`/opt/trainyard/platform.json` is no path in any rendered pod" in problems[0]
    assert "`gpu.devicePlugin.enable` is no key of the values schemas" in problems[1]
    assert check_doc(original, facts) == []


@pytest.mark.parametrize(
    ("text", "wrong"),
    [
        # a file the mounted ConfigMap does not hold
        ("the config is `/opt/trainyard/config/settings.json`", 1),
        ("`python /scripts/no_such_script.py`", 1),
        # a file in a directory written at run time, a parent directory, a placeholder
        ("`/airflow/xcom/return.json`, `/opt/trainyard`, `/etc/mlflow/auth/<file>`", 0),
        ("`/dev/shm` and the kubelet's `/var/lib/kubelet/device-plugins`", 0),
        # host paths and URL paths are not in-container paths; fenced blocks are examples
        ("`/usr/lib/postgresql/<version>/bin`, `/invocations`, `s3://b/data/x`", 0),
        ("```sh\ncat /opt/nothing/here\n```", 0),
        # values keys, with the spellings the docs use
        ("`gpu.enabled=false`, `airflow.keys.{fernet,jwt}.existingSecret`, `gpu.*`", 0),
        ("`pipeline.maxParallelTrials \u00d7 gpu.count`, `airflow.keys.*.existingSecret`", 0),
        ("`gpu.nodePool.labels.cloud` (a label of an open map), `serving.replicas: 0`", 0),
        ("`airflow.keys.{fernet,jwt,api}.existingSecret`", 1),
        ("`training.podTimeout.scheduleSeconds` and `airflow.nope.*`", 2),
        # not values keys: another root, a platform.json key, a hostname-like word
        ("`notify.smtp_to`, `trainyard.io/pool=gpu`, `requests.nvidia.com/gpu`", 0),
    ],
)
def test_the_check_rule(text: str, wrong: int, facts: ChartFacts) -> None:
    assert len(check_doc(text, facts)) == wrong, check_doc(text, facts)

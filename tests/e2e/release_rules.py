"""The rules a chart release keeps (docs/releasing.md), read from git and the working tree.

- Image tags are immutable: the images' inputs (what `docker build` may read, the root
  .dockerignore's allowlist, and the build script) differ from a release's only under another
  `appVersion`.
- A changed or removed default value needs at least a minor version (a removed one, a major
  version from 1.0 on).
- docs/upgrading.md has a note for every pair of consecutive versions since 0.2.0.

tests/chart/test_release.py asserts them; scripts/release-chart runs those tests first.
"""

from __future__ import annotations

import hashlib
import itertools
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml
from packaging.version import Version

from .previous_chart import CHART_PATH, git_output, throwaway_index

DOCKERIGNORE = ".dockerignore"
BUILD_SCRIPT = "scripts/build-images"
UPGRADING = "docs/upgrading.md"
# Upgrade notes are kept from this version on (0.1.0 was never upgraded from).
NOTES_SINCE = Version("0.2.0")
# "- **0.3.x → 0.4.0**": a note for upgrades from any 0.3 release to 0.4.0.
_NOTE = re.compile(r"^- \*\*(?P<old>\d+\.\d+\.(?:\d+|x)) → (?P<new>\d+\.\d+\.\d+)\b", re.MULTILINE)


def image_inputs(repo: Path) -> list[str]:
    """The paths whose content goes into the trainyard images: .dockerignore's allowlist
    (without .build/, which the build script fills from pinned inputs), that file and the
    build script."""
    allowed = [
        line[1:].strip().rstrip("/")
        for line in (repo / DOCKERIGNORE).read_text().splitlines()
        if line.startswith("!") and not line[1:].startswith(".build/")
    ]
    return sorted({*allowed, DOCKERIGNORE, BUILD_SCRIPT})


def image_inputs_id(repo: Path, rev: str | None = None) -> str:
    """A digest of every file under the image inputs (mode, blob id, path): at commit `rev`,
    or in the working tree as it would be committed now (untracked files included, ignored
    ones not)."""
    paths = image_inputs(repo)
    with throwaway_index(repo) as git:
        if rev is None:
            git("read-tree", "--empty")
            git("add", "--all", "--", *paths)
        else:
            git("read-tree", rev)
        listing = git("ls-files", "--stage", "--", *paths)
    return hashlib.sha256(listing.encode()).hexdigest()


def chart_meta(repo: Path, rev: str | None = None) -> dict[str, Any]:
    """Chart.yaml of the chart, at `rev` or in the working tree."""
    path = f"{CHART_PATH}/Chart.yaml"
    text = git_output(repo, "show", f"{rev}:{path}") if rev else (repo / path).read_text()
    meta: dict[str, Any] = yaml.safe_load(text)
    return meta


def default_values(repo: Path, rev: str | None = None) -> dict[str, Any]:
    """Every values.yaml of the chart and its subcharts (ci/ values are not defaults), by
    path, at `rev` or in the working tree."""
    if rev is None:
        files = {
            str(p.relative_to(repo)): p.read_text()
            for p in (repo / CHART_PATH).rglob("values.yaml")
        }
    else:
        names = git_output(repo, "ls-tree", "-r", "--name-only", rev, "--", CHART_PATH).split()
        files = {
            n: git_output(repo, "show", f"{rev}:{n}") for n in names if n.endswith("/values.yaml")
        }
    return {
        path: yaml.safe_load(text) or {}
        for path, text in files.items()
        if f"{CHART_PATH}/ci/" not in path
    }


def _leaves(values: Any, prefix: str = "") -> Iterator[tuple[str, Any]]:
    if isinstance(values, dict) and values:
        for key, value in values.items():
            yield from _leaves(value, f"{prefix}.{key}" if prefix else str(key))
    else:
        yield prefix, values


def changed_defaults(old: dict[str, Any], new: dict[str, Any]) -> tuple[list[str], list[str]]:
    """(changed, removed) default values between two default_values(), as "<file>: <key>";
    added keys are neither."""
    changed: list[str] = []
    removed: list[str] = []
    for path in sorted(old):
        before = dict(_leaves(old[path]))
        after = dict(_leaves(new.get(path, {})))
        for key, value in before.items():
            if key not in after:
                # A key that became a mapping of new keys was filled in, not removed.
                if not any(k.startswith(f"{key}.") for k in after):
                    removed.append(f"{path}: {key}")
            elif after[key] != value:
                changed.append(f"{path}: {key} ({value!r} -> {after[key]!r})")
    return changed, removed


def lowest_allowed(last: Version, changed: list[str], removed: list[str]) -> Version:
    """The lowest version allowed after release `last`: the next patch, the next minor when
    a default changed, and for a removed key the next major (the next minor while 0.x, where
    a minor version may break, semver's rule for 0.y.z)."""
    if removed and last.major >= 1:
        return Version(f"{last.major + 1}.0.0")
    if changed or removed:
        return Version(f"{last.major}.{last.minor + 1}.0")
    return Version(f"{last.major}.{last.minor}.{last.micro + 1}")


def upgrade_notes(repo: Path) -> list[tuple[str, str]]:
    """(from, to) of every note in docs/upgrading.md's version notes; from may end in .x."""
    return [(m["old"], m["new"]) for m in _NOTE.finditer((repo / UPGRADING).read_text())]


def missing_upgrade_notes(repo: Path, versions: list[str]) -> list[str]:
    """ "A → B" for each pair of consecutive versions (since NOTES_SINCE) without a note."""
    notes = upgrade_notes(repo)
    ordered = sorted({Version(v) for v in versions})
    missing = []
    for old, new in itertools.pairwise(ordered):
        if new <= NOTES_SINCE:
            continue
        covered = any(Version(to) == new and _matches(frm, old) for frm, to in notes)
        if not covered:
            missing.append(f"{old} → {new}")
    return missing


def _matches(pattern: str, version: Version) -> bool:
    if pattern.endswith(".x"):
        major, minor = pattern[:-2].split(".")
        return (version.major, version.minor) == (int(major), int(minor))
    return Version(pattern) == version

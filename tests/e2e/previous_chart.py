"""The chart a user upgrades from: the previous chart version, taken from git.

The previous version is the highest `version:` below the working tree's that
charts/trainyard/Chart.yaml has had in the history of HEAD. Its source is the release tag
`trainyard-<version>` (chart-releaser's naming) or `v<version>` when one exists; otherwise the
last commit with that version, i.e. the chart just before the bump (HEAD while the bump is
uncommitted), which is what a user installing from the repository had. The chart is exported
with `git archive` (the committed tree only, nothing from the working tree).
"""

from __future__ import annotations

import io
import subprocess
import tarfile
from dataclasses import dataclass
from pathlib import Path

import yaml
from packaging.version import InvalidVersion, Version

CHART_PATH = "charts/trainyard"


@dataclass(frozen=True)
class PreviousChart:
    version: str
    rev: str  # a commit id
    source: str  # how it was found, for messages: "tag trainyard-0.1.0" / "commit abc1234"


class NoPreviousReleaseError(Exception):
    pass


def _git(repo: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-C", str(repo), *args], capture_output=True, text=True, check=True, timeout=60
    ).stdout


def _version_at(repo: Path, rev: str) -> str | None:
    try:
        text = _git(repo, "show", f"{rev}:{CHART_PATH}/Chart.yaml")
    except subprocess.CalledProcessError:
        return None
    version = (yaml.safe_load(text) or {}).get("version")
    return str(version) if version is not None else None


def find(repo: Path, current: str) -> PreviousChart:
    """The previous release of the chart; NoPreviousReleaseError says why there is none."""
    try:
        now = Version(current)
    except InvalidVersion as exc:
        raise NoPreviousReleaseError(
            f"the working tree's chart version {current!r}: {exc}"
        ) from None
    # Commits that changed Chart.yaml, children before parents.
    commits = _git(
        repo, "log", "--topo-order", "--format=%H", "HEAD", "--", f"{CHART_PATH}/Chart.yaml"
    ).split()
    newest_commit_of: dict[Version, int] = {}
    for index, commit in enumerate(commits):
        text = _version_at(repo, commit)
        try:
            version = Version(text) if text else None
        except InvalidVersion:
            continue
        if version is not None and version < now:
            newest_commit_of.setdefault(version, index)
    if not newest_commit_of:
        raise NoPreviousReleaseError(
            f"no previous release: {CHART_PATH}/Chart.yaml has had no version below {current} "
            "in the git history of HEAD"
        )
    version = max(newest_commit_of)
    for tag in (f"trainyard-{version}", f"v{version}"):
        try:
            tagged = _git(repo, "rev-parse", "--verify", "--quiet", f"refs/tags/{tag}^{{commit}}")
        except subprocess.CalledProcessError:
            continue  # no such tag
        if _version_at(repo, tagged.strip()) == str(version):
            return PreviousChart(str(version), tagged.strip(), f"tag {tag}")
    # The last commit with that version: the parent of the commit that changed it, or HEAD
    # itself when the bump is not committed yet.
    index = newest_commit_of[version]
    rev = f"{commits[index - 1]}^" if index else "HEAD"
    commit = _git(repo, "rev-parse", "--verify", f"{rev}^{{commit}}").strip()
    return PreviousChart(str(version), commit, f"commit {commit[:12]} (no release tag)")


def at(repo: Path, rev: str) -> PreviousChart:
    """The chart at an explicit revision (--previous-chart)."""
    try:
        commit = _git(repo, "rev-parse", "--verify", f"{rev}^{{commit}}").strip()
    except subprocess.CalledProcessError:
        raise NoPreviousReleaseError(f"--previous-chart {rev}: no such git revision") from None
    version = _version_at(repo, commit)
    if version is None:
        raise NoPreviousReleaseError(f"--previous-chart {rev}: it has no {CHART_PATH}/Chart.yaml")
    return PreviousChart(version, commit, f"--previous-chart {rev}")


def export(repo: Path, previous: PreviousChart, dest: Path) -> Path:
    """The chart directory (with its ci/ values) at previous.rev, under dest; its path."""
    archive = subprocess.run(
        ["git", "-C", str(repo), "archive", "--format=tar", previous.rev, CHART_PATH],
        capture_output=True,
        check=True,
        timeout=120,
    ).stdout
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(dest, filter="data")
    return dest / CHART_PATH

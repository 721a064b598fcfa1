"""The chart a user upgrades from: the last release, or the previous chart version, from git.

Releases (docs/releasing.md) are recorded in CHANGELOG.md: "## [<version>] - <date>" and the
git tree id of charts/trainyard at the release ("Chart tree: `<id>`"), so a release is found
by its content, with or without its tag (CI clones may carry no tags).

Without releases:
The previous version is the highest `version:` below the working tree's that
charts/trainyard/Chart.yaml has had in the history of HEAD. Its source is the release tag
`trainyard-<version>` (chart-releaser's naming) or `v<version>` when one exists; otherwise the
last commit with that version, i.e. the chart just before the bump (HEAD while the bump is
uncommitted), which is what a user installing from the repository had. The chart is exported
with `git archive` (the committed tree only, nothing from the working tree).
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import subprocess
import tarfile
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import yaml
from packaging.version import InvalidVersion, Version

CHART_PATH = "charts/trainyard"
CHANGELOG = "CHANGELOG.md"
_RELEASE = re.compile(
    r"^## \[(?P<version>[^\]]+)\] - (?P<date>\d{4}-\d\d-\d\d)\s*\n+"
    r"Chart tree: `(?P<tree>[0-9a-f]{40})`",
    re.MULTILINE,
)
_ENTRY = re.compile(
    r"^## \[(?P<version>[^\]]+)\] - (?P<state>unreleased|\d{4}-\d\d-\d\d)", re.MULTILINE
)


@dataclass(frozen=True)
class Release:
    version: str
    tree: str  # git tree id of charts/trainyard at the release


def releases(repo: Path) -> list[Release]:
    """The released chart versions recorded in CHANGELOG.md, oldest first."""
    text = (repo / CHANGELOG).read_text()
    found = [Release(m["version"], m["tree"]) for m in _RELEASE.finditer(text)]
    return sorted(found, key=lambda r: Version(r.version))


def changelog_entries(repo: Path) -> dict[str, str]:
    """version -> "unreleased" or the release date, for every CHANGELOG.md entry."""
    return {m["version"]: m["state"] for m in _ENTRY.finditer((repo / CHANGELOG).read_text())}


@contextlib.contextmanager
def throwaway_index(repo: Path) -> Iterator[Callable[..., str]]:
    """A `git` of `repo` whose index is a temporary file: the working tree can be staged and
    read as git would commit it, without touching the real index."""
    with tempfile.TemporaryDirectory() as tmp:
        env = {**os.environ, "GIT_INDEX_FILE": str(Path(tmp) / "index")}

        def git(*args: str) -> str:
            return subprocess.run(
                ["git", "-C", str(repo), *args],
                capture_output=True, text=True, check=True, timeout=60, env=env,
            ).stdout  # fmt: skip

        yield git


def working_tree_id(repo: Path) -> str:
    """The git tree id charts/trainyard would have if the working tree were committed now
    (untracked files included, ignored ones not)."""
    with throwaway_index(repo) as git:
        git("read-tree", "--empty")
        git("add", "--all", "--", CHART_PATH)
        return git("write-tree", f"--prefix={CHART_PATH}/").strip()


def last_release(repo: Path) -> PreviousChart:
    """The commit of the newest release CHANGELOG.md records: what the upgrade test starts from."""
    released = releases(repo)
    if not released:
        raise NoPreviousReleaseError(f"{CHANGELOG} records no release (docs/releasing.md)")
    return release_commit(repo, released[-1])


def release_commit(repo: Path, release: Release) -> PreviousChart:
    """A commit holding the released chart: its tag if that matches, else the newest commit of
    HEAD's history whose charts/trainyard tree is the recorded one."""
    tag = f"trainyard-{release.version}"
    with_tag = subprocess.run(
        ["git", "-C", str(repo), "rev-parse", "--verify", "--quiet", f"refs/tags/{tag}^{{commit}}"],
        capture_output=True, text=True, check=False, timeout=60,
    ).stdout.strip()  # fmt: skip
    if with_tag and _tree_at(repo, with_tag) == release.tree:
        return PreviousChart(release.version, with_tag, f"release tag {tag}")
    for commit in git_output(repo, "rev-list", "HEAD", "--", CHART_PATH).split():
        if _tree_at(repo, commit) == release.tree:
            return PreviousChart(
                release.version, commit, f"release {release.version} ({commit[:12]})"
            )
    raise NoPreviousReleaseError(
        f"release {release.version}: no commit of HEAD has its chart tree {release.tree}"
    )


def _tree_at(repo: Path, commit: str) -> str | None:
    try:
        return git_output(repo, "rev-parse", f"{commit}:{CHART_PATH}").strip()
    except subprocess.CalledProcessError:
        return None


@dataclass(frozen=True)
class PreviousChart:
    version: str
    rev: str  # a commit id
    source: str  # how it was found, for messages: "tag trainyard-0.1.0" / "commit abc1234"


class NoPreviousReleaseError(Exception):
    pass


def git_output(repo: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-C", str(repo), *args], capture_output=True, text=True, check=True, timeout=60
    ).stdout


def _version_at(repo: Path, rev: str) -> str | None:
    try:
        text = git_output(repo, "show", f"{rev}:{CHART_PATH}/Chart.yaml")
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
    commits = git_output(
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
            tagged = git_output(
                repo, "rev-parse", "--verify", "--quiet", f"refs/tags/{tag}^{{commit}}"
            )
        except subprocess.CalledProcessError:
            continue  # no such tag
        if _version_at(repo, tagged.strip()) == str(version):
            return PreviousChart(str(version), tagged.strip(), f"tag {tag}")
    # The last commit with that version: the parent of the commit that changed it, or HEAD
    # itself when the bump is not committed yet.
    index = newest_commit_of[version]
    rev = f"{commits[index - 1]}^" if index else "HEAD"
    commit = git_output(repo, "rev-parse", "--verify", f"{rev}^{{commit}}").strip()
    return PreviousChart(str(version), commit, f"commit {commit[:12]} (no release tag)")


def at(repo: Path, rev: str) -> PreviousChart:
    """The chart at an explicit revision (--previous-chart)."""
    try:
        commit = git_output(repo, "rev-parse", "--verify", f"{rev}^{{commit}}").strip()
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

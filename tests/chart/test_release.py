"""Releases of the chart (docs/releasing.md): a changed chart needs a new version."""

from __future__ import annotations

import tomllib

import pytest
import yaml
from packaging.version import Version

import trainyard
from tests.e2e import previous_chart, release_rules

from .conftest import CHART, REPO

pytestmark = pytest.mark.chart


def test_a_changed_chart_has_a_version_above_the_last_release() -> None:
    version = str(yaml.safe_load((CHART / "Chart.yaml").read_text())["version"])
    released = previous_chart.releases(REPO)
    assert released, "CHANGELOG.md records no release (see docs/releasing.md)"
    last = released[-1]
    entries = previous_chart.changelog_entries(REPO)
    assert version in entries, f"CHANGELOG.md has no entry for chart {version}"
    if version == last.version:
        tree = previous_chart.working_tree_id(REPO)
        assert tree == last.tree, (
            f"charts/trainyard changed since release {last.version} (tree {last.tree[:12]}, "
            f"now {tree[:12]}) but Chart.yaml's version is still {version}: bump it and add "
            "'## [<version>] - unreleased' to CHANGELOG.md (docs/releasing.md)"
        )
    else:
        assert Version(version) > Version(last.version), (
            f"Chart.yaml's version {version} is not above the last release {last.version}"
        )
        assert entries[version] == "unreleased", f"chart {version} is already released"


def test_every_recorded_release_is_in_the_history() -> None:
    for release in previous_chart.releases(REPO):
        assert previous_chart.release_commit(REPO, release).version == release.version


def _release_commits() -> list[tuple[previous_chart.Release, str]]:
    return [
        (release, previous_chart.release_commit(REPO, release).rev)
        for release in previous_chart.releases(REPO)
    ]


def test_changed_images_run_under_a_new_app_version() -> None:
    """Image tags are immutable: a node that cached <repository>:<appVersion> must never run
    old code under a new chart. The images' inputs may differ from a release's only under
    another appVersion."""
    app_version = str(release_rules.chart_meta(REPO)["appVersion"])
    now = release_rules.image_inputs_id(REPO)
    for release, commit in _release_commits():
        if str(release_rules.chart_meta(REPO, commit)["appVersion"]) != app_version:
            continue
        assert release_rules.image_inputs_id(REPO, commit) == now, (
            f"the images' inputs ({', '.join(release_rules.image_inputs(REPO))}) changed since "
            f"release {release.version}, which ran appVersion {app_version}: set a new "
            "appVersion in charts/trainyard/Chart.yaml and the subcharts that carry it "
            "(docs/releasing.md)"
        )


def test_the_package_version_is_the_images_app_version() -> None:
    """The images install the trainyard package: its version says which appVersion it is."""
    package = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["version"]
    assert package == str(release_rules.chart_meta(REPO)["appVersion"]) == trainyard.__version__


def test_a_changed_default_needs_at_least_a_minor_version() -> None:
    version = Version(str(release_rules.chart_meta(REPO)["version"]))
    released = _release_commits()
    assert released, "CHANGELOG.md records no release (see docs/releasing.md)"
    last, commit = released[-1]
    changed, removed = release_rules.changed_defaults(
        release_rules.default_values(REPO, commit), release_rules.default_values(REPO)
    )
    lowest = release_rules.lowest_allowed(Version(last.version), changed, removed)
    if version == Version(last.version):
        return  # the tree is the release (the other test checks it is unchanged)
    assert version >= lowest, (
        f"chart {version} after release {last.version} must be at least {lowest}: "
        + "; ".join([*(f"changed {c}" for c in changed), *(f"removed {r}" for r in removed)])
        + " (docs/releasing.md)"
    )


def test_every_pair_of_versions_has_upgrade_notes() -> None:
    """docs/upgrading.md says what each upgrade needs, from every version since 0.2.0 to the
    next, the unreleased one included."""
    missing = release_rules.missing_upgrade_notes(
        REPO, list(previous_chart.changelog_entries(REPO))
    )
    assert not missing, (
        f"docs/upgrading.md's version notes lack {', '.join(missing)} "
        "(a line '- **<from> → <to>**: …'; <from> may be '<major>.<minor>.x')"
    )

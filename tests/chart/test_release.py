"""Releases of the chart (docs/releasing.md): a changed chart needs a new version."""

from __future__ import annotations

import pytest
import yaml
from packaging.version import Version

from tests.e2e import previous_chart

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

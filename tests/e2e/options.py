"""Command-line options of the kind tests (a pytest plugin, loaded by tests/conftest.py).

Options must be registered before pytest parses the command line, which only the top-level
conftest and plugins can do; tests/e2e/conftest.py is loaded later than that.

pytest-kind registers --kind-bin, --kind-kubectl-bin and --keep-cluster itself; they are added
here only when that plugin is not loaded (e.g. `-p no:kind`), with the same meaning.
"""

from __future__ import annotations

import contextlib

import pytest

from .images import REPO
from .prereqs import DEFAULT_HELM


def pytest_addoption(parser: pytest.Parser) -> None:
    kind = parser.getgroup("kind")  # pytest-kind's group: a clash is reported there
    with contextlib.suppress(ValueError):
        kind.addoption(
            "--kind-bin",
            default=None,
            help="kind binary (>= 0.27) to use instead of the one on PATH; nothing is downloaded",
        )
    with contextlib.suppress(ValueError):
        kind.addoption(
            "--kind-kubectl-bin",
            default=None,
            help="kubectl binary to use instead of the one on PATH; nothing is downloaded",
        )
    with contextlib.suppress(ValueError):
        kind.addoption(
            "--keep-cluster",
            action="store_true",
            help="keep the kind cluster (and the releases in it) after the tests",
        )
    group = parser.getgroup("trainyard e2e", "trainyard end-to-end tests on kind")
    group.addoption(
        "--helm-bin",
        default=None,
        help=f"helm binary for install/upgrade/test (default: {DEFAULT_HELM.relative_to(REPO)}, "
        "from `make tools`)",
    )
    group.addoption(
        "--kind-cluster-name",
        default="trainyard-e2e",
        help="name of the kind cluster the tests create (or reuse, if it exists)",
    )
    group.addoption(
        "--e2e-artifacts",
        default=str(REPO / ".trainyard" / "e2e-artifacts"),
        help="where a failed kind test leaves pod states, events and logs (one folder per test)",
    )
    group.addoption(
        "--previous-chart",
        default=None,
        metavar="REV",
        help="git revision (tag or commit) of the chart the upgrade test starts from (default: "
        "the previous chart version's release tag, else its last commit; see previous_chart.py)",
    )
    group.addoption(
        "--build-images-arg",
        action="append",
        default=[],
        metavar="ARG",
        help="extra argument for scripts/build-images, repeatable, e.g. "
        "--build-images-arg=--base-image=python=trainyard-local/python:3.11-slim-bookworm",
    )
    group.addoption(
        "--kind-offline",
        choices=("auto", "always", "never"),
        default="auto",
        help="use the toolchain of scripts/kind-offline (kind, kubectl, node and chart images "
        "built here): auto = when the registry path cannot run and its cache is warm",
    )
    group.addoption(
        "--no-image-build",
        action="store_true",
        help="do not run scripts/build-images: use the trainyard images already in Docker",
    )

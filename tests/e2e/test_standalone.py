"""The end-to-end scenario against the standalone runtime (`trainyard up`).

The same journey as on kind; only the endpoints' origin differs: processes on
this machine instead of port-forwards into a cluster.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.e2e.figures import timed
from tests.e2e.scenario import Endpoints, laptop_endpoints, run_scenario
from trainyard.standalone import runtime

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def standalone(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Endpoints]:
    workdir = tmp_path_factory.mktemp("standalone-e2e")
    stack = runtime.start(workdir)
    try:
        yield laptop_endpoints(workdir)
    finally:
        stack.stop()


def test_user_journey_on_the_standalone_platform(standalone: Endpoints) -> None:
    with timed("journey on the standalone runtime"):
        run_scenario(standalone, timeout_s=900)

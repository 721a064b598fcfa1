"""Who owns the model server's replica count (issue 13, item 6).

The deploy step scales the serving Deployment (0 until a champion exists, then
serving.activeReplicas, 0 again when the champion is withdrawn). The chart renders `replicas`
on every install and upgrade, as the live Deployment's count when one exists (`lookup`) and as
serving.replicas (0) on a first install:

- Helm 3 (client-side three-way merge): the rendered count equals the live one, so the patch
  leaves it alone. Omitting the field instead would delete it (it was in the last release's
  manifest), and the API server would default it to 1 with no champion to serve.
- Helm 4 (server-side apply): an apply that sets a field to the value it already has does not
  conflict with its other owner (the deploy step's update); the two share it. Omitting it would
  release Helm's ownership and, before the first deploy, reset it to 1 just the same.

These tests render the upgrade with both Helm versions against a fake API server that holds
the live Deployment (`helm template --dry-run=server --is-upgrade`: lookups answered, nothing
written), which is what `helm upgrade` renders.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from .conftest import CHART, NAMESPACE, RELEASE, one, render_chart, tool
from .fakekube import fake_kube

pytestmark = pytest.mark.chart

SERVING = f"{RELEASE}-serving"
SHOW = "charts/serving/templates/deployment.yaml"


def live_deployment(replicas: int) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": SERVING, "namespace": NAMESPACE},
        "spec": {"replicas": replicas},
    }


def render_against(helm: str, live: list[dict[str, Any]], tmp: Path, upgrade: bool = True) -> Any:
    """The serving Deployment as `helm upgrade` would render it with `live` in the cluster;
    also the requests the fake answered."""
    with fake_kube(live, tmp, NAMESPACE) as fake:
        args = [RELEASE, str(CHART), "--namespace", NAMESPACE, "--show-only", SHOW]
        if upgrade:
            args.append("--is-upgrade")
        return yaml.safe_load(fake.helm_template(tool(helm), args)), list(fake.requests)


@pytest.mark.parametrize("live_replicas", [0, 1, 3])
def test_upgrade_renders_the_live_replica_count(
    helm: str, live_replicas: int, tmp_path: Path
) -> None:
    deployment, requests = render_against(helm, [live_deployment(live_replicas)], tmp_path)
    assert deployment["spec"]["replicas"] == live_replicas
    # the count came from the live object, and the render wrote nothing
    assert ("GET", f"/apis/apps/v1/namespaces/{NAMESPACE}/deployments/{SERVING}") in requests
    assert all(method == "GET" for method, _ in requests), requests


def test_first_install_renders_zero_replicas(helm: str, tmp_path: Path) -> None:
    """Nothing to serve before the first champion: 0 (never omitted: the API default is 1)."""
    deployment, _ = render_against(helm, [], tmp_path, upgrade=False)
    assert deployment["spec"]["replicas"] == 0
    assert deployment["metadata"]["annotations"]["trainyard.io/replicas"] == "1"


def test_replicas_is_always_rendered(helm: str) -> None:
    """Without a cluster (helm template, Argo CD) there is no live count: serving.replicas."""
    deployment = one(render_chart(helm=helm), "Deployment", SERVING)
    assert deployment["spec"]["replicas"] == 0
    custom = render_chart({"serving": {"replicas": 2}}, helm=helm)
    assert one(custom, "Deployment", SERVING)["spec"]["replicas"] == 2


def test_the_fake_api_server_is_what_makes_the_difference(helm: str, tmp_path: Path) -> None:
    """Same command, other live count: the render follows the live object, not the values."""
    three, _ = render_against(helm, [live_deployment(3)], tmp_path)
    five, _ = render_against(helm, [live_deployment(5)], tmp_path)
    assert (three["spec"]["replicas"], five["spec"]["replicas"]) == (3, 5)

"""The user journey (tests/e2e/scenario.py) on a kind cluster, installed with the chart.

Needs Docker with registry access (node and base images), kind >= 0.27, kubectl and helm; without
them every test here is skipped with the reason (see conftest.py). `make e2e-kind` runs them.
Each class installs a fresh release: the journey assumes a platform without a champion.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml
from airflow.providers.cncf.kubernetes.operators.pod import KubernetesPodOperator
from kubernetes import client as kube_client
from kubernetes import config as kube_config
from packaging.version import Version

from trainyard.pipeline import alerts

from .. import budget
from . import images, previous_chart
from .figures import record, timed
from .kindenv import CHART, GPU_NODE_LABEL, KIND_VALUES, TEAMS_VALUES, KindEnv
from .kube import PodRecord, PodRecorder
from .release import InstalledRelease
from .scenario import (
    DAG_ID,
    MISSING_IMAGE_DAG,
    TEAM_DAG,
    TEAM_MODEL,
    TEAM_SERVER,
    Endpoints,
    PipelinesState,
    run_first_day,
    run_scenario,
    run_teams_pipelines,
    run_upgrade_check,
    teams_values_changed,
    wait_for_dag_gone,
)
from .timeline import worker_pods, write_run_tables
from .trainer_rights import assert_trainer_rights, trainer_endpoints

# Image builds, a cluster and an install come first; one journey takes minutes on kind.
pytestmark = [pytest.mark.e2e, pytest.mark.timeout(3 * 3600)]

TRAINER_PODS = "app.kubernetes.io/component=trainer"
CHART_APP_VERSION = str(yaml.safe_load((CHART / "Chart.yaml").read_text())["appVersion"])
JOURNEY_TIMEOUT_S = 1800


def journey(
    release: InstalledRelease,
    endpoints: Endpoints,
    full: bool = True,
    run_ids: list[str] | None = None,
) -> None:
    """The scenario on a fresh release (full: both days; else the first day, which trains and
    deploys); on one that already ran it, the one-more-run check. run_ids: the DAG runs it
    triggered are appended there."""
    try:
        if release.scenario_runs:
            run_upgrade_check(endpoints, timeout_s=JOURNEY_TIMEOUT_S, run_ids=run_ids)
        elif full:
            run_scenario(endpoints, timeout_s=JOURNEY_TIMEOUT_S, run_ids=run_ids)
        else:
            run_first_day(endpoints, timeout_s=JOURNEY_TIMEOUT_S, run_ids=run_ids)
    finally:
        release.scenario_runs += 1  # even a failed run leaves state behind


def recorded_journey(
    release: InstalledRelease, full: bool = True, artifacts: Path | None = None
) -> list[PodRecord]:
    """Run the journey while recording every trainer pod (succeeded ones are deleted at once)
    and every Airflow worker pod; with `artifacts`, each run's timeline (where its time went,
    per task and phase: tests/e2e/timeline.py) goes into artifacts/timelines and the figures."""
    recorder = PodRecorder(release.kube, release.training_namespace, TRAINER_PODS)
    workers = PodRecorder(release.kube, release.namespace, worker_pods(release.release_name))
    days = "one more day" if release.scenario_runs else "both days" if full else "first day"
    run_ids: list[str] = []
    endpoints: Endpoints | None = None
    try:
        with timed(f"journey on kind, {days} ({release.namespace})"):
            endpoints = release.endpoints()
            journey(release, endpoints, full, run_ids)
    finally:
        recorder.close()
        workers.close()
        if artifacts is not None and endpoints is not None:
            write_run_tables(
                endpoints.airflow, run_ids, workers.snapshot(), recorder.snapshot(),
                artifacts / "timelines", f"{release.namespace} {days}",
            )  # fmt: skip
    if recorder.first_running_s is not None:
        record(f"journey start to first trainer pod Running ({release.namespace})",
               recorder.first_running_s)  # fmt: skip
    pods = recorder.snapshot()
    assert pods, f"no trainer pod was seen in {release.training_namespace}"
    return pods


def node_names(kind_env: KindEnv) -> dict[str, str]:
    """node name -> "control-plane" or "gpu-pool"."""
    gpu = kind_env.node(GPU_NODE_LABEL)
    return {
        n["metadata"]["name"]: "gpu-pool" if n["metadata"]["name"] == gpu else "control-plane"
        for n in kind_env.kube.nodes()
    }


def describe(pods: list[PodRecord]) -> str:
    return "\n".join(
        f"{p.name} task={p.task_id} node={p.node} limits={p.limits} phase={p.phase}" for p in pods
    )


SMOKE_NAMESPACE = "trainyard-smoke"


class TestCluster:
    """The cluster itself, before any chart test: nodes Ready, Services resolve through CoreDNS,
    the default StorageClass binds a claim, a pod of a locally built image runs and logs."""

    def test_cluster_runs_pods_with_dns_and_storage(self, kind_env: KindEnv) -> None:
        kube = kind_env.kube
        for node in kube.nodes():
            ready = [c for c in node["status"]["conditions"] if c["type"] == "Ready"]
            assert ready and ready[0]["status"] == "True", node["status"]["conditions"]
        image = next(i for i in images.built_images() if "/trainer:" in i)
        kube.run("delete", "namespace", SMOKE_NAMESPACE, "--ignore-not-found", "--wait=true")
        kube.run("create", "namespace", SMOKE_NAMESPACE)
        try:
            for obj in _smoke_objects(image):
                kube.apply(obj)
            kube.run(
                "wait", "pod/smoke-client", "--namespace", SMOKE_NAMESPACE,
                "--for=jsonpath={.status.phase}=Succeeded", "--timeout=300s",
            )  # fmt: skip
            logs = kube.run("logs", "smoke-client", "--namespace", SMOKE_NAMESPACE)
            claim = kube.get("pvc", "smoke-data", "--namespace", SMOKE_NAMESPACE)
            kube.run(
                "wait", "pod/smoke-stage-error", "--namespace", SMOKE_NAMESPACE,
                "--for=jsonpath={.status.phase}=Failed", "--timeout=300s",
            )  # fmt: skip
            stage_error = _pod_operator_failure(kube.kubeconfig, "smoke-stage-error")
        except Exception:
            kind_env.dump("cluster-smoke", namespaces=[SMOKE_NAMESPACE])
            raise
        finally:
            kube.run("delete", "namespace", SMOKE_NAMESPACE, "--wait=false")
        assert claim["status"]["phase"] == "Bound", claim["status"]
        # The client resolved the Service by name, reached the server through it, and wrote to
        # and read back from the claimed volume.
        assert "resolved smoke-server." in logs, logs
        assert "served: hello from smoke-server" in logs, logs
        assert "volume: written and read" in logs, logs
        # A stage's one error line reaches the pod operator's exception through the kubelet's
        # termination message, and the failure alert picks exactly that line.
        assert alerts.one_line(stage_error) == (
            f"digits validate: error: {MISSING_DATA}: not found"
        ), stage_error


MISSING_DATA = "file:///nonexistent/daily/2026-01-01/data.parquet"


def _pod_operator_failure(kubeconfig: Path, pod_name: str) -> Exception:
    """The exception the KubernetesPodOperator raises for this failed pod (its own cleanup)."""
    api = kube_client.CoreV1Api(kube_config.new_client_from_config(str(kubeconfig)))
    remote_pod = api.read_namespaced_pod(pod_name, SMOKE_NAMESPACE)
    operator = KubernetesPodOperator(
        task_id="smoke", name=pod_name, namespace=SMOKE_NAMESPACE, image="unused",
        config_file=str(kubeconfig), in_cluster=False, on_finish_action="keep_pod",
        base_container_name="base",
    )  # fmt: skip
    try:
        operator.cleanup(remote_pod, remote_pod)
    except Exception as exc:
        return exc
    pytest.fail(f"the pod operator took the failed pod {pod_name} for a success")


def _smoke_objects(image: str) -> list[dict[str, Any]]:
    labels = {"app": "smoke-server"}
    meta = {"namespace": SMOKE_NAMESPACE}
    python = ["python", "-c"]
    server = (
        "import http.server as h\n"
        "class H(h.BaseHTTPRequestHandler):\n"
        "    def do_GET(self):\n"
        "        self.send_response(200); self.end_headers()\n"
        "        self.wfile.write(b'hello from smoke-server')\n"
        "h.HTTPServer(('', 8080), H).serve_forever()\n"
    )
    client = (
        "import socket, time, urllib.request, pathlib\n"
        "name = 'smoke-server.trainyard-smoke.svc.cluster.local'\n"
        "for attempt in range(60):\n"
        "    try:\n"
        "        print('resolved smoke-server.', socket.gethostbyname(name), flush=True)\n"
        "        body = urllib.request.urlopen(f'http://{name}:8080/', timeout=5).read()\n"
        "        break\n"
        "    except OSError as exc:\n"
        "        print('waiting:', exc, flush=True); time.sleep(2)\n"
        "else:\n"
        "    raise SystemExit('no answer from smoke-server')\n"
        "print('served:', body.decode(), flush=True)\n"
        "path = pathlib.Path('/data/check.txt'); path.write_text('ok')\n"
        "assert path.read_text() == 'ok'\n"
        "print('volume: written and read', flush=True)\n"
    )
    pod_spec = {"restartPolicy": "Never", "securityContext": {"fsGroup": 10001}}
    return [
        {
            "apiVersion": "v1",
            "kind": "PersistentVolumeClaim",
            "metadata": {"name": "smoke-data", **meta},
            "spec": {
                "accessModes": ["ReadWriteOnce"],
                "resources": {"requests": {"storage": "64Mi"}},
            },
        },
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "smoke-server", "labels": labels, **meta},
            "spec": {
                "containers": [
                    {
                        "name": "server",
                        "image": image,
                        "imagePullPolicy": "Never",
                        "command": [*python, server],
                        "ports": [{"containerPort": 8080}],
                    }
                ]
            },
        },
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": "smoke-server", **meta},
            "spec": {"selector": labels, "ports": [{"port": 8080, "targetPort": 8080}]},
        },
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "smoke-client", **meta},
            "spec": {
                **pod_spec,
                "containers": [
                    {
                        "name": "client",
                        "image": image,
                        "imagePullPolicy": "Never",
                        "command": [*python, client],
                        "volumeMounts": [{"name": "data", "mountPath": "/data"}],
                    }
                ],
                "volumes": [{"name": "data", "persistentVolumeClaim": {"claimName": "smoke-data"}}],
            },
        },
        {
            # A trainer stage on bad input, its container named and its termination message
            # kept as the DAG's pod tasks have them.
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "smoke-stage-error", **meta},
            "spec": {
                **pod_spec,
                "containers": [
                    {
                        "name": "base",
                        "image": image,
                        "imagePullPolicy": "Never",
                        "command": ["python", "-m", "digits", "validate", "--data", MISSING_DATA],
                        "terminationMessagePolicy": "FallbackToLogsOnError",
                    }
                ],
            },
        },
    ]


def assert_cpu_fallback(pods: list[PodRecord], roles: dict[str, str]) -> None:
    """gpu.enabled=false: every trainer stage ran, none asked for a GPU or tolerated the GPU
    taint, all on the control plane."""
    assert {p.task for p in pods} >= {"validate", "preprocess", "features", "train"}, describe(pods)
    for pod in pods:
        assert not any("nvidia.com" in key for key in pod.limits), describe([pod])
        assert not pod.tolerations or all(
            t.get("key") != "nvidia.com/gpu" for t in pod.tolerations
        ), describe([pod])
        assert roles.get(pod.node) == "control-plane", describe([pod])


def assert_on_the_gpu_pool(
    pods: list[PodRecord], config: dict[str, Any], gpu_worker: str, roles: dict[str, str]
) -> None:
    """gpu.enabled=true: trials ask for the configured GPUs, tolerate the pool's taint, select
    its nodes and land on the GPU worker; every other stage stays off it without a GPU."""
    trials = [p for p in pods if p.task == "train"]
    others = [p for p in pods if p.task != "train"]
    assert trials, describe(pods)
    assert {p.task for p in others} >= {"validate", "preprocess", "features"}, describe(pods)
    for pod in trials:
        assert pod.limits.get("nvidia.com/gpu") == str(config["count"]), describe([pod])
        assert pod.node == gpu_worker, describe([pod])
        for toleration in config["tolerations"]:
            assert toleration in pod.tolerations, describe([pod])
        assert pod.node_selector == config["node_selector"], describe([pod])
    # Only training asks for GPUs; data preparation and evaluation do not.
    for pod in others:
        assert "nvidia.com/gpu" not in pod.limits, describe([pod])
        assert roles.get(pod.node) == "control-plane", describe([pod])


class TestCpuFallback:
    """gpu.enabled=false: the same trainer pods without a GPU request, on the control plane."""

    def test_journey_and_teams_pipelines_complete_though_the_scheduler_is_killed(
        self, cpu_release: InstalledRelease, kind_env: KindEnv
    ) -> None:
        """At once, as on a shared platform:
        - the journey's first day (four trials, the best deployed and served);
        - ci/kind-teams-values.yaml's two teams' specs (global.pipelines.specs), DAGs on the
          cluster: one trains and promotes its own model, served by its own model server, the
          digits model untouched; one names an image that does not exist and fails at once with
          the image error; and a DAG uploaded to the S3 bundle (airflow.dagBundles), which
          appears without an image or an upgrade and runs.
        While the digits trials train, the scheduler pod dies. Its replacement adopts the
        running task pods (KubernetesExecutor adoption, durable pod operators) and every run
        ends as it should, with every assertion of the journey. The second day's gate (a
        candidate below the minimum is not deployed, the champion and the served model stay)
        is checked by the upgrade test's run after its upgrade."""
        release = cpu_release
        selector = f"app.kubernetes.io/instance={release.release_name},"
        selector += "app.kubernetes.io/component=scheduler"
        before = {p["metadata"]["uid"] for p in release.pods("scheduler")}
        assert before, "no scheduler pod"
        recorder = PodRecorder(release.kube, release.training_namespace, TRAINER_PODS)
        workers = PodRecorder(release.kube, release.namespace, worker_pods(release.release_name))
        run_ids: list[str] = []
        team_runs: dict[str, str] = {}
        endpoints = release.endpoints()
        try:
            with timed(
                f"journey on kind, first day, with the teams' pipelines, scheduler killed "
                f"({release.namespace})"
            ):
                run = Background(lambda: journey(release, endpoints, False, run_ids))
                teams = Background(lambda: team_runs.update(run_teams_pipelines(endpoints)))
                train = recorder.wait_for(
                    lambda p: p.task == "train" and p.labels.get("dag_id") == DAG_ID
                    and bool(p.node),
                    JOURNEY_TIMEOUT_S, run.done,
                )  # fmt: skip
                if train is None:
                    if run.done.is_set():
                        run.join(0)  # the journey's own failure, if it failed
                        pytest.fail("the run ended before any train pod started: nothing killed")
                    pytest.fail(f"no train pod started within {JOURNEY_TIMEOUT_S} s")
                release.kube.run(
                    "delete", "pod", "--namespace", release.namespace, "--selector", selector,
                    "--wait=false",
                )  # fmt: skip
                run.join(2 * JOURNEY_TIMEOUT_S)
                teams.join(2 * JOURNEY_TIMEOUT_S)
        finally:
            recorder.close()
            workers.close()
            folder = kind_env.artifacts / "timelines"
            worker_pods_seen, trainer_pods_seen = workers.snapshot(), recorder.snapshot()
            write_run_tables(
                endpoints.airflow, run_ids, worker_pods_seen, trainer_pods_seen,
                folder, f"{release.namespace} scheduler killed",
            )  # fmt: skip
            if TEAM_DAG in team_runs:
                write_run_tables(
                    endpoints.airflow, [team_runs[TEAM_DAG]], worker_pods_seen,
                    trainer_pods_seen, folder, f"{release.namespace} {TEAM_DAG}", TEAM_DAG,
                )  # fmt: skip
        after = release.pods("scheduler")
        assert after and not ({p["metadata"]["uid"] for p in after} & before), (
            "the scheduler pod was not replaced"
        )
        if recorder.first_running_s is not None:
            record(f"journey start to first trainer pod Running ({release.namespace})",
                   recorder.first_running_s)  # fmt: skip
        pods = recorder.snapshot()
        assert pods, f"no trainer pod was seen in {release.training_namespace}"
        assert_cpu_fallback(pods, node_names(kind_env))

    def test_trainer_pods_hold_only_the_rights_of_their_job(
        self, cpu_release: InstalledRelease
    ) -> None:
        """The journey's trainers ran on the chart's trainer identity: it reads the datasets,
        writes under the work prefix and may not read Airflow's logs, delete a bucket, touch
        the datasets, create buckets, move another model's alias or read MLflow's users."""
        assert cpu_release.trainer_identity_is_managed()
        endpoints = cpu_release.endpoints()
        trainer = trainer_endpoints(endpoints, cpu_release.trainer_credentials())
        assert_trainer_rights(endpoints, trainer, cpu_release.platform_config()["work_root"])

    def test_adding_and_removing_a_pipeline_leaves_the_others_alone(
        self, cpu_release: InstalledRelease, tmp_path: Path
    ) -> None:
        """A `helm upgrade` that removes one team's spec and adds another: the new DAG appears,
        the removed one goes, and every other pipeline keeps its runs and its champion (and
        the served team model its server)."""
        endpoints = cpu_release.endpoints()
        dags = [DAG_ID, TEAM_DAG]
        models = [endpoints.model_name, TEAM_MODEL]
        before = PipelinesState.read(endpoints, dags, models)
        assert before.runs[TEAM_DAG], "the first test ran no team pipeline"
        server = cpu_release.kube.get("deployment", f"{cpu_release.release_name}-{TEAM_SERVER}",
                                      "--namespace", cpu_release.namespace)  # fmt: skip
        changed = teams_values_changed(
            TEAMS_VALUES, removed=MISSING_IMAGE_DAG, added="team_new", out=tmp_path / "teams.yaml"
        )
        with timed(f"helm upgrade: a pipeline removed, one added ({cpu_release.namespace})"):
            cpu_release.deploy(CHART, [KIND_VALUES, changed], upgrade=True)
        with timed(
            f"the added pipeline's DAG listed, the removed one gone ({cpu_release.namespace})"
        ):
            api = endpoints.airflow()
            api.wait_for_dag("team_new", timeout_s=300)
            wait_for_dag_gone(api, MISSING_IMAGE_DAG)
        after = PipelinesState.read(endpoints, dags, models)
        assert after == before, (before, after)
        still = cpu_release.kube.get("deployment", server["metadata"]["name"],
                                     "--namespace", cpu_release.namespace)  # fmt: skip
        assert still["metadata"]["uid"] == server["metadata"]["uid"], (
            "the team's server was replaced"
        )
        assert still["spec"]["replicas"] == server["spec"]["replicas"], "its replicas changed"

    def test_helm_test(self, cpu_release: InstalledRelease) -> None:
        out = cpu_release.helm_test()  # exits non-zero (HelmError) when a test pod fails
        phases = re.findall(r"^Phase:\s+(\w+)", out, re.MULTILINE)
        assert len(phases) >= 3 and set(phases) == {"Succeeded"}, out


@dataclass(frozen=True)
class UpgradeTarget:
    chart: Path
    values: Path
    # The GPU path on top: the upgraded release trains on the fake GPU pool (one install and
    # one run for what were two of each: an upgrade and a fake-GPU release).
    gpu_values: Path
    version: str
    app_version: str


@pytest.fixture(scope="class")
def previous_release(
    request: pytest.FixtureRequest, kind_env: KindEnv, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[InstalledRelease]:
    """A release of the last chart release (CHANGELOG.md, docs/releasing.md), or of
    --previous-chart, on its own kind values."""
    rev = request.config.getoption("previous_chart")
    try:
        if rev:
            previous = previous_chart.at(images.REPO, str(rev))
        else:
            previous = previous_chart.last_release(images.REPO)
    except previous_chart.NoPreviousReleaseError as exc:
        pytest.fail(f"no chart to upgrade from: {exc}")
    chart = previous_chart.export(images.REPO, previous, tmp_path_factory.mktemp("previous"))
    values = chart / "ci" / "kind-values.yaml"
    # It runs this tree's images under its own appVersion's tags (building each release's
    # images would double the build): tagged in the nodes, not loaded again.
    app_version = str(yaml.safe_load((chart / "Chart.yaml").read_text())["appVersion"])
    if app_version != CHART_APP_VERSION:
        kind_env.tag_images(
            {ref: images.retagged(ref, CHART_APP_VERSION, app_version) for ref in kind_env.built}
        )
    # Its images, with the cluster's values, must be among those loaded.
    cluster_values = tmp_path_factory.mktemp("values") / "cluster-values.yaml"
    cluster_values.write_text(json.dumps(kind_env.values))  # JSON is YAML
    rendered = _render(kind_env, chart, [values, cluster_values])
    missing = {images.normalize(i) for i in images.rendered_images(rendered)} - kind_env.images
    if missing:
        pytest.fail(
            f"the release {previous.version} ({previous.source}) needs images this tree does "
            f"not build: {', '.join(sorted(missing))}"
        )
    yield from kind_env.release(
        "upgrade",
        [values],
        chart=chart,
        chart_source=f"chart {previous.version} from {previous.source}",
    )


@pytest.fixture(scope="class")
def upgrade_target(
    kind_env: KindEnv, previous_release: InstalledRelease, tmp_path_factory: pytest.TempPathFactory
) -> UpgradeTarget:
    """What the release is upgraded to, as a platform team's next upgrade looks: the working
    tree's chart (its version; the next patch version while the tree is still the release)
    with a new appVersion and its image tags (this tree's images, tagged in the nodes) and
    changed values."""
    meta = yaml.safe_load((CHART / "Chart.yaml").read_text())
    released = previous_chart.releases(images.REPO)
    chart = tmp_path_factory.mktemp("next") / "trainyard"
    shutil.copytree(CHART, chart)
    if released and previous_chart.working_tree_id(images.REPO) == released[-1].tree:
        version = Version(str(meta["version"]))
        meta["version"] = f"{version.major}.{version.minor}.{version.micro + 1}"
    meta["appVersion"] = f"{meta['appVersion']}-next"
    (chart / "Chart.yaml").write_text(yaml.safe_dump(meta, sort_keys=False))
    # The subcharts that run the trainyard images carry the same appVersion (a chart test keeps
    # them equal): their images follow their own Chart.AppVersion.
    for sub in (chart / "charts").glob("*/Chart.yaml"):
        sub_meta = yaml.safe_load(sub.read_text())
        if str(sub_meta.get("appVersion")) == CHART_APP_VERSION:
            sub_meta["appVersion"] = meta["appVersion"]
            sub.write_text(yaml.safe_dump(sub_meta, sort_keys=False))
    values = chart / "ci" / "kind-values.yaml"
    changed = yaml.safe_load(values.read_text())
    changed["pipeline"]["maxParallelTrials"] = 3
    changed["mlflow"]["resources"]["limits"]["memory"] = "2Gi"
    values.write_text(yaml.safe_dump(changed, sort_keys=False))
    kind_env.tag_images(
        {ref: images.retagged(ref, CHART_APP_VERSION, meta["appVersion"]) for ref in kind_env.built}
    )
    gpu_values = chart / "ci" / "kind-fake-gpu-values.yaml"
    return UpgradeTarget(chart, values, gpu_values, meta["version"], meta["appVersion"])


def _render(kind_env: KindEnv, chart: Path, values: list[Path]) -> list[dict[str, Any]]:
    args = [str(kind_env.helm), "template", "trainyard", str(chart)]
    for path in values:
        args += ["--values", str(path)]
    out = subprocess.run(args, capture_output=True, text=True, check=True, timeout=120).stdout
    return [doc for doc in yaml.safe_load_all(out) if doc]


class TestUpgrade:
    def test_upgrade_from_the_last_release_keeps_data_and_secrets_then_trains_on_gpus(
        self,
        previous_release: InstalledRelease,
        upgrade_target: UpgradeTarget,
        gpu_worker: str,
        kind_env: KindEnv,
    ) -> None:
        """The last release, CPU only, runs a day; the upgrade to this chart keeps its data,
        Secrets, volumes and champion, turns the GPU path on (a worker that advertises
        nvidia.com/gpu without having one), and the next day's trials run on that pool."""
        release = previous_release
        endpoints = release.endpoints()
        # The journey on the release, with this tree's images (the same appVersion tags): what
        # a user has running before upgrading the chart (one trial: a champion to keep; the
        # four-trial first day is the CPU journey's).
        run_ids: list[str] = []
        try:
            with timed(f"journey on kind, first day, one trial ({release.namespace})"):
                run_first_day(endpoints, JOURNEY_TIMEOUT_S, run_ids, one_trial=True)
            release.scenario_runs += 1
        except Exception as exc:
            pytest.fail(
                f"the journey failed BEFORE the upgrade, on {release.chart_source} with this "
                f"tree's images: {type(exc).__name__}: {exc}"
            )
        finally:  # Airflow's times only: where the last release's run spends its time
            write_run_tables(
                endpoints.airflow, run_ids, [], [], kind_env.artifacts / "timelines",
                f"{release.namespace} before the upgrade",
            )  # fmt: skip
        before = release.state()
        objects_before = s3_objects(endpoints)
        champion_before = champion_version(endpoints)

        with timed(f"helm upgrade to this chart, GPU path on ({release.namespace})"):
            release.deploy(
                upgrade_target.chart,
                [upgrade_target.values, upgrade_target.gpu_values],
                upgrade=True,
            )
        release.chart_source = f"chart {upgrade_target.version} at {upgrade_target.chart}"

        after = release.state()
        changed = [
            name for name, data in before["secrets"].items() if after["secrets"].get(name) != data
        ]
        assert not changed, f"helm upgrade changed or removed Secrets: {changed}"
        assert after["volumes"].items() >= before["volumes"].items(), (before, after)
        endpoints = release.endpoints()
        objects_after = s3_objects(endpoints)
        lost = sorted(set(objects_before) - set(objects_after))
        assert not lost, f"objects lost by the upgrade: {lost[:20]}"
        # Task logs may still be rewritten by a task that was running; everything else is data.
        changed = [
            key
            for key, etag in objects_before.items()
            if objects_after[key] != etag and not key.startswith(endpoints.logs_url)
        ]
        assert not changed, f"objects changed by the upgrade: {changed[:20]}"
        assert champion_version(endpoints) == champion_before
        history = release.helm_run("history", release.release_name, "--output", "yaml")
        assert yaml.safe_load(history)[-1]["chart"] == f"trainyard-{upgrade_target.version}"
        # The new appVersion's images run (the platform rolled to them).
        running = {
            c["image"]
            for pod in release.kube.get("pods", "--namespace", release.namespace)["items"]
            for c in pod["spec"]["containers"]
        }
        new_images = {i for i in running if i.endswith(f":{upgrade_target.app_version}")}
        assert {i.rsplit(":", 1)[0] for i in new_images} >= {
            "trainyard/airflow",
            "trainyard/mlflow",
        }, running
        pods = recorded_journey(release, artifacts=kind_env.artifacts)
        config = release.platform_config()["gpu"]
        assert config["enabled"], config
        assert_on_the_gpu_pool(pods, config, gpu_worker, node_names(kind_env))


def s3_objects(endpoints: Endpoints) -> dict[str, str]:
    """s3://bucket/key -> ETag for every object in every bucket."""
    import boto3  # noqa: PLC0415

    s3 = boto3.client(
        "s3",
        endpoint_url=endpoints.s3_endpoint,
        aws_access_key_id=endpoints.s3_access_key,
        aws_secret_access_key=endpoints.s3_secret_key,
        region_name="us-east-1",
    )
    found = {}
    for bucket in s3.list_buckets()["Buckets"]:
        pages = s3.get_paginator("list_objects_v2").paginate(Bucket=bucket["Name"])
        for page in pages:
            for obj in page.get("Contents", []):
                found[f"s3://{bucket['Name']}/{obj['Key']}"] = obj["ETag"]
    return found


def champion_version(endpoints: Endpoints) -> str | None:
    """The model version behind models:/<name>@champion, None if there is none."""
    auth = None
    if endpoints.mlflow_username and endpoints.mlflow_password:
        auth = (endpoints.mlflow_username, endpoints.mlflow_password)
    reply = requests.get(
        f"{endpoints.mlflow_url}/api/2.0/mlflow/registered-models/alias",
        params={"name": endpoints.model_name, "alias": "champion"},
        auth=auth,
        timeout=30,
    )
    if reply.status_code == 404 or "RESOURCE_DOES_NOT_EXIST" in reply.text:
        return None
    reply.raise_for_status()
    return str(reply.json()["model_version"]["version"])


class Background:
    """Runs fn in a thread; join() re-raises what it raised (an AssertionError of the journey)."""

    def __init__(self, fn: Callable[[], None]) -> None:
        self.done = threading.Event()
        self.error: BaseException | None = None

        def target() -> None:
            try:
                fn()
            except BaseException as exc:
                self.error = exc
            finally:
                self.done.set()

        self._thread = threading.Thread(target=target, daemon=True)
        self._thread.start()

    def join(self, timeout_s: float) -> None:
        if not self.done.wait(timeout_s):
            pytest.fail(f"the journey did not finish within {timeout_s:.0f} s")
        if self.error is not None:
            raise self.error


class TestBudget:
    """Last in this file: the kind tests' time so far against their share of CI's budget."""

    def test_the_kind_tests_stay_within_their_ci_budget(
        self, request: pytest.FixtureRequest
    ) -> None:
        over = budget.kind_budget_exceeded(request.config)
        if over and os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail(over, pytrace=False)
        # Elsewhere (a laptop, another machine's speed) the table at the end reports it.

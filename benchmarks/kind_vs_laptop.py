"""Where a run's time goes on Kubernetes: one day of the journey on a kind cluster and on the
laptop runtime, in one invocation, per task and per phase, and their ratio.

    python benchmarks/kind_vs_laptop.py --kubeconfig KUBECONFIG [--namespace trainyard-cpu]
        [--kubectl kubectl] [--helm .tools/bin/helm] [--out FOLDER]
    python benchmarks/kind_vs_laptop.py --laptop-only

The kind cluster is one the kind tests kept (`make e2e-kind E2E_ARGS=--keep-cluster`: its
kubeconfig is in the pytest-kind state folder) with a release installed in --namespace. First
the laptop runtime starts in a temporary folder, runs the day and stops; then the same day (same
date, same parameters) runs on the release while two pod watches record the Airflow worker pods
(release namespace) and the trainer pods (training namespace). Each run's table has a row per
task and a column per phase (tests/e2e/timeline.py explains them); the laptop's has only
Airflow's own times. Then both runs' totals side by side, and wall time kind / laptop.

The day is the first day's parameters with min_improvement 0, so that a release which already
has a champion deploys as a fresh laptop does (the same tasks run on both); where the branches
still differ, the output says so.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # tests.e2e: the journey, the release, the pod recorder

from tests.e2e.kube import Kube, PodRecorder  # noqa: E402
from tests.e2e.release import InstalledRelease  # noqa: E402
from tests.e2e.scenario import FIRST_DAY_CONF, Endpoints, laptop_endpoints, run_day  # noqa: E402
from tests.e2e.timeline import (  # noqa: E402
    RunTimeline,
    format_comparison,
    format_table,
    timeline,
    worker_pods,
)

from trainyard.standalone import runtime  # noqa: E402
from trainyard.standalone.demo import DAG_ID  # noqa: E402

CONF: dict[str, Any] = {**FIRST_DAY_CONF, "min_improvement": 0}
TRAINER_PODS = "app.kubernetes.io/component=trainer"
TIMEOUT_S = 1800


def one_day(
    endpoints: Endpoints, date: str, recorders: tuple[PodRecorder, PodRecorder] | None = None
) -> tuple[RunTimeline, dict[str, str | None]]:
    """Run the day; its timeline (with the pods the recorders saw) and its tasks' states."""
    api = endpoints.airflow()
    api.wait_for_dag(DAG_ID)
    run_ids: list[str] = []
    _, states = run_day(endpoints, api, date, CONF, TIMEOUT_S, run_ids)
    (run_id,) = run_ids
    workers, trainers = [], []
    if recorders is not None:
        time.sleep(2)  # the last pods' final events
        workers, trainers = recorders[0].snapshot(), recorders[1].snapshot()
    tis = api.task_instances(DAG_ID, run_id)
    return timeline(tis, run_id, workers, trainers, DAG_ID, with_pods=recorders is not None), states


def laptop_day(date: str) -> tuple[RunTimeline, dict[str, str | None]]:
    workdir = Path(tempfile.mkdtemp(prefix="trainyard-kind-vs-laptop-"))
    stack = runtime.start(workdir)
    try:
        return one_day(laptop_endpoints(workdir), date)
    finally:
        stack.stop()
        shutil.rmtree(workdir, ignore_errors=True)


def kind_day(args: argparse.Namespace, date: str) -> tuple[RunTimeline, dict[str, str | None]]:
    kube = Kube(Path(args.kubectl), Path(args.kubeconfig))
    release = InstalledRelease(
        kube,
        Path(args.helm),
        release_name=args.release,
        namespace=args.namespace,
        training_namespace=args.namespace,
    )
    # Where its trainer pods run (the chart's platform config says; kind tests: <ns>-training).
    release.training_namespace = release.platform_config()["trainer"]["namespace"]
    workers = PodRecorder(kube, release.namespace, worker_pods(release.release_name))
    trainers = PodRecorder(kube, release.training_namespace, TRAINER_PODS)
    try:
        endpoints = release.endpoints()
        time.sleep(2)  # both watches running before the first pod
        return one_day(endpoints, date, (workers, trainers))
    finally:
        workers.close()
        trainers.close()
        release.close_forwards()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kubeconfig", help="the kind cluster's kubeconfig")
    parser.add_argument("--namespace", default="trainyard-cpu", help="the release's namespace")
    parser.add_argument("--release", default="trainyard", help="the Helm release's name")
    parser.add_argument("--kubectl", default=shutil.which("kubectl") or "kubectl")
    parser.add_argument("--helm", default=str(REPO / ".tools" / "bin" / "helm"))
    parser.add_argument("--date", default=dt.datetime.now(dt.UTC).date().isoformat())
    parser.add_argument("--out", type=Path, help="also write the tables into this folder")
    parser.add_argument("--laptop-only", action="store_true", help="no cluster: the laptop run")
    args = parser.parse_args()
    if not args.laptop_only and not args.kubeconfig:
        parser.error("--kubeconfig is required (or --laptop-only)")

    print(f"cores: {os.cpu_count()}; day {args.date}; parameters {CONF}", flush=True)
    laptop, laptop_states = laptop_day(args.date)
    texts = {"laptop": format_table(laptop, f"laptop runtime: run {laptop.run_id}, seconds")}
    print("\n" + texts["laptop"], flush=True)
    if not args.laptop_only:
        kind, kind_states = kind_day(args, args.date)
        title = f"kind ({args.namespace}): run {kind.run_id}, seconds"
        texts["kind"] = format_table(kind, title)
        texts["comparison"] = format_comparison(kind, laptop)
        print(texts["kind"])
        pods = sum(1 for t in kind.tasks if t.worker), sum(1 for t in kind.tasks if t.trainer)
        print(f"tasks with a worker pod: {pods[0]}, with a trainer pod: {pods[1]}\n")
        differ = {
            task: (state, laptop_states.get(task))
            for task, state in kind_states.items()
            if state != laptop_states.get(task)
        }
        if differ:
            print(f"NOTE: the runs' task states differ (kind, laptop): {differ}\n")
        print(texts["comparison"])
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        for name, text in texts.items():
            (args.out / f"{name}.txt").write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())

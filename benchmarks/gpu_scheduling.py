"""GPU scheduling figures on a simulated 200-node GPU fleet (KWOK; tests/cluster).

    python benchmarks/gpu_scheduling.py [--repeat 3] [--disable-qps-limits]

A real kube-apiserver and kube-scheduler (processes, from scripts/kind-offline toolchain), 2 x 100
simulated nodes with 8 GPUs each, and a trainyard release installed with Helm 4. For sweeps of 8,
64 and 512 one-GPU trials, the trainer pods are built by the pod operator from the release's
platform.json and all submitted at once (8 client threads, as 8 Airflow workers would); printed:
the median time until every pod is created and until every trial is bound, pods bound per second
and the time per trial. Goal: the time per trial at 512 is within 1.2x of
the time per trial at 8. --disable-qps-limits lifts the scheduler's client rate limit (50 QPS,
burst 100 by default) to show the scheduler's own cost.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from kubernetes import client  # noqa: E402
from tests.chart.conftest import TOOLS  # noqa: E402
from tests.cluster.conftest import CPU_NODES, GPU_POOLS  # noqa: E402
from tests.cluster.fleet import create_fleet  # noqa: E402
from tests.cluster.helm import HelmRelease  # noqa: E402
from tests.cluster.kwok import KwokCluster, static_storage, toolchain_dir  # noqa: E402
from tests.cluster.sweep import delete_all, run_sweep  # noqa: E402
from tests.cluster.trainer_pods import PodBuilder  # noqa: E402

SWEEPS = (8, 64, 512)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--disable-qps-limits", action="store_true")
    args = parser.parse_args()
    bin_dir, why = toolchain_dir()
    if bin_dir is None:
        print(why, file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory() as workdir:
        cluster = KwokCluster(bin_dir, Path(workdir))
        cluster.create(*(["--disable-qps-limits"] if args.disable_qps_limits else []))
        builder = PodBuilder()
        try:
            return run(cluster, builder, args.repeat)
        finally:
            builder.close()
            cluster.delete()


def run(cluster: KwokCluster, builder: PodBuilder, repeat: int) -> int:
    api = cluster.api()
    fleet = create_fleet(api, GPU_POOLS, CPU_NODES)
    static_storage(api, volumes=4)
    client.CoreV1Api(api).create_namespace({"metadata": {"name": "bench"}})
    release = HelmRelease(cluster, TOOLS / "bin" / "helm4", "bench", "bench")
    release.deploy({"gpu": fleet.gpu_values("h100", 1), "pipeline": {"maxParallelTrials": 512}})
    inputs = release.dag_inputs(api)
    print(f"control plane ready in {cluster.created_seconds:.1f} s; "
          f"{sum(GPU_POOLS.values())} GPU nodes, {CPU_NODES} CPU nodes")  # fmt: skip
    print(
        f"{'trials':>6} {'all created (s)':>16} {'all bound (s)':>14} {'pods/s':>8} {'ms/trial':>9}"
    )
    per_trial = {}
    for trials in SWEEPS:
        seconds, created = [], []
        for _ in range(repeat):
            delete_all(api, inputs.namespace)
            pods = builder.build(inputs, trials=trials)
            result = run_sweep(api, pods, limit=trials, finish=False)
            if result.rejected or len(result.placements) != trials or result.overcommitted:
                print(f"sweep of {trials} did not bind cleanly: {result}", file=sys.stderr)
                return 1
            if result.watch_error:  # the figure would be the 50 ms poll's, not the binds'
                print(f"sweep of {trials}: the watch broke: {result.watch_error}", file=sys.stderr)
                return 1
            seconds.append(result.seconds_to_all_bound)
            created.append(result.seconds_to_all_submitted)
        median, creating = statistics.median(seconds), statistics.median(created)
        per_trial[trials] = median / trials
        print(
            f"{trials:>6} {creating:>16.2f} {median:>14.2f} {trials / median:>8.0f} "
            f"{1000 * median / trials:>9.1f}"
        )
    ratio = per_trial[512] / per_trial[8]
    print(f"time per trial at 512 / at 8: {ratio:.2f}x (goal <= 1.2x)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

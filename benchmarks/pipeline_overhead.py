"""Airflow's cost on top of the trainer: the pipeline versus a bare loop, and per-trial overhead.

    python benchmarks/pipeline_overhead.py [--trials 4] [--scale 8,64] [--epochs 10]

Starts the standalone platform once, then:
(a) runs the DAG for one day with --trials trials and, in the same run, a bare
    loop of the same trainer commands (validate, preprocess, features, every
    trial, evaluate, deploy) one after another; prints both wall times and
    their ratio (goal <= 1.15). The DAG's data wait is excluded: the data is
    published before the trigger.
(b) runs the DAG with 8 and 64 one-epoch trials and prints the training
    phase's wall time per trial at each size and their ratio (goal <= 1.2).
"""

from __future__ import annotations

import argparse
import datetime as dt
import io
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from rich.console import Console

from trainyard.pipeline import grid
from trainyard.pipeline.pod_tasks import stage_arguments
from trainyard.standalone import runtime
from trainyard.standalone.airflow_api import AirflowApi, state_name
from trainyard.standalone.demo import DAG_ID, follow, publish, trigger
from trainyard.standalone.stages import run_stage

QUIET = Console(file=io.StringIO())


def seconds(value: dt.datetime | None) -> float:
    assert value is not None
    return value.timestamp()


def dag_run(api: AirflowApi, workdir: Path, date: str, conf: dict[str, Any]) -> dict[str, Any]:
    publish(workdir, date)
    run = follow(api, trigger(api, date, conf), 3600, QUIET)
    assert state_name(run.state) == "success", run
    tasks = api.task_instances(DAG_ID, run.dag_run_id)
    trains = [t for t in tasks if t.task_id == "train"]
    sensor = next(t for t in tasks if t.task_id == "wait_for_training_data")
    return {
        # From the moment the data was there (sensor done) to the end of the run.
        "seconds": seconds(run.end_date) - seconds(sensor.end_date),
        "train_phase": max(seconds(t.end_date) for t in trains)
        - min(seconds(t.start_date) for t in trains),
        "trials": len(trains),
    }


def bare_loop(workdir: Path, date: str, space: dict[str, list[Any]], epochs: int) -> float:
    env = runtime.client_env(workdir)
    root = f"s3://datasets/bare/{date}"
    data = f"s3://datasets/digits/daily/{date}/features.parquet"
    started = time.perf_counter()
    # The same stage arguments the DAG's pod tasks build.
    run_stage(stage_arguments("validate", {"data": data}), env)
    run_stage(stage_arguments("preprocess", {"data": data, "output": f"{root}/prepared"}), env)
    features = {"prepared": f"{root}/prepared", "output": f"{root}/features"}
    manifest = run_stage(stage_arguments("features", features), env)["manifest_url"]
    results = [
        run_stage(
            ["train", "--features", manifest, "--epochs", str(epochs), *grid.option_flags(t)], env
        )
        for t in grid.expand(space, 64)
    ]
    best = max(results, key=lambda r: r["val_accuracy"])
    candidate = {"model_uri": best["model_uri"], "model_name": "digits-bare"}
    gate = run_stage(stage_arguments("evaluate", {**candidate, "features": manifest}), env)
    if gate["deploy"]:
        run_stage(stage_arguments("deploy", {**candidate, "run_id": best["run_id"]}), env)
    return time.perf_counter() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    parser.add_argument("--trials", type=int, default=4)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--scale", default="8,64", help="trial counts for the per-trial overhead")
    parser.add_argument("--skip-scale", action="store_true")
    args = parser.parse_args()

    workdir = Path(tempfile.mkdtemp(prefix="trainyard-bench-"))
    stack = runtime.start(workdir)
    try:
        api = AirflowApi(stack.airflow.url, "admin", stack.airflow.admin_password())
        api.wait_for_dag(DAG_ID)
        today = dt.datetime.now(dt.UTC).date()
        lrs = [0.001 * (i + 1) for i in range(args.trials)]
        space = {"optimizer": ["adam"], "lr": lrs, "batch_size": [32]}
        print(f"cores: {os.cpu_count()}; trials: {args.trials}; epochs: {args.epochs}")
        pipeline = dag_run(
            api, workdir, today.isoformat(), {"search_space": space, "epochs": args.epochs}
        )
        bare = bare_loop(workdir, today.isoformat(), space, args.epochs)
        print(
            f"(a) pipeline {pipeline['seconds']:.1f} s, bare loop {bare:.1f} s, "
            f"ratio {pipeline['seconds'] / bare:.2f} (goal <= 1.15)"
        )
        if args.skip_scale:
            return 0
        per_trial = {}
        for offset, trials in enumerate(int(n) for n in args.scale.split(",")):
            space = {"lr": [0.001 + i * 1e-5 for i in range(trials)]}
            date = (today - dt.timedelta(days=offset + 1)).isoformat()
            result = dag_run(
                api, workdir, date, {"search_space": space, "epochs": 1, "max_trials": trials}
            )
            per_trial[trials] = result["train_phase"] / trials
            print(
                f"    {trials:>3} trials: training phase {result['train_phase']:.1f} s, "
                f"{per_trial[trials]:.2f} s per trial"
            )
        small, large = (per_trial[int(n)] for n in args.scale.split(","))
        print(f"(b) per-trial time grows {large / small:.2f}x (goal <= 1.2)")
    finally:
        stack.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())

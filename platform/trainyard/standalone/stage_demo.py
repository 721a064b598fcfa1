"""Every trainer stage, end to end, as the pipeline's pods would run them.

Starts a SeaweedFS S3 server and an MLflow server, publishes a day of data,
then runs validate → preprocess → features → train (a small grid) → evaluate →
deploy as `python -m trainyard.trainer` processes and prints a summary.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from trainyard.errors import StageError
from trainyard.standalone.services import MlflowServer, S3Server

MODEL_NAME = "digits"
GRID = [
    {"optimizer": "adam", "lr": "1e-3", "batch-size": "32"},
    {"optimizer": "adamw", "lr": "3e-3", "batch-size": "64"},
    {"optimizer": "sgd", "lr": "1e-3", "batch-size": "32"},
]


def stage(name: str, options: dict[str, str], env: dict[str, str]) -> dict[str, Any]:
    args = [f"--{key}={value}" for key, value in options.items()]
    print(f"▶ {name} {' '.join(args)}", flush=True)
    with tempfile.TemporaryDirectory() as xcom:
        proc = subprocess.run(
            [sys.executable, "-m", "trainyard.trainer", "--log-level", "WARNING", name, *args],
            env={**os.environ, **env, "XCOM_DIR": xcom},
            capture_output=True,
            text=True,
            check=False,
        )
        if proc.returncode != 0:
            raise StageError(f"stage {name} failed:\n{proc.stderr.strip()[-2000:]}")
        result: dict[str, Any] = json.loads(Path(xcom, "return.json").read_text())
    return result


def run_demo(workdir: Path, date: str) -> None:
    workdir.mkdir(parents=True, exist_ok=True)
    s3 = S3Server(workdir / "s3")
    mlflow = MlflowServer(workdir / "mlflow", s3)
    try:
        print(f"S3 (SeaweedFS) ready in {s3.start():.1f}s at {s3.endpoint}")
        print(f"MLflow ready in {mlflow.start():.1f}s at {mlflow.url}")
        env = {**s3.client_env(), "MLFLOW_TRACKING_URI": mlflow.url}
        root, run_root = "s3://datasets/digits", f"s3://datasets/runs/{date}"
        data = stage("publish", {"root": root, "date": date}, env)["data_url"]
        stage("validate", {"data": data}, env)
        prepared = stage("preprocess", {"data": data, "output": f"{run_root}/prepared"}, env)
        features = stage(
            "features", {"prepared": prepared["output_url"], "output": f"{run_root}/features"}, env
        )
        manifest = features["manifest_url"]
        trials = [stage("train", {"features": manifest, **params}, env) for params in GRID]
        best = max(trials, key=lambda t: t["val_accuracy"])
        gate = stage(
            "evaluate",
            {
                "model-uri": best["model_uri"],
                "run-id": best["run_id"],
                "features": manifest,
                "model-name": MODEL_NAME,
            },
            env,
        )
        deployed = None
        if gate["deploy"]:
            deployed = stage(
                "deploy",
                {
                    "model-uri": best["model_uri"],
                    "run-id": best["run_id"],
                    "model-name": MODEL_NAME,
                },
                env,
            )
        print("\ntrials (validation / test accuracy):")
        for trial in trials:
            p = trial["params"]
            print(
                f"  {p['optimizer']:<6} lr={p['lr']:<7} batch={p['batch_size']:<4}"
                f" {trial['val_accuracy']:.4f} / {trial['test_accuracy']:.4f}"
            )
        print(f"gate: deploy={gate['deploy']} ({gate['reason']})")
        if deployed:
            print(f"champion: {deployed['champion_uri']} → version {deployed['version']}")
    finally:
        mlflow.stop()
        s3.stop()

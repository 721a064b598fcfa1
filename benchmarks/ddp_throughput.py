"""Data-parallel training throughput: the `train` stage with 1 process versus N.

    python benchmarks/ddp_throughput.py [--processes N] [--device auto|cpu|cuda]
                                        [--batch-size 256] [--hidden 1024,1024] [--epochs 20]

Runs the real `train` stage (`digits.train.train`: per-epoch validation,
MLflow logging to a local SQLite store, the model logged at the end) once with one
process and once with N DistributedDataParallel processes (NCCL on GPUs, one per GPU;
gloo on CPU), same data, seed and global batch, and prints samples/s of the training
epochs (the stage's `train_samples_per_second`: process start-up and model logging
excluded), the speed-up and both test accuracies. N defaults to the number of visible
GPUs, or 2 on CPU. On CPU the figures are for reference: the replicas share the
machine's cores, so N processes are not N times the compute.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import sys
import tempfile
from pathlib import Path

import torch

from digits import data, features, preprocess
from digits.config import TrainConfig
from digits.train import resolve_device


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--processes", type=int, default=None)
    parser.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    parser.add_argument("--batch-size", type=int, default=256, help="global batch")
    parser.add_argument("--hidden", default="1024,1024", help="MLP hidden sizes")
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--threads", type=int, default=1, help="CPU threads per process")
    args = parser.parse_args()

    device = resolve_device(args.device)
    processes = args.processes or (torch.cuda.device_count() if device.type == "cuda" else 2)
    workdir = Path(tempfile.mkdtemp(prefix="trainyard-ddp-bench-"))
    os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{workdir / 'mlflow.db'}"
    raw = data.publish(str(workdir), dt.date(2026, 11, 20).isoformat())["data_url"]
    prepared = preprocess.preprocess(str(raw), str(workdir / "prepared"))["output_url"]
    manifest_url = features.build_features(prepared, str(workdir / "features"))["manifest_url"]
    from digits.train import train  # noqa: PLC0415 - after the tracking URI is set

    config = TrainConfig(
        epochs=args.epochs,
        batch_size=args.batch_size,
        hidden=tuple(int(h) for h in args.hidden.split(",")),
        device=device.type,
        threads=args.threads,
    )
    name = (
        f"{torch.cuda.device_count()} x {torch.cuda.get_device_name(0)}"
        if device.type == "cuda"
        else f"cpu ({os.cpu_count()} cores)"
    )
    print(f"device: {name}  torch {torch.__version__}  backend: "
          f"{'nccl' if device.type == 'cuda' else 'gloo'}")  # fmt: skip
    print(
        f"global batch {config.batch_size}, MLP {args.hidden}, {config.epochs} epochs, "
        f"{config.threads} thread(s) per process"
    )
    manifest = features.load_manifest(manifest_url)
    n_train = len(features.load_split(manifest, "train")[1])
    rates = {}
    print(f"{'processes':>9} {'samples/s':>12} {'speed-up':>9} {'test accuracy':>14}")
    for count in (1, processes):
        result = train(manifest_url, config, "ddp-benchmark", processes=count)
        rates[count] = config.epochs * n_train / result["train_seconds"]
        print(
            f"{count:>9} {rates[count]:>12,.0f} {rates[count] / rates[1]:>8.2f}x "
            f"{result['test_accuracy']:>14.4f}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())

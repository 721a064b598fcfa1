"""Trainer throughput versus a bare PyTorch loop: same model, data, optimizer and batch size.

    python benchmarks/trainer_throughput.py [--device auto|cpu|cuda] [--batch-sizes 32,64,256]

Prints samples/s of the trainer's epoch loop (`digits.train.train_epoch`,
the loop `train` runs) and of a minimal hand-written loop, alternating epoch by
epoch, and their ratio (target: >= 0.95). It then runs the whole
`train` stage once (per-epoch validation and MLflow logging included, local
SQLite tracking) and prints its samples/s for reference. Figures, not a test.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import sys
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F  # noqa: N812

from digits import data, features, preprocess
from digits.config import TrainConfig
from digits.model import build_mlp
from digits.train import make_deterministic, resolve_device, train_epoch


def bare_epoch(model, optimizer, x, y, batch_size, generator):  # type: ignore[no-untyped-def]
    model.train()
    order = torch.randperm(x.shape[0], generator=generator).to(x.device)
    for start in range(0, x.shape[0], batch_size):
        batch = order[start : start + batch_size]
        optimizer.zero_grad(set_to_none=True)
        F.cross_entropy(model(x[batch]), y[batch]).backward()
        optimizer.step()


def setup(x, device: torch.device):  # type: ignore[no-untyped-def]
    torch.manual_seed(0)
    model = build_mlp(x.shape[1]).to(device)
    return model, torch.optim.Adam(model.parameters(), lr=1e-3), torch.Generator().manual_seed(0)


def compare(x, y, batch_size: int, epochs: int, device: torch.device) -> tuple[float, float]:  # type: ignore[no-untyped-def]
    """samples/s of (trainer, bare), alternating epoch by epoch.

    Alternating at epoch granularity exposes both loops to the same machine
    noise (this VM's clock varies by +-10% between seconds).
    """
    loops = {"trainer": train_epoch, "bare": bare_epoch}
    states = {name: setup(x, device) for name in loops}
    seconds = dict.fromkeys(loops, 0.0)
    for epoch in range(epochs + 1):
        for name, loop in loops.items():
            model, optimizer, generator = states[name]
            started = time.perf_counter()
            loop(model, optimizer, x, y, batch_size, generator)
            if device.type == "cuda":
                torch.cuda.synchronize()
            if epoch:  # epoch 0 warms up allocators and kernels
                seconds[name] += time.perf_counter() - started
    return epochs * x.shape[0] / seconds["trainer"], epochs * x.shape[0] / seconds["bare"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    parser.add_argument("--batch-sizes", default="32,64,256")
    parser.add_argument("--epochs", type=int, default=300, help="timed epochs per loop")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()

    device = resolve_device(args.device)
    make_deterministic(0)
    torch.set_num_threads(args.threads)
    workdir = Path(tempfile.mkdtemp(prefix="trainyard-bench-"))
    raw = data.publish(str(workdir), dt.date(2026, 11, 20).isoformat())["data_url"]
    prepared = preprocess.preprocess(str(raw), str(workdir / "prepared"))["output_url"]
    manifest_url = features.build_features(prepared, str(workdir / "features"))["manifest_url"]
    manifest = features.load_manifest(manifest_url)
    x, y = (t.to(device) for t in features.load_split(manifest, "train"))

    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    print(f"device: {name}  torch {torch.__version__}  threads {args.threads}")
    hidden = "-".join(
        str(m.out_features) for m in build_mlp(x.shape[1]) if hasattr(m, "out_features")
    )
    print(f"train rows: {x.shape[0]}  features: {x.shape[1]}  MLP widths: {hidden}")
    print(f"{'batch':>6} {'trainer samples/s':>18} {'bare samples/s':>15} {'ratio':>6}")
    worst = float("inf")
    for batch_size in (int(b) for b in args.batch_sizes.split(",")):
        trainer_rate, bare_rate = compare(x, y, batch_size, args.epochs, device)
        ratio = trainer_rate / bare_rate
        worst = min(worst, ratio)
        print(f"{batch_size:>6} {trainer_rate:>18,.0f} {bare_rate:>15,.0f} {ratio:>6.3f}")

    # The whole stage once, for reference: validation every epoch and MLflow logging.
    os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{workdir / 'mlflow.db'}"
    from digits.train import train  # noqa: PLC0415 - after the tracking URI is set

    config = TrainConfig(epochs=60, batch_size=64, device=args.device, threads=args.threads)
    result = train(manifest_url, config, experiment="benchmark")
    rate = config.epochs * x.shape[0] / result["train_seconds"]
    print(
        f"train stage (batch 64, {config.epochs} epochs, validation + MLflow per epoch): "
        f"{rate:,.0f} samples/s, test accuracy {result['test_accuracy']:.4f}"
    )
    print(f"ratio at the worst batch size: {worst:.3f} (target >= 0.95)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

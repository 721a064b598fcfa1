"""SeaweedFS started fresh, again and again, and the platform's buckets created at once.

    python benchmarks/objectstore_startup.py laptop [--starts 30]
    python benchmarks/objectstore_startup.py chart --kubeconfig K [--starts 30] [--image REF]

laptop: the laptop runtime's own `S3Server` (`weed mini`, its identity file and buckets), in a
new folder each time; the time from the process start to every bucket answering.
chart: the chart itself, on the cluster of --kubeconfig (the kind cluster of the e2e tests, or
any other): `helm install` with only the object store and its bucket-init Job enabled (the
SeaweedFS StatefulSet, its Services and probes, the Secret, the Job), `--wait --wait-for-jobs`;
the time from the install to the Job's first "created" line; then `helm uninstall` and the
namespace deleted without waiting, as the kind tests leave one release while the next installs.

Prints one line per start and the failures with their reason; exits non-zero on any failure.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CHART = REPO / "charts" / "trainyard"
BUCKETS = ("airflow-logs", "airflow-xcom", "datasets", "mlflow")


def laptop_start(index: int) -> float:
    from trainyard.standalone.services import S3Server  # noqa: PLC0415

    with tempfile.TemporaryDirectory(prefix=f"weed-{index}-") as tmp:
        server = S3Server(Path(tmp), buckets=BUCKETS)
        try:
            return server.start(timeout_s=60)
        finally:
            if server.process:
                server.process.stop(grace_s=0.5)  # a fresh folder next time: no clean stop needed


class ChartStarts:
    """Installs of the chart's object store alone, each in a namespace of its own."""

    def __init__(self, kubeconfig: Path, helm: Path, image: str, timeout: str) -> None:
        self.kubeconfig, self.helm, self.timeout = kubeconfig, helm, timeout
        self.invocation = f"{int(time.time()) % 100000:05d}"
        repository, tag = image.rsplit(":", 1)
        # Only the store and its Job: no database client is installed, so the database the
        # chart insists on is a name nothing resolves; training objects go to the install's
        # own namespace (a shared training namespace would be claimed by every install).
        self.values = {
            "global": {
                "objectStore": {"provider": "seaweedfs"},
                "externalDatabase": {"host": "unused.invalid"},
                "database": {"existingSecret": "unused"},
                "training": {"namespace": ""},
            },
            "training": {"createNamespace": False},
            "objectstore": {
                "seaweedfs": {"image": {"registry": "", "repository": repository, "tag": tag}}
            },
            "postgresql": {"enabled": False},
            "mlflow": {"enabled": False},
            "airflow": {"enabled": False},
            "serving": {"enabled": False},
            "tests": {"enabled": False},
            "toolsImage": {"pullPolicy": "Never"},
        }

    def run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            args,
            capture_output=True,
            text=True,
            check=check,
            timeout=900,
            env={**os.environ, "KUBECONFIG": str(self.kubeconfig)},
        )

    def kubectl(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return self.run("kubectl", *args, check=check)

    def __call__(self, index: int) -> float:
        # Unique per invocation too: an earlier invocation's namespaces may still be deleting.
        namespace = f"objectstore-start-{self.invocation}-{index}"
        with tempfile.NamedTemporaryFile("w", suffix=".yaml") as values:
            json.dump(self.values, values)
            values.flush()
            started = time.monotonic()
            install = self.run(
                str(self.helm), "install", "store", str(CHART), "--namespace", namespace,
                "--create-namespace", "--values", values.name, "--wait", "--wait-for-jobs",
                "--timeout", self.timeout, check=False,
            )  # fmt: skip
        try:
            logs = self.kubectl(
                "logs", "--namespace", namespace, "--selector",
                "app.kubernetes.io/component=bucket-init", "--timestamps", "--tail=-1",
                check=False,
            ).stdout  # fmt: skip
            if install.returncode != 0:
                raise RuntimeError(f"{install.stderr.strip()[-300:]}; bucket-init: {logs[-600:]}")
            created = [line for line in logs.splitlines() if ": created" in line]
            if len(created) != len(BUCKETS):
                raise RuntimeError(f"bucket-init did not create every bucket: {logs[-600:]}")
            return time.monotonic() - started
        finally:
            self.run(str(self.helm), "uninstall", "store", "--namespace", namespace, check=False)
            self.kubectl("delete", "namespace", namespace, "--wait=false", check=False)


def stress(start: Callable[[int], float], starts: int) -> int:
    times: list[float] = []
    failures: list[str] = []
    for index in range(starts):
        try:
            seconds = start(index)
        except Exception as exc:  # every start reports; one failure must not hide the others
            failures.append(f"start {index}: {type(exc).__name__}: {exc}")
            print(f"start {index:3d}: FAILED {exc}", flush=True)
            continue
        times.append(seconds)
        print(f"start {index:3d}: buckets ready {seconds:6.2f} s after the start", flush=True)
    print(f"\n{starts} starts, {len(failures)} failures")
    if times:
        print(
            f"start to buckets: median {statistics.median(times):.2f} s, "
            f"min {min(times):.2f} s, max {max(times):.2f} s"
        )
    for failure in failures:
        print(failure)
    return 1 if failures else 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("mode", choices=["laptop", "chart"])
    parser.add_argument("--starts", type=int, default=30)
    parser.add_argument("--kubeconfig", type=Path, help="chart mode: the cluster")
    parser.add_argument("--helm", type=Path, default=REPO / ".tools" / "bin" / "helm")
    parser.add_argument(
        "--image",
        default="trainyard-offline/seaweedfs:4.48",
        help="chart mode: the SeaweedFS image, present on the nodes (scripts/kind-offline)",
    )
    parser.add_argument("--timeout", default="5m", help="chart mode: helm's --wait limit")
    args = parser.parse_args()
    if args.mode == "laptop":
        return stress(laptop_start, args.starts)
    if args.kubeconfig is None:
        parser.error("chart mode needs --kubeconfig")
    return stress(ChartStarts(args.kubeconfig, args.helm, args.image, args.timeout), args.starts)


if __name__ == "__main__":
    sys.exit(main())

"""DAG file parse time, measured the way the dag-processor parses.

    python benchmarks/dag_parse_time.py [--repeat 5]

Each measurement is a fresh interpreter standing in for the dag-processor's parent: it imports
Airflow, pre-imports the Airflow modules the DAG file imports (`parsing_pre_import_modules`),
freezes the heap and forks; the child times DagBag processing of `dags/`, as the forked
parse does. Rows:

  standalone        `airflow dag-processor`, as the standalone runtime starts it
  kubernetes        plain `airflow dag-processor`: every parse imports the pod operator
  kubernetes/image  the Airflow image's dag-processor command (images/airflow/airflow_preloaded.py),
                    which imports the pod operator in the parent before the parses fork

The median per row is printed (wall clock; and CPU time, which a busy machine inflates less),
and whether the parse had the Kubernetes client loaded.
Goal: <= 0.25 s on Kubernetes (the image's command), <= 0.1 s standalone.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DAGS = REPO / "dags"
ENTRYPOINT = REPO / "images" / "airflow" / "airflow_preloaded.py"
PROBE = f"""
import gc, importlib, os, runpy, sys, time
import airflow, airflow.sdk
from airflow.dag_processing.dagbag import DagBag
from airflow.utils.file import iter_airflow_imports

for module in iter_airflow_imports({str(DAGS / "ml_training_pipeline.py")!r}):
    importlib.import_module(module)
if sys.argv[1] == "image":
    runpy.run_path({str(ENTRYPOINT)!r})["preload"]()
gc.freeze()  # as the dag-processor's manager does before it forks parses
child = os.fork()
if child == 0:
    started, cpu_started = time.perf_counter(), time.process_time()
    bag = DagBag(dag_folder={str(DAGS)!r})
    elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu_started
    print("PARSE", elapsed, cpu, "kubernetes" in sys.modules, flush=True)
    os._exit(1 if bag.import_errors else 0)
_, status = os.waitpid(child, 0)
sys.exit(os.waitstatus_to_exitcode(status))
"""
ROWS = (
    ("standalone", "standalone", "plain"),
    ("kubernetes", "kubernetes", "plain"),
    ("kubernetes/image", "kubernetes", "image"),
)


def measure(runtime: str, parent: str, repeat: int) -> tuple[list[float], list[float], bool]:
    """Parse wall and CPU times, and whether any parse had the Kubernetes client loaded."""
    with tempfile.TemporaryDirectory() as home:
        config = Path(home, "platform.json")
        config.write_text(json.dumps({"runtime": runtime}))
        env = {
            **os.environ,
            "AIRFLOW_HOME": home,
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "TRAINYARD_PLATFORM_CONFIG": str(config),
        }
        times, cpu_times, kubernetes_loaded = [], [], False
        for _ in range(repeat):
            out = subprocess.run(
                [sys.executable, "-c", PROBE, parent],
                env=env,
                capture_output=True,
                text=True,
                check=True,
            ).stdout
            parse = next(line for line in out.splitlines() if line.startswith("PARSE"))
            _, elapsed, cpu, loaded = parse.split()
            times.append(float(elapsed))
            cpu_times.append(float(cpu))
            kubernetes_loaded |= loaded == "True"
        return times, cpu_times, kubernetes_loaded


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    for label, runtime, parent in ROWS:
        times, cpu_times, kubernetes_loaded = measure(runtime, parent, args.repeat)
        print(
            f"{label:<17} median {statistics.median(times):.3f} s  "
            f"(min {min(times):.3f}, max {max(times):.3f}, n={len(times)}; "
            f"CPU median {statistics.median(cpu_times):.3f} s)  "
            f"kubernetes client loaded: {'yes' if kubernetes_loaded else 'no'}"
        )
    print("goal: kubernetes/image <= 0.25 s, standalone <= 0.1 s without the Kubernetes client.")
    return 0


if __name__ == "__main__":
    sys.exit(main())

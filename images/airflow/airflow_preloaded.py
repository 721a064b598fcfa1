"""The `airflow` command with the DAG's pod operator imported first: the dag-processor's entrypoint.

    python /opt/trainyard/airflow_preloaded.py dag-processor

The dag-processor forks one child per DAG file parse; a module imported here, in the parent,
is already loaded in every child. Airflow pre-imports only the `airflow.*` modules a DAG file
imports at its top, and the training DAG picks its pod operator at parse time from the
platform config, so on Kubernetes each parse would otherwise import the cncf.kubernetes
provider and the Kubernetes client again (~0.7-0.9 s instead of ~0.05 s).
"""

from __future__ import annotations

import sys

# Airflow's configuration is loaded first, as by `airflow` itself (it avoids import cycles).
from airflow.__main__ import main as airflow_main

from trainyard.pipeline.platform import load
from trainyard.pipeline.pod_tasks import PodTasks


def preload() -> None:
    """Import the pod operator of the configured runtime (and its Kubernetes client), and the
    pipeline factory with the spec validator (jsonschema) every pipeline's parse uses."""
    PodTasks(load()).preload()
    import jsonschema  # noqa: F401, PLC0415

    import trainyard.pipeline.factory  # noqa: F401, PLC0415


def main() -> int:
    try:
        preload()
    except Exception as exc:  # as Airflow's own pre-import: warn, keep serving
        # The parse of the DAG file then reports the same problem where it is looked for.
        print(f"airflow_preloaded: pod operator not pre-imported: {exc}", file=sys.stderr)
    sys.argv[0] = "airflow"  # argparse's program name in usage and errors
    airflow_main()  # type: ignore[no-untyped-call]  # Airflow's CLI entry is untyped
    return 0


if __name__ == "__main__":
    sys.exit(main())

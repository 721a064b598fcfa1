"""Teams' pipelines: the factory's Airflow DAG for each spec file the platform config names.

The platform config's `pipelines` lists them (`trainyard up --pipeline SPEC` on a laptop); none
listed, this file defines no DAG. Each spec is checked when the platform starts, so a bad one
fails `up` with the spec loader's line before it could fail here. (The word Airflow above also
keeps this file in Airflow's DAG discovery, whose safe mode skips files that never say it.)
"""

from __future__ import annotations

from trainyard.pipeline.factory import build_dag
from trainyard.pipeline.platform import load as load_platform
from trainyard.spec import load as load_spec

platform = load_platform()
for path in platform.pipelines:
    spec = load_spec(path)
    globals()[f"dag_{spec.name}"] = build_dag(spec, platform)

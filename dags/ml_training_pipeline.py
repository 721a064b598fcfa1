"""The digits training pipeline: an Airflow DAG built by the pipeline factory from its spec.

The pipeline is `pipelines/digits.yaml` (beside this file): where a day's data appears, the
trainer's stage commands, the search space and the gate's metric. The factory
(`trainyard.pipeline.factory`) gives every spec the platform's shape — wait for data →
prepare → train a mapped grid → select → champion gate → deploy or skip → notify — and the
runtime from the platform config (`TRAINYARD_PLATFORM_CONFIG`): Kubernetes pods or, on the
laptop, local processes. Teams' pipelines are the same factory over their own specs. A platform
whose config turns the shipped pipeline off (`builtin_pipeline: false`) gets no DAG from here.
"""

from __future__ import annotations

from pathlib import Path

from trainyard.pipeline.factory import build_dag
from trainyard.pipeline.platform import load as load_platform
from trainyard.spec import load as load_spec

SPEC = Path(__file__).with_name("pipelines") / "digits.yaml"

platform = load_platform()
if platform.builtin_pipeline:
    dag = build_dag(load_spec(SPEC), platform)

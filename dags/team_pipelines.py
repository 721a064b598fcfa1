"""Teams' pipelines: the factory's Airflow DAG for each spec the platform config names.

The platform config's `pipelines` lists spec files and folders (`trainyard up --pipeline SPEC` on a
laptop; on a cluster the chart's mounted specs, a team's ConfigMap being a folder whose keys it
cannot know); none listed, this file defines no DAG. A bad spec, an empty folder (a team's
ConfigMap that is missing) or two specs with one name fail this file with one line naming it: the
dag-processor's import error. (The word Airflow above also keeps this file in Airflow's DAG
discovery, whose safe mode skips files that never say it.)
"""

from __future__ import annotations

from pathlib import Path

from trainyard.pipeline.factory import build_dag
from trainyard.pipeline.platform import load as load_platform
from trainyard.spec import SPEC_SUFFIXES, PipelineSpec, SpecError, load_folder, unique_names
from trainyard.spec import load as load_spec


def team_specs(entries: list[str]) -> list[PipelineSpec]:
    specs: list[PipelineSpec] = []
    for entry in entries:
        if Path(entry).is_dir():
            found = load_folder(entry)
            if not found:
                raise SpecError(f"{entry}: no pipeline spec files ({', '.join(SPEC_SUFFIXES)})")
            specs += found
        else:
            specs.append(load_spec(entry))
    return unique_names(specs)


platform = load_platform()
for spec in team_specs(platform.pipelines):
    globals()[f"dag_{spec.name}"] = build_dag(spec, platform)

"""The Airflow image, built by scripts/build-images on top of the official apache/airflow image.

That base cannot be made offline, so without registry access these tests skip with the pull
error (TRAINYARD_TEST_AIRFLOW_BASE names a local copy). What they check is what the chart
relies on: uid 50000, and the DAG loads in the image with the pipeline modules it carries.
"""

from __future__ import annotations

import json

import pytest

from tests.images.conftest import BuiltImage, docker

pytestmark = [pytest.mark.images, pytest.mark.timeout(1800)]

# Parse the DAG folder as the dag-processor does, with the platform config of a cluster.
LOAD_DAGS = """
import json, os, pathlib
pathlib.Path('/tmp/platform.json').write_text(json.dumps({'runtime': 'kubernetes'}))
os.environ['TRAINYARD_PLATFORM_CONFIG'] = '/tmp/platform.json'
from airflow.dag_processing.dagbag import DagBag
bag = DagBag('/opt/airflow/dags')
tasks = {dag_id: len(dag.tasks) for dag_id, dag in bag.dags.items()}
print(json.dumps({'errors': bag.import_errors, 'dags': tasks}))
"""


def test_image_is_labelled_and_runs_as_the_airflow_user(airflow_image: BuiltImage) -> None:
    config = json.loads(
        docker("image", "inspect", "--format", "{{json .Config}}", airflow_image.ref).stdout
    )
    assert config["User"] == "50000:0"
    labels = config["Labels"]
    assert labels["org.opencontainers.image.version"] == airflow_image.ref.rsplit(":", 1)[1]
    if airflow_image.revision:
        assert labels["org.opencontainers.image.revision"].startswith(airflow_image.revision)


def test_the_dag_loads_in_the_image(airflow_image: BuiltImage) -> None:
    proc = docker(
        "run", "--rm", "-e", "AIRFLOW_HOME=/tmp/airflow", "--entrypoint", "python",
        airflow_image.ref, "-c", LOAD_DAGS,
    )  # fmt: skip
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["errors"] == {}
    assert result["dags"]["ml_training_pipeline"] > 5

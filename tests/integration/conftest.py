from __future__ import annotations

import itertools
from collections.abc import Callable

import pytest

from tests.conftest import Services, StageRun, run_trainer
from trainyard.standalone import runtime
from trainyard.standalone.airflow_api import AirflowApi


@pytest.fixture(scope="session")
def stage(services: Services, tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    """Run a trainer stage against the services, each call with a fresh XCOM_DIR."""
    folder = tmp_path_factory.mktemp("xcom")
    counter = itertools.count()

    def run(*args: str, env: dict[str, str] | None = None) -> StageRun:
        return run_trainer(list(args), folder / str(next(counter)), {**services.env, **(env or {})})

    return run


def prepared_features(stage: Callable[..., StageRun], day: str, root: str) -> str:
    """publish -> preprocess -> features for `day` under `root`; the feature manifest's URL."""
    data = stage("publish", "--root", root, "--date", day).result["data_url"]
    prepared = stage("preprocess", "--data", data, "--output", f"s3://datasets/runs/{day}/prepared")
    features = stage(
        "features",
        "--prepared", prepared.result["output_url"],
        "--output", f"s3://datasets/runs/{day}/features",
    )  # fmt: skip
    url: str = features.result["manifest_url"]
    return url


def airflow_api(stack: runtime.LaptopStack, *dag_ids: str, timeout_s: float = 120) -> AirflowApi:
    """The laptop platform's REST API as its admin, once `dag_ids` are parsed."""
    client = AirflowApi(stack.airflow.url, "admin", stack.airflow.admin_password())
    for dag_id in dag_ids:
        client.wait_for_dag(dag_id, timeout_s=timeout_s)
    return client

from __future__ import annotations

import itertools

import pytest

from tests.conftest import Services, StageRun, run_trainer


@pytest.fixture(scope="session")
def stage(services: Services, tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    """Run a trainer stage against the services, each call with a fresh XCOM_DIR."""
    folder = tmp_path_factory.mktemp("xcom")
    counter = itertools.count()

    def run(*args: str, env: dict[str, str] | None = None) -> StageRun:
        return run_trainer(list(args), folder / str(next(counter)), {**services.env, **(env or {})})

    return run

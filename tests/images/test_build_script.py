"""scripts/build-images builds what the chart references: same repositories, tag = appVersion.

Only `--print-images` and option parsing run here (no engine needed); the build itself is
exercised by test_trainer_image.py. The e2e tests rely on --print-images printing exactly the
refs, one per line.
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

pytestmark = pytest.mark.unit

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "charts" / "trainyard"
BUILD_IMAGES = REPO / "scripts" / "build-images"


def build_images(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BUILD_IMAGES), *args], capture_output=True, text=True, timeout=60, check=False
    )


def printed(*args: str) -> list[str]:
    proc = build_images("--print-images", *args)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.splitlines()


def load(path: Path) -> Any:
    return yaml.safe_load(path.read_text())


@pytest.fixture(scope="module")
def app_version() -> str:
    version: str = load(CHART / "Chart.yaml")["appVersion"]
    return version


def chart_default_refs(app_version: str) -> set[str]:
    """The trainyard images the chart's default values reference (tag "" = appVersion)."""
    umbrella = load(CHART / "values.yaml")
    assert umbrella["global"]["imageRegistry"] == ""
    images = [umbrella["toolsImage"], umbrella["training"]["image"]]
    images += [
        load(CHART / "charts" / sub / "values.yaml")["image"]
        for sub in ("airflow", "mlflow", "serving")
    ]
    refs = set()
    for image in images:
        assert image["registry"] == "" and image["digest"] == ""
        refs.add(f"{image['repository']}:{image['tag'] or app_version}")
    return refs


def test_default_images_are_the_ones_the_chart_references(app_version: str) -> None:
    refs = printed()
    assert refs == [
        f"trainyard/airflow:{app_version}",
        f"trainyard/mlflow:{app_version}",
        f"trainyard/trainer:{app_version}",
    ]
    assert set(refs) == chart_default_refs(app_version)


def test_all_adds_the_gpu_trainer(app_version: str) -> None:
    assert printed("--all")[-1] == f"trainyard/trainer:{app_version}-gpu"
    assert len(printed("--all")) == 4


def test_only_keeps_a_stable_order_and_push_prefixes_the_registry(app_version: str) -> None:
    refs = printed("--only", "trainer-gpu,airflow", "--push", "registry.example.com/ml/")
    assert refs == [
        f"registry.example.com/ml/trainyard/airflow:{app_version}",
        f"registry.example.com/ml/trainyard/trainer:{app_version}-gpu",
    ]


@pytest.mark.parametrize(
    "args",
    [("--only", "trainer"), ("--base-image", "python"), ("--base-image", "debian=debian:12")],
)
def test_bad_options_are_usage_errors(args: tuple[str, ...]) -> None:
    proc = build_images("--print-images", *args)
    assert proc.returncode == 2
    assert proc.stdout == ""

"""Reading Airflow's platform settings file: placeholders, mistakes, and the installed package."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from trainyard.standalone import airflow_settings
from trainyard.standalone.airflow_settings import SettingsError, airflow_config, as_env

pytestmark = pytest.mark.unit

REPO = Path(__file__).resolve().parents[2]

SETTINGS = """
shared:
  common.io:
    xcom_objectstorage_path: "s3://{conn}@{bucket}/xcom"
standalone:
  core:
    executor: LocalExecutor
kubernetes:
  core:
    executor: KubernetesExecutor
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "airflow-settings.yaml"
    path.write_text(text)
    return path


def test_placeholders_are_filled_and_the_runtime_part_added(tmp_path: Path) -> None:
    path = write(tmp_path, SETTINGS)
    config = airflow_config("standalone", {"conn": "s3c", "bucket": "xc"}, path)
    assert as_env(config) == {
        "AIRFLOW__COMMON_IO__XCOM_OBJECTSTORAGE_PATH": "s3://s3c@xc/xcom",
        "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
    }


def test_an_input_the_runtime_does_not_give_fails_naming_it(tmp_path: Path) -> None:
    path = write(tmp_path, SETTINGS)
    with pytest.raises(SettingsError, match=r"shared\.common\.io\.xcom_objectstorage_path.*bucket"):
        airflow_config("kubernetes", {"conn": "s3c"}, path)


def test_a_value_that_is_not_a_string_fails(tmp_path: Path) -> None:
    path = write(tmp_path, "shared:\n  api:\n    workers: 1\nstandalone: {}\n")
    with pytest.raises(SettingsError, match=r"shared\.api\.workers.*quote"):
        airflow_config("standalone", {}, path)


def test_the_real_file_gives_every_value_as_a_string() -> None:
    for part in airflow_settings.load().values():
        for keys in part.values():
            assert all(isinstance(value, str) for value in keys.values()), keys


def test_a_wheel_ships_the_charts_file(tmp_path: Path) -> None:
    """Installed without the checkout (a wheel), the standalone runtime still finds the file."""
    source = tmp_path / "checkout"
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, source / name)
    # The link in the package points into the chart: copy both, the link as a link.
    skip = shutil.ignore_patterns("*.egg-info", "__pycache__")
    shutil.copytree(REPO / "platform", source / "platform", symlinks=True, ignore=skip)
    files = Path("charts/trainyard/charts/airflow/files")
    shutil.copytree(REPO / files, source / files)
    pip_wheel = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q"]
    proc = subprocess.run(
        [*pip_wheel, "-w", str(tmp_path / "dist"), str(source)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    (wheel,) = (tmp_path / "dist").glob("trainyard-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        shipped = archive.read("trainyard/standalone/airflow-settings.yaml")
    assert shipped == (REPO / files / "airflow-settings.yaml").read_bytes()

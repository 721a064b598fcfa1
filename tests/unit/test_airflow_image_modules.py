"""The DAG imports only the trainyard modules the Airflow image copies.

The image carries a hand-picked part of the package (no torch, no trainer code): when the DAG's
import chain grew by digits.config, every parse in the image would have failed with
"No module named 'digits.config'", and only an image build showed it.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import dockerfile
import pytest

pytestmark = pytest.mark.unit

REPO = Path(__file__).resolve().parents[2]
PACKAGE_SOURCE = "platform/trainyard/"


def copied_modules() -> list[str]:
    """Module names under trainyard that images/airflow/Dockerfile COPYs into the image."""
    modules = []
    for command in dockerfile.parse_file(str(REPO / "images/airflow/Dockerfile")):
        if command.cmd != "COPY":
            continue
        for source in command.value[:-1]:
            if not source.startswith(PACKAGE_SOURCE):
                continue
            path = REPO / source
            files = sorted(path.rglob("*.py")) if path.is_dir() else [path]
            for file in files:
                parts = file.relative_to(REPO / "platform").with_suffix("").parts
                modules.append(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    return modules


PROBE = """
import importlib.abc, json, os, pathlib, runpy, sys, tempfile

allowed = set(json.loads(sys.argv[1]))

class OnlyTheImagesModules(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] == "trainyard" and name not in allowed:
            raise ModuleNotFoundError(f"No module named {name!r} (not copied into the image)")
        return None

sys.meta_path.insert(0, OnlyTheImagesModules())
config = pathlib.Path(tempfile.mkdtemp()) / "platform.json"
config.write_text(json.dumps({"runtime": sys.argv[2]}))
os.environ["TRAINYARD_PLATFORM_CONFIG"] = str(config)
runpy.run_path(sys.argv[3])
print("ok")
"""


def test_the_dag_imports_only_what_the_airflow_image_copies() -> None:
    # The image runs the Kubernetes runtime only (the laptop's runtime imports the whole package).
    modules = copied_modules()
    assert "trainyard.pipeline.grid" in modules, modules  # the COPY lines were read
    dag = REPO / "dags" / "ml_training_pipeline.py"
    proc = subprocess.run(
        [sys.executable, "-c", PROBE, json.dumps(modules), "kubernetes", str(dag)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0 and proc.stdout.strip().endswith("ok"), proc.stderr[-3000:]

"""Code that runs in trainer and stage pods does not import the laptop runtime, and no package of
`trainyard` imports one that imports it back.

The trainer image installs the package without the `standalone` extra (no psutil, no embedded
PostgreSQL): a module-level import of `trainyard.standalone` from a stage's import chain failed
every deploy pod on kind with "No module named 'psutil'".
"""

from __future__ import annotations

import ast
import graphlib
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

import pytest

import digits
import trainyard

pytestmark = pytest.mark.unit

PACKAGE = Path(trainyard.__file__).parent
# The shipped pipeline's trainer (examples/digits): its own distribution, one unit here.
DIGITS = Path(digits.__file__).parent
# The laptop's model-server rollout: deploy imports it only when the laptop runtime names a
# local serving folder, and it needs psutil (through trainyard.processes).
LAPTOP_ONLY = {"serving_local"}

# Every other module of the trainer package (what pods run), with the laptop runtime and psutil
# unimportable; then the rollout a pod's environment names is chosen without them.
PROBE = f"""
import importlib, importlib.abc, sys

class Refuse(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name == "psutil" or name.startswith("trainyard.standalone"):
            raise ModuleNotFoundError(f"No module named {{name!r}} (blocked by the test)")
        return None

sys.meta_path.insert(0, Refuse())
import pkgutil
import trainyard.stages, digits
for package in (digits, trainyard.stages):
    names = [m.name for m in pkgutil.iter_modules(package.__path__) if m.name != "__main__"]
    for name in names:
        if name not in {LAPTOP_ONLY!r}:
            importlib.import_module(f"{{package.__name__}}.{{name}}")
stages = [m.name for m in pkgutil.iter_modules(trainyard.stages.__path__)]
assert {{"deploy", "serving", "serving_kubernetes", *{LAPTOP_ONLY!r}}} <= set(stages), stages
from trainyard.stages import deploy, serving
server = deploy.model_server(
    {{serving.DEPLOYMENT_ENV: "ty-serving", serving.URL_ENV: "http://ty-serving:8080"}}
)
assert server.describe() == "deployment/ty-serving in default", server.describe()
print("ok")
"""


def test_trainer_stages_import_without_the_laptop_runtime() -> None:
    proc = subprocess.run(
        [sys.executable, "-c", PROBE], capture_output=True, text=True, timeout=300, check=False
    )
    assert proc.returncode == 0 and proc.stdout.strip().endswith("ok"), proc.stderr[-2000:]


def imported_packages(source: str) -> set[str]:
    """The `trainyard.<x>` (or `digits`) each import in `source` names, module-level or inside a
    function."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            # `from trainyard import storage` names trainyard.storage
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    units = {".".join(n.split(".")[:2]) for n in names if n.startswith("trainyard.")}
    return units | {"digits" for n in names if n.split(".")[0] == "digits"}


def package_imports() -> dict[str, set[str]]:
    """Which of trainyard's packages and top-level modules (and the digits trainer) each one
    imports (never itself)."""
    graph: dict[str, set[str]] = defaultdict(set)
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE).with_suffix("").parts
        if parts == ("__init__",):
            continue
        unit = f"trainyard.{parts[0]}"
        graph[unit] |= imported_packages(path.read_text()) - {unit}
    for path in DIGITS.rglob("*.py"):
        graph["digits"] |= imported_packages(path.read_text()) - {"digits"}
    return graph


def test_imported_packages_sees_lazy_and_from_imports() -> None:
    source = (
        "from trainyard import storage\n"
        "def f():\n    from trainyard.standalone.processes import stop_group\n"
        "import numpy\nfrom digits.config import TrainConfig\n"
    )
    assert imported_packages(source) == {"trainyard.storage", "trainyard.standalone", "digits"}


def test_no_import_cycle_between_trainyards_packages() -> None:
    graph = package_imports()
    assert "trainyard.standalone" in graph["trainyard.cli"]  # the walk sees real imports
    assert "trainyard.stages" in graph["trainyard.standalone"]  # the laptop model server
    for pod_code in ("digits", "trainyard.stages"):
        assert "trainyard.standalone" not in graph[pod_code], (
            "pod code must not know the laptop runtime"
        )
    try:
        order = list(graphlib.TopologicalSorter(graph).static_order())
    except graphlib.CycleError as cycle:
        pytest.fail(f"import cycle between packages: {' -> '.join(cycle.args[1])}")
    assert order.index("trainyard.processes") < order.index("trainyard.standalone")


def test_the_platform_imports_no_trainer() -> None:
    """Pipeline building blocks, stages, the laptop runtime and the SDK import nothing of the
    digits trainer: a team's pipeline runs without its code, and the Airflow image (which copies
    only what the DAG imports) carries none of it."""
    graph = package_imports()
    assert "trainyard.sdk" in graph["digits"]  # the walk sees the trainer's imports
    assert sorted(unit for unit, imported in graph.items() if "digits" in imported) == []

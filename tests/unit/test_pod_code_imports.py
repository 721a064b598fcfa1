"""Code that runs in trainer pods does not import the laptop runtime.

The trainer image installs the package without the `standalone` extra (no psutil, no embedded
PostgreSQL): a module-level import of `trainyard.standalone` from a stage's import chain failed
every deploy pod on kind with "No module named 'psutil'".
"""

from __future__ import annotations

import subprocess
import sys

import pytest

pytestmark = pytest.mark.unit

# Every module of the trainer package (what pods run), with the laptop runtime unimportable.
PROBE = """
import importlib, importlib.abc, sys

class Refuse(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name == "psutil" or name.startswith("trainyard.standalone"):
            raise ModuleNotFoundError(f"No module named {name!r} (blocked by the test)")
        return None

sys.meta_path.insert(0, Refuse())
import pkgutil
import trainyard.trainer as package
names = [m.name for m in pkgutil.iter_modules(package.__path__) if m.name != "__main__"]
assert "deploy" in names and "serving" in names, names
for name in names:
    importlib.import_module(f"trainyard.trainer.{name}")
print("ok")
"""


def test_trainer_stages_import_without_the_laptop_runtime() -> None:
    proc = subprocess.run(
        [sys.executable, "-c", PROBE], capture_output=True, text=True, timeout=300, check=False
    )
    assert proc.returncode == 0 and proc.stdout.strip().endswith("ok"), proc.stderr[-2000:]

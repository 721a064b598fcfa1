"""The SDK installs into any trainer image: standard library, mlflow and fsspec only.

It must not reach torch, numpy, Airflow, Kubernetes or the rest of trainyard (whose base
dependencies a user's image does not have): checked on the source's imports, and by importing
it in a process where those packages cannot be found.
"""

from __future__ import annotations

import ast
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import dockerfile
import pytest

pytestmark = pytest.mark.unit

REPO = Path(__file__).resolve().parents[2]
SDK = REPO / "platform" / "trainyard" / "sdk"
ALLOWED_THIRD_PARTY = {"mlflow", "fsspec", "s3fs", "torch"}  # torch: only inside a function
FORBIDDEN = ("torch", "numpy", "pandas", "airflow", "kubernetes", "sklearn", "boto3")


def imports(tree: ast.AST, top_level_only: bool) -> list[tuple[str, int]]:
    """(module, line) of every import; with `top_level_only`, none inside a function."""
    nodes = ast.walk(tree) if not top_level_only else iter(_outside_functions(tree))
    found = []
    for node in nodes:
        if isinstance(node, ast.Import):
            found += [(alias.name, node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.append((node.module, node.lineno))
    return found


def _outside_functions(tree: ast.AST) -> list[ast.AST]:
    nodes: list[ast.AST] = []
    for child in ast.iter_child_nodes(tree):
        if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef):
            continue
        # `if TYPE_CHECKING:` imports are for mypy only.
        if isinstance(child, ast.If) and ast.unparse(child.test) == "TYPE_CHECKING":
            continue
        nodes.append(child)
        nodes += _outside_functions(child)
    return nodes


def allowed(module: str) -> bool:
    top = module.split(".", maxsplit=1)[0]
    if top == "trainyard":
        return module == "trainyard.sdk" or module.startswith("trainyard.sdk.")
    return top in sys.stdlib_module_names | ALLOWED_THIRD_PARTY


def test_the_sdk_imports_only_the_standard_library_and_its_few_dependencies():
    files = sorted(SDK.glob("*.py"))
    assert files
    wrong = []
    for file in files:
        for module, line in imports(ast.parse(file.read_text()), top_level_only=False):
            if not allowed(module):
                wrong.append(f"{file.name}:{line} imports {module}")
        for module, line in imports(ast.parse(file.read_text()), top_level_only=True):
            if module.split(".")[0] in {"torch", "mlflow"}:
                wrong.append(f"{file.name}:{line} imports {module} at module level")
    assert wrong == []


BLOCKED_PROBE = f"""
import importlib.abc, sys

class Blocked(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        top = name.split(".")[0]
        if top in {FORBIDDEN!r} or (
            top == "trainyard" and name not in ("trainyard", "trainyard.sdk")
            and not name.startswith("trainyard.sdk.")
        ):
            raise ModuleNotFoundError(f"No module named {{name!r}} (blocked)")
        return None

sys.meta_path.insert(0, Blocked())
from trainyard import sdk
env = sdk.read_environment({{"RANK": "0", "WORLD_SIZE": "1"}})
assert sdk.processes(env).is_main
print("ok", sorted(m for m in sys.modules if m.split(".")[0] in {FORBIDDEN!r}))
"""


def test_the_sdk_imports_where_torch_airflow_and_the_platform_cannot_be_found():
    done = subprocess.run(
        [sys.executable, "-c", BLOCKED_PROBE],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ok []"


def test_the_base_install_is_the_sdk_and_the_trainer_image_takes_the_trainer_extra():
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    names = {re.split(r"[<>=\[ ]", spec, maxsplit=1)[0] for spec in project["dependencies"]}
    assert names == {"mlflow-skinny", "fsspec", "s3fs"}
    assert any(spec.startswith("torch==") for spec in project["optional-dependencies"]["trainer"])
    assert "trainyard[trainer]" in project["optional-dependencies"]["standalone"]
    installs = [
        command.original
        for command in dockerfile.parse_file(str(REPO / "images/trainer/Dockerfile"))
        if command.cmd == "RUN" and "/build/trainyard" in command.original
    ]
    assert any('pip install --no-compile "/build/trainyard[trainer]"' in run for run in installs)

"""The Airflow image's dag-processor command imports the pod operator before parses fork.

Each probe is a fresh interpreter: it runs the entrypoint's preload, as the dag-processor's
parent does, then the DAG file, as a forked parse does, and reports what the parse imported.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.unit

REPO = Path(__file__).resolve().parents[2]
ENTRYPOINT = REPO / "images" / "airflow" / "airflow_preloaded.py"
DAG_FILE = REPO / "dags" / "ml_training_pipeline.py"
PROBE = f"""
import json, runpy, sys
runpy.run_path({str(ENTRYPOINT)!r})["preload"]()
preloaded = set(sys.modules)
runpy.run_path({str(DAG_FILE)!r})
kubernetes_side = ("kubernetes", "airflow.providers.cncf.kubernetes")
parsed = set(sys.modules) - preloaded
print(json.dumps({{
    "preloaded": sorted(m for m in preloaded if m.startswith(kubernetes_side)),
    "parse_imported": sorted(m for m in parsed if m.startswith(kubernetes_side)),
    "client_loaded": "kubernetes" in sys.modules,
}}))
"""


def run(tmp_path: Path, runtime: str, *command: str) -> subprocess.CompletedProcess[str]:
    config = tmp_path / "platform.json"
    config.write_text(json.dumps({"runtime": runtime}))
    return subprocess.run(
        [sys.executable, *command],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "TRAINYARD_PLATFORM_CONFIG": str(config)},
    )


def probe(tmp_path: Path, runtime: str) -> dict[str, Any]:
    out = run(tmp_path, runtime, "-c", PROBE).stdout
    result: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
    return result


def test_on_kubernetes_the_parse_finds_the_pod_operator_and_client_loaded(tmp_path: Path) -> None:
    result = probe(tmp_path, "kubernetes")
    assert "airflow.providers.cncf.kubernetes.operators.pod" in result["preloaded"]
    assert "kubernetes.client" in result["preloaded"]
    # Anything listed here is imported again by every forked parse.
    assert result["parse_imported"] == []


def test_standalone_neither_preloads_nor_parses_the_kubernetes_client(tmp_path: Path) -> None:
    result = probe(tmp_path, "standalone")
    # (Airflow's CLI parser, which the entrypoint imports, loads the provider's CLI commands.)
    assert "airflow.providers.cncf.kubernetes.operators.pod" not in result["preloaded"]
    assert result["parse_imported"] == []
    assert result["client_loaded"] is False


def test_the_entrypoint_runs_airflow_even_when_the_preload_fails(tmp_path: Path) -> None:
    import airflow  # noqa: PLC0415

    # An unknown runtime fails the platform config; the dag-processor must still start.
    done = run(tmp_path, "no-such-runtime", str(ENTRYPOINT), "version")
    assert done.stdout.strip().splitlines()[-1] == airflow.__version__
    assert "pod operator not pre-imported" in done.stderr

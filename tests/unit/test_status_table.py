"""`trainyard status`: a table for people by default, the JSON report with --json, the exit code
as before. On report dicts shaped like `runtime.status`'s; no service is started."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from trainyard import cli
from trainyard.standalone import runtime
from trainyard.standalone.status_table import format_status, process_cell

pytestmark = pytest.mark.unit

URLS = {
    "postgres": "postgresql://127.0.0.1:5433/airflow",
    "s3": "http://127.0.0.1:8333",
    "mlflow": "http://127.0.0.1:5000",
    "airflow": "http://127.0.0.1:8080",
    "serving": "http://127.0.0.1:5001",
}


def service(process: str, pid: int, probe: str, others: list[int] | None = None) -> dict[str, Any]:
    return {
        "process": process,
        "pid": pid,
        "other_processes": others or [],
        "probe": probe,
        "ok": process == "running" and probe in ("HTTP 200", "accepts connections"),
    }


def report(problems: list[str] | None = None, **changed: dict[str, Any]) -> dict[str, Any]:
    services = {
        "postgres": service("running", 101, "accepts connections", [102, 103]),
        "s3": service("running", 201, "HTTP 200"),
        "mlflow": service("running", 301, "HTTP 200", [302]),
        "airflow-api-server": service("running", 401, "HTTP 200"),
        "airflow-scheduler": service("running", 501, "health: healthy"),
        "serving": {"process": None, "probe": "URLError", "answers": False},
    }
    services.update(changed)
    return {
        "services": services,
        "urls": URLS,
        "metadata_db": "postgres",
        "problems": problems or [],
        "import_errors": [],
    }


def columns(line: str, header: str) -> dict[str, str]:
    """A table row cut at the header's column starts."""
    starts = [header.index(name) for name in ("SERVICE", "PROCESS", "PROBE", "PROBLEM")]
    cells = [line[a:b].strip() for a, b in zip(starts, [*starts[1:], None], strict=True)]
    return dict(zip(("service", "process", "probe", "problem"), cells, strict=True))


def test_a_healthy_platform_is_one_row_per_service_then_the_urls() -> None:
    text = format_status(report())
    lines = text.splitlines()
    header = lines[0]
    assert header.split() == ["SERVICE", "PROCESS", "PROBE", "PROBLEM"]
    rows = {columns(line, header)["service"]: columns(line, header) for line in lines[1:7]}
    assert list(rows) == [
        "postgres",
        "s3",
        "mlflow",
        "airflow-api-server",
        "airflow-scheduler",
        "serving",
    ]
    assert rows["postgres"] == {
        "service": "postgres",
        "process": "running, pid 101 (+2 processes)",
        "probe": "accepts connections",
        "problem": "-",
    }
    assert rows["mlflow"]["process"] == "running, pid 301 (+1 process)"
    assert rows["s3"]["process"] == "running, pid 201"
    assert rows["airflow-scheduler"]["probe"] == "health: healthy"
    # the model server is started by the deploy step, not by `up`: no process to show
    assert rows["serving"] == {
        "service": "serving",
        "process": "-",
        "probe": "URLError",
        "problem": "-",
    }
    # a blank line, then every URL (PostgreSQL's port is only shown here) and the database
    assert lines[7] == ""
    assert "postgres  postgresql://127.0.0.1:5433/airflow" in lines[8:]
    assert "airflow   http://127.0.0.1:8080" in lines[8:]
    assert lines[-1] == "metadata database: postgres"
    assert all(line == line.rstrip() for line in lines)


def test_each_problem_is_on_its_services_row() -> None:
    problems = [
        "mlflow: process 301 is gone but the service still answers (HTTP 200); processes "
        "left: [302]: run `trainyard down`",
        "airflow-scheduler: process 501 runs but its probe fails (health: unhealthy)",
    ]
    text = format_status(
        report(
            problems,
            mlflow=service("stopped", 301, "HTTP 200", [302]),
            **{"airflow-scheduler": service("running", 501, "health: unhealthy")},
        )
    )
    lines = text.splitlines()
    rows = {columns(line, lines[0])["service"]: columns(line, lines[0]) for line in lines[1:7]}
    assert rows["mlflow"]["process"] == "stopped, pid 301 (1 process left)"
    assert rows["mlflow"]["problem"] == (
        "process 301 is gone but the service still answers (HTTP 200); processes left: [302]: "
        "run `trainyard down`"
    )
    assert rows["airflow-scheduler"]["problem"] == (
        "process 501 runs but its probe fails (health: unhealthy)"
    )
    assert rows["airflow-api-server"]["problem"] == "-"


def test_a_problem_goes_to_the_longest_matching_service_and_unknown_ones_below() -> None:
    problems = ["airflow-api-server: process 401 is gone and nothing answers", "disk: full"]
    text = format_status(
        report(problems, **{"airflow-api-server": service("stopped", 401, "URLError")})
    )
    lines = text.splitlines()
    row = columns(lines[4], lines[0])
    assert row["service"] == "airflow-api-server"
    assert row["problem"] == "process 401 is gone and nothing answers"
    assert "problem: disk: full" in lines


def test_process_cell_of_an_older_report() -> None:
    assert process_cell({"process": "running"}) == "running"
    assert process_cell({"process": None}) == "-"
    assert process_cell({"process": "stopped", "pid": 7, "other_processes": [8, 9]}) == (
        "stopped, pid 7 (2 processes left)"
    )


@pytest.fixture
def status_of(monkeypatch: pytest.MonkeyPatch) -> Any:
    """`runtime.status` answering a given report (no platform runs)."""

    def answer(given: dict[str, Any]) -> None:
        monkeypatch.setattr(runtime, "status", lambda workdir: given)

    return answer


def test_cli_prints_the_table_by_default(
    status_of: Any, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    status_of(report())
    assert cli.main(["--workdir", str(tmp_path), "status"]) == 0
    out, err = capsys.readouterr()
    assert out == format_status(report()) + "\n"
    assert err == ""


def test_cli_prints_the_json_report_with_json(
    status_of: Any, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    problem = "s3: process 201 runs but its probe fails (URLError)"
    given = report([problem], s3=service("running", 201, "URLError"))
    given["import_errors"] = ["user/broken.py: RuntimeError: broken"]
    status_of(given)
    assert cli.main(["--workdir", str(tmp_path), "status", "--json"]) == 1
    out, err = capsys.readouterr()
    assert json.loads(out) == given
    assert err.splitlines() == [
        f"trainyard status: {problem}",
        "trainyard status: DAG import error: user/broken.py: RuntimeError: broken",
    ]


def test_cli_exit_code_and_import_errors_with_the_table(
    status_of: Any, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    problem = "s3: process 201 is gone and nothing answers"
    given = report([problem], s3=service("stopped", 201, "URLError"))
    given["import_errors"] = ["user/broken.py: RuntimeError: broken"]
    status_of(given)
    assert cli.main(["--workdir", str(tmp_path), "status"]) == 1
    out, err = capsys.readouterr()
    assert "process 201 is gone and nothing answers" in out
    # the problem is in the table; the import error (not a service's) goes to stderr as before
    assert err.splitlines() == [
        "trainyard status: DAG import error: user/broken.py: RuntimeError: broken"
    ]
    status_of(report())
    assert cli.main(["--workdir", str(tmp_path), "status"]) == 0

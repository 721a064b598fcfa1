"""`trainyard status` for people: the report of `runtime.status` as a table.

One row per service: its main process, its health probe and the problem the report names for
it, if any; then the platform's URLs. `trainyard status --json` prints the report itself.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

COLUMNS = ("SERVICE", "PROCESS", "PROBE", "PROBLEM")


def process_cell(entry: Mapping[str, Any]) -> str:
    """`running, pid 4242 (+2 processes)`, `stopped, pid 4242 (2 processes left)`, or `-` for
    a service `up` did not start (the model server, started by the deploy step)."""
    state = entry.get("process")
    if not state:
        return "-"
    text = f"{state}, pid {entry['pid']}" if entry.get("pid") is not None else str(state)
    others = len(entry.get("other_processes") or [])
    if others:
        noun = "process" if others == 1 else "processes"
        text += f" (+{others} {noun})" if state == "running" else f" ({others} {noun} left)"
    return text


def _problems_by_service(
    services: Sequence[str], problems: Sequence[str]
) -> tuple[dict[str, list[str]], list[str]]:
    """Each problem under the service it starts with (`<service>: ...`); the rest apart."""
    found: dict[str, list[str]] = {name: [] for name in services}
    # Longest names first: no service name may claim another's problem by prefix.
    names = sorted(services, key=len, reverse=True)
    others = []
    for problem in problems:
        owner = next((name for name in names if problem.startswith(f"{name}: ")), None)
        if owner is None:
            others.append(problem)
        else:
            found[owner].append(problem.removeprefix(f"{owner}: "))
    return found, others


def table(rows: Sequence[Sequence[str]]) -> list[str]:
    """Left-aligned columns two spaces apart; the last column is not padded."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]) - 1)]
    return [
        "  ".join(
            [*(cell.ljust(w) for cell, w in zip(row, widths, strict=False)), row[-1]]
        ).rstrip()
        for row in rows
    ]


def format_status(report: Mapping[str, Any]) -> str:
    """The status report (`runtime.status`) as text: the services' table, then the URLs."""
    services: Mapping[str, Mapping[str, Any]] = report.get("services") or {}
    problems, unowned = _problems_by_service(list(services), report.get("problems") or [])
    rows = [list(COLUMNS)]
    for name, entry in services.items():
        rows.append(
            [
                name,
                process_cell(entry),
                str(entry.get("probe") or "-"),
                "; ".join(problems[name]) or "-",
            ]
        )
    lines = table(rows)
    lines += [f"problem: {problem}" for problem in unowned]
    urls: Mapping[str, str] = report.get("urls") or {}
    if urls:
        lines.append("")
        width = max(len(name) for name in urls)
        lines += [f"{name:<{width}}  {url}" for name, url in urls.items()]
    if report.get("metadata_db"):
        lines.append(f"metadata database: {report['metadata_db']}")
    return "\n".join(lines)

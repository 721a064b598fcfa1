"""`${...}` references in a spec's strings: the platform's values a stage's arguments name.

Jinja (`{{ ds }}`, `{{ params.epochs }}`) passes through to Airflow untouched; `${...}` is the
spec's own: checked when the spec is loaded (an unknown name is an error there, not in a run),
replaced when the DAG is built (`${trial.*}` when the trials are expanded).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable

REFERENCE = re.compile(r"\$\{([^}]*)\}")

# Known everywhere; `stages.<name>.<key>` and (train only) `trial.<field>` are checked apart.
RUN_VALUES = ("input", "work", "experiment", "model_name", "pipeline")
PLATFORM_VALUES = (
    "platform.data_root",
    "platform.work_root",
    "platform.model_name",
    "platform.experiment",
)
TRIAL_VALUES = ("trial.index", "trial.label", "trial.checkpoint", "trial.processes")
STAGE_OUTPUT = re.compile(r"^stages\.([a-z][a-z0-9_]*)\.([A-Za-z_][A-Za-z0-9_]*)$")


def names(text: str) -> list[str]:
    return [match.group(1).strip() for match in REFERENCE.finditer(text)]


def problem(name: str, earlier_stages: Iterable[str], in_train: bool) -> str | None:
    """Why `${name}` cannot be used here, or None when it can."""
    if name in RUN_VALUES or name in PLATFORM_VALUES:
        return None
    if name in TRIAL_VALUES:
        return None if in_train else f"${{{name}}} exists only in the train stage"
    output = STAGE_OUTPUT.match(name)
    if output:
        stage = output.group(1)
        earlier = list(earlier_stages)
        if stage in earlier:
            return None
        return f"${{{name}}}: no earlier prepare stage is named {stage!r} (earlier: {earlier})"
    known = [*RUN_VALUES, *PLATFORM_VALUES, "stages.<stage>.<key>"]
    if in_train:
        known += TRIAL_VALUES
    return f"unknown reference ${{{name}}}; known: {', '.join(known)}"


def substitute(text: str, value_of: Callable[[str], str | None]) -> str:
    """Each `${name}` for which `value_of` gives a value, replaced; the others kept."""

    def replace(match: re.Match[str]) -> str:
        value = value_of(match.group(1).strip())
        return match.group(0) if value is None else value

    return REFERENCE.sub(replace, text)

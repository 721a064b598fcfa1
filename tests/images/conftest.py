"""Fixtures of the image tests: a Docker engine, the base images, the images built by
scripts/build-images, and real S3 + MLflow servers on the host for the containers to talk to.

The engine is a real dockerd (started here when installed but not running, stopped after);
the Python base is Debian bookworm from debootstrap (`scripts/make-base-images`: no registry is
reachable in CI); the images are built by scripts/build-images exactly as a release is. When
a prerequisite is missing the tests skip and say which one; a failing build or container
fails them.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import dockerfile
import pytest

from tests.conftest import Services, StageRun, unavailable

REPO = Path(__file__).resolve().parents[2]
BUILD_IMAGES = REPO / "scripts" / "build-images"
MAKE_BASE = REPO / "scripts" / "make-base-images"
# scripts/make-base-images' default tag; TRAINYARD_TEST_PYTHON_BASE picks another base (e.g. the
# real python:3.11.14-slim-bookworm on a machine that can pull it).
LOCAL_PYTHON_BASE = "trainyard-local/python:3.11-slim-bookworm"
# dockerd and debootstrap live in sbin, which a non-root PATH may lack.
SEARCH_PATH = os.pathsep.join([os.environ.get("PATH", ""), "/usr/local/sbin", "/usr/sbin", "/sbin"])
# Lines for the terminal summary: image sizes and build times, reported on every run.
REPORT: list[str] = []


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if REPORT:
        terminalreporter.write_sep("-", "trainyard images")
        for line in REPORT:
            terminalreporter.write_line(line)


def docker(
    *args: str, timeout: float = 120, check: bool = True, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """The docker CLI; `env` is for `-e NAME` flags, so values stay off the command line."""
    proc = subprocess.run(
        ["docker", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        env={**os.environ, **(env or {})},
    )
    if check and proc.returncode != 0:
        pytest.fail(f"docker {' '.join(args[:3])} … failed ({proc.returncode}):\n{proc.stderr}")
    return proc


def _engine_answers() -> tuple[bool, str]:
    try:
        proc = docker("info", "--format", "{{.ServerVersion}}", timeout=30, check=False)
    except subprocess.TimeoutExpired:
        return False, "`docker info` timed out"
    lines = (proc.stderr or proc.stdout).strip().splitlines()
    return proc.returncode == 0 and bool(proc.stdout.strip()), (lines or [""])[-1]


def _why_dockerd_failed(log: Path) -> str:
    """The daemon's own last error line, e.g. an iptables or storage-driver failure."""
    lines = log.read_text(errors="replace").strip().splitlines()
    errors = [line for line in lines if "level=error" in line or "level=fatal" in line]
    return ((errors or lines or ["no output"])[-1])[-400:]


@pytest.fixture(scope="session")
def docker_engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A running Docker engine: the machine's, or a dockerd started here (and stopped after)."""
    if not shutil.which("docker"):
        unavailable("no Docker engine: the docker CLI is not installed")
    ok, detail = _engine_answers()
    if ok:
        yield detail
        return
    dockerd = shutil.which("dockerd", path=SEARCH_PATH)
    if not dockerd:
        unavailable(f"no Docker engine: `docker info` failed ({detail}); dockerd not installed")
    if os.geteuid() != 0:
        unavailable(f"no Docker engine: `docker info` failed ({detail}); dockerd needs root")
    log = tmp_path_factory.mktemp("dockerd") / "dockerd.log"
    with log.open("wb") as out:
        daemon = subprocess.Popen(
            [dockerd], stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    try:
        deadline = time.monotonic() + 90
        while not (ok := _engine_answers())[0]:
            if daemon.poll() is not None:
                unavailable(f"dockerd failed to start: {_why_dockerd_failed(log)}")
            if time.monotonic() > deadline:
                unavailable(
                    f"dockerd failed to start: no answer in 90 s: {_why_dockerd_failed(log)}"
                )
            time.sleep(1)
        yield ok[1]
    finally:
        daemon.terminate()
        try:
            daemon.wait(timeout=30)
        except subprocess.TimeoutExpired:
            daemon.kill()
            daemon.wait()


@pytest.fixture(scope="session")
def python_base(docker_engine: str) -> str:
    """The python:3.11 slim base: debootstrap-made unless TRAINYARD_TEST_PYTHON_BASE names one."""
    chosen = os.environ.get("TRAINYARD_TEST_PYTHON_BASE")
    if chosen:
        return chosen
    if docker("image", "inspect", LOCAL_PYTHON_BASE, check=False).returncode == 0:
        return LOCAL_PYTHON_BASE
    if not shutil.which("debootstrap", path=SEARCH_PATH):
        unavailable("cannot make the python base image offline: debootstrap not installed")
    if os.geteuid() != 0:
        unavailable("cannot make the python base image offline: debootstrap needs root")
    started = time.monotonic()
    proc = subprocess.run(
        [str(MAKE_BASE), "--tag", LOCAL_PYTHON_BASE],
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
        env={**os.environ, "PATH": SEARCH_PATH},
    )
    assert proc.returncode == 0, f"scripts/make-base-images failed:\n{proc.stderr[-4000:]}"
    REPORT.append(
        f"{LOCAL_PYTHON_BASE}: made with debootstrap in {time.monotonic() - started:.0f} s"
    )
    return LOCAL_PYTHON_BASE


def dockerfile_arg(image: str, name: str) -> str:
    """A pinned default from images/<image>/Dockerfile (`ARG name=default`)."""
    for command in dockerfile.parse_file(str(REPO / "images" / image / "Dockerfile")):
        if command.cmd == "ARG" and command.value[0].startswith(f"{name}="):
            return str(command.value[0].split("=", 1)[1])
    raise LookupError(f"images/{image}/Dockerfile: no ARG {name}")


@pytest.fixture(scope="session")
def airflow_base(docker_engine: str, request: pytest.FixtureRequest) -> str:
    """apache/airflow:<pinned> when it is in the engine or can be pulled, else the plain Python
    base (images/airflow builds on both: Airflow and the providers are pip-installed), or
    TRAINYARD_TEST_AIRFLOW_BASE."""
    chosen = os.environ.get("TRAINYARD_TEST_AIRFLOW_BASE")
    if chosen:
        return chosen
    ref = dockerfile_arg("airflow", "AIRFLOW_IMAGE")
    if docker("image", "inspect", ref, check=False).returncode == 0:
        return ref
    pulled = docker("pull", ref, timeout=900, check=False)
    if pulled.returncode == 0:
        return ref
    reason = (pulled.stderr.strip().splitlines() or ["no output"])[-1]
    base: str = request.getfixturevalue("python_base")
    REPORT.append(f"airflow image on {base}: cannot pull {ref}: {reason}")
    return base


@dataclass(frozen=True)
class BuiltImage:
    ref: str
    size_bytes: int
    build_seconds: float
    revision: str  # git HEAD when the build started ("" outside a git checkout)


def git_head() -> str:
    proc = subprocess.run(
        ["git", "-C", str(REPO), "rev-parse", "HEAD"], capture_output=True, text=True, check=False
    )
    return proc.stdout.strip()


def build(image: str, base_name: str, base: str) -> BuiltImage:
    """`scripts/build-images --only <image> --base-image <base_name>=<base>`, as a release does."""
    args = ["--only", image, "--base-image", f"{base_name}={base}"]
    printed = subprocess.run(
        [str(BUILD_IMAGES), "--print-images", *args], capture_output=True, text=True, check=True
    )
    ref = printed.stdout.strip()
    revision = git_head()
    started = time.monotonic()
    proc = subprocess.run(
        [str(BUILD_IMAGES), *args], capture_output=True, text=True, timeout=1500, check=False
    )
    seconds = time.monotonic() - started
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, f"scripts/build-images {' '.join(args)} failed:\n{output[-6000:]}"
    size = int(docker("image", "inspect", "--format", "{{.Size}}", ref).stdout)
    REPORT.append(f"{ref} ({image}): {size / 1e9:.2f} GB, built in {seconds:.0f} s from {base}")
    return BuiltImage(ref, size, seconds, revision)


@pytest.fixture(scope="session")
def trainer_image(python_base: str) -> BuiltImage:
    """trainyard/trainer:<appVersion>, the CPU variant."""
    return build("trainer-cpu", "python", python_base)


@pytest.fixture(scope="session")
def mlflow_image(python_base: str) -> BuiltImage:
    return build("mlflow", "python", python_base)


@pytest.fixture(scope="session")
def airflow_image(airflow_base: str) -> BuiltImage:
    return build("airflow", "airflow", airflow_base)


def wait_for_container(name: str, url: str, what: str, timeout_s: float = 180) -> None:
    """Poll `url` until it answers 200; fail with the container's log if it exits or times out."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        running = docker("inspect", "--format", "{{.State.Running}}", name).stdout.strip()
        logs = docker("logs", name, check=False)
        tail = (logs.stdout + logs.stderr)[-4000:]
        assert running == "true", f"{what} exited:\n{tail}"
        assert time.monotonic() < deadline, (
            f"{what}: no answer on {url} in {timeout_s:.0f} s:\n{tail}"
        )
        time.sleep(2)


def xcom_folder(parent: Path, name: str) -> Path:
    """A host folder to mount at /airflow/xcom, writable by the image's non-root user."""
    folder = parent / name
    folder.mkdir()
    folder.chmod(0o777)
    return folder


@dataclass
class TrainerContainer:
    """Runs `docker run <image> <stage> …` the way a pod does: the platform env, /airflow/xcom."""

    image: str
    env: dict[str, str]
    workdir: Path

    def docker_run(
        self, *args: str, options: tuple[str, ...] = (), timeout: float = 600
    ) -> subprocess.CompletedProcess[str]:
        # `-e NAME` without a value: docker takes it from its own environment, so credentials
        # never appear on a command line.
        env_flags = [flag for name in self.env for flag in ("-e", name)]
        return subprocess.run(
            ["docker", "run", "--network", "host", *env_flags, *options, self.image, *args],
            env={**os.environ, **self.env},
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    def stage(self, *args: str, name: str) -> StageRun:
        """A stage with a fresh host folder mounted at /airflow/xcom (as the pod's emptyDir)."""
        xcom = xcom_folder(self.workdir, name)
        proc = self.docker_run(*args, options=("--rm", "-v", f"{xcom}:/airflow/xcom"))
        return StageRun(proc.returncode, proc.stdout, proc.stderr, xcom / "return.json")


@pytest.fixture(scope="module")
def trainer(
    trainer_image: BuiltImage, services: Services, tmp_path_factory: pytest.TempPathFactory
) -> TrainerContainer:
    return TrainerContainer(
        trainer_image.ref, services.env, tmp_path_factory.mktemp("trainer-xcom")
    )

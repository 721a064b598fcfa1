"""What a kind run needs from the machine, each check with the exact reason it cannot run here.

The e2e fixture turns UnavailableError into a pytest skip on a developer's machine without
kind, a Docker engine or the offline toolchain (reported as skipped with this reason, never
passed), and into a failure in CI, which provides all of them. Anything else is a failure.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

from .images import REPO

MIN_KIND_VERSION = (0, 27, 0)
DEFAULT_HELM = REPO / ".tools" / "bin" / "helm"


class UnavailableError(Exception):
    """A kind run is impossible on this machine; the message says what is missing."""


def _last_line(text: str) -> str:
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return lines[-1] if lines else "(no output)"


def _executable(option: str | None, name: str, hint: str) -> Path:
    if option:
        path = Path(option).expanduser()
        if not (path.is_file() and os.access(path, os.X_OK)):
            raise UnavailableError(f"{name} not found: {path} is not an executable file")
        return path.resolve()
    found = shutil.which(name)
    if not found:
        raise UnavailableError(f"{name} not found: {hint}")
    return Path(found)


def parse_kind_version(text: str) -> tuple[int, int, int] | None:
    """`kind version` prints e.g. "kind v0.27.0 go1.23.6 linux/amd64"."""
    match = re.search(r"\bv?(\d+)\.(\d+)\.(\d+)", text)
    return (int(match[1]), int(match[2]), int(match[3])) if match else None


def find_kind(option: str | None) -> Path:
    want = ".".join(map(str, MIN_KIND_VERSION))
    kind = _executable(option, "kind", f"pass --kind-bin or put kind >= {want} on PATH")
    proc = subprocess.run(
        [str(kind), "version"], capture_output=True, text=True, timeout=30, check=False
    )
    version = parse_kind_version(proc.stdout)
    if proc.returncode != 0 or version is None:
        raise UnavailableError(
            f"kind at {kind} does not run: {_last_line(proc.stderr + proc.stdout)}"
        )
    if version < MIN_KIND_VERSION:
        raise UnavailableError(
            f"kind {'.'.join(map(str, version))} at {kind} is too old: need kind >= {want} "
            "(pass --kind-bin)"
        )
    return kind


def find_kubectl(option: str | None) -> Path:
    return _executable(option, "kubectl", "pass --kind-kubectl-bin or put kubectl on PATH")


def find_helm(option: str | None) -> Path:
    if option:
        return _executable(option, "helm", "")
    if not os.access(DEFAULT_HELM, os.X_OK):
        raise UnavailableError(
            f"helm not found: {DEFAULT_HELM.relative_to(REPO)} is missing (run `make tools`) "
            "and no --helm-bin was given"
        )
    return DEFAULT_HELM


def check_docker() -> str:
    """The Docker engine's version; UnavailableError when there is no engine to run kind's nodes."""
    if not shutil.which("docker"):
        raise UnavailableError("no Docker engine: the `docker` command is not on PATH")
    proc = subprocess.run(
        ["docker", "info", "--format", "{{.ServerVersion}}"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    if proc.returncode != 0 or not proc.stdout.strip():
        raise UnavailableError(f"no Docker engine: `docker info` failed: {_last_line(proc.stderr)}")
    return proc.stdout.strip()


def ensure_image(ref: str, timeout_s: float = 900) -> None:
    """The image is in the local Docker store, pulled now if needed."""
    inspect = subprocess.run(
        ["docker", "image", "inspect", ref], capture_output=True, timeout=60, check=False
    )
    if inspect.returncode == 0:
        return
    try:
        pull = subprocess.run(
            ["docker", "pull", ref], capture_output=True, text=True, timeout=timeout_s, check=False
        )
    except subprocess.TimeoutExpired:
        raise UnavailableError(
            f"no registry access: cannot pull {ref}: `docker pull` took over {timeout_s:.0f} s"
        ) from None
    if pull.returncode != 0:
        raise UnavailableError(f"no registry access: cannot pull {ref}: {_last_line(pull.stderr)}")


# What `docker build` prints when a base image cannot be fetched (as opposed to a broken build).
_PULL_FAILURES = re.compile(
    r"failed to resolve source metadata|pull access denied|failed to fetch anonymous token|"
    r"dial tcp|no such host|TLS handshake timeout|i/o timeout|connection refused.*registry|"
    r"manifest unknown|toomanyrequests",
    re.IGNORECASE,
)


def build_failure_is_registry_access(output: str) -> str | None:
    """The line of a failed image build that says a base image could not be pulled, if any."""
    for line in output.splitlines():
        if _PULL_FAILURES.search(line):
            return line.strip()
    return None


MAKE_BASE_IMAGES = REPO / "scripts" / "make-base-images"


def python_base_image(timeout_s: float = 900) -> str:
    """The Python base image made without a registry (scripts/make-base-images; kept if it
    exists), for the trainyard images of an offline run."""
    proc = subprocess.run(
        [str(MAKE_BASE_IMAGES)], capture_output=True, text=True, timeout=timeout_s, check=False
    )
    if proc.returncode != 0:
        raise UnavailableError(
            f"scripts/make-base-images failed: {_last_line(proc.stderr + proc.stdout)}"
        )
    return proc.stdout.strip().splitlines()[-1]

"""Rules over images/*/Dockerfile, in the spirit of hadolint, read with BuildKit's own parser
(the `dockerfile` package wraps moby/buildkit's Go parser, so continuation lines, quoting and
JSON forms are read exactly as `docker build` reads them).

Pinned bases (no `latest`, no bare tags, ARG defaults included), a numeric non-root USER in
the final stage, the OCI labels, nothing installed in the final stage of a multi-stage image,
apt hygiene, exec-form entrypoints, nothing a registry-less build would have to fetch.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import dockerfile
import pytest

pytestmark = pytest.mark.unit

REPO = Path(__file__).resolve().parents[2]
PLATFORM_DOCKERFILES = sorted((REPO / "images").glob("*/Dockerfile"))
# Teams' example images, built from their own folder (the build context), held to the same rules.
EXAMPLE_DOCKERFILES = sorted((REPO / "examples").glob("*/Dockerfile"))
DOCKERFILES = PLATFORM_DOCKERFILES + EXAMPLE_DOCKERFILES
IMAGE_NAMES = [path.parent.name for path in DOCKERFILES]
OCI_LABELS = {
    "org.opencontainers.image.source",
    "org.opencontainers.image.version",
    "org.opencontainers.image.revision",
}
# An exact release in the tag (3.11.14, 2.13.0, 3.3.2), or a digest: anything less moves.
PINNED_TAG = re.compile(r"\d+\.\d+\.\d+")
BUILD_TOOLS = re.compile(r"\b(gcc|g\+\+|clang|make|build-essential|python3?-dev|cmake)\b")


@dataclass
class Stage:
    base: str  # the FROM argument with ARG defaults substituted
    name: str  # `FROM … AS name`, or ""
    commands: list[dockerfile.Command]


def parse(path: Path) -> tuple[dict[str, str], list[Stage]]:
    """Global ARG defaults (resolved in order, as the builders do) and the stages."""
    args: dict[str, str] = {}
    stages: list[Stage] = []
    for command in dockerfile.parse_file(str(path)):
        if command.cmd == "FROM":
            name = command.value[2] if len(command.value) == 3 else ""
            stages.append(Stage(substitute(command.value[0], args), name, []))
        elif not stages and command.cmd == "ARG":
            name, _, default = command.value[0].partition("=")
            args[name] = substitute(default.strip("\"'"), args)
        elif stages:
            stages[-1].commands.append(command)
    return args, stages


def substitute(text: str, args: dict[str, str]) -> str:
    return re.sub(r"\$\{(\w+)\}|\$(\w+)", lambda m: args.get(m[1] or m[2], m[0]), text)


def assert_pinned(ref: str, where: str) -> None:
    assert "$" not in ref, f"{where}: {ref!r} has no default"
    if "@sha256:" in ref:
        return
    name = ref.rsplit("/", 1)[-1]
    assert ":" in name, f"{where}: {ref!r} has no tag (that is `latest`)"
    tag = name.split(":", 1)[1]
    assert tag != "latest", f"{where}: {ref!r} uses `latest`"
    assert PINNED_TAG.search(tag), f"{where}: {ref!r} does not pin an exact release"


def runs(stage: Stage) -> list[str]:
    return [" ".join(c.value) for c in stage.commands if c.cmd == "RUN"]


@dataclass
class Parsed:
    path: Path
    args: dict[str, str]
    stages: list[Stage]


@pytest.fixture(params=DOCKERFILES, ids=IMAGE_NAMES)
def image(request: pytest.FixtureRequest) -> Parsed:
    path: Path = request.param
    return Parsed(path, *parse(path))


def test_every_image_has_a_dockerfile() -> None:
    assert [path.parent.name for path in PLATFORM_DOCKERFILES] == ["airflow", "mlflow", "trainer"]
    assert "diabetes" in [path.parent.name for path in EXAMPLE_DOCKERFILES]


def test_bases_and_image_arg_defaults_are_pinned(image: Parsed) -> None:
    path, args, stages = image.path, image.args, image.stages
    for index, stage in enumerate(stages):
        if stage.base not in {s.name for s in stages[:index]}:  # FROM builder: a stage
            assert_pinned(stage.base, f"{path.parent.name}: FROM")
    for name, default in args.items():
        if name.endswith("_IMAGE"):
            assert_pinned(default, f"{path.parent.name}: ARG {name}")


def test_final_stage_runs_as_a_numeric_non_root_user(image: Parsed) -> None:
    path, stages = image.path, image.stages
    users = [c.value[0] for c in stages[-1].commands if c.cmd == "USER"]
    assert users, f"{path.parent.name}: the final stage sets no USER (it would run as root)"
    uid, _, _gid = users[-1].partition(":")
    # Kubernetes' runAsNonRoot can only verify a numeric user.
    assert uid.isdigit(), f"{path.parent.name}: USER {users[-1]} is not numeric"
    assert int(uid) != 0, f"{path.parent.name}: USER {users[-1]} is root"


def test_final_stage_carries_the_oci_labels(image: Parsed) -> None:
    path, stages = image.path, image.stages
    labels: dict[str, str] = {}
    for command in stages[-1].commands:
        if command.cmd == "LABEL":
            pairs = command.value
            labels.update(zip(pairs[::2], pairs[1::2], strict=True))
    missing = OCI_LABELS - labels.keys()
    assert not missing, f"{path.parent.name}: missing labels {sorted(missing)}"


@pytest.mark.parametrize("name", ["trainer", "mlflow"])
def test_final_stage_installs_nothing(name: str) -> None:
    """Multi-stage: the builder installs, the final stage only copies the result (no pip, no
    compilers). The airflow image is the exception: one stage on top of the official image."""
    _, stages = parse(REPO / "images" / name / "Dockerfile")
    assert len(stages) >= 2, f"{name}: not a multi-stage build"
    for command in runs(stages[-1]):
        assert "pip install" not in command, f"{name}: final stage runs pip"
        assert "apt-get install" not in command, f"{name}: final stage runs apt"
        assert not BUILD_TOOLS.search(command), f"{name}: build tools in {command!r}"
    copies = [c for c in stages[-1].commands if c.cmd == "COPY"]
    assert any(flag.startswith("--from=") for c in copies for flag in c.flags)


def test_apt_get_is_lean_and_cleans_up(image: Parsed) -> None:
    path, stages = image.path, image.stages
    for stage in stages:
        for command in runs(stage):
            if "apt-get install" in command:
                assert "--no-install-recommends" in command, f"{path.parent.name}: {command!r}"
                assert "rm -rf /var/lib/apt/lists" in command, f"{path.parent.name}: {command!r}"
            assert "apt-get upgrade" not in command and "dist-upgrade" not in command


def test_exec_form_entrypoints_and_no_remote_add(image: Parsed) -> None:
    path = image.path
    for command in dockerfile.parse_file(str(path)):
        if command.cmd in ("ENTRYPOINT", "CMD"):
            # Shell form wraps the process in /bin/sh -c: signals (SIGTERM on pod stop) miss it.
            assert command.json, f"{path.parent.name}: {command.original!r} is not exec form"
        if command.cmd == "ADD":
            pytest.fail(f"{path.parent.name}: use COPY, not ADD ({command.original!r})")
        assert "sudo " not in command.original


def test_no_syntax_directive(image: Parsed) -> None:
    """`# syntax=` makes BuildKit pull its frontend from a registry: builds without one fail."""
    path = image.path
    header = path.read_text().split("\n\n", 1)[0]
    assert not re.search(r"^#\s*syntax\s*=", header, re.MULTILINE | re.IGNORECASE)


def test_copied_sources_are_in_the_build_context(image: Parsed) -> None:
    """Every COPY source exists (or is staged by scripts/build-images into .build/) and is one
    the root .dockerignore allowlist lets into the context."""
    path = image.path
    if path in EXAMPLE_DOCKERFILES:  # its context is its own folder
        for command in dockerfile.parse_file(str(path)):
            if command.cmd == "COPY" and not any(f.startswith("--from=") for f in command.flags):
                for source in command.value[:-1]:
                    assert (path.parent / source).exists(), f"{path}: COPY {source}: no such file"
        return
    allowed = [
        line[1:].strip().rstrip("/")
        for line in (REPO / ".dockerignore").read_text().splitlines()
        if line.startswith("!")
    ]
    for command in dockerfile.parse_file(str(path)):
        if command.cmd != "COPY" or any(f.startswith("--from=") for f in command.flags):
            continue
        for source in command.value[:-1]:
            clean = source.rstrip("/")
            assert any(clean == a or clean.startswith(f"{a}/") for a in allowed), (
                f"{path.parent.name}: COPY {source} is excluded by .dockerignore"
            )
            assert clean.startswith(".build/") or (REPO / clean).exists(), (
                f"{path.parent.name}: COPY {source}: no such path"
            )


def test_python_images_share_one_base() -> None:
    """trainer (CPU) and mlflow: one base to mirror, or to make with scripts/make-base-images."""
    defaults = {
        name: parse(REPO / "images" / name / "Dockerfile")[0]["PYTHON_IMAGE"]
        for name in ("trainer", "mlflow")
    }
    assert len(set(defaults.values())) == 1, defaults
    assert defaults["trainer"].startswith("python:3.11.")


def test_gpu_base_matches_the_pinned_torch() -> None:
    args, _ = parse(REPO / "images" / "trainer" / "Dockerfile")
    pyproject = (REPO / "pyproject.toml").read_text()
    torch = re.search(r'"torch==([\d.]+)"', pyproject)
    assert torch, "pyproject.toml pins no torch"
    assert args["PYTORCH_IMAGE"].startswith(f"pytorch/pytorch:{torch[1]}-cuda")
    assert args["PYTORCH_IMAGE"].endswith("-runtime")  # no compilers (the -devel images have them)

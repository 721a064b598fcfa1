"""Teams' pipeline specs on the laptop platform: `trainyard up --pipeline SPEC | --pipelines DIR`.

Each spec is loaded when the platform starts (a bad one stops `up` with the spec loader's one
line); the platform config lists the files, and `dags/team_pipelines.py` builds their DAGs. A
spec whose model is served (`model.serve`, the default) gets a model server of its own: a port
and a folder below the workdir, named in the config's `model_servers`, which the deploy stage
restarts. The bucket of each spec's input exists, so a team only publishes its day's object.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from trainyard.errors import UserError
from trainyard.pipeline.platform import PlatformConfig
from trainyard.processes import free_port
from trainyard.spec import SPEC_SUFFIXES, PipelineSpec, SpecError, load, references
from trainyard.stages.serving import LOCAL_DIR_ENV, URL_ENV
from trainyard.stages.serving_local import LocalModelServer

SERVERS_DIR = "serving-pipelines"
# The platform settings a spec's `${platform.*}` names.
NAME_SETTINGS = ("data_root", "work_root", "model_name", "experiment")
# The platform's own DAG; a team's spec may not take its name.
PLATFORM_DAG = "ml_training_pipeline"


@dataclass(frozen=True)
class LaptopPipeline:
    """One team's spec, with the names the platform config resolves in it."""

    spec: PipelineSpec
    model_name: str
    input_url: str

    @property
    def input_bucket(self) -> str | None:
        parts = urlsplit(self.input_url)
        return parts.netloc if parts.scheme == "s3" and "{" not in parts.netloc else None


def spec_files(files: Iterable[Path] = (), folders: Iterable[Path] = ()) -> list[Path]:
    """The spec files named one by one, then each folder's, in name order."""
    paths = list(files)
    for folder in folders:
        if not folder.is_dir():
            raise UserError(f"--pipelines {folder}: not a folder")
        paths += sorted(p for p in folder.iterdir() if p.suffix in SPEC_SUFFIXES)
    return [p.resolve() for p in paths]


def resolve(text: str, platform: PlatformConfig) -> str:
    """`${platform.*}` in a spec's model name or input URL, as the DAG factory resolves them."""
    values = {
        "platform.data_root": platform.data_root,
        "platform.work_root": platform.work_root,
        "platform.model_name": platform.model_name,
        "platform.experiment": platform.experiment,
    }
    return references.substitute(text, values.get)


def load_pipelines(paths: Sequence[Path], platform: PlatformConfig) -> list[LaptopPipeline]:
    """Every spec, checked now: a bad one, or two with one name, is a UserError in one line."""
    pipelines: list[LaptopPipeline] = []
    seen = {PLATFORM_DAG: Path("(the platform's own pipeline)")}
    for path in paths:
        try:
            spec = load(path)
        except SpecError as exc:
            raise UserError(str(exc)) from None
        if spec.name in seen:
            raise UserError(f"{path}: name: {spec.name!r} is also the name of {seen[spec.name]}")
        seen[spec.name] = path
        pipelines.append(
            LaptopPipeline(
                spec, resolve(spec.model_name, platform), resolve(spec.input_url, platform)
            )
        )
    return pipelines


def model_servers(
    pipelines: Sequence[LaptopPipeline], workdir: Path, platform: PlatformConfig
) -> dict[str, LocalModelServer]:
    """A local model server for each served model other than the platform's own."""
    servers: dict[str, LocalModelServer] = {}
    for pipeline in pipelines:
        name = pipeline.model_name
        if pipeline.spec.serve and name != platform.model_name and name not in servers:
            folder = workdir / SERVERS_DIR / re.sub(r"[^A-Za-z0-9._-]", "_", name)
            servers[name] = LocalModelServer(folder, f"http://127.0.0.1:{free_port()}")
    return servers


def serving_env(server: LocalModelServer) -> dict[str, str]:
    """What the deploy stage of the server's model gets (the config's `model_servers`)."""
    return {URL_ENV: server.url, LOCAL_DIR_ENV: str(server.folder)}


def input_buckets(pipelines: Iterable[LaptopPipeline], existing: Iterable[str] = ()) -> list[str]:
    """The specs' input buckets the store does not have yet."""
    return sorted({p.input_bucket for p in pipelines if p.input_bucket} - set(existing))

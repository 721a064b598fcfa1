"""Pipeline specs: one YAML file per training pipeline, checked against `pipeline.schema.json`.

`load(path)` gives a `PipelineSpec` or raises `SpecError` with one line naming the file and the
field (`pipelines/x.yaml: metric.direction: 'up' is not one of ['max', 'min']`).
"""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Any

import yaml

from trainyard.spec import references
from trainyard.spec.model import DEFAULT_MAX_TRIALS, Metric, PipelineSpec, Stage

SCHEMA_FILE = Path(__file__).with_name("pipeline.schema.json")
SPEC_SUFFIXES = (".yaml", ".yml")

__all__ = [
    "Metric",
    "PipelineSpec",
    "SpecError",
    "Stage",
    "load",
    "load_folder",
    "schema",
    "unique_names",
]


class SpecError(ValueError):
    """The spec is wrong; the message is one line naming the file and the field."""


@functools.cache
def schema() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(SCHEMA_FILE.read_text())
    return loaded


def load(path: str | Path) -> PipelineSpec:
    path = Path(path)
    try:
        document = yaml.safe_load(path.read_text())
    except OSError as exc:
        raise SpecError(f"{path}: cannot be read: {exc.strerror or exc}") from None
    except yaml.YAMLError as exc:
        where = getattr(exc, "problem_mark", None)
        line = f" (line {where.line + 1})" if where else ""
        raise SpecError(f"{path}: not YAML{line}: {getattr(exc, 'problem', exc)}") from None
    return parse(document, path)


def load_folder(folder: str | Path) -> list[PipelineSpec]:
    """Every spec file in `folder`, in name order; two with one name is an error."""
    specs = [load(p) for p in sorted(Path(folder).iterdir()) if p.suffix in SPEC_SUFFIXES]
    return unique_names(specs)


def unique_names(specs: list[PipelineSpec]) -> list[PipelineSpec]:
    """`specs`, or a SpecError naming the second of two specs with one name (one DAG id)."""
    seen: dict[str, Path] = {}
    for spec in specs:
        if spec.name in seen:
            raise SpecError(
                f"{spec.path}: name: {spec.name!r} is also the name of {seen[spec.name]}"
            )
        seen[spec.name] = spec.path
    return specs


def parse(document: Any, path: Path) -> PipelineSpec:
    _validate(document, path)
    _check_references(document, path)
    prepare = [_stage(s, s["name"], "cpu") for s in document["stages"].get("prepare", [])]
    names = [stage.name for stage in prepare]
    for duplicate in {n for n in names if names.count(n) > 1}:
        raise SpecError(f"{path}: stages.prepare: two stages are named {duplicate!r}")
    if "train" in names:
        raise SpecError(f"{path}: stages.prepare: 'train' is the train stage's name")
    model, metric, search = document["model"], document["metric"], document["search"]
    label = metric.get("label", metric["name"])
    options = search.get("options")
    if options is not None:
        unknown = sorted(set(search["space"]) - set(options))
        if unknown:
            raise SpecError(f"{path}: search.space: {unknown} not in search.options {options}")
    image = document.get("image", {})
    return PipelineSpec(
        name=document["name"],
        path=path.resolve(),
        input_url=document["input"]["url"],
        model_name=model["name"],
        experiment=model.get("experiment", f"trainyard-{model['name']}"),
        model_description=model.get("description", ""),
        serve=model.get("serve", True),
        metric=Metric(
            name=metric["name"],
            direction=metric["direction"],
            threshold=float(metric["threshold"]),
            min_improvement=float(metric.get("minImprovement", 0.0)),
            label=label,
            select_by=metric.get("selectBy", metric["name"]),
        ),
        search_space=search["space"],
        search_options=options,
        max_trials=search.get("maxTrials", DEFAULT_MAX_TRIALS),
        parallel_trials=search.get("parallelTrials"),
        prepare=prepare,
        train=_stage(document["stages"]["train"], "train", "gpu"),
        description=document.get("description", ""),
        owner=document.get("owner", "ml-platform"),
        tags=document.get("tags", []),
        schedule=document.get("schedule"),
        schedule_given="schedule" in document,
        work_url=document.get("workUrl"),
        cpu_image=image.get("cpu"),
        gpu_image=image.get("gpu"),
        params=document.get("params", {}),
        deadline_minutes=document.get("alerts", {}).get("deadlineMinutes"),
    )


def _stage(fields: dict[str, Any], name: str, default_image: str) -> Stage:
    return Stage(
        name=name,
        command=list(fields["command"]),
        args=[_argument(a) for a in fields.get("args", [])],
        env=dict(fields.get("env", {})),
        image=fields.get("image", default_image),
        gpus=fields.get("gpus"),
        processes=fields.get("processes"),
        resources={
            k: {r: str(q) for r, q in v.items()} for k, v in fields.get("resources", {}).items()
        },
        volumes=list(fields.get("volumes", [])),
        volume_mounts=list(fields.get("volumeMounts", [])),
    )


def _argument(value: Any) -> str:
    # YAML's true/1.5 become the strings a command line would have had.
    return str(value).lower() if isinstance(value, bool) else str(value)


def _validate(document: Any, path: Path) -> None:
    import jsonschema  # noqa: PLC0415  (only when a spec is read)

    validator = jsonschema.Draft202012Validator(schema())
    error = jsonschema.exceptions.best_match(validator.iter_errors(document))
    if error is None:
        return
    where = _field_path(error.absolute_path) or "(top level)"
    raise SpecError(f"{path}: {where}: {_message(error)}")


def _message(error: Any) -> str:
    if error.validator == "additionalProperties" and isinstance(error.instance, dict):
        allowed = set(error.schema.get("properties", {}))
        unknown = sorted(k for k in error.instance if k not in allowed)
        if unknown and allowed:
            return f"unknown field {unknown[0]!r}; known: {', '.join(sorted(allowed))}"
    if error.validator == "required":
        return str(error.message).replace("is a required property", "is missing")
    return str(error.message)


def _field_path(parts: Any) -> str:
    text = ""
    for part in parts:
        text += f"[{part}]" if isinstance(part, int) else f".{part}"
    return text.lstrip(".")


def _check_references(document: dict[str, Any], path: Path) -> None:
    stages = document["stages"]
    earlier: list[str] = []

    def check(value: Any, where: str, in_train: bool) -> None:
        if isinstance(value, str):
            for name in references.names(value):
                why = references.problem(name, earlier, in_train)
                if why:
                    raise SpecError(f"{path}: {where}: {why}")
        elif isinstance(value, list):
            for index, item in enumerate(value):
                check(item, f"{where}[{index}]", in_train)
        elif isinstance(value, dict):
            for key, item in value.items():
                check(item, f"{where}.{key}", in_train)

    check(document["input"]["url"], "input.url", False)
    check(document.get("workUrl", ""), "workUrl", False)
    check(document["model"], "model", False)
    for index, stage in enumerate(stages.get("prepare", [])):
        check({k: stage.get(k) for k in ("args", "env")}, f"stages.prepare[{index}]", False)
        earlier.append(stage["name"])
    check({k: stages["train"].get(k) for k in ("args", "env")}, "stages.train", True)

"""The smoke test after a rollout: the model's own logged input example goes to the server's
`/invocations`, and the answer must fit the model's output signature.

It knows no model: the example and the signature are what the trainer logged with the model
(`log_model(..., input_example=..., signature=...)`). Nothing is loaded locally, so the deploy
stage needs neither the model's framework nor its data.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import requests
from mlflow.models import Model, convert_input_example_to_serving_input
from mlflow.types import DataType, Schema
from mlflow.types.schema import ColSpec, TensorSpec
from requests.adapters import HTTPAdapter

from trainyard.errors import UserError
from trainyard.stages.serving import ServingError, reach_retry


@dataclass(frozen=True)
class SmokeExample:
    payload: str  # the /invocations body: MLflow's serving form of the input example
    rows: int
    outputs: Schema | None  # the output signature; None: only the row count is checked


def example_rows(example: Any) -> int:
    """Rows of an input example: a DataFrame's or an array's first dimension; for a dict of
    tensors, their common first dimension; a plain dict is one record."""
    if isinstance(example, dict):
        lengths = {len(v) for v in example.values() if isinstance(v, (list, np.ndarray))}
        return lengths.pop() if len(lengths) == 1 else 1
    shape = getattr(example, "shape", None)
    if shape:
        return int(shape[0])
    return len(example) if isinstance(example, list) else 1


def load_example(model_uri: str) -> SmokeExample:
    """The model's logged input example and output signature, read from its MLmodel."""
    try:
        model = Model.load(model_uri)
        example = model.load_input_example(model_uri) if model.saved_input_example_info else None
    except Exception as exc:
        raise UserError(f"cannot read {model_uri} to prepare the smoke test: {exc}") from exc
    if example is None:
        raise UserError(
            f"model {model_uri} was logged without an input example, which the model server's "
            "smoke test sends: log it with input_example="
        )
    payload = convert_input_example_to_serving_input(example)
    if payload is None:
        raise UserError(f"the input example of {model_uri} has no serving form")
    outputs = model.signature.outputs if model.signature is not None else None
    return SmokeExample(payload, example_rows(example), outputs)


def smoke_test(url: str, example: SmokeExample, timeout_s: float = 60, attempts: int = 8) -> int:
    """POST the example to `/invocations`; the answer must fit the signature. Returns rows."""
    with requests.Session() as session:
        session.mount("http://", HTTPAdapter(max_retries=reach_retry(attempts)))
        session.mount("https://", HTTPAdapter(max_retries=reach_retry(attempts)))
        try:
            response = session.post(
                url.rstrip("/") + "/invocations",
                data=example.payload,
                headers={"Content-Type": "application/json"},
                timeout=timeout_s,
            )
        except requests.RequestException as exc:
            raise ServingError(f"smoke test: {url}/invocations unreachable: {exc}") from exc
    if response.status_code != 200:
        # Who answered: MLflow's scoring server says uvicorn; a lasting bare 404 on kind (issue
        # 22's flaky team smoke test) had no other trace once the rollback removed the pod.
        server = response.headers.get("server", "no Server header")
        raise ServingError(
            f"smoke test: {url}/invocations answered {response.status_code} ({server}): "
            f"{response.text[:300]}"
        )
    try:
        predictions = response.json()["predictions"]
    except (ValueError, KeyError, TypeError) as exc:
        raise ServingError(f"smoke test: unexpected answer {response.text[:300]!r}") from exc
    check_predictions(predictions, example.rows, example.outputs)
    return example.rows


def check_predictions(predictions: Any, rows: int, outputs: Schema | None) -> None:
    """Raise ServingError naming the first way `predictions` does not fit `outputs`."""
    if outputs is None or not outputs.inputs:
        _count(predictions, rows, "predictions")
    elif outputs.is_tensor_spec():
        _check_tensors(predictions, rows, [s for s in outputs.inputs if isinstance(s, TensorSpec)])
    else:
        _check_columns(predictions, rows, [s for s in outputs.inputs if isinstance(s, ColSpec)])


def _count(values: Any, rows: int, what: str) -> None:
    count = len(values) if isinstance(values, list) else None
    if count != rows:
        got = f"{count} rows" if count is not None else f"a {type(values).__name__}"
        raise ServingError(f"smoke test: {what} has {got} for the example's {rows} rows")


def _check_tensors(predictions: Any, rows: int, specs: Sequence[TensorSpec]) -> None:
    if len(specs) == 1 and not isinstance(predictions, dict):
        _check_tensor(predictions, rows, specs[0], "predictions")
        return
    if not isinstance(predictions, dict):
        raise ServingError(
            f"smoke test: predictions are a {type(predictions).__name__}, the signature names "
            f"tensors {[s.name for s in specs]}"
        )
    for spec in specs:
        if spec.name not in predictions:
            raise ServingError(f"smoke test: output {spec.name!r} is missing from the answer")
        _check_tensor(predictions[spec.name], rows, spec, f"output {spec.name!r}")


def _check_tensor(values: Any, rows: int, spec: TensorSpec, what: str) -> None:
    _count(values, rows, what)
    try:
        array = np.asarray(values)
    except ValueError:
        raise ServingError(f"smoke test: {what} is ragged, not a tensor") from None
    want = tuple(spec.shape)
    if array.ndim != len(want) or any(
        w not in (-1, g) for w, g in zip(want, array.shape, strict=True)
    ):
        raise ServingError(f"smoke test: {what} has shape {array.shape}, the signature says {want}")
    expected, got = spec.type.kind, array.dtype.kind
    numeric = "iuf"
    if (expected in numeric and got not in numeric) or (expected == "b" and got != "b"):
        raise ServingError(
            f"smoke test: {what} holds {array.dtype} values, the signature says {spec.type}"
        )


# What a JSON value of each column type decodes to (bool is an int in Python: excluded).
_JSON_TYPES: dict[DataType, tuple[type, ...]] = {
    DataType.boolean: (bool,),
    DataType.integer: (int,),
    DataType.long: (int,),
    DataType.float: (int, float),
    DataType.double: (int, float),
    DataType.string: (str,),
    DataType.binary: (str,),
    DataType.datetime: (str,),
}


def _check_columns(predictions: Any, rows: int, columns: Sequence[ColSpec]) -> None:
    if isinstance(predictions, dict):  # {column: values}
        for column in columns:
            values = predictions.get(column.name) if column.name is not None else None
            if values is None:
                raise ServingError(f"smoke test: column {column.name!r} is missing from the answer")
            _count(values, rows, f"column {column.name!r}")
            for value in values:
                _check_value(value, column)
        return
    _count(predictions, rows, "predictions")
    for record in predictions:
        if isinstance(record, dict):
            for column in columns:
                if column.name not in record and column.required:
                    raise ServingError(
                        f"smoke test: column {column.name!r} is missing from the answer's rows "
                        f"(they have {sorted(record)})"
                    )
                _check_value(record.get(column.name), column)
        elif len(columns) == 1 and not isinstance(record, list):
            _check_value(record, columns[0])
        elif isinstance(record, list) and len(record) == len(columns):
            for value, column in zip(record, columns, strict=True):
                _check_value(value, column)
        else:
            raise ServingError(
                f"smoke test: a row of the answer is {record!r}, the signature has "
                f"{len(columns)} columns"
            )


def _check_value(value: Any, column: ColSpec) -> None:
    if value is None:
        if column.required:
            raise ServingError(f"smoke test: column {column.name!r} has no value in a row")
        return
    kind = column.type
    accepted = _JSON_TYPES.get(kind) if isinstance(kind, DataType) else None
    if accepted is None or not isinstance(
        kind, DataType
    ):  # arrays, objects, maps: their structure is not checked here
        return
    if (isinstance(value, bool) and bool not in accepted) or not isinstance(value, accepted):
        name = f"column {column.name!r}" if column.name is not None else "the output column"
        raise ServingError(
            f"smoke test: {name} has {json.dumps(value)[:50]} ({type(value).__name__}), the "
            f"signature says {kind.name}"
        )

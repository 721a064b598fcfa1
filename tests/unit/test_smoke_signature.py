"""The smoke test's check of a model server's answer against the model's output signature:
tensor-based and column-based signatures, named outputs, wrong shapes, types and row counts."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from mlflow.models import infer_signature
from mlflow.types import ColSpec, DataType, Schema, TensorSpec

from trainyard.stages.serving import ServingError
from trainyard.stages.smoke import check_predictions, example_rows

pytestmark = pytest.mark.unit

SCORES = Schema([TensorSpec(np.dtype(np.float32), (-1, 10))])
# What mlflow infers for a scikit-learn regressor's 1-D predictions.
REGRESSION = infer_signature(np.zeros((2, 3)), np.array([1.5, 2.5])).outputs
COLUMNS = Schema(
    [ColSpec(DataType.double, "price"), ColSpec(DataType.string, "band", required=False)]
)
ONE_COLUMN = Schema([ColSpec(DataType.long)])


@pytest.mark.parametrize(
    ("predictions", "rows", "outputs"),
    [
        (np.eye(10)[:4].tolist(), 4, SCORES),
        ([151.2, 75.0, 3], 3, REGRESSION),
        (
            {"scores": np.zeros((2, 10)).tolist()},
            2,
            Schema([TensorSpec(np.dtype("float64"), (-1, 10), "scores")]),
        ),
        ([{"price": 1.5, "band": "low"}, {"price": 2}], 2, COLUMNS),
        ({"price": [1.5, 2.0], "band": ["a", None]}, 2, COLUMNS),
        ([[1.5, "low"], [2.0, "high"]], 2, COLUMNS),
        ([3, 4, 5], 3, ONE_COLUMN),
        ([0, 1], 2, None),
    ],
)
def test_answers_that_fit_the_signature(predictions, rows, outputs):
    check_predictions(predictions, rows, outputs)


@pytest.mark.parametrize(
    ("predictions", "rows", "outputs", "message"),
    [
        (np.eye(10)[:3].tolist(), 4, SCORES, "predictions has 3 rows for the example's 4 rows"),
        ([[1.0, 0.0]] * 4, 4, SCORES, r"shape \(4, 2\), the signature says \(-1, 10\)"),
        ([1.0, 2.0], 2, SCORES, r"shape \(2,\), the signature says \(-1, 10\)"),
        ([["a"] * 10] * 2, 2, SCORES, "holds <U1 values, the signature says float32"),
        ([[1.0, 2.0]] * 3, 3, REGRESSION, r"shape \(3, 2\), the signature says \(-1,\)"),
        ([1.0], 2, REGRESSION, "1 rows for the example's 2 rows"),
        (
            {"other": [[0.0] * 10]},
            1,
            Schema([TensorSpec(np.dtype("float64"), (-1, 10), "scores")]),
            "output 'scores' is missing",
        ),
        (
            [{"band": "low"}],
            1,
            COLUMNS,
            r"column 'price' is missing from the answer's rows \(they have \['band'\]\)",
        ),
        (
            [{"price": "cheap"}],
            1,
            COLUMNS,
            r"column 'price' has \"cheap\" \(str\), the signature says double",
        ),
        ([True, 1], 2, ONE_COLUMN, "has true \\(bool\\), the signature says long"),
        ([[1.0, "a", 3]], 1, COLUMNS, "the signature has 2 columns"),
        ({"price": [1.0]}, 2, COLUMNS, "column 'price' has 1 rows for the example's 2 rows"),
        ({"rows": 1}, 1, None, "predictions has a dict for the example's 1 rows"),
    ],
)
def test_answers_that_do_not_fit_are_named(predictions, rows, outputs, message):
    with pytest.raises(ServingError, match=message):
        check_predictions(predictions, rows, outputs)


def test_example_rows_of_each_kind_of_example():
    assert example_rows(np.zeros((5, 64))) == 5
    assert example_rows(pd.DataFrame({"a": [1, 2, 3]})) == 3
    assert example_rows({"x": np.zeros((4, 2)), "y": np.zeros((4,))}) == 4
    assert example_rows({"question": "why"}) == 1
    assert example_rows([[1, 2], [3, 4]]) == 2

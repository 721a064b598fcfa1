"""train: one trial of the diabetes regressor, on the trainyard SDK.

    python train.py --data s3://…/diabetes.csv --learning-rate 0.1 --max-depth 3

The day's CSV (validated by validate.sh) is split with a fixed seed into train, validation and
test rows; a gradient-boosting regressor is fitted on the train rows with this trial's options.
The run logs its parameters, `val_rmse` (which ranks the trials) and `rmse` on the test rows
(what the champion gate compares), and the model with an input example and a signature (what
deploy's smoke test sends and checks).
"""

from __future__ import annotations

import os
from typing import Any

import mlflow
import pandas as pd
import sklearn
from mlflow.models import infer_signature
from sklearn.ensemble import GradientBoostingRegressor
from sklearn.metrics import root_mean_squared_error
from sklearn.model_selection import train_test_split

from trainyard import sdk

TARGET = "target"
SPLIT_SEED = 0  # the same rows are test rows in every trial of a day, so trials compare
INPUT_EXAMPLE_ROWS = 5  # several rows: the served model keeps a dynamic batch size
TRUSTED_TYPES = ["sklearn.tree._tree.Tree"]


def parse_arguments() -> Any:
    parser = sdk.ArgumentParser(prog="train", description=__doc__)
    parser.add_argument("--data", required=True, help="the day's CSV (s3:// or a local path)")
    parser.add_argument("--learning-rate", type=float, default=0.1)
    parser.add_argument("--max-depth", type=int, default=3)
    parser.add_argument("--n-estimators", type=int, default=100)
    parser.add_argument("--subsample", type=float, default=1.0)
    args = parser.parse_args()
    if not 0 < args.learning_rate <= 1:
        raise ValueError(f"--learning-rate must be in (0, 1], got {args.learning_rate}")
    if args.max_depth < 1 or args.n_estimators < 1:
        raise ValueError("--max-depth and --n-estimators must be at least 1")
    if not 0 < args.subsample <= 1:
        raise ValueError(f"--subsample must be in (0, 1], got {args.subsample}")
    return args


def storage_options(url: str) -> dict[str, Any] | None:
    """s3fs's options: the contract's S3 endpoint (MinIO, SeaweedFS), when one is set."""
    endpoint = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
    if url.startswith("s3://") and endpoint:
        return {"client_kwargs": {"endpoint_url": endpoint}}
    return None


def read_day(url: str) -> pd.DataFrame:
    frame = pd.read_csv(url, storage_options=storage_options(url))
    if TARGET not in frame.columns:
        raise ValueError(f"{url}: no {TARGET!r} column (columns: {', '.join(frame.columns)})")
    return frame


def train(env: sdk.StageEnvironment) -> dict[str, Any]:
    args = parse_arguments()
    frame = read_day(args.data)
    features, target = frame.drop(columns=[TARGET]), frame[TARGET]
    # 60% train, 20% validation (ranks the trials), 20% test (the gate's metric).
    x_rest, x_test, y_rest, y_test = train_test_split(
        features, target, test_size=0.2, random_state=SPLIT_SEED
    )
    x_train, x_val, y_train, y_val = train_test_split(
        x_rest, y_rest, test_size=0.25, random_state=SPLIT_SEED
    )
    params = {
        "learning_rate": args.learning_rate,
        "max_depth": args.max_depth,
        "n_estimators": args.n_estimators,
        "subsample": args.subsample,
    }
    model = GradientBoostingRegressor(random_state=SPLIT_SEED, **params).fit(x_train, y_train)
    metrics = {
        "val_rmse": float(root_mean_squared_error(y_val, model.predict(x_val))),
        "rmse": float(root_mean_squared_error(y_test, model.predict(x_test))),
    }

    example = x_test.head(INPUT_EXAMPLE_ROWS)
    with sdk.start_trial_run(env) as run:
        mlflow.log_params({**params, "data_url": args.data, "rows": len(frame)})
        mlflow.log_metrics(metrics)
        info = mlflow.sklearn.log_model(
            model,
            name="model",
            input_example=example,
            signature=infer_signature(example, model.predict(example)),
            # MLflow 3 saves scikit-learn models with skops, which loads only the types it
            # is told to trust: the trees of this model's own estimator.
            skops_trusted_types=TRUSTED_TYPES,
            # Named, not inferred: inference loads the model in a subprocess (seconds).
            pip_requirements=[f"scikit-learn=={sklearn.__version__}", f"pandas=={pd.__version__}"],
        )
    print(f"train: {env.run_name}: val_rmse {metrics['val_rmse']:.2f}, rmse {metrics['rmse']:.2f}")
    return {
        "run_id": run.info.run_id,
        "model_uri": info.model_uri,
        "metrics": metrics,
        "params": params,
    }


if __name__ == "__main__":
    sdk.main(train)

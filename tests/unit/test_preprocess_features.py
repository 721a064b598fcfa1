from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch

from digits.features import load_manifest, load_raw_holdout, load_split
from digits.model import FEATURE_COLUMNS, DigitsClassifier, build_mlp
from digits.schema import LABEL_COLUMN, PIXEL_COLUMNS
from trainyard import storage

pytestmark = pytest.mark.unit


@pytest.fixture
def prepared(cli, write_raw, raw_day, tmp_path):
    out = f"file://{tmp_path}/prepared"
    return cli("preprocess", "--data", write_raw(raw_day), "--output", out).result


@pytest.fixture
def features(cli, prepared, tmp_path):
    out = f"file://{tmp_path}/features"
    return cli("features", "--prepared", prepared["output_url"], "--output", out).result


def _split(prepared, name):
    return storage.read_parquet(storage.join(prepared["output_url"], f"{name}.parquet"))


def test_split_is_stratified_disjoint_and_complete(prepared, raw_day):
    rows = prepared["rows"]
    assert sum(rows.values()) == len(raw_day)
    assert rows["validation"] == rows["test"] == pytest.approx(0.15 * len(raw_day), abs=2)
    holdout = storage.read_parquet(storage.join(prepared["output_url"], "holdout_raw.parquet"))
    # Every class keeps its share in the held-out set.
    shares = holdout[LABEL_COLUMN].value_counts(normalize=True)
    overall = raw_day[LABEL_COLUMN].value_counts(normalize=True)
    assert (shares - overall).abs().max() < 0.01
    # The raw hold-out rows are the original rows, untouched, and none is in train.
    raw_keys = set(map(tuple, raw_day[PIXEL_COLUMNS].to_numpy().round(4)))
    holdout_keys = set(map(tuple, holdout[PIXEL_COLUMNS].to_numpy().round(4)))
    assert holdout_keys <= raw_keys


def test_scaler_is_fit_on_train_only(prepared):
    train = _split(prepared, "train")[PIXEL_COLUMNS].to_numpy()
    test = _split(prepared, "test")[PIXEL_COLUMNS].to_numpy()
    assert np.abs(train.mean(axis=0)).max() < 1e-4
    assert np.abs(test.mean(axis=0)).max() > 1e-3  # test is scaled with train statistics
    scaler = storage.read_json(prepared["scaler_url"])
    assert len(scaler["mean"]) == len(scaler["scale"]) == 64
    assert min(scaler["scale"]) > 0  # blank border pixels get scale 1, not 0


def test_split_is_deterministic_for_a_seed(cli, write_raw, raw_day, tmp_path):
    url = write_raw(raw_day)
    outputs = []
    for name, seed in (("a", "7"), ("b", "7"), ("c", "8")):
        out = f"file://{tmp_path}/{name}"
        cli("preprocess", "--data", url, "--output", out, "--seed", seed).result  # noqa: B018
        outputs.append(storage.read_parquet(f"{out}/test.parquet"))
    pd.testing.assert_frame_equal(outputs[0], outputs[1])
    assert not outputs[0].equals(outputs[2])


def test_preprocess_rejects_bad_data_and_writes_nothing(cli, write_raw, raw_day, tmp_path):
    run = cli(
        "preprocess",
        "--data",
        write_raw(raw_day.drop(columns=[LABEL_COLUMN])),
        "--output",
        f"file://{tmp_path}/out",
    )
    assert run.code == 1
    assert "missing columns ['label']" in run.stderr
    assert not (tmp_path / "out").exists()


def test_preprocess_rejects_fractions_that_leave_no_training_data(
    cli, write_raw, raw_day, tmp_path
):
    run = cli(
        "preprocess",
        "--data",
        write_raw(raw_day),
        "--output",
        f"file://{tmp_path}/out",
        "--test-fraction",
        "0.3",
        "--validation-fraction",
        "0.3",
    )
    assert run.code == 1
    assert "less than half of the rows for training" in run.stderr
    assert not (tmp_path / "out").exists()


def test_features_manifest_describes_the_set(features, prepared):
    manifest = load_manifest(features["manifest_url"])
    assert manifest["feature_columns"] == FEATURE_COLUMNS
    assert len(FEATURE_COLUMNS) == features["n_features"] == 80
    assert {k: v["rows"] for k, v in manifest["splits"].items()} == prepared["rows"]
    train = storage.read_parquet(manifest["splits"]["train"]["url"])
    assert list(train.columns) == [*FEATURE_COLUMNS, LABEL_COLUMN]
    # Derived features are the row/column ink means of the scaled image.
    scaled = _split(prepared, "train")[PIXEL_COLUMNS].to_numpy().reshape(-1, 8, 8)
    np.testing.assert_allclose(train["row_mean_2"], scaled[:, 2, :].mean(axis=1), atol=1e-5)
    np.testing.assert_allclose(train["col_mean_5"], scaled[:, :, 5].mean(axis=1), atol=1e-5)


def test_logged_model_on_raw_pixels_equals_mlp_on_features(features):
    """The served model applies exactly the transforms the training data went through."""
    manifest = load_manifest(features["manifest_url"])
    torch.manual_seed(0)
    mlp = build_mlp().eval()
    classifier = DigitsClassifier(manifest["scaler"]["mean"], manifest["scaler"]["scale"], mlp)
    x_features, _ = load_split(manifest, "test")
    x_raw, _ = load_raw_holdout(manifest)
    with torch.no_grad():
        torch.testing.assert_close(classifier(x_raw), mlp(x_features), atol=1e-4, rtol=1e-4)


def test_features_detects_missing_prepared_data(cli, tmp_path):
    run = cli("features", "--prepared", f"file://{tmp_path}/nothing", "--output", str(tmp_path))
    assert run.code == 1
    assert "scaler.json: not found" in run.stderr


def test_tampered_split_is_detected(features, cli):
    manifest = load_manifest(features["manifest_url"])
    url = manifest["splits"]["train"]["url"]
    frame = storage.read_parquet(url)
    storage.write_bytes(url, storage.parquet_bytes(frame.iloc[:-1]))
    run = cli("train", "--features", features["manifest_url"], "--epochs", "1")
    assert run.code == 1
    assert "does not match its manifest" in run.stderr


def test_not_a_manifest_is_rejected(cli, tmp_path):
    path = tmp_path / "manifest.json"
    path.write_text(json.dumps({"hello": "world"}))
    run = cli("train", "--features", str(path))
    assert run.code == 1
    assert "not a trainyard feature manifest" in run.stderr

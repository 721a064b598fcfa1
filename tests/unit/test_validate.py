from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from digits.schema import LABEL_COLUMN, PIXEL_COLUMNS

pytestmark = pytest.mark.unit


def test_clean_day_passes_with_statistics(cli, write_raw, raw_day):
    run = cli("validate", "--data", write_raw(raw_day))
    assert run.result["valid"] is True
    assert run.result["rows"] == len(raw_day)
    assert sum(run.result["class_counts"].values()) == len(raw_day)
    assert set(run.result["class_counts"]) == {str(k) for k in range(10)}


def _nan_pixels(frame: pd.DataFrame) -> pd.DataFrame:
    bad = frame.copy()
    bad.loc[[3, 7, 11], "pixel_20"] = np.nan
    return bad


def _nan_label(frame: pd.DataFrame) -> pd.DataFrame:
    bad = frame.copy()
    bad[LABEL_COLUMN] = bad[LABEL_COLUMN].astype("float64")
    bad.loc[5, LABEL_COLUMN] = np.nan
    return bad


def _label_out_of_range(frame: pd.DataFrame) -> pd.DataFrame:
    bad = frame.copy()
    bad.loc[0, LABEL_COLUMN] = 12
    return bad


def _imbalanced(frame: pd.DataFrame) -> pd.DataFrame:
    threes = frame.index[frame[LABEL_COLUMN] == 3]
    return frame.drop(threes[5:]).reset_index(drop=True)


BAD_DATA = {
    "missing column": (lambda f: f.drop(columns=["pixel_5"]), "missing columns ['pixel_5']"),
    "unexpected column": (lambda f: f.assign(extra=1.0), "unexpected columns ['extra']"),
    "renamed label": (lambda f: f.rename(columns={LABEL_COLUMN: "target"}), "wrong schema"),
    "text pixels": (lambda f: f.assign(pixel_3="x"), "non-numeric pixel columns ['pixel_3']"),
    "float labels": (lambda f: f.assign(label=f[LABEL_COLUMN] + 0.5), "must hold integers"),
    "empty": (lambda f: f.iloc[0:0], "no rows"),
    "too few rows": (lambda f: f.iloc[:100], "100 rows, fewer than the minimum 500"),
    "NaN pixels": (_nan_pixels, "3 missing values (NaN) in 1 columns: pixel_20=3"),
    "NaN label": (_nan_label, "missing values (NaN)"),
    "label out of range": (_label_out_of_range, "labels must be 0..9, found [12]"),
    "pixel out of range": (lambda f: f.assign(pixel_0=-1.0), "pixel values outside [0.0, 16.0]"),
    "class imbalance": (_imbalanced, "class imbalance: classes below 5% of rows (3: 0."),
}


@pytest.mark.parametrize("case", BAD_DATA, ids=list(BAD_DATA))
def test_bad_data_is_rejected_with_a_clear_error(cli, write_raw, raw_day, case):
    corrupt, message = BAD_DATA[case]
    run = cli("validate", "--data", write_raw(corrupt(raw_day)))
    assert run.code == 1
    assert "digits validate: error:" in run.stderr
    assert message in run.stderr
    assert not run.xcom_file.exists(), "a failed stage must not leave a result behind"


def test_missing_file_is_named(cli, tmp_path):
    url = f"file://{tmp_path}/daily/2026-01-01/features.parquet"
    run = cli("validate", "--data", url)
    assert run.code == 1
    assert f"{url}: not found" in run.stderr
    assert not run.xcom_file.exists()


def test_non_parquet_file_is_named(cli, tmp_path):
    path = tmp_path / "features.parquet"
    path.write_text("label,pixel_0\n1,2\n")
    run = cli("validate", "--data", str(path))
    assert run.code == 1
    assert "not a readable Parquet file" in run.stderr


def test_thresholds_are_options(cli, write_raw, raw_day):
    url = write_raw(raw_day)
    run = cli("validate", "--data", url, "--min-rows", str(len(raw_day) + 1))
    assert run.code == 1
    assert f"fewer than the minimum {len(raw_day) + 1}" in run.stderr
    # The real data has every class near 10%; demanding 11% must fail.
    assert cli("validate", "--data", url, "--min-class-fraction", "0.11").code == 1


def test_pixel_columns_are_the_8x8_grid():
    assert len(PIXEL_COLUMNS) == 64
    assert PIXEL_COLUMNS[0] == "pixel_0" and PIXEL_COLUMNS[-1] == "pixel_63"

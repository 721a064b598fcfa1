from __future__ import annotations

import datetime as dt

import pandas as pd
import pytest

from digits.data import build_day
from digits.schema import LABEL_COLUMN, RAW_COLUMNS
from digits.validate import check_frame
from trainyard import storage

pytestmark = pytest.mark.unit


def test_a_day_is_deterministic_and_days_differ():
    monday, tuesday = dt.date(2026, 11, 16), dt.date(2026, 11, 17)
    pd.testing.assert_frame_equal(build_day(monday), build_day(monday))
    assert not build_day(monday).equals(build_day(tuesday))


def test_a_day_is_valid_raw_data():
    frame = build_day(dt.date(2026, 11, 16))
    assert list(frame.columns) == RAW_COLUMNS
    assert len(frame) == round(0.9 * 1797)
    check_frame(frame, "day")  # raises on any problem


def test_unshifted_full_day_is_the_original_dataset():
    frame = build_day(dt.date(2026, 11, 16), sample_fraction=1.0, shift=False)
    assert len(frame) == 1797
    assert frame[LABEL_COLUMN].value_counts().sort_index().tolist()[0] == 178  # zeros in digits


def test_publish_writes_the_key_the_sensor_waits_for(cli, tmp_path):
    run = cli("publish", "--root", f"file://{tmp_path}/digits", "--date", "2026-11-20")
    expected = f"file://{tmp_path}/digits/daily/2026-11-20/features.parquet"
    assert run.result == {"data_url": expected, "date": "2026-11-20", "rows": 1617}
    assert len(storage.read_parquet(expected)) == 1617


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--date", "20-11-2026"], "date '20-11-2026' is not an ISO date"),
        (["--date", "2026-11-20", "--sample-fraction", "0"], "sample fraction must be in (0, 1]"),
    ],
)
def test_publish_rejects_bad_options(cli, tmp_path, args, message):
    run = cli("publish", "--root", str(tmp_path), *args)
    assert run.code == 1
    assert message in run.stderr
    assert not any(tmp_path.rglob("*.parquet"))


def test_frames_survive_the_parquet_round_trip(tmp_path):
    frame = build_day(dt.date(2026, 1, 1))
    url = f"file://{tmp_path}/x.parquet"
    storage.write_bytes(url, storage.parquet_bytes(frame))
    pd.testing.assert_frame_equal(storage.read_parquet(url), frame)

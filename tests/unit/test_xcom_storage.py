from __future__ import annotations

import json

import pytest

from digits.xcom import MAX_RESULT_BYTES, write_result, xcom_dir
from trainyard import storage
from trainyard.errors import UserError

pytestmark = pytest.mark.unit


def test_result_goes_to_xcom_dir_return_json(tmp_path, monkeypatch):
    monkeypatch.setenv("XCOM_DIR", str(tmp_path / "xcom"))
    assert xcom_dir() == tmp_path / "xcom"
    path = write_result({"accuracy": 0.97, "run_id": "abc"})
    assert path == tmp_path / "xcom" / "return.json"
    assert json.loads(path.read_text()) == {"accuracy": 0.97, "run_id": "abc"}
    assert [p.name for p in path.parent.iterdir()] == ["return.json"]  # no temp files left
    # The pod operator's XCom sidecar reads it as another user (a kind run found it 0600).
    assert path.stat().st_mode & 0o777 == 0o644


def test_default_is_the_pod_operator_path(monkeypatch):
    monkeypatch.delenv("XCOM_DIR", raising=False)
    assert str(xcom_dir()) == "/airflow/xcom"


def test_data_never_goes_into_xcom(tmp_path):
    with pytest.raises(ValueError, match="XCom limit"):
        write_result({"rows": list(range(MAX_RESULT_BYTES))}, tmp_path)
    assert not (tmp_path / "return.json").exists()


def test_nan_is_not_valid_json(tmp_path):
    with pytest.raises(ValueError):
        write_result({"accuracy": float("nan")}, tmp_path)


@pytest.mark.parametrize(
    ("base", "parts", "expected"),
    [
        ("s3://datasets/digits", ("daily", "x.parquet"), "s3://datasets/digits/daily/x.parquet"),
        ("s3://datasets/digits/", ("a",), "s3://datasets/digits/a"),
        ("file:///tmp/d", ("a", "b"), "file:///tmp/d/a/b"),
        ("/tmp/d", ("a",), "/tmp/d/a"),
    ],
)
def test_join_keeps_the_scheme(base, parts, expected):
    assert storage.join(base, *parts) == expected


def test_s3_endpoint_comes_from_the_botocore_variables(monkeypatch):
    monkeypatch.delenv("AWS_ENDPOINT_URL_S3", raising=False)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    assert storage.s3_endpoint() is None  # AWS itself
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://generic:9000")
    assert storage.s3_endpoint() == "http://generic:9000"
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", "http://minio:9000")
    assert storage.s3_endpoint() == "http://minio:9000"
    fs, path = storage.filesystem("s3://bucket/key")
    assert path == "bucket/key"
    assert fs.client_kwargs["endpoint_url"] == "http://minio:9000"


def test_local_writes_are_atomic(tmp_path, monkeypatch):
    url = f"file://{tmp_path}/out/file.bin"
    storage.write_bytes(url, b"first")

    def fail(*_args):
        raise OSError("disk full")

    monkeypatch.setattr("os.replace", fail)
    with pytest.raises(OSError, match="disk full"):
        storage.write_bytes(url, b"second")
    assert storage.read_bytes(url) == b"first"
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["file.bin"]


def test_reading_a_missing_object_names_it(tmp_path):
    with pytest.raises(UserError, match=r"nothing\.json: not found"):
        storage.read_json(f"file://{tmp_path}/nothing.json")

"""The MinIO -> SeaweedFS move's copy tool (trainyard.objectstore_copy, docs/upgrading.md),
between two real SeaweedFS servers started the laptop runtime's way (S3Server), no mocks.

The source holds several buckets (one empty, most missing at the destination), nested keys, an
empty object, a key with spaces and non-ASCII characters, and an object larger than the multipart
threshold with a content type, Cache-Control and user metadata. The tests run in order on the
same pair of stores: copy everything, copy again (nothing is re-copied), then damage the
destination and see verification report it and the next copy repair it.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from trainyard import objectstore_copy
from trainyard.objectstore_copy import MiB, Options, Store
from trainyard.standalone.services import S3Server

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
# Small parts, so that the large object below is a real three-part upload.
OPTIONS = Options(multipart_threshold=5 * MiB, part_size=5 * MiB, workers=3, wait_seconds=30)
LARGE = ("mlflow", "artifacts/1/0a1b2c/artifacts/model/data/model.pth")
LARGE_SIZE = 12 * MiB + 321  # three parts of 5, 5 and 2 MiB (+321 bytes)


@dataclass(frozen=True)
class Obj:
    bucket: str
    key: str
    body: bytes
    extra: dict[str, Any]


def objects() -> list[Obj]:
    large = hashlib.shake_256(b"trainyard").digest(LARGE_SIZE)
    parquet = hashlib.shake_256(b"part-0").digest(70_000)
    return [
        Obj("datasets", "daily/2026-01-01/data.csv", b"a,b\n1,2\n" * 100,
            {"ContentType": "text/csv", "Metadata": {"origin": "publish", "rows": "200"}}),
        Obj("datasets", "daily/2026-01-01/nested/deeper/part-0.parquet", parquet, {}),
        Obj("datasets", "daily/2026-01-02/_SUCCESS", b"", {"ContentType": "text/plain"}),
        Obj(*LARGE, large, {
            "ContentType": "application/octet-stream",
            "CacheControl": "no-cache",
            "ContentDisposition": 'attachment; filename="model.pth"',
            "Metadata": {"run-id": "0a1b2c", "framework": "torch"},
        }),
        Obj("mlflow", "artifacts/1/0a1b2c/artifacts/model/MLmodel", b"flavors: {}\n",
            {"ContentType": "text/yaml", "ContentEncoding": "identity"}),
        Obj("airflow-xcom", "dag=train/run id=manual 1/ünïcode key.json", b'{"x": 1}',
            {"ContentType": "application/json"}),
        Obj("team-extra", "a/b/c/d/e/f.txt", b"deep", {"Metadata": {"owner": "team"}}),
    ]  # fmt: skip


SOURCE_ONLY_BUCKETS = ("team-extra", "empty-bucket")


@dataclass
class Stores:
    source: S3Server
    dest: S3Server

    def env(self) -> dict[str, str]:
        """The copy tool's environment: both stores' endpoints and key pairs."""
        env: dict[str, str] = {}
        for prefix, server in (("SOURCE_", self.source), ("DEST_", self.dest)):
            env[prefix + "S3_ENDPOINT_URL"] = server.endpoint
            env[prefix + "AWS_ACCESS_KEY_ID"] = server.access_key
            env[prefix + "AWS_SECRET_ACCESS_KEY"] = server.secret_key
        return env

    def run(self, **changes: Any) -> objectstore_copy.Report:
        options = Options(**{**OPTIONS.__dict__, **changes})
        env = self.env()
        lines: list[str] = []
        report = objectstore_copy.run(
            Store.from_env("SOURCE_", env), Store.from_env("DEST_", env), options, lines.append
        )
        print("\n".join(lines))
        return report


@pytest.fixture(scope="module")
def stores(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stores]:
    """A source with the platform's four buckets and two more, filled; a destination with
    only `datasets` (the copy creates the others)."""
    root = tmp_path_factory.mktemp("objectstore-copy")
    source = S3Server(root / "source")
    dest = S3Server(root / "dest", buckets=("datasets",))
    try:
        source.start()
        dest.start()
        client = source.client()
        for bucket in SOURCE_ONLY_BUCKETS:
            client.create_bucket(Bucket=bucket)
        for obj in objects():
            client.put_object(Bucket=obj.bucket, Key=obj.key, Body=obj.body, **obj.extra)
        yield Stores(source, dest)
    finally:  # each takes ~12 s (the filer flushes its store): at once
        with ThreadPoolExecutor() as pool:
            list(pool.map(S3Server.stop, (source, dest)))


def fetched(client: Any, bucket: str, key: str) -> tuple[str, dict[str, Any]]:
    """SHA-256 of an object's bytes (read here, independently of the tool) and its head."""
    answer = client.get_object(Bucket=bucket, Key=key)
    digest = hashlib.sha256(answer["Body"].read()).hexdigest()
    return digest, client.head_object(Bucket=bucket, Key=key)


def kept(head: dict[str, Any]) -> dict[str, Any]:
    return {
        "size": head["ContentLength"],
        "metadata": head.get("Metadata", {}),
        **{name: head.get(name) for name in objectstore_copy.KEPT_HEADERS},
    }


def test_copy_makes_every_object_identical_at_the_destination(stores: Stores) -> None:
    report = stores.run()
    source_objects = objects()
    assert report.ok, report.failures
    assert report.objects == report.copied == len(source_objects)
    assert report.identical == 0
    assert report.bytes_copied == sum(len(o.body) for o in source_objects)
    src, dst = stores.source.client(), stores.dest.client()
    # every bucket, the empty one and the ones the destination lacked included
    names = {b["Name"] for b in dst.list_buckets()["Buckets"]}
    assert names >= {b["Name"] for b in src.list_buckets()["Buckets"]}
    assert set(report.buckets) >= {"datasets", "mlflow", "team-extra", "empty-bucket"}
    for obj in source_objects:
        src_sha, src_head = fetched(src, obj.bucket, obj.key)
        dst_sha, dst_head = fetched(dst, obj.bucket, obj.key)
        assert dst_sha == src_sha == hashlib.sha256(obj.body).hexdigest(), obj.key
        assert kept(dst_head) == kept(src_head), obj.key
        for name, value in obj.extra.items():
            assert dst_head.get(name) == value, (obj.key, name)
    # the large object went up in parts: its ETag is not the source's (why ETags are not used)
    _, large_head = fetched(dst, *LARGE)
    assert large_head["ETag"] != fetched(src, *LARGE)[1]["ETag"]
    assert large_head["ETag"].strip('"').endswith("-3")


def test_a_second_copy_copies_nothing(stores: Stores) -> None:
    assert stores.run().ok  # (the first test's copy, when this one runs alone)
    report = stores.run()
    assert report.ok, report.failures
    assert (report.copied, report.bytes_copied) == (0, 0)
    assert report.identical == report.objects == len(objects())


def test_verification_reports_a_changed_copy_and_the_next_copy_repairs_it(
    stores: Stores,
) -> None:
    assert stores.run().ok
    dst = stores.dest.client()
    # the same size and attributes, other bytes: only a checksum can tell
    obj = objects()[1]
    damaged = bytes(reversed(obj.body))
    dst.put_object(Bucket=obj.bucket, Key=obj.key, Body=damaged, **obj.extra)
    # and one whose metadata changed, and one that is gone
    csv = objects()[0]
    dst.put_object(Bucket=csv.bucket, Key=csv.key, Body=csv.body, ContentType="text/plain",
                   Metadata={"origin": "edited"})  # fmt: skip
    dst.delete_object(Bucket=LARGE[0], Key=LARGE[1])

    report = stores.run(verify_only=True)
    assert not report.ok
    assert report.copied == 0
    by_key = dict(failure.split(": ", 1) for failure in report.failures)
    assert set(by_key) == {
        f"s3://{csv.bucket}/{csv.key}",
        f"s3://{obj.bucket}/{obj.key}",
        f"s3://{LARGE[0]}/{LARGE[1]}",
    }
    assert "content differs" in by_key[f"s3://{obj.bucket}/{obj.key}"]
    assert "ContentType, Metadata differ" in by_key[f"s3://{csv.bucket}/{csv.key}"]
    assert "missing at the destination" in by_key[f"s3://{LARGE[0]}/{LARGE[1]}"]

    # the command exits 1 naming the first of them (source listing order: datasets first)
    proc = subprocess.run(
        [sys.executable, str(REPO / "platform/trainyard/objectstore_copy.py"), "--verify-only"],
        env={**os.environ, **stores.env()},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 1, proc.stdout + proc.stderr
    last = proc.stderr.strip().splitlines()[-1]
    assert f"the first: s3://{csv.bucket}/{csv.key}: ContentType, Metadata differ" in last

    repaired = stores.run()
    assert repaired.ok, repaired.failures
    assert repaired.copied == 3
    assert repaired.bytes_copied == len(obj.body) + len(csv.body) + LARGE_SIZE
    assert fetched(dst, obj.bucket, obj.key)[0] == hashlib.sha256(obj.body).hexdigest()
    assert stores.run(verify_only=True).ok


def test_the_trainyard_command_reads_both_stores_from_the_environment(stores: Stores) -> None:
    assert stores.run().ok
    trainyard = Path(sys.executable).with_name("trainyard")
    command = [str(trainyard), "objectstore-copy", "--bucket", "mlflow", "--verify-only"]
    base = {k: v for k, v in os.environ.items() if not k.startswith(("SOURCE_", "DEST_"))}
    proc = subprocess.run(
        command, env={**base, **stores.env()}, capture_output=True, text=True, timeout=120,
        check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "1 buckets, 2 objects" in proc.stdout
    assert "every object verified (SHA-256)" in proc.stdout
    # no endpoint or key on the command line: without the env it names what is missing
    missing = subprocess.run(
        command, env=base, capture_output=True, text=True, timeout=60, check=False
    )
    assert missing.returncode == 2
    assert "SOURCE_S3_ENDPOINT_URL" in missing.stderr

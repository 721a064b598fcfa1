"""Copy every bucket and object from one S3 store to another, each copy verified by SHA-256.

The move from MinIO to SeaweedFS (docs/upgrading.md), or between any two S3 stores. For every
object of the source (every bucket, or the ones named): when the destination already holds
the same bytes (SHA-256 of both, computed here from the bytes each store returns: ETags differ
between stores for multipart uploads), the same size, content type and user metadata, it is
left alone; otherwise it is streamed across (multipart above a threshold) with its content
type, Cache-Control, Content-Disposition, Content-Encoding, Content-Language and user
metadata, then read back from the destination and its SHA-256 compared with the source's.
Buckets missing at the destination are created. Running it again copies nothing that is
already identical, so an interrupted run is resumed by running it again. `--verify-only`
copies nothing and fails on the first object whose copy is missing or differs. Not copied:
object versions other than the current one, tags, ACLs, bucket policies and lifecycle rules
(the platform uses none of them).

Endpoints and credentials come only from the environment, never from arguments:

  SOURCE_S3_ENDPOINT_URL, SOURCE_AWS_ACCESS_KEY_ID, SOURCE_AWS_SECRET_ACCESS_KEY
  DEST_S3_ENDPOINT_URL,   DEST_AWS_ACCESS_KEY_ID,   DEST_AWS_SECRET_ACCESS_KEY
  optional: SOURCE_/DEST_AWS_REGION (us-east-1), SOURCE_/DEST_S3_ADDRESSING_STYLE (path)

It runs as `trainyard objectstore-copy`, as `python -m trainyard.objectstore_copy`, and as a
plain script: the chart's migration Job runs this file from the tools image, which has botocore
but not the trainyard package. So it imports only the standard library and botocore.

Exit status: 0 when every object is identical at the destination; 1 naming the first object
that is not (after trying all of them); 2 for a configuration error.
"""

from __future__ import annotations

import argparse
import functools
import hashlib
import os
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

MiB = 1024 * 1024
DEFAULT_REGION = "us-east-1"
# S3's smallest part (every part but the last must be at least this large).
MIN_PART_SIZE = 5 * MiB
READ_CHUNK = 1 * MiB
# What a copy keeps besides the bytes: these headers (as botocore names them) and Metadata.
KEPT_HEADERS = (
    "ContentType",
    "CacheControl",
    "ContentDisposition",
    "ContentEncoding",
    "ContentLanguage",
)


class ConfigError(ValueError):
    """The environment or the arguments do not describe a copy."""


@dataclass(frozen=True)
class Store:
    """One S3 endpoint and its key pair."""

    endpoint: str
    access_key: str
    secret_key: str = field(repr=False)
    region: str = DEFAULT_REGION
    addressing_style: str = "path"

    @classmethod
    def from_env(cls, prefix: str, environ: Mapping[str, str] | None = None) -> Store:
        """The store that `<prefix>S3_ENDPOINT_URL`, `<prefix>AWS_ACCESS_KEY_ID`, … describe.
        Never the ambient AWS credentials: a copy names both ends explicitly."""
        env = os.environ if environ is None else environ
        names = ("S3_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")
        missing = [prefix + name for name in names if not env.get(prefix + name)]
        if missing:
            raise ConfigError(f"set {', '.join(missing)} (endpoints and keys come from the env)")
        return cls(
            endpoint=env[prefix + "S3_ENDPOINT_URL"],
            access_key=env[prefix + "AWS_ACCESS_KEY_ID"],
            secret_key=env[prefix + "AWS_SECRET_ACCESS_KEY"],
            region=env.get(prefix + "AWS_REGION") or DEFAULT_REGION,
            addressing_style=env.get(prefix + "S3_ADDRESSING_STYLE") or "path",
        )

    def client(self) -> Any:
        from botocore.config import Config  # noqa: PLC0415 - botocore only where a copy runs
        from botocore.session import get_session  # noqa: PLC0415

        return get_session().create_client(
            "s3",
            endpoint_url=self.endpoint,
            region_name=self.region,
            aws_access_key_id=self.access_key,
            aws_secret_access_key=self.secret_key,
            config=Config(
                connect_timeout=10,
                read_timeout=120,
                retries={"max_attempts": 5, "mode": "standard"},
                s3={"addressing_style": self.addressing_style},
                max_pool_connections=32,
            ),
        )


@dataclass(frozen=True)
class Options:
    buckets: tuple[str, ...] = ()  # empty: every bucket of the source
    verify_only: bool = False
    workers: int = 4
    multipart_threshold: int = 16 * MiB
    part_size: int = 16 * MiB
    wait_seconds: float = 60.0

    def __post_init__(self) -> None:
        if self.part_size < MIN_PART_SIZE:
            raise ConfigError(f"the part size must be at least {MIN_PART_SIZE // MiB} MiB")
        if self.multipart_threshold < self.part_size:
            raise ConfigError("the multipart threshold must be at least the part size")
        if self.workers < 1:
            raise ConfigError("workers must be at least 1")


@dataclass
class Report:
    buckets: list[str] = field(default_factory=list)
    objects: int = 0
    copied: int = 0
    identical: int = 0
    bytes_copied: int = 0
    bytes_total: int = 0
    # "s3://bucket/key: reason", in the order the source lists them
    failures: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.failures

    def summary(self, verify_only: bool = False) -> str:
        size = f"{self.bytes_total / MiB:.1f} MiB"
        head = f"{len(self.buckets)} buckets, {self.objects} objects ({size})"
        if verify_only:
            body = f"{self.identical} identical at the destination"
        else:
            copied = f"{self.copied} copied ({self.bytes_copied / MiB:.1f} MiB)"
            body = f"{copied}, {self.identical} already identical"
        if self.failures:
            return (
                f"{head}: {body}; {len(self.failures)} not identical, the first: {self.failures[0]}"
            )
        return f"{head}: {body}; every object verified (SHA-256)"


@dataclass(frozen=True)
class Outcome:
    status: str  # "copied" | "identical" | "failed"
    size: int
    message: str = ""


def _status(exc: Exception) -> int | None:
    response = getattr(exc, "response", None) or {}
    code: int | None = response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    return code


def _error_code(exc: Exception) -> str:
    response = getattr(exc, "response", None) or {}
    return str(response.get("Error", {}).get("Code", ""))


def head_or_none(client: Any, bucket: str, key: str) -> dict[str, Any] | None:
    from botocore.exceptions import ClientError  # noqa: PLC0415

    try:
        head: dict[str, Any] = client.head_object(Bucket=bucket, Key=key)
    except ClientError as exc:
        if _status(exc) == 404:
            return None
        raise
    return head


def attributes(head: Mapping[str, Any]) -> dict[str, Any]:
    """What a copy keeps besides the bytes, from a HeadObject answer."""
    kept: dict[str, Any] = {name: head[name] for name in KEPT_HEADERS if head.get(name)}
    kept["Metadata"] = dict(head.get("Metadata") or {})
    return kept


def sha256_of(client: Any, bucket: str, key: str) -> tuple[str, int]:
    """SHA-256 and length of the bytes the store returns for one object, streamed."""
    body = client.get_object(Bucket=bucket, Key=key)["Body"]
    digest, size = hashlib.sha256(), 0
    try:
        for chunk in body.iter_chunks(READ_CHUNK):
            digest.update(chunk)
            size += len(chunk)
    finally:
        body.close()
    return digest.hexdigest(), size


def _read_exactly(body: Any, size: int) -> bytes:
    """Up to `size` bytes: fewer only at the end of the stream."""
    parts, left = [], size
    while left:
        chunk = body.read(min(left, READ_CHUNK))
        if not chunk:
            break
        parts.append(chunk)
        left -= len(chunk)
    return b"".join(parts)


def stream_copy(
    src: Any, dst: Any, bucket: str, key: str, head: Mapping[str, Any], options: Options
) -> tuple[str, int]:
    """Stream one object from src to dst with its attributes; the SHA-256 and length of the
    bytes read from the source (and sent)."""
    kept = attributes(head)
    body = src.get_object(Bucket=bucket, Key=key)["Body"]
    digest = hashlib.sha256()
    try:
        if int(head["ContentLength"]) <= options.multipart_threshold:
            data = _read_exactly(body, int(head["ContentLength"]) + 1)
            digest.update(data)
            dst.put_object(Bucket=bucket, Key=key, Body=data, **kept)
            return digest.hexdigest(), len(data)
        upload = dst.create_multipart_upload(Bucket=bucket, Key=key, **kept)["UploadId"]
        parts: list[dict[str, Any]] = []
        sent = 0
        try:
            while chunk := _read_exactly(body, options.part_size):
                digest.update(chunk)
                number = len(parts) + 1
                answer = dst.upload_part(
                    Bucket=bucket, Key=key, UploadId=upload, PartNumber=number, Body=chunk
                )
                parts.append({"PartNumber": number, "ETag": answer["ETag"]})
                sent += len(chunk)
            dst.complete_multipart_upload(
                Bucket=bucket, Key=key, UploadId=upload, MultipartUpload={"Parts": parts}
            )
        except BaseException:
            dst.abort_multipart_upload(Bucket=bucket, Key=key, UploadId=upload)
            raise
        return digest.hexdigest(), sent
    finally:
        body.close()


def difference(src_head: Mapping[str, Any], dst_head: Mapping[str, Any] | None) -> str | None:
    """Why the destination's object cannot be the source's, from their heads alone."""
    if dst_head is None:
        return "missing at the destination"
    if int(src_head["ContentLength"]) != int(dst_head["ContentLength"]):
        sizes = f"{dst_head['ContentLength']} at the destination, {src_head['ContentLength']}"
        return f"size {sizes} at the source"
    src_attrs, dst_attrs = attributes(src_head), attributes(dst_head)
    if src_attrs != dst_attrs:
        changed = sorted(
            k for k in {*src_attrs, *dst_attrs} if src_attrs.get(k) != dst_attrs.get(k)
        )
        return f"{', '.join(changed)} differ"
    return None


def sync_object(src: Any, dst: Any, bucket: str, key: str, options: Options) -> Outcome:
    """Make (or, with verify_only, check) the destination's copy of one object."""
    src_head = src.head_object(Bucket=bucket, Key=key)
    size = int(src_head["ContentLength"])
    why = difference(src_head, head_or_none(dst, bucket, key))
    if why is None:
        src_sha, _ = sha256_of(src, bucket, key)
        dst_sha, _ = sha256_of(dst, bucket, key)
        if src_sha == dst_sha:
            return Outcome("identical", size)
        why = (
            f"content differs (SHA-256 {dst_sha[:12]}… at the destination, "
            f"{src_sha[:12]}… at the source)"
        )
    if options.verify_only:
        return Outcome("failed", size, why)
    sent_sha, sent = stream_copy(src, dst, bucket, key, src_head, options)
    if sent != size:
        return Outcome("failed", size, f"the source returned {sent} bytes, its size is {size}")
    # read back: what the destination now serves must be what was read from the source
    why = difference(src_head, head_or_none(dst, bucket, key))
    if why is None:
        dst_sha, _ = sha256_of(dst, bucket, key)
        if dst_sha == sent_sha:
            return Outcome("copied", size)
        why = f"content differs after the copy (SHA-256 {dst_sha[:12]}…, sent {sent_sha[:12]}…)"
    return Outcome("failed", size, f"{why} after the copy")


def list_keys(client: Any, bucket: str) -> Iterator[list[str]]:
    """The bucket's keys, one listing page at a time."""
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        keys = [item["Key"] for item in page.get("Contents", [])]
        if keys:
            yield keys


def ensure_bucket(client: Any, bucket: str, region: str) -> bool:
    """Create the bucket at the destination if it is missing (another writer may create it at
    the same time: the chart's bucket-init Job). Always True: it exists afterwards."""
    from botocore.exceptions import ClientError  # noqa: PLC0415

    if bucket_exists(client, bucket):
        return True
    kwargs: dict[str, Any] = {"Bucket": bucket}
    if region and region != DEFAULT_REGION:
        kwargs["CreateBucketConfiguration"] = {"LocationConstraint": region}
    try:
        client.create_bucket(**kwargs)
    except ClientError as exc:
        if _error_code(exc) not in {"BucketAlreadyOwnedByYou", "BucketAlreadyExists"}:
            raise
    return True


def bucket_exists(client: Any, bucket: str) -> bool:
    from botocore.exceptions import ClientError  # noqa: PLC0415

    try:
        client.head_bucket(Bucket=bucket)
    except ClientError as exc:
        if _status(exc) == 404:
            return False
        raise
    return True


def wait_for(name: str, call: Callable[[], Any], seconds: float, say: Callable[[str], None]) -> Any:
    """call() until it answers, for up to `seconds` (the store may still be starting)."""
    from botocore.exceptions import BotoCoreError, ClientError  # noqa: PLC0415

    deadline = time.monotonic() + seconds
    while True:
        try:
            return call()
        except (BotoCoreError, ClientError) as exc:
            if time.monotonic() >= deadline:
                raise ConfigError(f"the {name} store does not answer: {exc}") from exc
            say(f"waiting for the {name} store: {exc}")
            time.sleep(3)


def run(
    source: Store,
    dest: Store,
    options: Options | None = None,
    say: Callable[[str], None] = print,
) -> Report:
    """Copy (or verify) every object; the report says what happened to each."""
    options = options or Options()
    if source.endpoint.rstrip("/") == dest.endpoint.rstrip("/"):
        raise ConfigError(f"source and destination are the same store ({source.endpoint})")
    src, dst = source.client(), dest.client()
    listed = wait_for("source", src.list_buckets, options.wait_seconds, say)
    wait_for("destination", dst.list_buckets, options.wait_seconds, say)
    existing = sorted(b["Name"] for b in listed.get("Buckets", []))
    buckets = list(options.buckets) or existing
    absent = [b for b in buckets if b not in existing]
    if absent:
        raise ConfigError(f"no such bucket at the source: {', '.join(absent)}")
    report = Report(buckets=buckets)
    with ThreadPoolExecutor(max_workers=options.workers) as pool:
        for bucket in buckets:
            if options.verify_only:
                present = bucket_exists(dst, bucket)
            else:
                present = ensure_bucket(dst, bucket, dest.region)
            before = (report.objects, report.copied, len(report.failures))
            for keys in list_keys(src, bucket):
                if not present:
                    outcomes = [Outcome("failed", 0, "its bucket is missing at the destination")]
                    outcomes *= len(keys)
                else:
                    one = functools.partial(_safe_sync, src, dst, bucket, options=options)
                    outcomes = list(pool.map(one, keys))
                for key, outcome in zip(keys, outcomes, strict=True):
                    report.objects += 1
                    report.bytes_total += outcome.size
                    if outcome.status == "copied":
                        report.copied += 1
                        report.bytes_copied += outcome.size
                        say(f"copied s3://{bucket}/{key} ({outcome.size} bytes)")
                    elif outcome.status == "identical":
                        report.identical += 1
                    else:
                        report.failures.append(f"s3://{bucket}/{key}: {outcome.message}")
                        say(f"NOT IDENTICAL s3://{bucket}/{key}: {outcome.message}")
            objects, copied, failed = (
                report.objects - before[0],
                report.copied - before[1],
                len(report.failures) - before[2],
            )
            say(
                f"bucket {bucket}: {objects} objects, {copied} copied, "
                f"{objects - copied - failed} identical, {failed} not identical"
            )
    return report


def _safe_sync(src: Any, dst: Any, bucket: str, key: str, options: Options) -> Outcome:
    """sync_object, with a store's error reported as this object's failure."""
    from botocore.exceptions import BotoCoreError, ClientError  # noqa: PLC0415

    try:
        return sync_object(src, dst, bucket, key, options)
    except (BotoCoreError, ClientError) as exc:
        return Outcome("failed", 0, f"{type(exc).__name__}: {exc}")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--bucket",
        dest="buckets",
        action="append",
        default=None,
        help="copy only this bucket (repeatable; default: every bucket of the source)",
    )
    parser.add_argument(
        "--verify-only",
        action="store_true",
        help="copy nothing: exit 1 naming the first object missing or different at the destination",
    )
    parser.add_argument("--workers", type=int, default=4, help="objects copied at once (4)")
    parser.add_argument(
        "--multipart-threshold-mib",
        type=int,
        default=16,
        help="objects larger than this are uploaded in parts (16)",
    )
    parser.add_argument("--part-size-mib", type=int, default=16, help="part size (16, min 5)")
    parser.add_argument(
        "--wait",
        type=float,
        default=60,
        help="seconds to wait for either store to answer (60)",
    )


def options_from(args: argparse.Namespace) -> Options:
    return Options(
        buckets=tuple(args.buckets or ()),
        verify_only=args.verify_only,
        workers=args.workers,
        multipart_threshold=args.multipart_threshold_mib * MiB,
        part_size=args.part_size_mib * MiB,
        wait_seconds=args.wait,
    )


def execute(args: argparse.Namespace, environ: Mapping[str, str] | None = None) -> int:
    """Run the copy the parsed arguments and the environment describe; the exit status."""
    from botocore.exceptions import BotoCoreError, ClientError  # noqa: PLC0415

    prog = "objectstore-copy"
    try:
        options = options_from(args)
        source = Store.from_env("SOURCE_", environ)
        dest = Store.from_env("DEST_", environ)
        print(f"{prog}: {source.endpoint} -> {dest.endpoint}", flush=True)
        report = run(source, dest, options, say=lambda line: print(line, flush=True))
    except ConfigError as exc:
        print(f"{prog}: error: {exc}", file=sys.stderr, flush=True)
        return 2
    except (BotoCoreError, ClientError) as exc:  # listing a bucket, creating one
        print(f"{prog}: error: {type(exc).__name__}: {exc}", file=sys.stderr, flush=True)
        return 1
    line = f"{prog}: {report.summary(options.verify_only)}"
    print(line, file=sys.stdout if report.ok else sys.stderr, flush=True)
    return 0 if report.ok else 1


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="objectstore-copy", description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    add_arguments(parser)
    return execute(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())

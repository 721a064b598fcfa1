"""Object storage addressed by URL (`s3://…`, `file://…`, plain paths) through fsspec.

MinIO, SeaweedFS and AWS S3 differ only in configuration: the S3 endpoint comes
from `AWS_ENDPOINT_URL_S3` / `AWS_ENDPOINT_URL` (the variables botocore itself
reads), credentials from the usual AWS variables or instance roles.

Writes are whole-object: the payload is serialised in memory first and then
stored with one PUT (S3) or a write-to-temp-and-rename (local files), so a
failure never leaves a half-written object behind.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import os
import posixpath
import tempfile
from collections.abc import Iterator
from typing import Any

import fsspec
import pandas as pd
from fsspec.implementations.local import LocalFileSystem

from trainyard.errors import UserError


def s3_endpoint() -> str | None:
    """The S3 endpoint for non-AWS stores, or None for AWS itself."""
    return os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL") or None


def filesystem(url: str) -> tuple[fsspec.AbstractFileSystem, str]:
    """Return the filesystem for `url` and the path inside it."""
    protocol, path = fsspec.core.split_protocol(url)
    if protocol in ("s3", "s3a"):
        options: dict[str, Any] = {}
        endpoint = s3_endpoint()
        if endpoint:
            options["client_kwargs"] = {"endpoint_url": endpoint}
        # Where credentials were found is not news at INFO (trainer logs run at INFO).
        logging.getLogger("aiobotocore.credentials").setLevel(logging.WARNING)
        # A fresh instance each time: credentials and endpoints may change between
        # calls in one process (tests, the standalone runtime).
        return fsspec.filesystem("s3", skip_instance_cache=True, **options), path
    if protocol in (None, "file", "local"):
        return LocalFileSystem(), os.path.abspath(path)
    return fsspec.filesystem(protocol), path


@contextlib.contextmanager
def _s3_errors(url: str) -> Iterator[None]:
    """Missing credentials or an unreachable endpoint as one line naming what is missing."""
    from botocore.exceptions import (  # noqa: PLC0415 - botocore comes with s3fs
        EndpointConnectionError,
        NoCredentialsError,
        PartialCredentialsError,
    )

    try:
        yield
    except (NoCredentialsError, PartialCredentialsError):
        raise UserError(
            f"{url}: no S3 credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY "
            "(or an AWS profile or role)"
        ) from None
    except EndpointConnectionError as exc:
        endpoint = s3_endpoint()
        if endpoint:
            raise UserError(f"{url}: cannot reach the S3 endpoint {endpoint}") from None
        raise UserError(
            f"{url}: no S3 endpoint: AWS_ENDPOINT_URL_S3 is not set, and AWS's own "
            f"({exc.kwargs.get('endpoint_url', 'amazonaws.com')}) cannot be reached"
        ) from None


def join(base: str, *parts: str) -> str:
    """Join URL path segments without touching the scheme (`s3://b/x` + `y` → `s3://b/x/y`)."""
    protocol, path = fsspec.core.split_protocol(base)
    joined = posixpath.join(path.rstrip("/") if path != "/" else path, *parts)
    return f"{protocol}://{joined}" if protocol else joined


def exists(url: str) -> bool:
    fs, path = filesystem(url)
    with _s3_errors(url):
        return bool(fs.exists(path))


def read_bytes(url: str) -> bytes:
    fs, path = filesystem(url)
    try:
        with _s3_errors(url):
            data: bytes = fs.cat_file(path)
    except FileNotFoundError:
        raise UserError(f"{url}: not found") from None
    except PermissionError as exc:
        raise UserError(f"{url}: access denied ({exc})") from None
    return data


def write_bytes(url: str, data: bytes) -> None:
    fs, path = filesystem(url)
    if isinstance(fs, LocalFileSystem):
        folder = os.path.dirname(path)
        os.makedirs(folder, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=".tmp-", suffix=os.path.basename(path))
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
            os.replace(tmp, path)
        except BaseException:
            os.unlink(tmp)
            raise
    else:
        with _s3_errors(url):
            fs.pipe_file(path, data)


def read_parquet(url: str) -> pd.DataFrame:
    return read_parquet_bytes(read_bytes(url), url)


def read_parquet_bytes(data: bytes, url: str) -> pd.DataFrame:
    try:
        return pd.read_parquet(io.BytesIO(data))
    except Exception as exc:  # pyarrow raises several unrelated types for bad files
        raise UserError(f"{url}: not a readable Parquet file ({exc})") from None


def parquet_bytes(frame: pd.DataFrame) -> bytes:
    buffer = io.BytesIO()
    frame.to_parquet(buffer, index=False)
    return buffer.getvalue()


def read_json(url: str) -> Any:
    try:
        return json.loads(read_bytes(url))
    except json.JSONDecodeError as exc:
        raise UserError(f"{url}: not valid JSON ({exc})") from None


def json_bytes(value: Any) -> bytes:
    return json.dumps(value, indent=2, sort_keys=True).encode()

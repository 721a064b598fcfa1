"""A trial's checkpoint in the object store: what a retried trial resumes from.

The SDK stores the trainer's own bytes (a `torch.save` buffer, a file from any framework) with
a small header: the MLflow run id, so the retry continues the same run, and the last finished
epoch. One object per trial, replaced in one PUT (S3) or one rename (local files): a process
killed at any instant leaves the previous checkpoint or the new one, never half of one.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import fsspec
from fsspec.implementations.local import LocalFileSystem

from trainyard.sdk.errors import ContractError

MAGIC = b"TRAINYARD-CHECKPOINT 1\n"
# The header is one JSON line after the magic line; a bound keeps a wrong file from being read
# as a header of gigabytes.
MAX_HEADER_BYTES = 64 * 1024


@dataclass(frozen=True)
class Checkpoint:
    """The trainer's bytes and where in the trial they are."""

    payload: bytes
    run_id: str | None
    epoch: int

    def write_payload(self, path: str | os.PathLike[str]) -> Path:
        """The payload as a file (for trainers whose framework restores from a file)."""
        target = Path(path)
        target.write_bytes(self.payload)
        return target


def filesystem(url: str) -> tuple[fsspec.AbstractFileSystem, str]:
    """The filesystem for `url` and the path inside it; S3 endpoints from the botocore
    variables, so MinIO, SeaweedFS and AWS differ only in configuration."""
    protocol, path = fsspec.core.split_protocol(url)
    if protocol in ("s3", "s3a"):
        options: dict[str, Any] = {}
        endpoint = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
        if endpoint:
            options["client_kwargs"] = {"endpoint_url": endpoint}
        return fsspec.filesystem("s3", skip_instance_cache=True, **options), path
    if protocol in (None, "file", "local"):
        return LocalFileSystem(), os.path.abspath(path)
    return fsspec.filesystem(protocol), path


def encode(payload: bytes, run_id: str | None, epoch: int) -> bytes:
    header = json.dumps({"run_id": run_id, "epoch": epoch}, sort_keys=True).encode()
    return MAGIC + header + b"\n" + payload


def decode(url: str, data: bytes) -> Checkpoint:
    if not data.startswith(MAGIC):
        raise ContractError(f"{url}: not a readable checkpoint (no trainyard checkpoint header)")
    end = data.find(b"\n", len(MAGIC), len(MAGIC) + MAX_HEADER_BYTES)
    try:
        header: Any = json.loads(data[len(MAGIC) : end]) if end > 0 else None
        run_id, epoch = header["run_id"], int(header["epoch"])
    except (ValueError, TypeError, KeyError):
        raise ContractError(f"{url}: not a readable checkpoint (damaged header)") from None
    return Checkpoint(payload=data[end + 1 :], run_id=run_id, epoch=epoch)


def save_checkpoint(
    url: str, payload: bytes | str | os.PathLike[str], *, run_id: str | None, epoch: int
) -> None:
    """Store `payload` (bytes, or the path of a file the trainer wrote) at `url`, atomically."""
    if epoch < 0:
        raise ValueError(f"epoch must be 0 or more, got {epoch}")
    body = payload if isinstance(payload, bytes) else Path(payload).read_bytes()
    data = encode(body, run_id, epoch)
    fs, path = filesystem(url)
    if isinstance(fs, LocalFileSystem):
        folder = os.path.dirname(path)
        os.makedirs(folder, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=".checkpoint-")
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return
    # An object store replaces an object only when its upload completes.
    fs.pipe_file(path, data)


def load_checkpoint(url: str) -> Checkpoint | None:
    """The checkpoint at `url`, or None when there is none yet (a first attempt)."""
    fs, path = filesystem(url)
    try:
        data = fs.cat_file(path)
    except FileNotFoundError:
        return None
    return decode(url, data)

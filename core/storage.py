"""Where sources come from and renditions go: a local folder or an S3 bucket.

Both adapters are thin and share one contract (tests/test_storage_contract.py
runs the same tests on each). The S3 adapter takes a ready boto3 client, so
core never imports boto3 and tests can hand it a moto-backed client.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Protocol

from core.errors import SourceChanged, SourceTooLarge, StorageError, TransientStorageError


@dataclass(frozen=True)
class ObjectInfo:
    key: str
    size: int
    etag: str
    content_type: str = ""
    metadata: dict[str, str] = field(default_factory=dict)


class Storage(Protocol):
    def read(self, key: str, etag: str | None = None, max_bytes: int | None = None) -> bytes:
        """The object's bytes; SourceChanged unless its ETag is still ``etag``, SourceTooLarge beyond ``max_bytes``."""
        ...

    def head(self, key: str) -> ObjectInfo | None: ...
    def write(self, key: str, data: bytes, content_type: str, metadata: dict[str, str] | None = None,
              cache_control: str | None = None) -> None: ...
    def keys(self, prefix: str = "") -> Iterator[str]: ...
    def delete(self, key: str) -> None:
        """Remove the object; a missing one is not an error."""
        ...


def atomic_write(path: Path, data: bytes) -> None:
    """Write to a temporary name in the same folder, then rename over the target.

    A run killed mid-write leaves no half-written file under the real name.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


class LocalFolder:
    """A folder of files; keys are '/'-separated paths relative to ``root``."""

    def __init__(self, root: Path):
        self.root = Path(root)

    def _path(self, key: str) -> Path:
        path = (self.root / key).resolve()
        if not path.is_relative_to(self.root.resolve()):
            raise StorageError(f"{key}: outside {self.root}")
        return path

    def read(self, key: str, etag: str | None = None, max_bytes: int | None = None) -> bytes:
        try:
            with self._path(key).open("rb") as fh:
                data = fh.read() if max_bytes is None else fh.read(max_bytes + 1)
        except OSError as exc:
            raise StorageError(f"{key}: cannot read ({exc.strerror})") from None
        _check_size(data, key, max_bytes)
        if etag is not None and hashlib.md5(data).hexdigest() != etag:
            raise SourceChanged(f"{key}: changed since it was examined")
        return data

    def head(self, key: str) -> ObjectInfo | None:
        path = self._path(key)
        if not path.is_file():
            return None
        data = path.read_bytes()
        return ObjectInfo(key, len(data), hashlib.md5(data).hexdigest())

    def write(self, key, data, content_type, metadata=None, cache_control=None) -> None:
        try:
            atomic_write(self._path(key), data)
        except OSError as exc:
            raise StorageError(f"{key}: cannot write ({exc.strerror})") from None

    def delete(self, key: str) -> None:
        try:
            self._path(key).unlink(missing_ok=True)
        except OSError as exc:
            raise StorageError(f"{key}: cannot delete ({exc.strerror})") from None

    def keys(self, prefix: str = "") -> Iterator[str]:
        for path in sorted(self.root.rglob("*")):
            key = path.relative_to(self.root).as_posix()
            if path.is_file() and key.startswith(prefix):
                yield key


def _check_size(data: bytes, key: str, max_bytes: int | None) -> None:
    """Callers read at most max_bytes + 1 bytes: one more than allowed means the source is too large."""
    if max_bytes is not None and len(data) > max_bytes:
        raise SourceTooLarge(f"{key}: more than the {max_bytes:,}-byte limit (it grew after it was examined)")


_TRANSIENT_CODES = {
    "Throttling", "ThrottlingException", "SlowDown", "RequestTimeout", "RequestTimeTooSkewed",
    "InternalError", "ServiceUnavailable", "RequestLimitExceeded", "TooManyRequestsException",
}


def _storage_error(exc: Exception, where: str) -> StorageError:
    """Map a botocore error (duck-typed: core does not import botocore) onto ours."""
    response: dict[str, Any] = getattr(exc, "response", None) or {}
    code = str(response.get("Error", {}).get("Code", type(exc).__name__))
    status = int(response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)
    message = f"{where}: {code}"
    if code in _TRANSIENT_CODES or status >= 500 or not response:
        return TransientStorageError(message)
    return StorageError(message)


class S3Bucket:
    """One bucket through an injected boto3 S3 client."""

    def __init__(self, client: Any, bucket: str):
        self.client = client
        self.bucket = bucket

    def _where(self, key: str) -> str:
        return f"s3://{self.bucket}/{key}"

    def read(self, key: str, etag: str | None = None, max_bytes: int | None = None) -> bytes:
        """GetObject, pinned to ``etag`` (IfMatch) and never more than ``max_bytes`` (Range + a bounded read).

        Without the pin a source replaced after HeadObject (its size checked)
        would be downloaded whole, whatever its size now.
        """
        params: dict[str, Any] = {"Bucket": self.bucket, "Key": key}
        if etag is not None:
            params["IfMatch"] = f'"{etag}"'
        if max_bytes is not None:
            params["Range"] = f"bytes=0-{max_bytes}"  # one byte more than allowed tells a grown object
        try:
            body = self.client.get_object(**params)["Body"]
            try:
                data = body.read() if max_bytes is None else body.read(max_bytes + 1)
            finally:
                body.close()
        except Exception as exc:
            code = str((getattr(exc, "response", None) or {}).get("Error", {}).get("Code", ""))
            if code == "PreconditionFailed":
                raise SourceChanged(f"{self._where(key)}: replaced since HeadObject (ETag no longer {etag})") from None
            if code == "InvalidRange":  # a Range on an empty object
                return b""
            raise _storage_error(exc, self._where(key)) from None
        _check_size(data, key, max_bytes)
        return data

    def head(self, key: str) -> ObjectInfo | None:
        try:
            resp = self.client.head_object(Bucket=self.bucket, Key=key)
        except Exception as exc:
            err = getattr(exc, "response", {}) or {}
            if str(err.get("Error", {}).get("Code")) in ("404", "NoSuchKey", "NotFound"):
                return None
            raise _storage_error(exc, self._where(key)) from None
        return ObjectInfo(
            key=key,
            size=int(resp.get("ContentLength", 0)),
            etag=str(resp.get("ETag", "")).strip('"'),
            content_type=resp.get("ContentType", ""),
            metadata=dict(resp.get("Metadata", {})),
        )

    def write(self, key, data, content_type, metadata=None, cache_control=None) -> None:
        # One PutObject: S3 makes the object visible all at once, never half-written.
        extra = {"CacheControl": cache_control} if cache_control else {}
        try:
            self.client.put_object(
                Bucket=self.bucket, Key=key, Body=data, ContentType=content_type,
                Metadata=metadata or {}, **extra,
            )
        except Exception as exc:
            raise _storage_error(exc, self._where(key)) from None

    def delete(self, key: str) -> None:
        try:
            self.client.delete_object(Bucket=self.bucket, Key=key)
        except Exception as exc:
            raise _storage_error(exc, self._where(key)) from None

    def keys(self, prefix: str = "") -> Iterator[str]:
        try:
            pages = self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=prefix)
            for page in pages:
                for obj in page.get("Contents", []):
                    yield obj["Key"]
        except Exception as exc:
            raise _storage_error(exc, self._where(prefix)) from None

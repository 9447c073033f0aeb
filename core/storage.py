"""Where sources come from and renditions go: a local folder or an S3 bucket.

Both adapters are thin and share one contract (tests/test_storage_contract.py
runs the same tests on each). The S3 adapter takes a ready boto3 client, so
core never imports boto3 and tests can hand it a moto-backed client.
"""

from __future__ import annotations

import hashlib
import os
import secrets
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from core.errors import SourceChanged, SourceTooLarge, StorageError, TransientStorageError, WriteConflict


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
              cache_control: str | None = None, expect: str | None = None) -> None:
        """Store ``data`` under ``key``. ``expect``: None overwrites whatever is there;
        ``ABSENT`` writes only a new key; an ETag replaces only that version. A lost
        condition raises WriteConflict and leaves the existing object as it was."""
        ...
    def keys(self, prefix: str = "") -> Iterator[str]: ...
    def delete(self, key: str) -> None:
        """Remove the object; a missing one is not an error."""
        ...


#: ``write(..., expect=ABSENT)``: create the key, never replace an existing object.
ABSENT = "*"


def atomic_write(path: Path, data: bytes) -> None:
    """Write to a temporary name in the same folder, then rename over the target.

    A run killed mid-write leaves no half-written file under the real name.
    The file is created with mode 0666 and the kernel applies the umask, as
    ``cp`` does (mkstemp's 0600 would hide every rendition from a web server
    running as another user).
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = _create_temp(path)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _create_temp(path: Path) -> tuple[int, Path]:
    """A new, exclusively created ``.<name>.<random>.part`` beside ``path``, mode 0666 & ~umask."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0)
    for _ in range(100):
        tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.part")
        try:
            return os.open(tmp, flags, 0o666), tmp
        except FileExistsError:
            continue
    raise FileExistsError(f"{path.parent}: no free temporary name")


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

    def write(self, key: str, data: bytes, content_type: str, metadata: dict[str, str] | None = None,
              cache_control: str | None = None, expect: str | None = None) -> None:
        path = self._path(key)
        try:
            if expect == ABSENT:
                _write_new(path, data, key)
                return
            if expect is not None:  # best effort: a local folder has no compare-and-swap
                current = self.head(key)
                if current is None or current.etag != expect:
                    raise WriteConflict(f"{key}: replaced since it was examined")
            atomic_write(path, data)
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


def _write_new(path: Path, data: bytes, key: str) -> None:
    """Write a temporary file, then hard-link it to ``path``: the link fails if ``path`` exists."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = _create_temp(path)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.link(tmp, path)
    except FileExistsError:
        raise WriteConflict(f"{key}: already exists") from None
    finally:
        tmp.unlink(missing_ok=True)


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
                data: bytes = body.read() if max_bytes is None else body.read(max_bytes + 1)
            finally:
                body.close()
        except Exception as exc:  # noqa: BLE001 - botocore's errors, which core cannot import and name
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
        except Exception as exc:  # noqa: BLE001 - botocore's errors, which core cannot import and name
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

    def write(self, key: str, data: bytes, content_type: str, metadata: dict[str, str] | None = None,
              cache_control: str | None = None, expect: str | None = None) -> None:
        """One PutObject (S3 shows the object all at once, never half-written); ``expect`` becomes
        IfNoneMatch: * (a new key) or IfMatch: ETag, which S3 checks atomically with the write."""
        extra: dict[str, Any] = {"CacheControl": cache_control} if cache_control else {}
        if expect == ABSENT:
            extra["IfNoneMatch"] = "*"
        elif expect is not None:
            extra["IfMatch"] = f'"{expect}"'
        try:
            self.client.put_object(
                Bucket=self.bucket, Key=key, Body=data, ContentType=content_type,
                Metadata=metadata or {}, **extra,
            )
        except Exception as exc:  # noqa: BLE001 - botocore's errors, which core cannot import and name
            code = str((getattr(exc, "response", None) or {}).get("Error", {}).get("Code", ""))
            # 409 ConditionalRequestConflict: a concurrent conditional write to the same key won.
            if expect is not None and code in ("PreconditionFailed", "ConditionalRequestConflict"):
                raise WriteConflict(f"{self._where(key)}: {code} (written by another writer meanwhile)") from None
            raise _storage_error(exc, self._where(key)) from None

    def delete(self, key: str) -> None:
        try:
            self.client.delete_object(Bucket=self.bucket, Key=key)
        except Exception as exc:  # noqa: BLE001 - botocore's errors, which core cannot import and name
            raise _storage_error(exc, self._where(key)) from None

    def keys(self, prefix: str = "") -> Iterator[str]:
        try:
            pages = self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=prefix)
            for page in pages:
                for obj in page.get("Contents", []):
                    yield obj["Key"]
        except Exception as exc:  # noqa: BLE001 - botocore's errors, which core cannot import and name
            raise _storage_error(exc, self._where(prefix)) from None

"""Typed, read-only views over S3 event notifications.

Every record of an event is exposed (not only ``Records[0]``) and every key is
decoded with ``unquote_plus``: AWS sends ``uploads/cat+1.jpg`` for
``uploads/cat 1.jpg``, moto ``uploads%2Fcat+1.jpg`` and LocalStack
``uploads/cat%201.jpg``; all three decode to the same key.

Example::

    from core.events import S3Event

    event = S3Event.parse(lambda_event)
    if not event.is_test_event:
        for record in event.records:
            if record.is_created:
                print(record.bucket, record.key, record.size)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping
from urllib.parse import quote_plus, unquote_plus

TEST_EVENT = "s3:TestEvent"


def decode_key(raw: str) -> str:
    """The object key as stored in S3, from its event-encoded form."""
    return unquote_plus(raw)


def encode_key(key: str) -> str:
    """The key as AWS writes it into an event: form-encoded, ``/`` kept, space -> ``+``.

    ``my photo (1).jpg`` -> ``my+photo+%281%29.jpg``; ``a+b.jpg`` -> ``a%2Bb.jpg``.
    """
    return quote_plus(key, safe="/")


@dataclass(frozen=True)
class S3Record:
    """One record of an S3 notification; ``key`` is already decoded."""

    event_name: str  # "ObjectCreated:Put" (some emulators prefix "s3:")
    bucket: str
    key: str
    raw_key: str
    size: int | None = None
    etag: str | None = None
    version_id: str | None = None
    sequencer: str | None = None
    event_time: str | None = None
    region: str | None = None
    problem: str | None = None  # why the record could not be read, when it could not

    @property
    def _name(self) -> str:
        return self.event_name.removeprefix("s3:")

    @property
    def is_created(self) -> bool:
        return self.problem is None and self._name.startswith("ObjectCreated:")

    @property
    def is_removed(self) -> bool:
        return self._name.startswith("ObjectRemoved:")

    @classmethod
    def parse(cls, raw: Any) -> "S3Record":
        """Never raises: a record that is not an S3 record carries a ``problem``."""
        if not isinstance(raw, Mapping):
            return cls("", "", "", "", problem="record is not a JSON object")
        s3 = raw.get("s3")
        name = str(raw.get("eventName", ""))
        if raw.get("eventSource") not in (None, "aws:s3") or not isinstance(s3, Mapping):
            source = raw.get("eventSource") or "unknown source"
            return cls(name, "", "", "", problem=f"not an S3 record ({source})")
        bucket = s3.get("bucket") if isinstance(s3.get("bucket"), Mapping) else {}
        obj = s3.get("object") if isinstance(s3.get("object"), Mapping) else {}
        raw_key = obj.get("key")
        if not isinstance(raw_key, str) or not raw_key or not bucket.get("name"):
            return cls(name, str(bucket.get("name", "")), "", "", problem="S3 record without bucket or key")
        size = obj.get("size")
        return cls(
            event_name=name,
            bucket=str(bucket["name"]),
            key=decode_key(raw_key),
            raw_key=raw_key,
            size=int(size) if isinstance(size, (int, float)) or (isinstance(size, str) and size.isdigit()) else None,
            etag=str(obj["eTag"]).strip('"') if obj.get("eTag") else None,
            version_id=obj.get("versionId") or None,
            sequencer=obj.get("sequencer") or None,
            event_time=raw.get("eventTime"),
            region=raw.get("awsRegion"),
        )


@dataclass(frozen=True)
class S3Event:
    """A whole notification: every record, or the ``s3:TestEvent`` S3 sends on setup."""

    records: tuple[S3Record, ...]
    is_test_event: bool = False
    test_bucket: str | None = None

    @classmethod
    def parse(cls, event: Any) -> "S3Event":
        if isinstance(event, Mapping) and event.get("Event") == TEST_EVENT:
            return cls((), True, event.get("Bucket"))
        raw = event.get("Records") if isinstance(event, Mapping) else None
        if not isinstance(raw, list):
            return cls(())
        return cls(tuple(S3Record.parse(r) for r in raw))


def put_event(bucket: str, keys: list[str] | tuple[str, ...], sizes: Mapping[str, int] | None = None,
              etags: Mapping[str, str] | None = None, region: str = "us-east-1",
              event_time: str = "1970-01-01T00:00:00.000Z") -> dict[str, Any]:
    """An ``ObjectCreated:Put`` event shaped and encoded as AWS delivers it to Lambda."""
    sizes, etags = sizes or {}, etags or {}
    records = []
    for i, key in enumerate(keys):
        obj: dict[str, Any] = {"key": encode_key(key), "size": sizes.get(key, 0),
                               "eTag": etags.get(key, ""), "sequencer": f"{i + 1:018X}"}
        records.append({
            "eventVersion": "2.1",
            "eventSource": "aws:s3",
            "awsRegion": region,
            "eventTime": event_time,
            "eventName": "ObjectCreated:Put",
            "userIdentity": {"principalId": "EXAMPLE"},
            "requestParameters": {"sourceIPAddress": "127.0.0.1"},
            "responseElements": {"x-amz-request-id": "EXAMPLE123456789", "x-amz-id-2": "EXAMPLE123/imgproc-invoke"},
            "s3": {
                "s3SchemaVersion": "1.0",
                "configurationId": "imgproc-invoke",
                "bucket": {"name": bucket, "ownerIdentity": {"principalId": "EXAMPLE"}, "arn": f"arn:aws:s3:::{bucket}"},
                "object": obj,
            },
        })
    return {"Records": records}

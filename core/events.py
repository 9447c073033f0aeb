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

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
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
    def parse(cls, raw: Any) -> S3Record:
        """Never raises: a record that is not an S3 record carries a ``problem``."""
        if not isinstance(raw, Mapping):
            return cls("", "", "", "", problem="record is not a JSON object")
        s3 = raw.get("s3")
        name = str(raw.get("eventName", ""))
        if raw.get("eventSource") not in (None, "aws:s3") or not isinstance(s3, Mapping):
            source = raw.get("eventSource") or "unknown source"
            return cls(name, "", "", "", problem=f"not an S3 record ({source})")
        found_bucket, found_object = s3.get("bucket"), s3.get("object")
        bucket: Mapping[str, Any] = found_bucket if isinstance(found_bucket, Mapping) else {}
        obj: Mapping[str, Any] = found_object if isinstance(found_object, Mapping) else {}
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
    def parse(cls, event: Any) -> S3Event:
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


# --- every route an S3 upload takes to the function ---------------------------------------------
#
# S3 -> Lambda        {"Records": [{"eventSource": "aws:s3", ...}]}
# S3 -> SQS -> Lambda {"Records": [{"eventSource": "aws:sqs", "messageId": ..., "body": "<S3 event JSON>"}]}
# S3 -> SNS -> Lambda {"Records": [{"EventSource": "aws:sns", "Sns": {"Message": "<S3 event JSON>"}}]}
# S3 -> SNS -> SQS    an SQS record whose body is the S3 event (raw delivery) or the SNS envelope
#                     {"Type": "Notification", "Message": "<S3 event JSON>", ...} (the default)
# S3 -> EventBridge   {"source": "aws.s3", "detail-type": "Object Created", "detail": {...}}
# Each can also carry S3's {"Event": "s3:TestEvent"}, sent once when a destination is configured.

SQS, SNS, S3, EVENTBRIDGE = "sqs", "sns", "s3", "eventbridge"
EVENTBRIDGE_DETAIL_TYPES = {"Object Created": "ObjectCreated", "Object Deleted": "ObjectRemoved"}


@dataclass(frozen=True)
class Message:
    """One unit of delivery: an SQS message, an SNS record, or a whole S3/EventBridge event.

    ``route`` names the hops, e.g. ``"sqs>sns>s3"``; ``message_id`` is the SQS messageId a
    partial batch response names; ``problem`` says why the message could not be read.
    """

    route: str
    records: tuple[S3Record, ...] = ()
    message_id: str | None = None
    is_test_event: bool = False
    test_bucket: str | None = None
    problem: str | None = None


@dataclass(frozen=True)
class Delivery:
    """A Lambda event from any S3 route, as messages of S3 records.

    ``source`` is the service that invoked the function (``sqs``, ``sns``, ``s3``,
    ``eventbridge``), or ``""`` with a ``problem`` when the event is none of them.
    """

    source: str
    messages: tuple[Message, ...] = ()
    problem: str | None = None

    @property
    def is_sqs_batch(self) -> bool:
        """SQS invocations answer with a partial batch response instead of raising."""
        return self.source == SQS

    @classmethod
    def parse(cls, event: Any) -> Delivery:
        """Never raises: what cannot be read is a ``problem`` on the delivery or on one message."""
        if not isinstance(event, Mapping):
            return cls("", problem=f"the event is a {type(event).__name__}, not a JSON object")
        records = event.get("Records")
        if isinstance(records, list) and records and all(_source_of(r) == SQS for r in records):
            return cls(SQS, tuple(_sqs_message(r) for r in records))
        if isinstance(records, list) and records and all(_source_of(r) == SNS for r in records):
            return cls(SNS, tuple(_sns_message(r) for r in records))
        message = _payload(event, "")
        if message.problem:
            return cls("", problem=message.problem)
        return cls(message.route.split(">")[0], (message,))


def _source_of(record: Any) -> str:
    if not isinstance(record, Mapping):
        return ""
    source = record.get("eventSource") or record.get("EventSource") or ""
    return str(source).removeprefix("aws:")


def _sqs_message(record: Mapping[str, Any]) -> Message:
    message_id = str(record.get("messageId") or "")
    message = _json_payload(record.get("body"), SQS)
    return _with_id(message, message_id)


def _sns_message(record: Mapping[str, Any]) -> Message:
    sns = record.get("Sns")
    return _json_payload(sns.get("Message") if isinstance(sns, Mapping) else None, SNS)


def _with_id(message: Message, message_id: str) -> Message:
    return Message(message.route, message.records, message_id, message.is_test_event, message.test_bucket,
                   message.problem)


def _json_payload(text: Any, route: str) -> Message:
    """An SQS body or SNS Message: a JSON string holding the next hop's payload."""
    import json

    if not isinstance(text, str):
        return Message(route, problem=f"{route} message without a text body")
    try:
        payload = json.loads(text)
    except ValueError:
        return Message(route, problem=f"{route} message body is not JSON: {text[:60]!r}")
    return _payload(payload, route)


def _payload(payload: Any, route: str) -> Message:
    """An S3 notification, S3 test event, SNS envelope or EventBridge event, after ``route``."""
    hop = f"{route}>" if route else ""
    if not isinstance(payload, Mapping):
        return Message(route or "?", problem=f"{hop}payload is not a JSON object")
    if payload.get("Event") == TEST_EVENT:
        return Message(f"{hop}{S3}", is_test_event=True, test_bucket=payload.get("Bucket"))
    if payload.get("Type") == "Notification" and "Message" in payload and "TopicArn" in payload:
        return _json_payload(payload["Message"], f"{hop}{SNS}")  # SNS -> SQS without raw delivery
    if payload.get("source") == "aws.s3" and isinstance(payload.get("detail"), Mapping):
        return Message(f"{hop}{EVENTBRIDGE}", (_eventbridge_record(payload),))
    records = payload.get("Records")
    if isinstance(records, list) and records and all(_source_of(r) in (S3, "") for r in records):
        return Message(f"{hop}{S3}", S3Event.parse(payload).records)
    keys = ", ".join(sorted(str(k) for k in payload)[:6])
    return Message(route or "?", problem=f"{hop}not an S3, SQS, SNS or EventBridge event (keys: {keys})")


def _eventbridge_record(event: Mapping[str, Any]) -> S3Record:
    """EventBridge's S3 event as an S3Record, e.g. ``Object Created`` + ``PutObject`` -> ``ObjectCreated:Put``."""
    detail = event["detail"]
    detail_type = str(event.get("detail-type", ""))
    reason = str(detail.get("reason", ""))
    kind = EVENTBRIDGE_DETAIL_TYPES.get(detail_type)
    name = f"{kind}:{reason.removesuffix('Object') or reason}" if kind else detail_type
    bucket = detail.get("bucket") if isinstance(detail.get("bucket"), Mapping) else {}
    obj = detail.get("object") if isinstance(detail.get("object"), Mapping) else {}
    raw_key = obj.get("key")
    if not isinstance(raw_key, str) or not raw_key or not bucket.get("name"):
        return S3Record(name, str(bucket.get("name", "")), "", "", problem="EventBridge S3 event without bucket or key")
    size = obj.get("size")
    etag = obj.get("etag") or obj.get("eTag")  # AWS: "etag"; moto: "eTag"
    return S3Record(
        event_name=name,
        bucket=str(bucket["name"]),
        # EventBridge's S3 events carry the key as stored (AWS documents form-encoding for the
        # notification format only; moto sends it raw too): decoding would turn '+' into ' '.
        key=raw_key,
        raw_key=raw_key,
        size=int(size) if isinstance(size, int) else None,
        etag=str(etag).strip('"') if etag else None,
        version_id=obj.get("version-id") or None,
        sequencer=obj.get("sequencer") or None,
        event_time=event.get("time"),
        region=event.get("region"),
    )

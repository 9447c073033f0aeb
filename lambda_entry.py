"""AWS Lambda entry points: S3 upload -> the same engine as `imgproc process` -> output bucket.

``handler(event, context)`` processes every record of an S3 notification and
prints one JSON log line per source image plus a CloudWatch Embedded Metric
Format (EMF) line. ``api_handler`` serves API Gateway (see lambda_api.py).

The module is a thin shell: settings come from ``core.settings``, the work from
``core.jobs``. Importing it loads no boto3 and no Pillow; the first invocation
parses the environment once, loads the presets and creates boto3 clients, and
later invocations of the same container reuse all of it.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any

from core.errors import ConfigError, ImgprocError, UnknownPreset
from core.events import Delivery, Message, S3Record
from core.settings import HandlerSettings, check_loop, parse_settings

if TYPE_CHECKING:  # imported where used at run time, to keep the cold start light
    from core.batchops import BatchEvent
    from core.jobs import Label

PACKAGE_ROOT = Path(__file__).resolve().parent
NAMESPACE = "imgproc"
SERVICE = "imgproc"
REKOGNITION_MAX_LABELS = 20
REKOGNITION_MIN_CONFIDENCE = 70.0


class UnrecognisedEvent(Exception):
    """The event is none of the S3 routes imgproc reads: the invocation fails instead of succeeding silently."""


class RetryableFailure(Exception):
    """Raised after every record is handled when some failed for a transient reason.

    Lambda then retries the whole event (async invocation) or sends it to the
    on-failure destination; records already done are skipped as duplicates.
    """


def default_client(service: str) -> Any:
    """A boto3 client with botocore's standard retry mode (throttling and 5xx retried)."""
    import boto3
    from botocore.config import Config

    config = Config(retries={"mode": "standard", "max_attempts": 4}, connect_timeout=5, read_timeout=60)
    return boto3.client(service, config=config)


class RekognitionLabeler:
    """core.jobs.Labeler over Rekognition DetectLabels and S3 object tagging."""

    def __init__(self, rekognition: Any, s3: Any, bucket: str):
        self.rekognition, self.s3, self.bucket = rekognition, s3, bucket

    def detect(self, image: bytes) -> list[Label]:
        from core.jobs import Label

        resp = self.rekognition.detect_labels(
            Image={"Bytes": image}, MaxLabels=REKOGNITION_MAX_LABELS, MinConfidence=REKOGNITION_MIN_CONFIDENCE
        )
        return [
            Label(lab["Name"], float(lab.get("Confidence", 0.0)), tuple(p["Name"] for p in lab.get("Parents", [])))
            for lab in resp.get("Labels", [])
        ]

    def tag(self, key: str, tags: dict[str, str]) -> None:
        tag_set = [{"Key": k, "Value": v} for k, v in tags.items()]
        self.s3.put_object_tagging(Bucket=self.bucket, Key=key, Tagging={"TagSet": tag_set})


class Runtime:
    """Everything built once per cold start: settings, renditions, limits, clients."""

    def __init__(self, settings: HandlerSettings, config: Any, client_factory: Callable[[str], Any] = default_client):
        from core.jobs import Job

        self.settings = settings
        try:
            renditions = config.select(settings.presets or None)
        except UnknownPreset as exc:
            raise ConfigError(f"IMGPROC_PRESETS: {exc}") from None
        self.rendition_names = tuple(dict.fromkeys(r.name for r in renditions))
        # Which renditions each preset makes (`imgproc reprocess --preset` asks through describe).
        self.preset_labels = {name: tuple(r.label for r in config.select([name]))
                              for name in settings.presets or tuple(config.presets)}
        check_loop(settings, self.rendition_names)
        self.job = Job.create(renditions, settings.limits(config.limits), settings.output_prefix,
                              naming=config.naming)
        self.config_source = config.source
        self._client_factory = client_factory
        self._clients: dict[str, Any] = {}
        self._buckets: dict[str, Any] = {}

    @classmethod
    def from_env(cls, env: Mapping[str, str], client_factory: Callable[[str], Any] = default_client,
                 config: Any = None) -> Runtime:
        """Parse ``IMGPROC_*`` (ConfigError naming the variable) and load the presets file."""
        settings = parse_settings(env, PACKAGE_ROOT)
        if config is None:
            # The default name may be set explicitly (deploy does); only another, missing path is an error.
            explicit = env.get("IMGPROC_CONFIG", "").strip() not in ("", "imgproc.toml")
            config = load_presets(settings, explicit=explicit)
        return cls(settings, config, client_factory)

    def client(self, service: str) -> Any:
        if service not in self._clients:
            self._clients[service] = self._client_factory(service)
        return self._clients[service]

    def bucket(self, name: str) -> Any:
        if name not in self._buckets:
            from core.storage import S3Bucket

            self._buckets[name] = S3Bucket(self.client("s3"), name)
        return self._buckets[name]

    def labeler(self) -> RekognitionLabeler | None:
        if not self.settings.rekognition:
            return None
        return RekognitionLabeler(self.client("rekognition"), self.client("s3"), self.settings.output_bucket)


def load_presets(settings: HandlerSettings, explicit: bool) -> Any:
    """IMGPROC_CONFIG if it exists; the built-in presets when the default imgproc.toml is absent."""
    from core.recipe import builtin_config, load_config

    path = settings.config_path
    if path is not None and path.is_file():
        return load_config(path)
    if explicit:
        raise ConfigError(f"IMGPROC_CONFIG: {path} does not exist")
    return builtin_config()


# --- logging -----------------------------------------------------------------------------


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def print_line(obj: Mapping[str, Any]) -> None:
    """One JSON object per line on stdout: CloudWatch Logs stores each as one event."""
    sys.stdout.write(json.dumps(obj, ensure_ascii=False, separators=(",", ":"), default=str) + "\n")
    sys.stdout.flush()


def log_record(record: Mapping[str, Any], request_id: str) -> dict[str, Any]:
    """The contract's field order: timestamp, level, service, event, request_id, then the rest."""
    head = {"timestamp": _now(), "level": record.get("level", "INFO"), "service": SERVICE,
            "event": record.get("event", "image"), "request_id": request_id}
    return {**head, **{k: v for k, v in record.items() if k not in head}}


def emf_line(record: Mapping[str, Any], function_name: str) -> dict[str, Any]:
    """CloudWatch Embedded Metric Format for one image: metrics without PutMetricData calls."""
    outcome = record.get("outcome")
    metrics = {
        "ImagesProcessed": 1 if outcome == "ok" else 0,
        "ImagesFailed": 1 if outcome == "failed" else 0,
        "ImagesSkipped": 1 if outcome == "skipped" else 0,
        "ProcessingMs": record.get("ms", {}).get("total", 0.0),
        "BytesIn": record.get("bytes_in", 0),
        "BytesOut": record.get("bytes_out", 0),
    }
    units = {"ProcessingMs": "Milliseconds", "BytesIn": "Bytes", "BytesOut": "Bytes"}
    return {
        "_aws": {
            "Timestamp": int(time.time() * 1000),
            "CloudWatchMetrics": [{
                "Namespace": NAMESPACE,
                "Dimensions": [["FunctionName"]],
                "Metrics": [{"Name": name, "Unit": units.get(name, "Count")} for name in metrics],
            }],
        },
        "FunctionName": function_name,
        **metrics,
        "outcome": outcome,
    }


# --- the invocation ------------------------------------------------------------------------


@dataclass
class Invocation:
    """The log records of one event, in record order."""

    records: list[dict[str, Any]] = field(default_factory=list)
    source: str = ""
    retry_message_ids: list[str] = field(default_factory=list)  # SQS messages to hand back for a retry
    unrecognised: list[str] = field(default_factory=list)  # what could not be read, for the exception

    def batch_response(self) -> dict[str, list[dict[str, str]]]:
        """SQS's partial batch response: only these messages become visible again."""
        return {"batchItemFailures": [{"itemIdentifier": m} for m in self.retry_message_ids]}

    def count(self, outcome: str) -> int:
        return sum(1 for r in self.records if r.get("event") == "image" and r.get("outcome") == outcome)

    @property
    def transient(self) -> list[dict[str, Any]]:
        return [r for r in self.records if r.get("error", {}).get("transient")]

    def summary(self) -> dict[str, int]:
        return {"ok": self.count("ok"), "failed": self.count("failed"), "skipped": self.count("skipped")}


def _handle_record(rec: S3Record, runtime: Runtime) -> dict[str, Any]:
    from core.jobs import failed, new_record, process_object, skipped

    settings = runtime.settings
    record = new_record(rec.bucket, rec.key)
    if rec.problem:
        return skipped(record, rec.problem, "WARNING")
    removing = rec.is_removed and settings.on_delete == "remove"
    if not rec.is_created and not removing:
        return skipped(record, f"{rec.event_name or 'unnamed'} events are ignored")
    if not settings.in_scope(rec.bucket, rec.key):
        return skipped(record, f"outside IMGPROC_INPUT_PREFIX {settings.input_prefix!r}", "WARNING")
    if settings.is_output_key(rec.bucket, rec.key, runtime.rendition_names):
        return skipped(record, "key is inside an output prefix (loop guard)", "WARNING")
    if removing:
        from core.removal import remove_renditions

        return remove_renditions(runtime.bucket(rec.bucket), rec.key, runtime.bucket(settings.output_bucket),
                                 runtime.job, bucket=rec.bucket)
    try:
        return process_object(runtime.bucket(rec.bucket), rec.key, runtime.bucket(settings.output_bucket),
                              runtime.job, bucket=rec.bucket, labeler=runtime.labeler())
    except Exception as exc:  # noqa: BLE001 - e.g. a client that cannot be created: this record fails, others go on
        return failed(record, exc)


# Time kept back from the function's deadline to log the stopped image and the
# records not started, and to return.
DEADLINE_MARGIN_S = 5.0


@contextmanager
def time_limit(seconds: float, name: str, reason: str) -> Iterator[None]:
    """Raise ImageTimeout where the code is after ``seconds`` (SIGALRM, main thread only).

    Pillow decodes in chunks and returns to Python between them, so even a
    decode that would run for minutes stops within a chunk.
    """
    from core.errors import ImageTimeout

    armed = [True]

    def expire(_signum: int, _frame: FrameType | None) -> None:
        if armed[0]:
            armed[0] = False
            raise ImageTimeout(f"{name}: stopped after {seconds:.1f} s ({reason})")

    try:
        previous = signal.signal(signal.SIGALRM, expire)
    except ValueError:  # not the main thread (some local runners): no limit rather than no image
        yield
        return
    signal.setitimer(signal.ITIMER_REAL, max(0.001, seconds))
    try:
        yield
    finally:
        armed[0] = False
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def _image_time(context: Any, limits_seconds: int) -> tuple[float, str]:
    """Seconds this image may take: limits.max_seconds, or less when the function's deadline is closer."""
    remaining = getattr(context, "get_remaining_time_in_millis", None)
    if remaining is None:
        return float(limits_seconds), "limits.max_seconds"
    left = remaining() / 1000 - DEADLINE_MARGIN_S
    if left < limits_seconds:
        return left, "the function's deadline is near"
    return float(limits_seconds), "limits.max_seconds"


def _record_in_time(rec: S3Record, runtime: Runtime, context: Any) -> dict[str, Any]:
    """``_handle_record`` under the image's time limit; a record with no time left fails, retryable."""
    from core.errors import ImageTimeout
    from core.jobs import failed, new_record

    seconds, reason = _image_time(context, runtime.job.limits.max_seconds)
    if seconds <= 0:
        exc = ImageTimeout(f"{rec.key}: not started, the function's deadline is near")
        exc.transient = True  # the retried event has the time
        return failed(new_record(rec.bucket, rec.key), exc)
    with time_limit(seconds, rec.key, reason):
        return _handle_record(rec, runtime)


def process_event(event: Any, context: Any, runtime: Runtime,
                  emit: Callable[[Mapping[str, Any]], None] = print_line) -> Invocation:
    """Handle every message of any S3 route and emit its log and EMF lines; never raises for a record."""
    request_id = getattr(context, "aws_request_id", "") or "local"
    function_name = getattr(context, "function_name", "") or os.environ.get("AWS_LAMBDA_FUNCTION_NAME", "imgproc-local")
    delivery = Delivery.parse(event)
    result = Invocation(source=delivery.source)
    if delivery.problem:
        _unrecognised(result, delivery.problem, None, request_id, emit)
        return result
    for message in delivery.messages:
        before = len(result.records)
        _process_message(message, result, runtime, context, request_id, function_name, emit)
        lines = result.records[before:]
        if message.message_id and any(r.get("error", {}).get("transient") or r.get("event") == "unrecognised"
                                      for r in lines):
            result.retry_message_ids.append(message.message_id)
    return result


def _process_message(message: Message, result: Invocation, runtime: Runtime, context: Any, request_id: str,
                     function_name: str, emit: Callable[[Mapping[str, Any]], None]) -> None:
    extra = {"message_id": message.message_id} if message.message_id else {}
    if message.problem:
        _unrecognised(result, message.problem, message.message_id, request_id, emit)
        return
    if message.is_test_event or not message.records:
        reason = "s3:TestEvent" if message.is_test_event else "no S3 records in the message"
        line = log_record({"event": "ignored", "bucket": message.test_bucket or "", "outcome": "skipped",
                           "reason": reason, "route": message.route, **extra}, request_id)
        emit(line)
        result.records.append(line)
        return
    for rec in message.records:
        line = log_record({**_record_in_time(rec, runtime, context), **extra}, request_id)
        emit(line)
        emit(emf_line(line, function_name))
        result.records.append(line)


def process_batch(batch: BatchEvent, context: Any, runtime: Runtime,
                  emit: Callable[[Mapping[str, Any]], None] = print_line) -> dict[str, Any]:
    """An S3 Batch Operations invocation: each task is one source, answered with its result code."""
    from core.batchops import PERMANENT_FAILURE, TaskResult, result_for

    request_id = getattr(context, "aws_request_id", "") or "local"
    function_name = getattr(context, "function_name", "") or os.environ.get("AWS_LAMBDA_FUNCTION_NAME", "imgproc-local")
    problem = batch.problem
    results = []
    for task in batch.tasks:
        if problem or task.problem:
            results.append(TaskResult(task.task_id, PERMANENT_FAILURE, problem or task.problem or ""))
            continue
        rec = S3Record("ObjectCreated:BatchOperations", task.bucket, task.key, task.key, version_id=task.version_id)
        line = log_record({**_record_in_time(rec, runtime, context), "route": "batchops",
                           "job_id": batch.job_id, "task_id": task.task_id}, request_id)
        emit(line)
        emit(emf_line(line, function_name))
        results.append(TaskResult(task.task_id, *result_for(line)))
    if problem:
        _unrecognised(Invocation(), problem, None, request_id, emit)
    return batch.response(results)


DESCRIBE_EVENT = "describe"


def describe(runtime: Runtime) -> dict[str, Any]:
    """What this deployment renders, for `imgproc reprocess` to judge outputs by the function's own
    recipes (they include its Pillow version, which the laptop's may not match)."""
    from core.jobs import rendition_recipe

    s, job = runtime.settings, runtime.job
    return {
        "recipe": job.recipe, "output_bucket": s.output_bucket, "output_prefix": s.output_prefix,
        "input_bucket": s.input_bucket, "input_prefix": s.input_prefix, "on_delete": s.on_delete,
        "naming": job.naming,
        "presets": {name: list(labels) for name, labels in runtime.preset_labels.items()},
        "renditions": [{"name": r.name, "format": r.format, "label": r.label, "recipe": rendition_recipe(r),
                        "output_key_example": job.output_key("a/b.jpg", r)} for r in job.renditions],
    }


def _unrecognised(result: Invocation, problem: str, message_id: str | None, request_id: str,
                  emit: Callable[[Mapping[str, Any]], None]) -> None:
    """An ERROR line for an event or message imgproc cannot read (never a silent success)."""
    extra = {"message_id": message_id} if message_id else {}
    line = log_record({"level": "ERROR", "event": "unrecognised", "outcome": "failed",
                       "error": {"type": "UnrecognisedEvent", "message": problem, "transient": False}, **extra},
                      request_id)
    emit(line)
    result.records.append(line)
    result.unrecognised.append(problem)


_RUNTIME: Runtime | None = None


def runtime() -> Runtime:
    """The cold-start state, built on first use and reused by later invocations."""
    global _RUNTIME
    if _RUNTIME is None:
        _RUNTIME = Runtime.from_env(os.environ)
    return _RUNTIME


def reset() -> None:
    """Forget the cold-start state (tests; `imgproc invoke` after changing the environment)."""
    global _RUNTIME
    _RUNTIME = None


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """An S3 upload by any route -> renditions in IMGPROC_OUTPUT_BUCKET.

    S3 Batch Operations invocations (schema 1.0 and 2.0) answer with a result code per task;
    ``{"imgproc": "describe"}`` answers with the deployed renditions and their recipe hashes.

    SQS batches answer ``{"batchItemFailures": [...]}`` naming the messages that failed for a
    transient reason or could not be read; a corrupt image is logged and its message deleted.
    Other routes (S3, SNS, EventBridge: asynchronous invocations) raise to ask Lambda for a retry,
    and raise UnrecognisedEvent for an event that is none of the S3 routes.
    """
    request_id = getattr(context, "aws_request_id", "") or "local"
    try:
        rt = runtime()
    except ImgprocError as exc:
        from core.jobs import error_dict

        print_line(log_record({"level": "ERROR", "event": "config_error", "outcome": "failed",
                               "error": error_dict(exc)}, request_id))
        raise
    from core.batchops import BatchEvent

    if isinstance(event, Mapping) and event.get("imgproc") == DESCRIBE_EVENT:
        return describe(rt)
    batch = BatchEvent.parse(event)
    if batch is not None:
        return process_batch(batch, context, rt)  # per-task result codes: S3 retries TemporaryFailure
    result = process_event(event, context, rt)
    if result.source == "sqs":
        return result.batch_response()  # failed messages come back; the rest are deleted
    if result.unrecognised:
        raise UnrecognisedEvent(f"not an S3 event imgproc can read: {result.unrecognised[0]}")
    transient = result.transient
    if transient:
        first = transient[0]
        raise RetryableFailure(
            f"{len(transient)} of {len(result.records)} images failed for a transient reason "
            f"(first: {first['key']}: {first['error']['message']}); raising so Lambda retries the event"
        )
    return result.summary()


def api_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """API Gateway proxy events (issue 7); imports the API module only when used."""
    from lambda_api import handle

    return handle(event, context)

"""S3 Batch Operations ``LambdaInvoke`` events and the per-task answer S3 expects.

A Batch Operations job invokes the function synchronously with one (or more) tasks:

schema 1.0  ``{"invocationSchemaVersion": "1.0", "invocationId", "job": {"id"},
              "tasks": [{"taskId", "s3Key", "s3VersionId", "s3BucketArn"}]}``
schema 2.0  the same with ``job.userArguments`` and ``tasks[].s3Bucket`` (a name, not an ARN).

The function answers ``{"invocationSchemaVersion", "treatMissingKeysAs", "invocationId",
"results": [{"taskId", "resultCode", "resultString"}]}`` with resultCode ``Succeeded``,
``TemporaryFailure`` (S3 retries the task) or ``PermanentFailure``; the resultString lands
in the job's completion report. Keys arrive URL-encoded as in the CSV manifest and are
decoded with ``unquote_plus`` (AWS's examples do the same).

Example::

    batch = BatchEvent.parse(event)
    if batch is not None:
        answer = batch.response([TaskResult(t.task_id, SUCCEEDED, "ok") for t in batch.tasks])
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote_plus

SUCCEEDED, TEMPORARY_FAILURE, PERMANENT_FAILURE = "Succeeded", "TemporaryFailure", "PermanentFailure"
SCHEMA_VERSIONS = ("1.0", "2.0")
RESULT_STRING_MAX = 1024  # keep report rows short; S3 truncates long result strings anyway


@dataclass(frozen=True)
class BatchTask:
    task_id: str
    bucket: str
    key: str
    version_id: str | None = None
    problem: str | None = None  # why the task cannot be read


@dataclass(frozen=True)
class TaskResult:
    task_id: str
    result_code: str
    result_string: str = ""

    def as_dict(self) -> dict[str, str]:
        return {"taskId": self.task_id, "resultCode": self.result_code,
                "resultString": self.result_string[:RESULT_STRING_MAX]}


@dataclass(frozen=True)
class BatchEvent:
    schema_version: str
    invocation_id: str
    job_id: str
    tasks: tuple[BatchTask, ...]
    user_arguments: Mapping[str, str]

    @staticmethod
    def looks_like(event: Any) -> bool:
        return isinstance(event, Mapping) and "invocationSchemaVersion" in event and "tasks" in event

    @classmethod
    def parse(cls, event: Any) -> BatchEvent | None:
        """None when the event is not a Batch Operations invocation; a task that cannot be read
        carries a ``problem`` (it is answered PermanentFailure, the others are processed)."""
        if not cls.looks_like(event):
            return None
        job = event.get("job") if isinstance(event.get("job"), Mapping) else {}
        tasks = event.get("tasks") if isinstance(event.get("tasks"), list) else []
        raw_args = job.get("userArguments")
        args: Mapping[str, Any] = raw_args if isinstance(raw_args, Mapping) else {}
        return cls(
            schema_version=str(event.get("invocationSchemaVersion")),
            invocation_id=str(event.get("invocationId", "")),
            job_id=str(job.get("id", "")),
            tasks=tuple(_task(t) for t in tasks),
            user_arguments={str(k): str(v) for k, v in args.items()},
        )

    @property
    def problem(self) -> str | None:
        if self.schema_version not in SCHEMA_VERSIONS:
            return f"S3 Batch Operations schema {self.schema_version!r} (known: {', '.join(SCHEMA_VERSIONS)})"
        if not self.tasks:
            return "S3 Batch Operations event without tasks"
        return None

    def response(self, results: list[TaskResult]) -> dict[str, Any]:
        """The answer S3 Batch Operations reads; a task without a result counts as PermanentFailure."""
        return {
            "invocationSchemaVersion": self.schema_version if self.schema_version in SCHEMA_VERSIONS else "1.0",
            "treatMissingKeysAs": PERMANENT_FAILURE,
            "invocationId": self.invocation_id,
            "results": [r.as_dict() for r in results],
        }


def _task(raw: Any) -> BatchTask:
    if not isinstance(raw, Mapping):
        return BatchTask("", "", "", problem="task is not a JSON object")
    task_id = str(raw.get("taskId", ""))
    bucket = raw.get("s3Bucket") or str(raw.get("s3BucketArn") or "").rpartition(":::")[2]
    key = raw.get("s3Key")
    if not task_id or not bucket or not isinstance(key, str) or not key:
        return BatchTask(task_id, str(bucket or ""), "", problem="task without taskId, bucket or key")
    return BatchTask(task_id, str(bucket), unquote_plus(key), raw.get("s3VersionId") or None)


def result_for(record: Mapping[str, Any]) -> tuple[str, str]:
    """(resultCode, resultString) for a handler log record: done or up to date -> Succeeded,
    a transient failure -> TemporaryFailure (S3 retries it), anything else failed -> PermanentFailure."""
    outcome = record.get("outcome")
    if outcome == "failed":
        error = record.get("error") or {}
        text = f"{error.get('type', 'Error')}: {error.get('message', '')}"
        return (TEMPORARY_FAILURE if error.get("transient") else PERMANENT_FAILURE), text
    written = sum(1 for r in record.get("renditions", []) if r.get("outcome") == "written")
    if outcome == "skipped":
        reason = str(record.get("reason", ""))
        # Up to date is success; a key outside the function's scope is not something a retry fixes.
        if reason.startswith("already processed"):
            return SUCCEEDED, "up to date"
        return PERMANENT_FAILURE, f"skipped: {reason}"
    return SUCCEEDED, f"{written} rendition(s) written"

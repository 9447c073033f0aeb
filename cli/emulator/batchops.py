"""S3 Batch Operations jobs in the emulator: CreateJob, DescribeJob, ListJobs, UpdateJobStatus.

moto (5.2) has no S3 Batch Operations, so this WSGI layer answers ``/v20180820/jobs``
itself and runs a LambdaInvoke job as S3 does: read the CSV manifest (``bucket,key`` with
URL-encoded keys) from the emulator's S3, invoke the function synchronously once per task
through the dispatcher's runner with the schema 1.0 or 2.0 event, retry a task the function
answers TemporaryFailure (twice), count Succeeded and failed tasks, and write the completion
report (``<prefix>/job-<id>/manifest.json`` and ``results/<n>.csv`` with Bucket, Key,
VersionId, TaskStatus, ErrorCode, HTTPStatusCode, ResultMessage) to the report bucket.

Clients must not put the account id in the host name (``Config(inject_host_prefix=False)``):
the emulator answers on its own address only. Jobs live in memory: `imgproc local down`
forgets them (their reports stay in S3). Other operations are refused with NotImplemented.
"""

from __future__ import annotations

import csv
import io
import json
import re
import threading
import time
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, quote

NS = "http://awss3control.amazonaws.com/doc/2018-08-20/"
PATH = re.compile(r"^/v20180820/jobs(?:/(?P<id>[A-Za-z0-9-]+))?(?P<status>/status)?/?$")
TASK_ATTEMPTS = 3  # a TemporaryFailure is retried, as S3 does, a bounded number of times


@dataclass
class Job:
    job_id: str
    account: str
    region: str
    function_arn: str
    schema: str
    user_arguments: dict[str, str]
    manifest_arn: str
    report: dict[str, Any]
    description: str
    priority: int
    role_arn: str
    status: str = "New"
    created: float = field(default_factory=time.time)
    started: float = 0.0
    finished: float = 0.0
    total: int = 0
    succeeded: int = 0
    failed: int = 0
    failure_reasons: list[tuple[str, str]] = field(default_factory=list)
    rows: list[list[str]] = field(default_factory=list)  # the completion report's rows
    cancel: threading.Event = field(default_factory=threading.Event)


def _local(tag: str) -> str:
    return tag.rpartition("}")[2]


def _find(node: ET.Element | None, path: str) -> ET.Element | None:
    for part in path.split("/"):
        if node is None:
            return None
        node = next((c for c in node if _local(c.tag) == part), None)
    return node


def _text(node: ET.Element | None, path: str, default: str = "") -> str:
    found = _find(node, path)
    return (found.text or "").strip() if found is not None and found.text else default


def _xml(root: str, body: str) -> bytes:
    return f'<?xml version="1.0" encoding="UTF-8"?>\n<{root} xmlns="{NS}">{body}</{root}>'.encode()


def _esc(value: Any) -> str:
    return str(value).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _iso(ts: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime(ts))


class BatchOperations:
    """WSGI layer: S3 Batch Operations job calls are answered here, everything else goes to ``app``."""

    def __init__(self, app: Any, runner_for: Callable[[str, str, str], tuple[Any, Callable[[], bytes]] | None],
                 client_for: Callable[[str], Callable[[str], Any]], say: Callable[[str], None] = print):
        self.app, self.runner_for, self.client_for, self.say = app, runner_for, client_for, say
        self.jobs: dict[str, Job] = {}
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        match = PATH.match(environ.get("PATH_INFO", ""))
        if match is None:
            return self.app(environ, start_response)
        method = environ.get("REQUEST_METHOD", "GET")
        account = environ.get("HTTP_X_AMZ_ACCOUNT_ID", "123456789012")
        region = _region(environ.get("HTTP_AUTHORIZATION", ""))
        job_id, is_status = match.group("id"), bool(match.group("status"))
        if method == "POST" and not job_id:
            return self._respond(start_response, *self.create(environ, account, region))
        if method == "GET" and not job_id:
            return self._respond(start_response, 200, self.list_jobs(account))
        job = self.jobs.get(job_id or "")
        if job is None or job.account != account:
            return self._respond(start_response, 404, _error("NoSuchJob", f"job {job_id} does not exist"))
        if method == "GET" and not is_status:
            return self._respond(start_response, 200, self.describe(job))
        if method == "POST" and is_status:
            query = parse_qs(environ.get("QUERY_STRING", ""))
            return self._respond(start_response, *self.update_status(job, query.get("requestedJobStatus", [""])[0]))
        return self._respond(start_response, 501, _error("NotImplemented", f"{method} {environ.get('PATH_INFO')}"))

    @staticmethod
    def _respond(start_response: Callable[..., Any], status: int, body: bytes) -> list[bytes]:
        reason = {200: "OK", 400: "Bad Request", 404: "Not Found", 501: "Not Implemented"}.get(status, "OK")
        start_response(f"{status} {reason}", [("Content-Type", "application/xml"), ("Content-Length", str(len(body))),
                                              ("x-amz-request-id", uuid.uuid4().hex)])
        return [body]

    # -- the operations ------------------------------------------------------------------------

    def create(self, environ: dict[str, Any], account: str, region: str) -> tuple[int, bytes]:
        size = int(environ.get("CONTENT_LENGTH") or 0)
        try:
            root = ET.fromstring(environ["wsgi.input"].read(size))
        except ET.ParseError:
            return 400, _error("MalformedXML", "the CreateJob body is not XML")
        invoke = _find(root, "Operation/LambdaInvoke")
        if invoke is None:
            return 501, _error("NotImplemented", "the emulator runs LambdaInvoke jobs only")
        spec_format = _text(root, "Manifest/Spec/Format")
        if spec_format != "S3BatchOperations_CSV_20180820":
            return 400, _error("InvalidRequest", f"manifest format {spec_format!r}: the emulator reads CSV manifests")
        args = {_text(e, "key"): _text(e, "value") for e in (_find(invoke, "UserArguments") or [])}
        report = _find(root, "Report")
        job = Job(
            job_id=str(uuid.uuid4()), account=account, region=region,
            function_arn=_text(invoke, "FunctionArn"), schema=_text(invoke, "InvocationSchemaVersion", "1.0"),
            user_arguments=args, manifest_arn=_text(root, "Manifest/Location/ObjectArn"),
            report={"Bucket": _text(report, "Bucket"), "Prefix": _text(report, "Prefix"),
                    "Format": _text(report, "Format"), "Enabled": _text(report, "Enabled") == "true",
                    "ReportScope": _text(report, "ReportScope", "AllTasks")},
            description=_text(root, "Description"), priority=int(_text(root, "Priority", "0") or 0),
            role_arn=_text(root, "RoleArn"),
        )
        if not job.role_arn:
            return 400, _error("InvalidRequest", "RoleArn is required")
        with self._lock:
            self.jobs[job.job_id] = job
        if _text(root, "ConfirmationRequired") != "true":
            self._start(job)
        else:
            job.status = "Suspended"
        return 200, _xml("CreateJobResult", f"<JobId>{job.job_id}</JobId>")

    def update_status(self, job: Job, requested: str) -> tuple[int, bytes]:
        if requested == "Cancelled" and job.status not in ("Complete", "Failed", "Cancelled"):
            job.cancel.set()
            job.status = "Cancelling" if job.status == "Active" else "Cancelled"
        elif requested == "Ready" and job.status == "Suspended":
            self._start(job)
        else:
            return 400, _error("JobStatusException", f"job {job.job_id} is {job.status}; cannot become {requested}")
        return 200, _xml("UpdateJobStatusResult", f"<JobId>{job.job_id}</JobId><Status>{job.status}</Status>")

    def describe(self, job: Job) -> bytes:
        reasons = "".join(f"<member><FailureCode>{_esc(c)}</FailureCode><FailureReason>{_esc(r)}</FailureReason></member>"
                          for c, r in job.failure_reasons)
        report = "".join(f"<{k}>{_esc(str(v).lower() if isinstance(v, bool) else v)}</{k}>" for k, v in job.report.items() if v != "")
        args = "".join(f"<entry><key>{_esc(k)}</key><value>{_esc(v)}</value></entry>" for k, v in job.user_arguments.items())
        body = (
            f"<Job><JobId>{job.job_id}</JobId><ConfirmationRequired>false</ConfirmationRequired>"
            f"<Description>{_esc(job.description)}</Description>"
            f"<JobArn>arn:aws:s3:{job.region}:{job.account}:job/{job.job_id}</JobArn><Status>{job.status}</Status>"
            f"<Manifest><Spec><Format>S3BatchOperations_CSV_20180820</Format><Fields><member>Bucket</member>"
            f"<member>Key</member></Fields></Spec><Location><ObjectArn>{_esc(job.manifest_arn)}</ObjectArn>"
            f"</Location></Manifest>"
            f"<Operation><LambdaInvoke><FunctionArn>{_esc(job.function_arn)}</FunctionArn>"
            f"<InvocationSchemaVersion>{job.schema}</InvocationSchemaVersion><UserArguments>{args}</UserArguments>"
            f"</LambdaInvoke></Operation><Priority>{job.priority}</Priority>{self._progress(job)}"
            f"<FailureReasons>{reasons}</FailureReasons><Report>{report}</Report>"
            f"<CreationTime>{_iso(job.created)}</CreationTime>"
            + (f"<TerminationDate>{_iso(job.finished)}</TerminationDate>" if job.finished else "")
            + f"<RoleArn>{_esc(job.role_arn)}</RoleArn></Job>"
        )
        return _xml("DescribeJobResult", body)

    def list_jobs(self, account: str) -> bytes:
        members = "".join(
            f"<member><JobId>{j.job_id}</JobId><Description>{_esc(j.description)}</Description>"
            f"<Operation>LambdaInvoke</Operation><Priority>{j.priority}</Priority><Status>{j.status}</Status>"
            f"<CreationTime>{_iso(j.created)}</CreationTime>{self._progress(j)}</member>"
            for j in sorted(self.jobs.values(), key=lambda j: -j.created) if j.account == account)
        return _xml("ListJobsResult", f"<Jobs>{members}</Jobs>")

    @staticmethod
    def _progress(job: Job) -> str:
        end = job.finished or time.time()
        active = int(end - job.started) if job.started else 0
        return (f"<ProgressSummary><TotalNumberOfTasks>{job.total}</TotalNumberOfTasks>"
                f"<NumberOfTasksSucceeded>{job.succeeded}</NumberOfTasksSucceeded>"
                f"<NumberOfTasksFailed>{job.failed}</NumberOfTasksFailed>"
                f"<Timers><ElapsedTimeInActiveSeconds>{active}</ElapsedTimeInActiveSeconds></Timers></ProgressSummary>")

    # -- running a job ---------------------------------------------------------------------------

    def _start(self, job: Job) -> None:
        job.status = "Preparing"
        thread = threading.Thread(target=self._run, args=(job,), daemon=True, name=f"batchops-{job.job_id[:8]}")
        self._threads.append(thread)
        thread.start()

    def _run(self, job: Job) -> None:
        try:
            tasks = self._read_manifest(job)
            found = self.runner_for(job.account, job.region, job.function_arn)
            if found is None:
                raise _JobFailure("InvalidFunction", f"function {job.function_arn} does not exist")
            job.total, job.status, job.started = len(tasks), "Active", time.time()
            for bucket, raw_key in tasks:
                if job.cancel.is_set():
                    break
                self._task(job, found, bucket, raw_key)
            job.status = "Cancelled" if job.cancel.is_set() else "Completing"
            self._write_report(job)
            if job.status == "Completing":
                job.status = "Complete"
        except _JobFailure as exc:
            job.failure_reasons.append((exc.code, exc.reason))
            job.status = "Failed"
        except Exception as exc:  # noqa: BLE001 - the job fails with a reason instead of the emulator thread dying
            job.failure_reasons.append(("InternalError", str(exc)[:300]))
            job.status = "Failed"
        finally:
            job.finished = time.time()
            self.say(f"batch operations job {job.job_id}: {job.status}, {job.succeeded} succeeded, {job.failed} failed")

    def _read_manifest(self, job: Job) -> list[tuple[str, str]]:
        bucket, _, key = job.manifest_arn.partition(":::")[2].partition("/")
        s3 = self.client_for("s3")(job.region)
        try:
            text = s3.get_object(Bucket=bucket, Key=key)["Body"].read().decode("utf-8")
        except Exception as exc:  # noqa: BLE001 - any reason the manifest cannot be read fails the job
            raise _JobFailure("ManifestNotFound", f"manifest {job.manifest_arn}: {exc}") from None
        return [(row[0], row[1]) for row in csv.reader(io.StringIO(text)) if len(row) >= 2]

    def _task(self, job: Job, found: tuple[Any, Callable[[], bytes]], bucket: str, raw_key: str) -> None:
        spec, code = found
        task_id = uuid.uuid4().hex
        where = {"s3Bucket": bucket} if job.schema == "2.0" else {"s3BucketArn": f"arn:aws:s3:::{bucket}"}
        job_part: dict[str, Any] = {"id": job.job_id}
        if job.schema == "2.0":
            job_part["userArguments"] = job.user_arguments
        event = {"invocationSchemaVersion": job.schema, "invocationId": uuid.uuid4().hex, "job": job_part,
                 "tasks": [{"taskId": task_id, "s3Key": raw_key, "s3VersionId": None, **where}]}
        code_name, message, http = "PermanentFailure", "", "200"
        for _ in range(TASK_ATTEMPTS):
            result = self.runner_for_invoke(spec, code, event)
            code_name, message, http = _task_result(result, task_id)
            if code_name != "TemporaryFailure":
                break
        ok = code_name == "Succeeded"
        job.succeeded += ok
        job.failed += not ok
        job.rows.append([bucket, raw_key, "", "succeeded" if ok else "failed", "200" if ok else code_name, http, message])

    def runner_for_invoke(self, spec: Any, code: Callable[[], bytes], event: dict[str, Any]) -> Any:
        from cli.emulator.dispatcher import Dispatcher

        dispatcher = Dispatcher._active
        if dispatcher is None:
            raise _JobFailure("EmulatorStopping", "the emulator is stopping")
        return dispatcher.runner.invoke(spec, code, event)

    def _write_report(self, job: Job) -> None:
        report = job.report
        if not report.get("Enabled") or not report.get("Bucket"):
            return
        bucket = report["Bucket"].rpartition(":::")[2]
        base = f"{str(report.get('Prefix', '')).rstrip('/')}/job-{job.job_id}"
        base = base.lstrip("/")
        s3 = self.client_for("s3")(job.region)
        results = []
        for status in ("succeeded", "failed"):
            rows = [r for r in job.rows if r[3] == status]
            if not rows or (status == "succeeded" and report.get("ReportScope") == "FailedTasksOnly"):
                continue
            out = io.StringIO()
            csv.writer(out, lineterminator="\n").writerows(rows)
            key = f"{base}/results/{uuid.uuid4().hex}.csv"
            s3.put_object(Bucket=bucket, Key=key, Body=out.getvalue().encode("utf-8"), ContentType="text/csv")
            results.append({"TaskExecutionStatus": status, "Bucket": bucket, "Key": key})
        manifest = {"Format": "Report_CSV_20180820", "ReportCreationDate": _iso(time.time()), "Results": results,
                    "ReportSchema": "Bucket, Key, VersionId, TaskStatus, ErrorCode, HTTPStatusCode, ResultMessage"}
        s3.put_object(Bucket=bucket, Key=f"{base}/manifest.json", Body=json.dumps(manifest).encode("utf-8"),
                      ContentType="application/json")

    def drain(self, timeout_s: float) -> None:
        """Let running jobs finish (bounded) before the emulator stops."""
        deadline = time.monotonic() + timeout_s
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))


class _JobFailure(Exception):
    def __init__(self, code: str, reason: str):
        super().__init__(reason)
        self.code, self.reason = code, reason


def _task_result(result: Any, task_id: str) -> tuple[str, str, str]:
    """(result code, message, HTTP status) from one invocation, as S3 reads the function's answer."""
    if not result.ok:
        error = result.error or {}
        return "PermanentFailure", f"Lambda returned function error: {error.get('errorType', 'Error')}", "200"
    try:
        answer = json.loads(result.payload)
        (entry,) = [r for r in answer.get("results", []) if r.get("taskId") == task_id]
    except (ValueError, AttributeError, TypeError):
        return "PermanentFailure", "Lambda response could not be read as a Batch Operations result", "200"
    code = entry.get("resultCode", answer.get("treatMissingKeysAs", "PermanentFailure"))
    return str(code), str(entry.get("resultString", "")), "200"


def _region(authorization: str) -> str:
    """The region from the SigV4 credential scope (``Credential=AKID/20260101/us-east-1/s3/aws4_request``)."""
    match = re.search(r"Credential=[^/]+/\d+/([a-z0-9-]+)/", authorization)
    return match.group(1) if match else "us-east-1"


def _error(code: str, message: str) -> bytes:
    return (f'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>{code}</Code><Message>{_esc(message)}</Message>'
            f"<RequestId>{uuid.uuid4().hex}</RequestId></Error>").encode()


def quote_key(key: str) -> str:
    """A key as written into a CSV manifest (tests build manifests with it)."""
    return quote(key, safe="/")

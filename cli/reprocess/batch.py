"""Large sets: an S3 Batch Operations job that invokes the function once per source.

The CSV manifest (``bucket,key`` with URL-encoded keys, as S3 requires) goes to the artifacts
bucket under ``reprocess/<stack>/<stamp>/``; the job runs as the stack's BatchOperationsRole,
invokes the function with schema 2.0 events (LambdaInvoke), retries tasks the function answers
TemporaryFailure, and writes its completion report (every task) next to the manifest.
`job_status` reads DescribeJob and, once the job is done, the report's failed rows.
"""

from __future__ import annotations

import csv
import io
import json
import time
import uuid
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, unquote_plus

from cli.aws.errors import AWS_ERRORS, aws_error
from cli.deploy.artifacts import account_id, artifact_bucket_name
from cli.deploy.template_reprocess import reprocess_prefix
from cli.errors import DeployError
from cli.reprocess.plan import Deployed, Source

MANIFEST_FORMAT = "S3BatchOperations_CSV_20180820"
REPORT_FORMAT = "Report_CSV_20180820"
SCHEMA_VERSION = "2.0"
DONE = ("Complete", "Failed", "Cancelled")


@dataclass
class JobStatus:
    job_id: str
    status: str
    total: int = 0
    succeeded: int = 0
    failed: int = 0
    seconds: int = 0
    failure_reasons: list[str] = field(default_factory=list)
    report: str = ""  # s3://bucket/prefix/job-<id>/ once written
    failed_tasks: list[tuple[str, str]] = field(default_factory=list)  # (key, result string) from the report

    @property
    def done(self) -> bool:
        return self.status in DONE

    def as_json(self) -> dict[str, Any]:
        return {"job_id": self.job_id, "status": self.status, "total": self.total, "succeeded": self.succeeded,
                "failed": self.failed, "seconds": self.seconds, "failure_reasons": self.failure_reasons,
                "report": self.report, "failed_tasks": [{"key": k, "result": r} for k, r in self.failed_tasks]}


def s3control(ctx: Any) -> Any:
    """The S3 Control client. Its endpoint rules put the account id in the host name
    (``{account}.s3-control...``), also in front of a custom endpoint: an emulator answers on
    its own address only, so there the prefix is taken off before the request is signed."""
    client = ctx.target.client("s3control")
    if ctx.target.endpoint_url and not getattr(client, "_imgproc_unprefixed", False):
        client.meta.events.register("before-sign.s3-control", _drop_account_host)
        client._imgproc_unprefixed = True
    return client


def _drop_account_host(request: Any, **_: Any) -> None:
    scheme, sep, rest = request.url.partition("://")
    host, slash, path = rest.partition("/")
    label, dot, remainder = host.partition(".")
    if dot and label.isdigit() and len(label) == 12:  # an account id, as S3 Control prefixes it
        request.url = f"{scheme}{sep}{remainder}{slash}{path}"


def manifest_csv(d: Deployed, sources: list[Source]) -> bytes:
    """``bucket,key`` rows, the key URL-encoded (S3 Batch Operations' CSV manifest rule)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    for s in sources:
        writer.writerow([d.input_bucket, quote(s.key, safe="/")])
    return out.getvalue().encode("utf-8")


def create_job(ctx: Any, d: Deployed, sources: list[Source], region: str) -> tuple[str, str]:
    """Write the manifest and create the job; returns (job id, s3:// folder of manifest and report)."""
    if not d.batch_role_arn or not d.function_arn:
        raise DeployError(f"stack {d.stack} has no BatchOperationsRoleArn output: run `imgproc deploy` first")
    account = account_id(ctx.target.client("sts"))
    bucket = artifact_bucket_name(account, region)
    folder = f"{reprocess_prefix(d.stack)}{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}-{uuid.uuid4().hex[:6]}/"
    s3 = ctx.target.client("s3")
    try:
        put = s3.put_object(Bucket=bucket, Key=f"{folder}manifest.csv", Body=manifest_csv(d, sources),
                            ContentType="text/csv")
        job = s3control(ctx).create_job(
            AccountId=account, ConfirmationRequired=False, Priority=10, RoleArn=d.batch_role_arn,
            ClientRequestToken=str(uuid.uuid4()), Description=f"imgproc reprocess {d.stack} ({len(sources)} sources)",
            Operation={"LambdaInvoke": {"FunctionArn": d.function_arn, "InvocationSchemaVersion": SCHEMA_VERSION,
                                        "UserArguments": {"origin": "imgproc-reprocess"}}},
            Manifest={"Spec": {"Format": MANIFEST_FORMAT, "Fields": ["Bucket", "Key"]},
                      "Location": {"ObjectArn": f"arn:aws:s3:::{bucket}/{folder}manifest.csv",
                                   "ETag": str(put["ETag"]).strip('"')}},
            Report={"Bucket": f"arn:aws:s3:::{bucket}", "Prefix": folder.rstrip("/"), "Format": REPORT_FORMAT,
                    "Enabled": True, "ReportScope": "AllTasks"},
        )
    except AWS_ERRORS as exc:
        raise DeployError(f"S3 Batch Operations job: {aws_error(exc)}") from None
    return job["JobId"], f"s3://{bucket}/{folder}"


def job_status(ctx: Any, job_id: str) -> JobStatus:
    account = account_id(ctx.target.client("sts"))
    try:
        job = s3control(ctx).describe_job(AccountId=account, JobId=job_id)["Job"]
    except AWS_ERRORS as exc:
        raise DeployError(f"job {job_id}: {aws_error(exc)}") from None
    summary = job.get("ProgressSummary", {})
    status = JobStatus(
        job_id=job_id, status=job.get("Status", "?"), total=int(summary.get("TotalNumberOfTasks", 0)),
        succeeded=int(summary.get("NumberOfTasksSucceeded", 0)), failed=int(summary.get("NumberOfTasksFailed", 0)),
        seconds=int(summary.get("Timers", {}).get("ElapsedTimeInActiveSeconds", 0)),
        failure_reasons=[f"{r.get('FailureCode', '')}: {r.get('FailureReason', '')}" for r in job.get("FailureReasons", [])],
    )
    report = job.get("Report", {})
    if status.done and report.get("Enabled") and report.get("Bucket"):
        bucket = report["Bucket"].rpartition(":::")[2]
        prefix = f"{report.get('Prefix', '').rstrip('/')}/job-{job_id}/"
        status.report = f"s3://{bucket}/{prefix}"
        status.failed_tasks = _failed_rows(ctx.target.client("s3"), bucket, prefix)
    return status


def _failed_rows(s3: Any, bucket: str, prefix: str) -> list[tuple[str, str]]:
    """(key, result message) of every failed task in the completion report (its manifest.json lists the CSVs)."""
    try:
        manifest = json.loads(s3.get_object(Bucket=bucket, Key=f"{prefix}manifest.json")["Body"].read())
    except AWS_ERRORS:
        return []  # no report (yet), or not readable
    except ValueError:
        return []
    rows = []
    for result in manifest.get("Results", []):
        if result.get("TaskExecutionStatus") != "failed":
            continue
        try:
            text = s3.get_object(Bucket=result.get("Bucket", bucket), Key=result["Key"])["Body"].read().decode()
        except AWS_ERRORS:
            continue
        # Bucket, Key, VersionId, TaskStatus, ErrorCode, HTTPStatusCode, ResultMessage
        rows += [(unquote_plus(r[1]), r[6] if len(r) > 6 else "") for r in csv.reader(io.StringIO(text)) if len(r) > 3]
    return rows


def wait_for_job(ctx: Any, job_id: str, timeout: float, poll: float = 2.0) -> JobStatus:
    deadline = time.monotonic() + timeout
    status = job_status(ctx, job_id)
    while not status.done and time.monotonic() < deadline:
        time.sleep(poll)
        status = job_status(ctx, job_id)
    return status

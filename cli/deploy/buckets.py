"""What a stack keeps (DeletionPolicy Retain), for deploy and destroy: its buckets, how full they are,
emptying one; its log groups and failure queue."""

from __future__ import annotations

from cli.aws.errors import AWS_ERRORS, aws_error, error_code, is_missing
from cli.deploy.wiring import paged
from cli.errors import DeployError


def stack_resources(cfn, stack_name: str, resource_type: str) -> list[str]:
    """Physical ids of the stack's resources of one type ("*": all) (only these may be deleted by destroy)."""
    return [r["PhysicalResourceId"]
            for r in paged(cfn, "list_stack_resources", "StackResourceSummaries", StackName=stack_name)
            if resource_type in ("*", r["ResourceType"]) and r.get("PhysicalResourceId")]


def stack_buckets(cfn, stack_name: str) -> list[str]:
    """Buckets the stack created."""
    return stack_resources(cfn, stack_name, "AWS::S3::Bucket")


def count_objects(s3, bucket: str, limit: int = 1000) -> int:
    """Object versions and delete markers in the bucket, up to ``limit`` (-1 when it is gone).

    Versions count: a versioned bucket whose objects were all deleted still holds their old
    versions (and S3 refuses to delete it), so it is not empty.
    """
    try:
        page = s3.list_object_versions(Bucket=bucket, MaxKeys=limit)
    except AWS_ERRORS as exc:
        if error_code(exc) == "NoSuchBucket":
            return -1
        raise DeployError(f"{bucket}: {aws_error(exc)}") from None
    return len(page.get("Versions", [])) + len(page.get("DeleteMarkers", []))


def empty_bucket(s3, bucket: str) -> int:
    """Delete every object version and delete marker; returns how many were deleted."""
    deleted = 0
    for page in s3.get_paginator("list_object_versions").paginate(Bucket=bucket):
        items = [{"Key": v["Key"], "VersionId": v["VersionId"]}
                 for v in page.get("Versions", []) + page.get("DeleteMarkers", [])]
        for i in range(0, len(items), 1000):
            s3.delete_objects(Bucket=bucket, Delete={"Objects": items[i:i + 1000], "Quiet": True})
            deleted += len(items[i:i + 1000])
    return deleted


def keep_bucket_hint(bucket: str) -> str:
    """How to delete a kept bucket by hand (`aws s3 rb --force` leaves old versions, and then fails)."""
    return (f"empty it with the S3 console's Empty button (deletes every version), then "
            f"`aws s3 rb s3://{bucket}`")


def log_group_names(doc: dict) -> list[str]:
    """The fixed log group names a template creates."""
    return [r["Properties"]["LogGroupName"] for r in doc.get("Resources", {}).values()
            if r.get("Type") == "AWS::Logs::LogGroup" and isinstance(r["Properties"].get("LogGroupName"), str)]


def existing_log_groups(logs, names: list[str]) -> list[str]:
    """Those of ``names`` that exist (kept by an earlier destroy, or made outside imgproc)."""
    found = []
    for name in names:
        try:
            groups = logs.describe_log_groups(logGroupNamePrefix=name)["logGroups"]
        except AWS_ERRORS as exc:
            raise DeployError(f"log group {name}: {aws_error(exc)}") from None
        if any(g["logGroupName"] == name for g in groups):
            found.append(name)
    return found


def delete_log_group(logs, name: str) -> bool:
    """Delete a retained log group; False when it was already gone."""
    try:
        logs.delete_log_group(logGroupName=name)
        return True
    except AWS_ERRORS as exc:
        if is_missing(exc):
            return False
        raise DeployError(f"log group {name}: {aws_error(exc)}") from None


def delete_queue(sqs, url: str) -> bool:
    """Delete a retained queue; False when it was already gone."""
    try:
        sqs.delete_queue(QueueUrl=url)
        return True
    except AWS_ERRORS as exc:
        if is_missing(exc) or error_code(exc) in ("AWS.SimpleQueueService.NonExistentQueue", "QueueDoesNotExist"):
            return False
        raise DeployError(f"queue {url}: {aws_error(exc)}") from None


def objects_text(n: int) -> str:
    """A count_objects result for people."""
    if n < 0:
        return "already gone"
    if n >= 1000:
        return "1000+ object versions"
    return "empty" if n == 0 else f"{n} object version{'s' if n != 1 else ''}"


def destroy_plan(stack_name: str, resources: int, counts: dict[str, int], log_groups: list[str],
                 queues: list[str], delete_data: bool) -> list[str]:
    """What `destroy` will delete and keep, one line each, shown before it asks."""
    lines = [f"destroy: stack {stack_name} ({resources} resources) will be deleted"]
    for b, n in counts.items():
        if n < 0:
            fate = "nothing to do"
        elif n == 0:
            fate = "deleted (empty)"
        else:
            fate = "EMPTIED AND DELETED" if delete_data else "kept (not empty; --delete-data deletes it)"
        lines.append(f"  bucket {b}: {objects_text(n)} -> {fate}")
    retained = [("log group", g) for g in log_groups] + [("failure queue", q) for q in queues]
    for kind, name in retained:
        lines.append(f"  {kind} {name} -> {'DELETED' if delete_data else 'kept (--delete-data deletes it)'}")
    return lines

"""The stack's buckets, for destroy: which ones it created, how full they are, emptying one."""

from __future__ import annotations

from cli.aws.errors import AWS_ERRORS, aws_error, error_code
from cli.deploy.wiring import paged
from cli.errors import DeployError


def stack_buckets(cfn, stack_name: str) -> list[str]:
    """Buckets the stack created (only these may be deleted by destroy)."""
    return [r["PhysicalResourceId"]
            for r in paged(cfn, "list_stack_resources", "StackResourceSummaries", StackName=stack_name)
            if r["ResourceType"] == "AWS::S3::Bucket" and r.get("PhysicalResourceId")]


def count_objects(s3, bucket: str, limit: int = 1000) -> int:
    try:
        return s3.list_objects_v2(Bucket=bucket, MaxKeys=limit).get("KeyCount", 0)
    except AWS_ERRORS as exc:
        if error_code(exc) == "NoSuchBucket":
            return -1
        raise DeployError(f"{bucket}: {aws_error(exc)}") from None


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

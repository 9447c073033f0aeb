"""The artifact bucket that holds the Lambda package: created once per account and region."""

from __future__ import annotations

from typing import Any

from cli.aws.errors import AWS_ERRORS, aws_error, error_code
from cli.errors import DeployError


def account_id(sts) -> str:
    return sts.get_caller_identity()["Account"]


def artifact_bucket_name(account: str, region: str) -> str:
    return f"imgproc-artifacts-{account}-{region}"


def ensure_artifact_bucket(s3, name: str, region: str) -> bool:
    """Create the (private, encrypted) artifact bucket if missing; True when created."""
    try:
        s3.head_bucket(Bucket=name)
        return False
    except AWS_ERRORS as exc:  # botocore ClientError: 404 -> create, 403 -> someone else's
        if error_code(exc) not in ("404", "NoSuchBucket", "NotFound"):
            raise DeployError(f"artifact bucket {name}: {aws_error(exc)}") from None
    kwargs: dict[str, Any] = {"Bucket": name}
    if region != "us-east-1":
        kwargs["CreateBucketConfiguration"] = {"LocationConstraint": region}
    s3.create_bucket(**kwargs)
    s3.put_public_access_block(Bucket=name, PublicAccessBlockConfiguration={
        "BlockPublicAcls": True, "IgnorePublicAcls": True, "BlockPublicPolicy": True,
        "RestrictPublicBuckets": True})
    s3.put_bucket_encryption(Bucket=name, ServerSideEncryptionConfiguration={
        "Rules": [{"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}}]})
    return True


def bucket_exists(s3, name: str) -> bool:
    """True when the bucket exists, in this account or another (403)."""
    try:
        s3.head_bucket(Bucket=name)
        return True
    except AWS_ERRORS as exc:
        return error_code(exc) not in ("404", "NoSuchBucket", "NotFound")


def upload_artifact(s3, bucket: str, key: str, path) -> bool:
    """Upload unless the content-addressed key already exists; True when uploaded."""
    try:
        s3.head_object(Bucket=bucket, Key=key)
        return False
    except AWS_ERRORS as exc:
        if error_code(exc) not in ("404", "NoSuchKey", "NotFound"):
            raise DeployError(f"s3://{bucket}/{key}: {aws_error(exc)}") from None
    with open(path, "rb") as fh:
        s3.put_object(Bucket=bucket, Key=key, Body=fh, ContentType="application/zip")
    return True

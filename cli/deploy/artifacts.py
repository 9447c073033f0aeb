"""The artifact bucket that holds the Lambda package: created once per account and region, locked down,
and used only while this account owns it (its name is predictable: see cli/aws/owner.py)."""

from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path
from typing import Any

from cli.aws.errors import AWS_ERRORS, aws_error, error_code, is_missing
from cli.aws.owner import not_owned_message, verify_owned
from cli.errors import DeployError

PUBLIC_ACCESS_BLOCK = {"BlockPublicAcls": True, "IgnorePublicAcls": True, "BlockPublicPolicy": True,
                       "RestrictPublicBuckets": True}


def account_id(sts) -> str:
    return sts.get_caller_identity()["Account"]


def artifact_bucket_name(account: str, region: str) -> str:
    return f"imgproc-artifacts-{account}-{region}"


def tls_only_policy(bucket: str) -> str:
    arn = f"arn:aws:s3:::{bucket}"
    return json.dumps({"Version": "2012-10-17", "Statement": [{
        "Sid": "DenyInsecureTransport", "Effect": "Deny", "Principal": "*", "Action": "s3:*",
        "Resource": [arn, f"{arn}/*"], "Condition": {"Bool": {"aws:SecureTransport": "false"}}}]})


def ensure_artifact_bucket(s3, name: str, region: str, account: str, tls_policy: bool = True) -> bool:
    """Create the artifact bucket if missing, refuse one another account owns; True when created.

    ``tls_policy``: add the TLS-only bucket policy (off on plain-http emulator endpoints, which
    would then deny every call).
    """
    if verify_owned(s3, name, account, "artifact bucket"):
        lock_down(s3, name, tls_policy, replace_policy=False)
        return False
    kwargs: dict[str, Any] = {"Bucket": name, "ObjectOwnership": "BucketOwnerEnforced"}
    if region != "us-east-1":
        kwargs["CreateBucketConfiguration"] = {"LocationConstraint": region}
    try:
        s3.create_bucket(**kwargs)
    except AWS_ERRORS as exc:
        if error_code(exc) == "BucketAlreadyExists":  # created by someone else in the meantime
            raise DeployError(f"artifact bucket {not_owned_message(name, account)}") from None
        raise DeployError(f"artifact bucket {name}: {aws_error(exc)}") from None
    lock_down(s3, name, tls_policy, replace_policy=True)
    return True


def lock_down(s3, name: str, tls_policy: bool, replace_policy: bool) -> None:
    """Private (public access blocked, ACLs off), encrypted, TLS only. Idempotent; an existing bucket
    policy is kept (``replace_policy`` False) unless there is none."""
    s3.put_public_access_block(Bucket=name, PublicAccessBlockConfiguration=PUBLIC_ACCESS_BLOCK)
    s3.put_bucket_ownership_controls(Bucket=name, OwnershipControls={
        "Rules": [{"ObjectOwnership": "BucketOwnerEnforced"}]})
    s3.put_bucket_encryption(Bucket=name, ServerSideEncryptionConfiguration={
        "Rules": [{"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}}]})
    if not tls_policy:
        return
    if not replace_policy:
        try:
            s3.get_bucket_policy(Bucket=name)
            return
        except AWS_ERRORS as exc:
            if error_code(exc) != "NoSuchBucketPolicy":
                raise DeployError(f"artifact bucket {name}: {aws_error(exc)}") from None
    s3.put_bucket_policy(Bucket=name, Policy=tls_only_policy(name))


def bucket_exists(s3, name: str) -> bool:
    """True when the bucket exists, in this account or another (403)."""
    try:
        s3.head_bucket(Bucket=name)
        return True
    except AWS_ERRORS as exc:
        return not is_missing(exc)


def sha256_b64(path: Path) -> str:
    """The file's SHA-256 as S3 reports it (ChecksumSHA256: base64 of the digest)."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return base64.b64encode(digest.digest()).decode()


def upload_artifact(s3, bucket: str, key: str, path) -> bool:
    """Upload unless the object under the key already has this file's SHA-256; True when uploaded.

    The key is content-addressed, but a key is only a name: an object placed there in advance (or
    changed since) has other bytes, and CloudFormation would deploy them. S3 checks the checksum we
    send, and HEAD with ChecksumMode returns it, so "already there" means "these exact bytes".
    """
    want = sha256_b64(Path(path))
    try:
        head = s3.head_object(Bucket=bucket, Key=key, ChecksumMode="ENABLED")
        if head.get("ChecksumSHA256") == want:
            return False
    except AWS_ERRORS as exc:
        if not is_missing(exc):
            raise DeployError(f"s3://{bucket}/{key}: {aws_error(exc)}") from None
    with open(path, "rb") as fh:
        s3.put_object(Bucket=bucket, Key=key, Body=fh, ContentType="application/zip",
                      ChecksumAlgorithm="SHA256", ChecksumSHA256=want)
    return True

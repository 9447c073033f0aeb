"""Bucket ownership: every call to a bucket imgproc created names the account that must own it.

Bucket names are global, and imgproc's are predictable (`imgproc-artifacts-<account>-<region>`,
`<stack>-input-<account>-<region>`): another account can create one first and wait for our uploads
or reads. With ``ExpectedBucketOwner`` S3 answers 403 instead of serving someone else's bucket.
`expect_owner` adds it to every later call on a client for the named buckets, so no call can forget it.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from cli.aws.errors import AWS_ERRORS, aws_error, error_code, is_missing
from cli.errors import DeployError


def expect_owner(s3: Any, buckets: Iterable[str], account: str) -> None:
    """From now on, calls on ``s3`` to any of ``buckets`` carry ExpectedBucketOwner=``account``."""
    owned = {b for b in buckets if b}

    def add_owner(params: dict, model: Any, **_: Any) -> None:
        if params.get("Bucket") in owned and "ExpectedBucketOwner" in model.input_shape.members:
            params.setdefault("ExpectedBucketOwner", account)

    # One handler per (buckets, account): registering the same set again is a no-op, not a second handler.
    s3.meta.events.register("before-parameter-build.s3", add_owner,
                            unique_id=f"imgproc-owner-{account}-{','.join(sorted(owned))}")


def stack_account(stack: dict) -> str:
    """The account a CloudFormation stack (and so each bucket it created) lives in, from its StackId ARN."""
    return str(stack["StackId"]).split(":")[4]


def not_owned_message(bucket: str, account: str) -> str:
    return (f"{bucket} exists but is not owned by account {account} (or this identity may not read it): "
            f"imgproc will not use it. Someone may have created it first to receive your uploads; check who owns "
            f"it, or pick another name")


def listed_as_own(s3: Any, bucket: str) -> bool | None:
    """Whether ListBuckets (which lists only the caller's own buckets) includes ``bucket``;
    None when this identity may not list buckets.

    A second signal beside ExpectedBucketOwner, which emulators (moto, LocalStack) ignore.
    """
    try:
        pages = s3.get_paginator("list_buckets").paginate(Prefix=bucket)
        return any(b["Name"] == bucket for page in pages for b in page.get("Buckets", []))
    except AWS_ERRORS as exc:
        if error_code(exc) in ("AccessDenied", "403", "AllAccessDisabled"):
            return None
        raise


def verify_owned(s3: Any, bucket: str, account: str, what: str = "bucket") -> bool:
    """True when ``bucket`` exists and ``account`` owns it, False when there is no such bucket;
    DeployError (naming ``what``) when another account owns it or it cannot be read."""
    expect_owner(s3, [bucket], account)
    try:
        s3.head_bucket(Bucket=bucket)
    except AWS_ERRORS as exc:  # with ExpectedBucketOwner, S3 answers 403 for another account's bucket
        if is_missing(exc):
            return False
        if error_code(exc) in ("403", "AccessDenied", "Forbidden"):
            raise DeployError(f"{what} {not_owned_message(bucket, account)}") from None
        raise DeployError(f"{what} {bucket}: {aws_error(exc)}") from None
    if listed_as_own(s3, bucket) is False:
        raise DeployError(f"{what} {not_owned_message(bucket, account)}")
    return True

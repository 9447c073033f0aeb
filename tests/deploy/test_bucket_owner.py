"""Bucket sniping (issue 12 item 4): imgproc's bucket names are predictable, so another account can create
one first, or plant a zip under the package's content-addressed key. Both attacks, performed on moto."""

from __future__ import annotations

import base64
import hashlib
import re
from pathlib import Path
from urllib.parse import urlsplit

import boto3
import pytest

from helpers_deploy import ACCOUNT, IN_BUCKET, OUT_BUCKET, REGION, client, deploy, imgproc, ok

pytestmark = pytest.mark.slow

ARTIFACTS = f"imgproc-artifacts-{ACCOUNT}-{REGION}"
OTHER_ACCOUNT = "111111111111"


def other_account_s3(endpoint: str):
    """An S3 client acting as another AWS account (moto's server reads the x-moto-account-id header)."""
    s3 = boto3.client("s3", region_name=REGION, endpoint_url=endpoint)

    def as_other(request, **_):
        request.headers["x-moto-account-id"] = OTHER_ACCOUNT

    s3.meta.events.register("before-sign.s3.*", as_other)
    return s3


def package_key(folder: Path) -> tuple[str, bytes]:
    """The content-addressed key deploy will use, and the zip's bytes (from `imgproc package`)."""
    built = ok(imgproc("package", cwd=folder))
    digest = re.search(r"sha256 ([0-9a-f]{64})", built.stdout).group(1)
    return f"imgproc/lambda-{digest[:32]}.zip", (folder / "build" / "imgproc-lambda-x86_64.zip").read_bytes()


def test_a_zip_planted_under_the_package_key_is_replaced_and_the_stack_runs_our_code(moto_server, tmp_path):
    key, ours = package_key(tmp_path)
    s3 = client("s3")
    s3.create_bucket(Bucket=ARTIFACTS)
    s3.put_object(Bucket=ARTIFACTS, Key=key, Body=b"PK\x03\x04 attacker's code")  # same key, other bytes

    proc = deploy(tmp_path)
    assert f"uploaded to s3://{ARTIFACTS}/{key}" in proc.stderr  # not "already in": the bytes differed
    assert s3.get_object(Bucket=ARTIFACTS, Key=key)["Body"].read() == ours
    fn = client("lambda").get_function(FunctionName="imgproc-process")["Configuration"]
    assert fn["CodeSha256"] == base64.b64encode(hashlib.sha256(ours).digest()).decode()

    # Our own upload is recognised by its checksum, so an unchanged deploy uploads nothing.
    assert f"already in s3://{ARTIFACTS}/{key}" in deploy(tmp_path).stderr
    # The existing bucket was locked down on the way (an older imgproc made it without these).
    assert s3.get_bucket_ownership_controls(Bucket=ARTIFACTS)["OwnershipControls"]["Rules"] == [
        {"ObjectOwnership": "BucketOwnerEnforced"}]
    assert all(s3.get_public_access_block(Bucket=ARTIFACTS)["PublicAccessBlockConfiguration"].values())


def test_an_artifact_bucket_created_first_by_another_account_is_refused(moto_server, tmp_path):
    theirs = other_account_s3(moto_server)
    theirs.create_bucket(Bucket=ARTIFACTS)
    key, _ = package_key(tmp_path)
    theirs.put_object(Bucket=ARTIFACTS, Key=key, Body=b"PK\x03\x04 attacker's code")

    proc = imgproc("deploy", "--yes", cwd=tmp_path)
    assert proc.returncode == 1, proc.stderr
    assert (f"Error: artifact bucket {ARTIFACTS} exists but is not owned by account {ACCOUNT}"
            in " ".join(proc.stderr.split()))
    assert client("cloudformation").describe_stacks()["Stacks"] == []  # nothing deployed from their bucket
    assert [o["Key"] for o in theirs.list_objects_v2(Bucket=ARTIFACTS)["Contents"]] == [key]  # nothing uploaded
    assert theirs.get_object(Bucket=ARTIFACTS, Key=key)["Body"].read() == b"PK\x03\x04 attacker's code"


def test_a_new_artifact_bucket_is_private_owner_enforced_encrypted(moto_server, tmp_path):
    deploy(tmp_path)
    s3 = client("s3")
    assert s3.get_bucket_ownership_controls(Bucket=ARTIFACTS)["OwnershipControls"]["Rules"] == [
        {"ObjectOwnership": "BucketOwnerEnforced"}]
    assert all(s3.get_public_access_block(Bucket=ARTIFACTS)["PublicAccessBlockConfiguration"].values())
    assert s3.get_bucket_encryption(Bucket=ARTIFACTS)["ServerSideEncryptionConfiguration"]["Rules"][0][
        "ApplyServerSideEncryptionByDefault"]["SSEAlgorithm"] == "AES256"


def test_push_refuses_an_input_bucket_another_account_owns(moto_server, tmp_path):
    """The stack says where to upload; a bucket of that name that is not the stack account's gets nothing."""
    deploy(tmp_path)
    s3 = client("s3")
    s3.delete_bucket(Bucket=IN_BUCKET)  # gone (e.g. deleted by hand) and then taken by someone else
    theirs = other_account_s3(moto_server)
    theirs.create_bucket(Bucket=IN_BUCKET)
    (tmp_path / "photos").mkdir()
    (tmp_path / "photos" / "a.jpg").write_bytes(b"\xff\xd8 not really a jpeg")
    proc = imgproc("push", "photos", cwd=tmp_path)
    assert proc.returncode == 1
    assert f"input bucket {IN_BUCKET} exists but is not owned by account {ACCOUNT}" in " ".join(proc.stderr.split())
    assert theirs.list_objects_v2(Bucket=IN_BUCKET).get("KeyCount") == 0
    assert OUT_BUCKET  # the output bucket is ours and untouched


def test_every_call_to_imgprocs_buckets_names_their_owner(moto_server, tmp_path, monkeypatch):
    """deploy, status --repair, push and destroy in-process, every S3 request recorded as sent: each one
    to the artifact, input or output bucket carries x-amz-expected-bucket-owner (where S3 accepts it)."""
    from typer.testing import CliRunner

    from cli.app import app
    from cli.aws.clients import ClientFactory

    sent: list[tuple[str, str, str, str | None]] = []  # (command, operation, bucket, expected owner)
    command = [""]
    made = ClientFactory.client

    def recording_client(self, service, **config):
        c = made(self, service, **config)
        if service == "s3" and not getattr(c, "_recorded", False):
            def record(model, params, **_):
                if "ExpectedBucketOwner" in model.input_shape.members:
                    bucket = urlsplit(params["url"]).path.lstrip("/").split("/")[0]  # path-style on moto
                    sent.append((command[0], model.name, bucket, params["headers"].get("x-amz-expected-bucket-owner")))

            c.meta.events.register("before-call.s3", record)
            c._recorded = True
        return c

    monkeypatch.setattr(ClientFactory, "client", recording_client)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "photos").mkdir()
    (tmp_path / "photos" / "a.jpg").write_bytes(b"\xff\xd8 not really a jpeg")
    runner = CliRunner()
    for args in (["deploy", "--yes"], ["status", "--repair"], ["push", "photos"], ["destroy", "--delete-data", "--yes"]):
        command[0] = args[0]
        result = runner.invoke(app, args)
        assert result.exit_code in (0, 1), (args, result.output, result.exception)
    ours = {ARTIFACTS, IN_BUCKET, OUT_BUCKET}
    calls = [c for c in sent if c[2] in ours
             # Before creating the stack, deploy asks whether its bucket names are free: anyone's bucket counts.
             and not (c[:2] == ("deploy", "HeadBucket") and c[2] != ARTIFACTS and c[3] is None)]
    ops = {c[1] for c in calls}
    assert {"PutObject", "HeadObject", "PutPublicAccessBlock", "PutBucketOwnershipControls", "PutBucketEncryption",
            "PutBucketNotificationConfiguration", "GetBucketVersioning", "PutBucketVersioning",
            "ListObjectVersions", "DeleteObjects", "DeleteBucket"} <= ops, ops
    assert [c for c in calls if c[3] != ACCOUNT] == []

"""`imgproc deploy` and `imgproc destroy` against moto's server, driven through the CLI as a subprocess."""

from __future__ import annotations

import ast
import json
import re
from urllib.parse import unquote

import pytest

from helpers_deploy import ACCOUNT, IN_BUCKET, OUT_BUCKET, REGION, client, deploy, imgproc, ok, write_config

pytestmark = pytest.mark.slow


def stack_resources() -> dict[str, str]:
    summaries = client("cloudformation").list_stack_resources(StackName="imgproc")["StackResourceSummaries"]
    return {r["LogicalResourceId"]: r["ResourceType"] for r in summaries}


def test_deploy_creates_every_resource_then_noop_then_updates_only_what_changed(moto_server, tmp_path):
    write_config(tmp_path, 'input_prefix = "uploads/"\nsuffixes = [".jpg"]\nlog_retention_days = 14\n'
                           'presets = ["thumb"]\n')
    first = deploy(tmp_path)
    assert "New stack imgproc" in first.stdout and "CREATE_COMPLETE" in first.stdout
    assert f"uploaded to s3://imgproc-artifacts-{ACCOUNT}-{REGION}/imgproc/lambda-" in first.stderr
    body = client("cloudformation").get_template(StackName="imgproc")["TemplateBody"]
    body = json.loads(body) if isinstance(body, str) else body
    assert set(body["Resources"]) == {"InputBucket", "InputBucketPolicy", "OutputBucket", "OutputBucketPolicy",
                                      "FailureQueue", "FunctionRole", "LogGroup", "Function", "InvokeConfig",
                                      "InvokePermission", "AlarmTopic", "FunctionErrorsAlarm", "FunctionThrottlesAlarm",
                                      "FunctionDurationAlarm", "FailureQueueAlarm", "BatchOperationsRole", "Dashboard"}
    # moto creates these (bucket policies and EventInvokeConfig are template-only there: see status --repair)
    assert {"InputBucket", "OutputBucket", "FailureQueue", "FunctionRole", "LogGroup", "Function",
            "InvokePermission"} <= set(stack_resources())
    for name, value in (("InputBucketName", IN_BUCKET), ("OutputBucketName", OUT_BUCKET),
                        ("FunctionName", "imgproc-process"), ("LogGroupName", "/aws/lambda/imgproc-process")):
        assert re.search(rf"^{name} +{re.escape(value)}$", first.stdout, re.M), name  # one aligned line each
    # The dashboard charts this function's metrics (names filled in by CloudFormation).
    dashboard = client("cloudwatch").get_dashboard(DashboardName=f"imgproc-{REGION}")["DashboardBody"]
    assert '"FunctionName","imgproc-process"' in dashboard and "${" not in dashboard
    # The emulator ignores the template's notification: deploy says so instead of hiding it.
    assert "problem notification" in first.stdout and "imgproc status --repair" in first.stdout

    s3, lam = client("s3"), client("lambda")
    assert s3.get_bucket_encryption(Bucket=IN_BUCKET)["ServerSideEncryptionConfiguration"]["Rules"][0][
        "ApplyServerSideEncryptionByDefault"]["SSEAlgorithm"] == "AES256"
    fn = lam.get_function_configuration(FunctionName="imgproc-process")
    assert (fn["Runtime"], fn["Handler"], fn["MemorySize"], fn["Architectures"]) == (
        "python3.12", "lambda_entry.handler", 1024, ["x86_64"])
    assert fn["Environment"]["Variables"] == {
        "IMGPROC_OUTPUT_BUCKET": OUT_BUCKET, "IMGPROC_INPUT_BUCKET": IN_BUCKET, "IMGPROC_INPUT_PREFIX": "uploads/",
        "IMGPROC_OUTPUT_PREFIX": "", "IMGPROC_PRESETS": "thumb", "IMGPROC_REKOGNITION": "off",
        "IMGPROC_ON_DELETE": "keep"}
    (group,) = client("logs").describe_log_groups(logGroupNamePrefix="/aws/lambda/imgproc-process")["logGroups"]
    assert group["retentionInDays"] == 14
    policy = json.loads(lam.get_policy(FunctionName="imgproc-process")["Policy"])
    (st,) = policy["Statement"]
    assert st["Principal"] == {"Service": "s3.amazonaws.com"}
    assert st["Condition"]["ArnLike"]["AWS:SourceArn"] == f"arn:aws:s3:::{IN_BUCKET}"

    # The IAM policy, as deployed: exactly these actions on exactly these resources.
    iam = client("iam")
    (role,) = [r for r in iam.list_roles()["Roles"] if r["Arn"] == fn["Role"]]
    (name,) = iam.list_role_policies(RoleName=role["RoleName"])["PolicyNames"]
    doc = iam.get_role_policy(RoleName=role["RoleName"], PolicyName=name)["PolicyDocument"]
    if isinstance(doc, str):  # moto's server returns the CloudFormation-made policy as a Python repr
        doc = ast.literal_eval(unquote(doc)) if doc.startswith("{'") else json.loads(unquote(doc))
    queue_arn = client("sqs").get_queue_attributes(
        QueueUrl=first.stdout.split("DeadLetterQueueUrl")[1].split()[0], AttributeNames=["QueueArn"]
    )["Attributes"]["QueueArn"]
    grants = {(a, r) for s in doc["Statement"] for a in s["Action"] for r in s["Resource"]}
    assert grants == {
        ("s3:GetObject", f"arn:aws:s3:::{IN_BUCKET}/uploads/*"),
        ("s3:GetObject", f"arn:aws:s3:::{OUT_BUCKET}/*"),
        ("s3:PutObject", f"arn:aws:s3:::{OUT_BUCKET}/*"),
        ("logs:CreateLogStream", f"arn:aws:logs:{REGION}:{ACCOUNT}:log-group:/aws/lambda/imgproc-process:*"),
        ("logs:PutLogEvents", f"arn:aws:logs:{REGION}:{ACCOUNT}:log-group:/aws/lambda/imgproc-process:*"),
        ("sqs:SendMessage", queue_arn),
    }

    # Same sources, same settings: nothing uploaded, nothing changed.
    events_before = len(client("cloudformation").describe_stack_events(StackName="imgproc")["StackEvents"])
    second = deploy(tmp_path)
    assert "No changes: stack imgproc is up to date." in second.stdout
    assert "already in s3://" in second.stderr
    assert len(client("cloudformation").describe_stack_events(StackName="imgproc")["StackEvents"]) == events_before

    # One setting changed: the change set touches only the function.
    write_config(tmp_path, 'input_prefix = "uploads/"\nsuffixes = [".jpg"]\nlog_retention_days = 14\n'
                           'presets = ["thumb"]\nmemory = 1536\n')
    third = deploy(tmp_path)
    changes = [line.split("│")[1:4] for line in third.stdout.splitlines() if line.startswith("│")]
    assert [[c.strip() for c in row] for row in changes] == [["Modify", "Function", "AWS::Lambda::Function"]]
    assert "UPDATE_COMPLETE" in third.stdout
    assert lam.get_function_configuration(FunctionName="imgproc-process")["MemorySize"] == 1536


def test_deploy_without_yes_and_without_a_terminal_changes_nothing(moto_server, tmp_path):
    proc = imgproc("deploy", cwd=tmp_path)
    assert proc.returncode == 2 and "pass --yes" in proc.stderr
    assert client("cloudformation").list_stacks()["StackSummaries"] == []


def test_destroy_keeps_buckets_with_data_and_deletes_only_what_the_stack_created(moto_server, tmp_path):
    deploy(tmp_path)
    s3 = client("s3")
    s3.put_object(Bucket=IN_BUCKET, Key="cat.jpg", Body=b"not really a cat")
    s3.create_bucket(Bucket="someone-elses-bucket")

    refused = imgproc("destroy", cwd=tmp_path)
    assert refused.returncode == 2 and "pass --yes" in refused.stderr
    assert client("cloudformation").describe_stacks(StackName="imgproc")["Stacks"]

    proc = ok(imgproc("destroy", "--yes", cwd=tmp_path))
    assert "deleted stack imgproc" in proc.stdout
    assert f"kept bucket {IN_BUCKET} (1 object version)" in proc.stdout
    assert "aws s3 rb --force" not in proc.stdout  # it leaves the old versions behind
    # Log groups and the failure queue outlive the stack (DeletionPolicy Retain), and destroy says so.
    assert "kept log group /aws/lambda/imgproc-process" in proc.stdout and "kept failure queue" in proc.stdout
    assert client("logs").describe_log_groups(logGroupNamePrefix="/aws/lambda/imgproc-process")["logGroups"]
    assert f"deleted bucket {OUT_BUCKET}" in proc.stdout  # empty: created by the stack, gone with it
    buckets = {b["Name"] for b in s3.list_buckets()["Buckets"]}
    assert IN_BUCKET in buckets and OUT_BUCKET not in buckets
    assert {"someone-elses-bucket", f"imgproc-artifacts-{ACCOUNT}-{REGION}"} <= buckets
    assert s3.get_object(Bucket=IN_BUCKET, Key="cat.jpg")["Body"].read() == b"not really a cat"
    assert client("lambda").list_functions()["Functions"] == []

    again = imgproc("destroy", "--yes", cwd=tmp_path)
    assert again.returncode == 1 and "no stack named imgproc" in again.stderr

    # Deploying again cannot re-create the kept bucket: said clearly, before anything is created.
    redeploy = imgproc("deploy", "--yes", cwd=tmp_path)
    assert redeploy.returncode == 1
    assert f"bucket {IN_BUCKET} already exists (kept by an earlier `imgproc destroy`?)" in redeploy.stderr
    assert client("cloudformation").describe_stacks()["Stacks"] == []


def test_destroy_delete_data_empties_the_stacks_buckets(moto_server, tmp_path):
    deploy(tmp_path)
    s3 = client("s3")
    s3.put_object(Bucket=IN_BUCKET, Key="a.jpg", Body=b"a")
    s3.put_object(Bucket=OUT_BUCKET, Key="thumb/a.jpg", Body=b"b")
    proc = ok(imgproc("destroy", "--delete-data", "--yes", cwd=tmp_path))
    assert f"deleted bucket {IN_BUCKET} (1 objects)" in proc.stdout
    buckets = {b["Name"] for b in s3.list_buckets()["Buckets"]}
    assert buckets == {f"imgproc-artifacts-{ACCOUNT}-{REGION}"}
    assert "deleted log group /aws/lambda/imgproc-process" in proc.stdout
    assert client("logs").describe_log_groups(logGroupNamePrefix="/aws/lambda/imgproc-process")["logGroups"] == []
    assert client("sqs").list_queues().get("QueueUrls", []) == []


def test_a_bucket_holding_only_old_versions_is_not_called_empty(moto_server, tmp_path):
    """The input bucket is versioned: a deleted original leaves its version and a delete marker,
    which S3 keeps (and bills); destroy keeps the bucket instead of calling it empty."""
    deploy(tmp_path)
    s3 = client("s3")
    # moto ignores the template's VersioningConfiguration: status says so and --repair applies it.
    assert "problem input versioning" in imgproc("status", cwd=tmp_path).stdout
    imgproc("status", "--repair", cwd=tmp_path)
    assert s3.get_bucket_versioning(Bucket=IN_BUCKET)["Status"] == "Enabled"
    (rule,) = s3.get_bucket_lifecycle_configuration(Bucket=IN_BUCKET)["Rules"]
    assert rule["NoncurrentVersionExpiration"]["NoncurrentDays"] == 30
    s3.put_object(Bucket=IN_BUCKET, Key="cat.jpg", Body=b"v1")
    s3.delete_object(Bucket=IN_BUCKET, Key="cat.jpg")
    assert s3.list_objects_v2(Bucket=IN_BUCKET)["KeyCount"] == 0  # looks empty to a plain listing
    proc = ok(imgproc("destroy", "--yes", cwd=tmp_path))
    assert f"bucket {IN_BUCKET}: 2 object versions" in proc.stdout
    assert f"kept bucket {IN_BUCKET} (2 object versions)" in proc.stdout
    assert s3.get_object(Bucket=IN_BUCKET, Key="cat.jpg", VersionId=s3.list_object_versions(
        Bucket=IN_BUCKET)["Versions"][0]["VersionId"])["Body"].read() == b"v1"

    # A new deploy cannot create the kept log group: said before anything is created.
    s3.delete_objects(Bucket=IN_BUCKET, Delete={"Objects": [
        {"Key": v["Key"], "VersionId": v["VersionId"]} for kind in ("Versions", "DeleteMarkers")
        for v in s3.list_object_versions(Bucket=IN_BUCKET).get(kind, [])]})
    s3.delete_bucket(Bucket=IN_BUCKET)
    redeploy = imgproc("deploy", "--yes", cwd=tmp_path)
    assert redeploy.returncode == 1, redeploy.stderr
    assert "log group /aws/lambda/imgproc-process already exists" in redeploy.stderr
    assert client("cloudformation").describe_stacks()["Stacks"] == []

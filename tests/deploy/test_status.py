"""`imgproc status`: the wiring check finds what moto ignored in the template, `--repair` fixes it."""

from __future__ import annotations

import json

import pytest

from helpers_deploy import IN_BUCKET, OUT_BUCKET, client, deploy, imgproc, ok, write_config

pytestmark = pytest.mark.slow


def checks(proc) -> dict[str, dict]:
    return {c["name"]: c for c in json.loads(proc.stdout)["checks"]}


def test_status_finds_and_repair_fixes_the_missing_notification_and_lifecycle(moto_server, tmp_path):
    write_config(tmp_path, 'input_prefix = "uploads/"\nsuffixes = [".jpg", ".png"]\nlifecycle_days = 60\n'
                           'lifecycle_action = "expire"\n')
    deploy(tmp_path)
    s3 = client("s3")
    s3.put_bucket_notification_configuration(Bucket=IN_BUCKET, NotificationConfiguration={
        "QueueConfigurations": []})  # nothing yet: as moto leaves it

    before = imgproc("status", cwd=tmp_path)
    assert before.returncode == 1
    assert f"problem notification: {IN_BUCKET} does not send ObjectCreated events" in before.stdout
    assert "fix: run `imgproc status --repair`" in before.stdout
    assert "problem lifecycle rule" in before.stdout and "ok      invoke permission" in before.stdout
    assert "ok      stack: CREATE_COMPLETE" in before.stdout and "memory_mb 1024" in before.stdout

    repaired = ok(imgproc("status", "--repair", cwd=tmp_path))
    assert "repaired notification" in repaired.stdout and "repaired lifecycle rule" in repaired.stdout
    assert "problem" not in repaired.stdout

    fn_arn = client("lambda").get_function_configuration(FunctionName="imgproc-process")["FunctionArn"]
    configs = s3.get_bucket_notification_configuration(Bucket=IN_BUCKET)["LambdaFunctionConfigurations"]
    assert sorted((c["LambdaFunctionArn"], tuple(c["Events"]),
                   tuple((r["Name"].lower(), r["Value"]) for r in c["Filter"]["Key"]["FilterRules"]))
                  for c in configs) == [
        (fn_arn, ("s3:ObjectCreated:*",), (("prefix", "uploads/"), ("suffix", ".jpg"))),
        (fn_arn, ("s3:ObjectCreated:*",), (("prefix", "uploads/"), ("suffix", ".png")))]
    (rule,) = s3.get_bucket_lifecycle_configuration(Bucket=OUT_BUCKET)["Rules"]
    assert (rule["ID"], rule["Status"], rule["Expiration"]["Days"]) == ("imgproc-renditions", "Enabled", 60)
    dest = client("lambda").get_function_event_invoke_config(FunctionName="imgproc-process", Qualifier="$LATEST")
    assert dest["DestinationConfig"]["OnFailure"]["Destination"].endswith(":" + json.loads(
        ok(imgproc("status", "--json", cwd=tmp_path)).stdout)["outputs"]["DeadLetterQueueUrl"].rsplit("/", 1)[1])

    after = checks(ok(imgproc("status", "--json", cwd=tmp_path)))
    assert all(c["ok"] for c in after.values()), after
    assert set(after) == {"stack", "outputs", "function", "trigger", "invoke permission", "notification",
                          "failure queue", "alarms", "lifecycle rule", "failure destination", "input versioning",
                          "input bucket private", "output bucket private"}

    # Someone points the bucket at another function: found, and repaired without dropping theirs.
    s3.put_bucket_notification_configuration(Bucket=IN_BUCKET, NotificationConfiguration={
        "LambdaFunctionConfigurations": [{
            "LambdaFunctionArn": "arn:aws:lambda:us-east-1:123456789012:function:other",
            "Events": ["s3:ObjectCreated:*"]}]})
    broken = imgproc("status", "--json", cwd=tmp_path)
    assert broken.returncode == 1 and checks(broken)["notification"]["ok"] is False
    ok(imgproc("status", "--repair", cwd=tmp_path))
    arns = [c["LambdaFunctionArn"].rsplit(":", 1)[1] for c in
            s3.get_bucket_notification_configuration(Bucket=IN_BUCKET)["LambdaFunctionConfigurations"]]
    assert sorted(arns) == ["imgproc-process", "imgproc-process", "other"]


def test_status_without_a_stack_exits_1(moto_server, tmp_path):
    proc = imgproc("status", "--stack", "nothing-here", cwd=tmp_path)
    assert proc.returncode == 1 and "no stack named nothing-here" in proc.stderr


def test_repair_on_an_https_endpoint_applies_the_tls_only_policy_from_the_deployed_template(aws):
    """In-process moto stands for real AWS here (https): the TLS-only policy is required and repairable."""
    import io
    import zipfile

    from cli.aws.target import AwsTarget
    from cli.deploy.settings import DeploySettings
    from cli.deploy.template import render, template
    from cli.deploy.wiring import load_deployed, wiring_checks

    target = AwsTarget(region="us-east-1")
    s3, cfn = target.client("s3"), target.client("cloudformation")
    code = io.BytesIO()
    with zipfile.ZipFile(code, "w") as zf:
        zf.writestr("lambda_entry.py", "def handler(event, context):\n    return {}\n")
    s3.create_bucket(Bucket="artifacts")
    s3.put_object(Bucket="artifacts", Key="code.zip", Body=code.getvalue())
    doc = template(DeploySettings(), ("thumb",), code=("artifacts", "code.zip"))
    cfn.create_stack(StackName="imgproc", TemplateBody=render(doc), Capabilities=["CAPABILITY_IAM"])

    before = {c.name: c for c in wiring_checks(target, load_deployed(target, "imgproc"))}
    assert not before["input bucket private"].ok and "no TLS-only policy" in before["input bucket private"].detail
    for check in before.values():
        if not check.ok and check.repair:
            check.repair()
    after = {c.name: c for c in wiring_checks(target, load_deployed(target, "imgproc"))}
    assert all(c.ok for c in after.values()), {n: c.detail for n, c in after.items() if not c.ok}
    policy = json.loads(s3.get_bucket_policy(Bucket=IN_BUCKET)["Policy"])
    (st,) = policy["Statement"]
    assert st["Effect"] == "Deny" and st["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
    assert sorted(st["Resource"]) == [f"arn:aws:s3:::{IN_BUCKET}", f"arn:aws:s3:::{IN_BUCKET}/*"]

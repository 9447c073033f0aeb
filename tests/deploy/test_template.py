"""The CloudFormation template generated from code: lint-clean, least privilege, lifecycle, wiring."""

from __future__ import annotations

import json

import pytest
import yaml

from cli.deploy.settings import DeploySettings
from cli.deploy.template import GROUPS, lifecycle_api, notification_api, render, template

from helpers_deploy import imgproc, ok

PRESETS = ("thumb", "web")


def lint(doc: dict, fmt: str = "json") -> list[str]:
    """cfn-lint errors, warnings and informational findings (e.g. I3011: a stateful resource without
    an explicit DeletionPolicy)."""
    from cfnlint.api import ManualArgs
    from cfnlint.api import lint as cfn_lint

    text = render(doc, fmt)
    matches = cfn_lint(text, config=ManualArgs(regions=["us-east-1", "eu-west-1"], include_checks=["I"]))
    return [f"{m.rule.id} {m.message} ({m.path})" for m in matches]


def resources(doc: dict, kind: str) -> dict[str, dict]:
    return {k: v for k, v in doc["Resources"].items() if v["Type"] == kind}


@pytest.mark.parametrize("settings", [
    DeploySettings(),
    DeploySettings().replace(suffixes=(".jpg", ".png"), input_prefix="uploads/", output_prefix="out/",
                             rekognition=True, reserved_concurrency=5, architecture="arm64",
                             lifecycle_action="expire", lifecycle_days=90, input_bucket="my-in",
                             output_bucket="my-out"),
    DeploySettings().replace(lifecycle_days=0, retry_attempts=0),
], ids=["defaults", "everything-set", "no-lifecycle"])
@pytest.mark.parametrize("fmt", ["json", "yaml"])
def test_template_is_cfn_lint_clean(settings, fmt):
    doc = template(settings, PRESETS, code=("artifacts", "imgproc/lambda-abc.zip"))
    assert lint(doc, fmt) == []


def test_yaml_and_json_render_the_same_document():
    doc = template(DeploySettings(), PRESETS)
    assert yaml.safe_load(render(doc, "yaml")) == json.loads(render(doc, "json")) == doc
    assert "&id" not in render(doc, "yaml")  # CloudFormation rejects YAML anchors


def test_role_grants_exactly_the_handlers_actions_on_exactly_its_resources():
    s = DeploySettings().replace(input_prefix="uploads/", output_prefix="r/")
    doc = template(s, PRESETS)
    role = resources(doc, "AWS::IAM::Role")["FunctionRole"]
    assert role["Properties"]["AssumeRolePolicyDocument"]["Statement"][0]["Principal"] == {
        "Service": "lambda.amazonaws.com"}
    assert "ManagedPolicyArns" not in role["Properties"]
    (policy,) = role["Properties"]["Policies"]
    grants = {(a, json.dumps(r, sort_keys=True)) for st in policy["PolicyDocument"]["Statement"]
              for a in st["Action"] for r in st["Resource"]}
    assert all(st["Effect"] == "Allow" for st in policy["PolicyDocument"]["Statement"])
    sub = lambda text: json.dumps({"Fn::Sub": text}, sort_keys=True)  # noqa: E731
    queue = json.dumps({"Fn::GetAtt": ["FailureQueue", "Arn"]}, sort_keys=True)
    assert grants == {
        ("s3:GetObject", sub("arn:${AWS::Partition}:s3:::imgproc-input-${AWS::AccountId}-${AWS::Region}/uploads/*")),
        ("s3:GetObject", sub("arn:${AWS::Partition}:s3:::imgproc-output-${AWS::AccountId}-${AWS::Region}/r/*")),
        ("s3:PutObject", sub("arn:${AWS::Partition}:s3:::imgproc-output-${AWS::AccountId}-${AWS::Region}/r/*")),
        ("logs:CreateLogStream", sub("arn:${AWS::Partition}:logs:${AWS::Region}:${AWS::AccountId}:"
                                     "log-group:/aws/lambda/imgproc-process:*")),
        ("logs:PutLogEvents", sub("arn:${AWS::Partition}:logs:${AWS::Region}:${AWS::AccountId}:"
                                  "log-group:/aws/lambda/imgproc-process:*")),
        ("sqs:SendMessage", queue),
    }


def test_rekognition_adds_detect_labels_and_tagging_only_when_enabled():
    def actions(s):
        role = resources(template(s, PRESETS), "AWS::IAM::Role")["FunctionRole"]
        return {a for st in role["Properties"]["Policies"][0]["PolicyDocument"]["Statement"] for a in st["Action"]}

    off, on = actions(DeploySettings()), actions(DeploySettings().replace(rekognition=True))
    assert on - off == {"rekognition:DetectLabels", "s3:PutObjectTagging"}
    assert not any("*" in a for a in on)


def test_buckets_are_private_encrypted_tls_only_and_retained():
    doc = template(DeploySettings(), PRESETS)
    buckets = resources(doc, "AWS::S3::Bucket")
    assert set(buckets) == {"InputBucket", "OutputBucket"}
    for _name, b in buckets.items():
        p = b["Properties"]
        assert b["DeletionPolicy"] == "Retain" and b["UpdateReplacePolicy"] == "Retain"
        assert all(p["PublicAccessBlockConfiguration"].values()) and len(p["PublicAccessBlockConfiguration"]) == 4
        assert p["BucketEncryption"]["ServerSideEncryptionConfiguration"][0]["ServerSideEncryptionByDefault"] == {
            "SSEAlgorithm": "AES256"}
    policies = resources(doc, "AWS::S3::BucketPolicy")
    assert {p["Properties"]["Bucket"]["Ref"] for p in policies.values()} == set(buckets)
    for p in policies.values():
        (st,) = p["Properties"]["PolicyDocument"]["Statement"]
        assert st["Effect"] == "Deny" and st["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}


def test_lifecycle_rule_on_the_output_bucket_follows_the_settings():
    doc = template(DeploySettings().replace(lifecycle_days=45, lifecycle_action="expire", output_prefix="r/"), PRESETS)
    rules = doc["Resources"]["OutputBucket"]["Properties"]["LifecycleConfiguration"]["Rules"]
    assert rules == [{"Id": "imgproc-renditions", "Status": "Enabled", "Prefix": "r/", "ExpirationInDays": 45,
                      "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": 7}}]
    assert lifecycle_api(rules)[0]["Expiration"] == {"Days": 45}
    tiering = template(DeploySettings(), PRESETS)["Resources"]["OutputBucket"]["Properties"]["LifecycleConfiguration"]
    assert tiering["Rules"][0]["Transitions"] == [{"StorageClass": "INTELLIGENT_TIERING", "TransitionInDays": 30}]
    none = template(DeploySettings().replace(lifecycle_days=0), PRESETS)
    assert "LifecycleConfiguration" not in none["Resources"]["OutputBucket"]["Properties"]
    # The input bucket's only rule expires old versions of originals, never a current one.
    (rule,) = none["Resources"]["InputBucket"]["Properties"]["LifecycleConfiguration"]["Rules"]
    assert set(rule) == {"Id", "Status", "NoncurrentVersionExpiration"}


def test_notification_filters_by_prefix_and_each_suffix_without_a_dependency_cycle():
    s = DeploySettings().replace(input_prefix="uploads/", suffixes=(".jpg", ".png"))
    doc = template(s, PRESETS)
    inp = doc["Resources"]["InputBucket"]
    entries = inp["Properties"]["NotificationConfiguration"]["LambdaConfigurations"]
    assert [e["Filter"]["S3Key"]["Rules"] for e in entries] == [
        [{"Name": "prefix", "Value": "uploads/"}, {"Name": "suffix", "Value": ".jpg"}],
        [{"Name": "prefix", "Value": "uploads/"}, {"Name": "suffix", "Value": ".png"}]]
    assert {e["Event"] for e in entries} == {"s3:ObjectCreated:*"}
    # The bucket waits for the permission; nothing that the function depends on references the bucket.
    assert inp["DependsOn"] == ["InvokePermission"]
    perm = doc["Resources"]["InvokePermission"]["Properties"]
    assert perm["SourceArn"] == {"Fn::Sub": "arn:${AWS::Partition}:s3:::imgproc-input-${AWS::AccountId}-${AWS::Region}"}
    assert "InputBucket" not in json.dumps(doc["Resources"]["Function"])
    assert "InputBucket" not in json.dumps(doc["Resources"]["FunctionRole"])
    api = notification_api([{**e, "Function": "arn:fn"} for e in entries])
    assert api[0]["Filter"] == {"Key": {"FilterRules": [{"Name": "prefix", "Value": "uploads/"},
                                                        {"Name": "suffix", "Value": ".jpg"}]}}


def test_function_settings_environment_and_failure_destination():
    s = DeploySettings().replace(memory=2048, timeout=120, reserved_concurrency=3, architecture="arm64",
                                 input_prefix="in/", output_prefix="out/", retry_attempts=1, log_retention_days=14)
    doc = template(s, ("thumb",), code=("bkt", "key.zip"))
    fn = doc["Resources"]["Function"]["Properties"]
    assert (fn["Runtime"], fn["Handler"], fn["MemorySize"], fn["Timeout"], fn["Architectures"],
            fn["ReservedConcurrentExecutions"]) == ("python3.12", "lambda_entry.handler", 2048, 120, ["arm64"], 3)
    assert fn["Environment"]["Variables"] == {
        "IMGPROC_OUTPUT_BUCKET": {"Ref": "OutputBucket"},
        "IMGPROC_INPUT_BUCKET": {"Fn::Sub": "imgproc-input-${AWS::AccountId}-${AWS::Region}"},
        "IMGPROC_INPUT_PREFIX": "in/", "IMGPROC_OUTPUT_PREFIX": "out/", "IMGPROC_PRESETS": "thumb",
        "IMGPROC_REKOGNITION": "off", "IMGPROC_ON_DELETE": "keep"}
    assert doc["Parameters"]["CodeKey"]["Default"] == "key.zip"
    assert doc["Resources"]["LogGroup"]["Properties"] == {"LogGroupName": "/aws/lambda/imgproc-process",
                                                          "RetentionInDays": 14}
    invoke = doc["Resources"]["InvokeConfig"]["Properties"]
    assert invoke["MaximumRetryAttempts"] == 1
    assert invoke["DestinationConfig"]["OnFailure"]["Destination"] == {"Fn::GetAtt": ["FailureQueue", "Arn"]}
    assert "ReservedConcurrentExecutions" not in template(DeploySettings(), PRESETS)["Resources"]["Function"]["Properties"]


def test_outputs_are_exactly_the_contract():
    doc = template(DeploySettings(), PRESETS)
    assert set(doc["Outputs"]) == {"InputBucketName", "OutputBucketName", "FunctionName", "FunctionArn",
                                   "LogGroupName", "DeadLetterQueueUrl", "AlarmTopicArn", "BatchOperationsRoleArn",
                                   "DashboardUrl"}


def test_a_resource_group_is_one_more_entry():
    def extra(s, presets):
        return {"Resources": {"Topic": {"Type": "AWS::SNS::Topic"}}, "Outputs": {"TopicArn": {"Value": {"Ref": "Topic"}}}}

    doc = template(DeploySettings(), PRESETS, [*GROUPS, extra])
    assert "Topic" in doc["Resources"] and "TopicArn" in doc["Outputs"] and "Function" in doc["Resources"]
    with pytest.raises(ValueError, match=r"Resources.Function"):
        template(DeploySettings(), PRESETS, [*GROUPS, lambda s, p: {"Resources": {"Function": {}}}])


def test_template_only_prints_yaml_from_the_config_without_aws(tmp_path):
    (tmp_path / "imgproc.toml").write_text(
        '[deploy]\nstack_name = "photos"\nmemory = 512\npresets = ["thumb"]\n', encoding="utf-8")
    proc = ok(imgproc("deploy", "--template-only", "--format", "yaml", cwd=tmp_path,
                      env={"AWS_ENDPOINT_URL": "http://127.0.0.1:9"}))  # nothing listens there
    doc = yaml.safe_load(proc.stdout)
    fn = doc["Resources"]["Function"]["Properties"]
    assert (fn["FunctionName"], fn["MemorySize"], fn["Environment"]["Variables"]["IMGPROC_PRESETS"]) == (
        "photos-process", 512, "thumb")

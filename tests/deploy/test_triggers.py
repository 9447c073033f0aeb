"""`[deploy] trigger`: queue and eventbridge wiring in the template, lint-clean, least privilege."""

from __future__ import annotations

import json

import pytest

from cli.deploy.settings import DeploySettings
from cli.deploy.template import render, template
from core.errors import ConfigError

PRESETS = ("thumb", "web")


def lint(doc: dict, fmt: str = "json") -> list[str]:
    """cfn-lint errors and warnings (informational rules ignored), as tests/deploy/test_template.py runs it."""
    from cfnlint.api import ManualArgs
    from cfnlint.api import lint as cfn_lint

    matches = cfn_lint(render(doc, fmt), config=ManualArgs(regions=["us-east-1", "eu-west-1"]))
    return [f"{m.rule.id} {m.message} ({m.path})" for m in matches if not m.rule.id.startswith("I")]

QUEUE = DeploySettings().replace(trigger="queue")
EVENTBRIDGE = DeploySettings().replace(trigger="eventbridge")


@pytest.mark.parametrize("settings", [
    QUEUE,
    QUEUE.replace(batch_size=100, batch_window=20, max_concurrency=50, max_receive_count=3, timeout=300,
                  input_prefix="uploads/", suffixes=(".jpg", ".png"), input_bucket="my-in", reserved_concurrency=60),
    EVENTBRIDGE,
    EVENTBRIDGE.replace(input_prefix="uploads/", suffixes=(".jpg", ".png")),
    EVENTBRIDGE.replace(input_prefix="uploads/", input_bucket="my-in"),
    EVENTBRIDGE.replace(suffixes=(".webp",)),
    QUEUE.replace(alarm_email="ops@example.com"),
], ids=["queue", "queue-everything-set", "eventbridge", "eventbridge-prefix-suffixes", "eventbridge-prefix",
        "eventbridge-suffix", "queue-alarm-email"])
@pytest.mark.parametrize("fmt", ["json", "yaml"])
def test_every_trigger_is_cfn_lint_clean(settings, fmt):
    assert lint(template(settings, PRESETS, code=("artifacts", "k.zip")), fmt) == []


def test_queue_mode_wires_bucket_queue_dlq_and_event_source_mapping():
    s = QUEUE.replace(timeout=120, batch_size=25, batch_window=10, max_concurrency=7, max_receive_count=4,
                      input_prefix="uploads/")
    res = template(s, PRESETS)["Resources"]

    bucket = res["InputBucket"]
    assert bucket["DependsOn"] == ["UploadQueuePolicy"]
    (entry,) = bucket["Properties"]["NotificationConfiguration"]["QueueConfigurations"]
    assert entry["Queue"] == {"Fn::GetAtt": ["UploadQueue", "Arn"]} and entry["Event"] == "s3:ObjectCreated:*"
    assert entry["Filter"]["S3Key"]["Rules"] == [{"Name": "prefix", "Value": "uploads/"}]
    assert "LambdaConfigurations" not in bucket["Properties"]["NotificationConfiguration"]

    queue = res["UploadQueue"]["Properties"]
    assert queue["SqsManagedSseEnabled"] is True and queue["VisibilityTimeout"] == 6 * 120
    assert queue["RedrivePolicy"] == {"deadLetterTargetArn": {"Fn::GetAtt": ["UploadDeadLetterQueue", "Arn"]},
                                      "maxReceiveCount": 4}
    dlq = res["UploadDeadLetterQueue"]["Properties"]
    assert dlq["SqsManagedSseEnabled"] is True and dlq["MessageRetentionPeriod"] > queue["MessageRetentionPeriod"]

    esm = res["QueueEventSource"]["Properties"]
    assert esm["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert (esm["BatchSize"], esm["MaximumBatchingWindowInSeconds"], esm["ScalingConfig"]) == (
        25, 10, {"MaximumConcurrency": 7})

    (stmt,) = res["UploadQueuePolicy"]["Properties"]["PolicyDocument"]["Statement"]
    assert stmt["Principal"] == {"Service": "s3.amazonaws.com"} and stmt["Action"] == "sqs:SendMessage"
    assert stmt["Condition"]["StringEquals"] == {"aws:SourceAccount": {"Ref": "AWS::AccountId"}}
    assert stmt["Condition"]["ArnEquals"]["aws:SourceArn"] == {
        "Fn::Sub": "arn:${AWS::Partition}:s3:::imgproc-input-${AWS::AccountId}-${AWS::Region}"}
    assert "InvokePermission" not in res  # the mapping invokes with the role, S3 never does


def test_queue_mode_role_reads_only_that_queue():
    statements = template(QUEUE, PRESETS)["Resources"]["FunctionRole"]["Properties"]["Policies"][0][
        "PolicyDocument"]["Statement"]
    (read,) = [st for st in statements if any(a.startswith("sqs:Receive") for a in st["Action"])]
    assert sorted(read["Action"]) == ["sqs:DeleteMessage", "sqs:GetQueueAttributes", "sqs:ReceiveMessage"]
    assert read["Resource"] == [{"Fn::GetAtt": ["UploadQueue", "Arn"]}]
    default = json.dumps(template(DeploySettings(), PRESETS)["Resources"]["FunctionRole"])
    assert "sqs:ReceiveMessage" not in default


def test_eventbridge_mode_enables_eventbridge_and_a_rule_for_prefix_and_suffixes():
    s = EVENTBRIDGE.replace(input_prefix="uploads/", suffixes=(".jpg", ".png"), input_bucket="my-in")
    res = template(s, PRESETS)["Resources"]
    assert res["InputBucket"]["Properties"]["NotificationConfiguration"] == {
        "EventBridgeConfiguration": {"EventBridgeEnabled": True}}
    assert "DependsOn" not in res["InputBucket"]
    rule = res["UploadRule"]["Properties"]
    assert rule["EventPattern"] == {
        "source": ["aws.s3"], "detail-type": ["Object Created"],
        "detail": {"bucket": {"name": ["my-in"]},
                   "object": {"key": [{"wildcard": "uploads/*.jpg"}, {"wildcard": "uploads/*.png"}]}}}
    assert rule["Targets"] == [{"Id": "imgproc-function", "Arn": {"Fn::GetAtt": ["Function", "Arn"]}}]
    perm = res["InvokePermission"]["Properties"]
    assert perm["Principal"] == "events.amazonaws.com"
    assert perm["SourceArn"] == {"Fn::GetAtt": ["UploadRule", "Arn"]}


def test_eventbridge_rule_names_the_derived_bucket():
    rule = template(EVENTBRIDGE, PRESETS)["Resources"]["UploadRule"]["Properties"]
    assert rule["EventPattern"]["detail"] == {"bucket": {"name": [
        {"Fn::Sub": "imgproc-input-${AWS::AccountId}-${AWS::Region}"}]}}


def test_switching_trigger_changes_only_the_wiring():
    """notification -> queue -> eventbridge keeps the buckets, function and role: an ordinary update."""
    docs = {t: template(DeploySettings().replace(trigger=t), PRESETS)["Resources"]
            for t in ("notification", "queue", "eventbridge")}
    for res in docs.values():
        assert {"InputBucket", "OutputBucket", "Function", "FunctionRole", "LogGroup"} <= set(res)
        assert res["InputBucket"]["Properties"]["BucketName"] == docs["notification"]["InputBucket"]["Properties"]["BucketName"]
        assert res["Function"] == docs["notification"]["Function"]


@pytest.mark.parametrize(("table", "message"), [
    ({"trigger": "kinesis"}, "deploy.trigger: 'kinesis': choose notification, queue, eventbridge"),
    ({"batch_size": 20, "batch_window": 0}, "deploy.batch_window: Lambda needs a batching window"),
    ({"max_concurrency": 1}, "deploy.max_concurrency: 1 is out of range 2..1000"),
    ({"trigger": "queue", "reserved_concurrency": 5, "max_concurrency": 10}, "above reserved_concurrency 5"),
    ({"max_receive_count": 0}, "deploy.max_receive_count: 0 is out of range"),
    ({"alarm_email": "not-an-address"}, "deploy.alarm_email: 'not-an-address' is not an e-mail address"),
])
def test_trigger_settings_are_validated(table, message):
    with pytest.raises(ConfigError, match=message):
        DeploySettings.from_table(table)


def test_trigger_defaults():
    s = DeploySettings.from_table({})
    assert (s.trigger, s.batch_size, s.batch_window, s.max_concurrency, s.max_receive_count) == (
        "notification", 10, 5, 10, 5)


def test_alarms_go_to_one_topic_with_queue_alarms_in_queue_mode_and_an_optional_email():
    def alarms(doc):
        return {k: v["Properties"] for k, v in doc["Resources"].items() if v["Type"] == "AWS::CloudWatch::Alarm"}

    plain = template(DeploySettings().replace(timeout=100), PRESETS)
    assert set(alarms(plain)) == {"FunctionErrorsAlarm", "FunctionThrottlesAlarm", "FunctionDurationAlarm",
                                  "FailureQueueAlarm"}
    assert all(a["AlarmActions"] == [{"Ref": "AlarmTopic"}] for a in alarms(plain).values())
    assert alarms(plain)["FunctionDurationAlarm"]["Threshold"] == 80_000  # 80% of 100 s, in ms
    assert not [r for r in plain["Resources"].values() if r["Type"] == "AWS::SNS::Subscription"]

    queued = template(QUEUE.replace(alarm_email="ops@example.com"), PRESETS)
    qa = alarms(queued)
    assert qa["DeadLetterQueueAlarm"]["Dimensions"] == [
        {"Name": "QueueName", "Value": {"Fn::GetAtt": ["UploadDeadLetterQueue", "QueueName"]}}]
    assert (qa["QueueAgeAlarm"]["MetricName"], qa["QueueAgeAlarm"]["Threshold"]) == ("ApproximateAgeOfOldestMessage", 900)
    assert queued["Resources"]["AlarmEmail"]["Properties"] == {
        "TopicArn": {"Ref": "AlarmTopic"}, "Protocol": "email", "Endpoint": "ops@example.com"}

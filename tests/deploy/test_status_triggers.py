"""`imgproc status` per trigger: each mode's wiring is checked, and `--repair` restores it,
including the Lambda invoke permission that `deploy` cannot bring back."""

from __future__ import annotations

import json
import time

import pytest

from helpers_deploy import IN_BUCKET, client, deploy, imgproc, ok, write_config

pytestmark = pytest.mark.slow
FUNCTION = "imgproc-process"


def checks(proc) -> dict[str, dict]:
    return {c["name"]: c for c in json.loads(proc.stdout)["checks"]}


def statements():
    return json.loads(client("lambda").get_policy(FunctionName=FUNCTION)["Policy"])["Statement"]


def remove_every_permission():
    for st in statements():
        client("lambda").remove_permission(FunctionName=FUNCTION, StatementId=st["Sid"])


def test_repair_restores_the_invoke_permission_removed_outside_cloudformation(moto_server, tmp_path):
    write_config(tmp_path)
    deploy(tmp_path)
    ok(imgproc("status", "--repair", cwd=tmp_path))  # what moto ignores (notification, lifecycle)
    remove_every_permission()

    broken = imgproc("status", "--json", cwd=tmp_path)
    assert broken.returncode == 1
    assert checks(broken)["invoke permission"]["ok"] is False
    assert "status --repair" in checks(broken)["invoke permission"]["fix"]

    repaired = ok(imgproc("status", "--repair", cwd=tmp_path))
    assert "repaired invoke permission" in repaired.stdout and "problem" not in repaired.stdout
    (st,) = statements()
    assert st["Principal"] == {"Service": "s3.amazonaws.com"}
    assert IN_BUCKET in json.dumps(st["Condition"]) and "123456789012" in json.dumps(st["Condition"])


def test_queue_mode_status_checks_queue_mapping_and_dead_letter_depth(moto_server, tmp_path):
    write_config(tmp_path, 'trigger = "queue"\nbatch_size = 5\nmax_concurrency = 4\n')
    deploy(tmp_path)
    status = json.loads(ok(imgproc("status", "--repair", "--json", cwd=tmp_path)).stdout)
    by_name = {c["name"]: c for c in status["checks"]}
    assert by_name["trigger"]["detail"] == "queue"
    assert by_name["event source mapping"]["ok"], by_name["event source mapping"]
    assert "batches of 5" in by_name["event source mapping"]["detail"]
    assert by_name["notification"]["ok"] and "queue" in by_name["notification"]["detail"]
    assert by_name["dead-letter queue"]["ok"] and "invoke permission" not in by_name
    queue_arn = client("sqs").get_queue_attributes(QueueUrl=status["outputs"]["UploadQueueUrl"],
                                                   AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    (config,) = client("s3").get_bucket_notification_configuration(Bucket=IN_BUCKET)["QueueConfigurations"]
    assert config["QueueArn"] == queue_arn

    # a message that failed every retry: status says so and exits 1
    client("sqs").send_message(QueueUrl=status["outputs"]["UploadDeadLetterQueueUrl"], MessageBody="{}")
    after = imgproc("status", "--json", cwd=tmp_path)
    assert after.returncode == 1
    dlq = checks(after)["dead-letter queue"]
    assert dlq["ok"] is False and "1 S3 event that failed every retry" in dlq["detail"]

    # the mapping deleted behind the stack's back comes back with its settings
    lam = client("lambda")
    for m in lam.list_event_source_mappings(FunctionName=FUNCTION)["EventSourceMappings"]:
        lam.delete_event_source_mapping(UUID=m["UUID"])
    assert checks(imgproc("status", "--json", cwd=tmp_path))["event source mapping"]["ok"] is False
    ok(imgproc("status", "--repair", cwd=tmp_path), code=1)  # the DLQ message is still there
    (m,) = lam.list_event_source_mappings(FunctionName=FUNCTION)["EventSourceMappings"]
    assert m["FunctionResponseTypes"] == ["ReportBatchItemFailures"] and m["BatchSize"] == 5


def test_eventbridge_mode_status_checks_bucket_rule_and_permission(moto_server, tmp_path):
    write_config(tmp_path, 'trigger = "eventbridge"\ninput_prefix = "uploads/"\n')
    deploy(tmp_path)
    imgproc("status", "--repair", cwd=tmp_path)
    good = checks(imgproc("status", "--json", cwd=tmp_path))
    # moto's GetBucketNotificationConfiguration never returns EventBridgeConfiguration (5.x), so
    # the bucket check stays a problem here: test_eventbridge_bucket_check covers it.
    assert [name for name, c in good.items() if not c["ok"]] == ["notification"]
    assert good["trigger"]["detail"] == "eventbridge"
    assert good["eventbridge rule"]["ok"] and good["invoke permission"]["ok"]
    assert "events.amazonaws.com" in good["invoke permission"]["detail"]

    events = client("events")
    rule = json.loads(imgproc("status", "--json", cwd=tmp_path).stdout)["outputs"]["UploadRuleArn"].rsplit("/", 1)[1]
    events.disable_rule(Name=rule)
    remove_every_permission()
    broken = checks(imgproc("status", "--json", cwd=tmp_path))
    assert not broken["eventbridge rule"]["ok"] and not broken["invoke permission"]["ok"]

    imgproc("status", "--repair", cwd=tmp_path)
    assert events.describe_rule(Name=rule)["State"] == "ENABLED"
    (st,) = statements()
    assert st["Principal"] == {"Service": "events.amazonaws.com"}
    pattern = json.loads(events.describe_rule(Name=rule)["EventPattern"])
    assert pattern["detail"]["object"] == {"key": [{"prefix": "uploads/"}]}


def test_eventbridge_bucket_check_finds_and_repairs_a_bucket_that_does_not_send_to_eventbridge():
    import boto3
    from botocore.stub import Stubber

    from cli.deploy.trigger_wiring import check_eventbridge_enabled

    s3 = boto3.client("s3", region_name="us-east-1")
    theirs = [{"Id": "theirs", "QueueArn": "arn:aws:sqs:us-east-1:123456789012:q", "Events": ["s3:ObjectRemoved:*"]}]
    with Stubber(s3) as stub:
        stub.add_response("get_bucket_notification_configuration", {"QueueConfigurations": theirs}, {"Bucket": "in"})
        stub.add_response("put_bucket_notification_configuration", {}, {"Bucket": "in", "NotificationConfiguration": {
            "QueueConfigurations": theirs, "EventBridgeConfiguration": {}}})
        stub.add_response("get_bucket_notification_configuration", {"EventBridgeConfiguration": {}}, {"Bucket": "in"})
        broken = check_eventbridge_enabled(s3, "in")
        assert not broken.ok and "does not send its events to EventBridge" in broken.detail
        broken.repair()  # keeps the owner's queue configuration
        fixed = check_eventbridge_enabled(s3, "in")
        assert fixed.ok and fixed.detail == "in: events -> EventBridge"


def test_status_lists_the_stacks_alarms_in_alarm_state(moto_server, tmp_path):
    write_config(tmp_path, 'trigger = "queue"\n')
    deploy(tmp_path)
    ok(imgproc("status", "--repair", cwd=tmp_path))
    cloudwatch = client("cloudwatch")
    assert checks(ok(imgproc("status", "--json", cwd=tmp_path)))["alarms"]["detail"] == "none in ALARM"
    # moto's CloudFormation does not create AWS::CloudWatch::Alarm: make one named as CloudFormation would
    errors = "imgproc-FunctionErrorsAlarm-1A2B3C4D5E6F"
    cloudwatch.put_metric_alarm(AlarmName=errors, Namespace="AWS/Lambda", MetricName="Errors", Statistic="Sum",
                                Period=300, EvaluationPeriods=1, Threshold=1,
                                ComparisonOperator="GreaterThanOrEqualToThreshold")
    cloudwatch.put_metric_alarm(AlarmName="other-stack-Alarm", Namespace="AWS/Lambda", MetricName="Errors",
                                Statistic="Sum", Period=300, EvaluationPeriods=1, Threshold=1,
                                ComparisonOperator="GreaterThanOrEqualToThreshold")
    cloudwatch.set_alarm_state(AlarmName="other-stack-Alarm", StateValue="ALARM", StateReason="not ours")
    cloudwatch.set_alarm_state(AlarmName=errors, StateValue="ALARM", StateReason="test")

    # Listed as a notice: an alarm firing is no wiring problem, so status (and a script) still exits 0.
    proc = imgproc("status", "--json", cwd=tmp_path)
    assert proc.returncode == 0
    assert checks(proc)["alarms"] == {"name": "alarms", "ok": True, "notice": True, "detail": f"in ALARM: {errors}",
                                      "fix": checks(proc)["alarms"]["fix"]}
    assert f"notice  alarms: in ALARM: {errors}" in imgproc("status", cwd=tmp_path).stdout


def test_switching_trigger_is_an_ordinary_update_and_status_follows(moto_server, tmp_path):
    write_config(tmp_path)
    deploy(tmp_path)
    switched = deploy(tmp_path, "--trigger", "queue")
    assert "UPDATE_COMPLETE" in switched.stdout
    assert "Remove" in switched.stdout and "InvokePermission" in switched.stdout  # S3 no longer invokes
    status = json.loads(imgproc("status", "--repair", "--json", cwd=tmp_path).stdout)
    by_name = {c["name"]: c for c in status["checks"]}
    assert by_name["trigger"]["detail"] == "queue" and by_name["event source mapping"]["ok"], by_name
    assert by_name["dead-letter queue"]["detail"].endswith(": empty")  # found without its output (moto)

    back = deploy(tmp_path, "--trigger", "notification")
    assert "UPDATE_COMPLETE" in back.stdout
    again = checks(imgproc("status", "--repair", "--json", cwd=tmp_path))
    assert again["trigger"]["detail"] == "notification" and again["invoke permission"]["ok"]
    assert "event source mapping" not in again


def test_stats_shows_the_dead_letter_queue_depth_in_queue_mode_also_after_a_switch(moto_server, tmp_path):
    write_config(tmp_path, 'architecture = "arm64"\n')
    deploy(tmp_path)
    deploy(tmp_path, "--trigger", "queue")  # moto adds the queues without their outputs
    physical = {r["LogicalResourceId"]: r["PhysicalResourceId"] for r in
                client("cloudformation").list_stack_resources(StackName="imgproc")["StackResourceSummaries"]}
    client("sqs").send_message(QueueUrl=physical["UploadDeadLetterQueue"], MessageBody="{}")
    # The price follows the deployed function, not imgproc.toml: moto's CloudFormation ignores Architectures,
    # so the function runs on x86_64 although [deploy] says arm64.
    client("logs").create_log_stream(logGroupName=f"/aws/lambda/{FUNCTION}", logStreamName="s")
    client("logs").put_log_events(logGroupName=f"/aws/lambda/{FUNCTION}", logStreamName="s", logEvents=[{
        "timestamp": int(time.time() * 1000) - 60_000,
        "message": "REPORT RequestId: r1\tDuration: 99.00 ms\tBilled Duration: 100 ms\tMemory Size: 1024 MB\t"
                   "Max Memory Used: 90 MB\t"}])

    figures = json.loads(ok(imgproc("stats", "--json", cwd=tmp_path)).stdout)
    text = ok(imgproc("stats", cwd=tmp_path)).stdout

    assert figures["queues"] == {"failure queue": 0, "upload queue": 0, "dead-letter queue": 1}
    assert (figures["cost"]["architecture"], figures["cost"]["architecture_from"]) == ("x86_64", "the deployed function")
    assert "queues now: failure queue 0, upload queue 0, dead-letter queue 1" in text
    assert checks(imgproc("status", "--json", cwd=tmp_path))["dead-letter queue"]["ok"] is False

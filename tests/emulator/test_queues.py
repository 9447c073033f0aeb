"""The emulator's SQS poller and EventBridge delivery: batches, partial batch responses,
redelivery, redrive to the dead-letter queue, and EventBridge rules with a Lambda target."""

from __future__ import annotations

import json
import time

import boto3
import pytest

from cli.emulator.dispatcher import Dispatcher
from cli.emulator.queues import EventRoutes, succeeded

from lambdazip import make_zip

pytestmark = pytest.mark.slow
REGION = "us-east-1"

# Records every message it sees as out-bucket/seen/<body>/<receive count>; a body ending in
# ".flaky" fails on its first receive, ".never" on every receive (partial batch responses).
BATCH_HANDLER = r'''
import json, os
import boto3

s3 = boto3.client("s3")

def handler(event, context):
    failures = []
    if "Records" not in event:  # an EventBridge event
        key = event["detail"]["object"]["key"]
        s3.put_object(Bucket="out-bucket", Key="eventbridge/" + key, Body=json.dumps(event).encode())
        return {"ok": True}
    s3.put_object(Bucket="out-bucket", Key="batches/%s" % context.aws_request_id, Body=str(len(event["Records"])).encode())
    for record in event["Records"]:
        body, count = record["body"], record["attributes"]["ApproximateReceiveCount"]
        s3.put_object(Bucket="out-bucket", Key="seen/%s/%s" % (body, count), Body=b"")
        if body.endswith(".never") or (body.endswith(".flaky") and count == "1"):
            failures.append({"itemIdentifier": record["messageId"]})
    return {"batchItemFailures": failures}
'''


@pytest.fixture(scope="session")
def code_cache(tmp_path_factory):
    return tmp_path_factory.mktemp("queues-cache")


@pytest.fixture
def routes(moto_server, code_cache):
    messages: list[str] = []
    dispatcher = Dispatcher(moto_server, code_cache, concurrency=2, retry_delays=(0.1,), say=messages.append).install()
    active = EventRoutes(dispatcher, concurrency=2, say=messages.append).install()
    active.messages = messages  # type: ignore[attr-defined]
    try:
        yield active
    finally:
        print("\n".join(messages))
        active.uninstall()
        dispatcher.uninstall(drain_s=5)


def client(service: str, endpoint: str):
    return boto3.client(service, endpoint_url=endpoint, region_name=REGION)


def function(endpoint: str) -> str:
    iam = client("iam", endpoint)
    role = iam.create_role(RoleName="fn-role", AssumeRolePolicyDocument="{}")["Role"]["Arn"]
    client("s3", endpoint).create_bucket(Bucket="out-bucket")
    return client("lambda", endpoint).create_function(
        FunctionName="fn", Runtime="python3.12", Role=role, Handler="app.handler",
        Code={"ZipFile": make_zip(BATCH_HANDLER)}, Timeout=30, MemorySize=256)["FunctionArn"]


def queue_with_dlq(endpoint: str, max_receive: int = 2, visibility: int = 60) -> tuple[str, str, str]:
    sqs = client("sqs", endpoint)
    dlq = sqs.create_queue(QueueName="dlq")["QueueUrl"]
    dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    url = sqs.create_queue(QueueName="uploads", Attributes={
        "VisibilityTimeout": str(visibility),
        "RedrivePolicy": json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": max_receive})})["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    return url, arn, dlq


def keys(endpoint: str, prefix: str) -> list[str]:
    pages = client("s3", endpoint).get_paginator("list_objects_v2").paginate(Bucket="out-bucket", Prefix=prefix)
    return sorted(o["Key"] for page in pages for o in page.get("Contents", []))


def wait_until(condition, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"{what} did not happen within {timeout} s")


def depth(endpoint: str, url: str) -> int:
    attrs = client("sqs", endpoint).get_queue_attributes(QueueUrl=url, AttributeNames=[
        "ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"])["Attributes"]
    return int(attrs["ApproximateNumberOfMessages"]) + int(attrs["ApproximateNumberOfMessagesNotVisible"])


def test_messages_arrive_in_batches_and_each_is_deleted_once_processed(routes, moto_server):
    arn = function(moto_server)
    url, queue_arn, _ = queue_with_dlq(moto_server)
    sqs = client("sqs", moto_server)
    for start in range(0, 25, 10):
        sqs.send_message_batch(QueueUrl=url, Entries=[{"Id": str(i), "MessageBody": f"m{i:02d}"}
                                                      for i in range(start, min(start + 10, 25))])
    client("lambda", moto_server).create_event_source_mapping(
        EventSourceArn=queue_arn, FunctionName=arn, BatchSize=10, MaximumBatchingWindowInSeconds=1,
        FunctionResponseTypes=["ReportBatchItemFailures"], ScalingConfig={"MaximumConcurrency": 2})

    seen = wait_until(lambda: len(keys(moto_server, "seen/")) == 25 and keys(moto_server, "seen/"), 120, "25 messages")

    assert seen == [f"seen/m{i:02d}/1" for i in range(25)]  # each once, first receive
    sizes = [int(client("s3", moto_server).get_object(Bucket="out-bucket", Key=k)["Body"].read())
             for k in keys(moto_server, "batches/")]
    assert sum(sizes) == 25 and max(sizes) <= 10 and max(sizes) > 1
    wait_until(lambda: depth(moto_server, url) == 0, 10, "the queue to empty")


def test_only_reported_failures_come_back_and_a_message_that_always_fails_moves_to_the_dlq(routes, moto_server):
    arn = function(moto_server)
    # a short visibility timeout, so kept messages come back soon (the function takes well under 5 s)
    url, queue_arn, dlq = queue_with_dlq(moto_server, max_receive=2, visibility=5)
    sqs = client("sqs", moto_server)
    sqs.send_message_batch(QueueUrl=url, Entries=[{"Id": "1", "MessageBody": "a.ok"},
                                                  {"Id": "2", "MessageBody": "b.flaky"},
                                                  {"Id": "3", "MessageBody": "c.never"}])
    client("lambda", moto_server).create_event_source_mapping(
        EventSourceArn=queue_arn, FunctionName=arn, BatchSize=10, MaximumBatchingWindowInSeconds=0,
        FunctionResponseTypes=["ReportBatchItemFailures"])

    wait_until(lambda: "seen/b.flaky/2" in keys(moto_server, "seen/"), 60, "the flaky message's redelivery")
    wait_until(lambda: depth(moto_server, dlq) == 1, 60, "redrive to the dead-letter queue")
    time.sleep(2)  # a wrongly kept message would be received again within a poll or two

    seen = keys(moto_server, "seen/")
    assert [k for k in seen if k.startswith("seen/a.ok/")] == ["seen/a.ok/1"]  # succeeded: deleted, not redelivered
    assert [k for k in seen if k.startswith("seen/b.flaky/")] == ["seen/b.flaky/1", "seen/b.flaky/2"]
    assert [k for k in seen if k.startswith("seen/c.never/")] == ["seen/c.never/1", "seen/c.never/2"]
    (parked,) = sqs.receive_message(QueueUrl=dlq)["Messages"]
    assert parked["Body"] == "c.never"
    assert depth(moto_server, url) == 0


@pytest.mark.parametrize(("ok", "payload", "types", "kept"), [
    (True, '{"batchItemFailures": [{"itemIdentifier": "b"}]}', ["ReportBatchItemFailures"], ["b"]),
    (True, '{"batchItemFailures": []}', ["ReportBatchItemFailures"], []),
    (True, "null", ["ReportBatchItemFailures"], []),
    (True, '{"batchItemFailures": [{"itemIdentifier": "zzz"}]}', ["ReportBatchItemFailures"], ["a", "b"]),
    (True, '{"batchItemFailures": [{"itemIdentifier": "b"}]}', [], []),  # not reported: all deleted
    (False, "", ["ReportBatchItemFailures"], ["a", "b"]),  # a function error keeps the batch
])
def test_partial_batch_response_rules(ok, payload, types, kept):
    batch = [{"MessageId": "a"}, {"MessageId": "b"}]
    deleted = [m["MessageId"] for m in succeeded(batch, ok, payload, types)]
    assert sorted(set("ab") - set(deleted)) == kept


def test_eventbridge_rule_with_a_lambda_target_gets_object_created(routes, moto_server):
    arn = function(moto_server)
    s3, events = client("s3", moto_server), client("events", moto_server)
    s3.create_bucket(Bucket="in-bucket")
    s3.put_bucket_notification_configuration(Bucket="in-bucket", NotificationConfiguration={
        "EventBridgeConfiguration": {}})
    assert "EventBridgeConfiguration" in s3.get_bucket_notification_configuration(Bucket="in-bucket")
    events.put_rule(Name="uploads", State="ENABLED", EventPattern=json.dumps({
        "source": ["aws.s3"], "detail-type": ["Object Created"],
        "detail": {"bucket": {"name": ["in-bucket"]}, "object": {"key": [{"wildcard": "uploads/*.jpg"}]}}}))
    events.put_targets(Rule="uploads", Targets=[{"Id": "fn", "Arn": arn}])

    s3.put_object(Bucket="in-bucket", Key="uploads/cat 1.jpg", Body=b"x")
    s3.put_object(Bucket="in-bucket", Key="other/dog.jpg", Body=b"x")  # outside the pattern
    s3.put_object(Bucket="in-bucket", Key="uploads/notes.txt", Body=b"x")  # outside the pattern

    (key,) = wait_until(lambda: keys(moto_server, "eventbridge/"), 30, "the EventBridge delivery")
    assert key == "eventbridge/uploads/cat 1.jpg"
    routes.dispatcher.drain(10)
    assert keys(moto_server, "eventbridge/") == [key]
    event = json.loads(s3.get_object(Bucket="out-bucket", Key=key)["Body"].read())
    assert (event["source"], event["detail-type"], event["detail"]["bucket"]["name"]) == (
        "aws.s3", "Object Created", "in-bucket")

"""Every route an S3 upload takes to the handler (S3, S3->SQS, S3->SNS, S3->SNS->SQS raw and
enveloped, EventBridge), each from AWS's event shape, and each route's return contract."""

from __future__ import annotations

import copy
import json

import pytest

import lambda_entry
from core.events import Delivery, put_event
from core.naming import s3_output_key
from core.recipe import builtin_config

from imaging import encode, photo
from testdata import load_event

IN, OUT = "imgproc-in", "imgproc-out"
KEY = "uploads/My Photo (1).JPG"  # the key every captured put fixture names
RENDITIONS = builtin_config().select()
ROUTES = {
    "aws-put.json": "s3",
    "sqs-s3-put.json": "sqs>s3",
    "sns-s3-put.json": "sns>s3",
    "sqs-sns-s3-put.json": "sqs>sns>s3",
    "sqs-sns-raw-s3-put.json": "sqs>s3",
    "eventbridge-s3-object-created.json": "eventbridge",
}


@pytest.fixture
def s3(handler_s3):
    """moto buckets and a fresh handler cold start, configured like a deployed function."""
    return handler_s3


def lines_of(capsys):
    lines = [json.loads(x) for x in capsys.readouterr().out.splitlines() if x.strip()]
    return [x for x in lines if "_aws" not in x]


def output_keys(s3):
    return sorted(o["Key"] for o in s3.list_objects_v2(Bucket=OUT).get("Contents", []))


def sqs_batch(bodies: dict[str, str]) -> dict:
    """An SQS batch in the captured fixture's shape, one message per (messageId, body)."""
    (template,) = load_event("sqs-s3-put.json")["Records"]
    return {"Records": [{**copy.deepcopy(template), "messageId": mid, "body": body} for mid, body in bodies.items()]}


# --- parsing: each route reads to the same S3 record -------------------------------------------------


@pytest.mark.parametrize("name", sorted(ROUTES))
def test_every_route_reads_to_the_uploaded_key(name):
    delivery = Delivery.parse(load_event(name))
    assert delivery.problem is None
    (message,) = delivery.messages
    assert message.route == ROUTES[name]
    (record,) = message.records
    assert (record.bucket, record.key, record.is_created) == (IN, KEY, True)
    assert record.etag == "0123456789abcdef0123456789abcdef"
    assert delivery.is_sqs_batch == name.startswith("sqs-")
    if delivery.is_sqs_batch:
        assert message.message_id == load_event(name)["Records"][0]["messageId"]


def test_an_eventbridge_object_created_reads_as_an_object_created_put():
    (message,) = Delivery.parse(load_event("eventbridge-s3-object-created.json")).messages
    assert message.records[0].event_name == "ObjectCreated:Put"
    deleted = load_event("eventbridge-s3-object-created.json")
    deleted.update({"detail-type": "Object Deleted"})
    deleted["detail"]["reason"] = "DeleteObject"
    (record,) = Delivery.parse(deleted).messages[0].records
    assert record.is_removed and not record.is_created


@pytest.mark.parametrize("event", [
    load_event("eventbridge-scheduled.json"),
    {"Records": []},
    {"Records": [{"eventSource": "aws:dynamodb", "dynamodb": {}}]},
    {"hello": "world"},
    ["not", "an", "object"],
])
def test_events_of_no_s3_route_are_a_problem(event):
    delivery = Delivery.parse(event)
    assert delivery.problem and delivery.messages == ()


# --- the handler: each route processes the upload ---------------------------------------------------


@pytest.mark.parametrize("name", sorted(ROUTES))
def test_every_route_makes_the_renditions(s3, lambda_context, capsys, name):
    s3.put_object(Bucket=IN, Key=KEY, Body=encode(photo(800, 600)))

    result = lambda_entry.handler(load_event(name), lambda_context)

    assert output_keys(s3) == sorted(s3_output_key("", KEY, r) for r in RENDITIONS)
    (line,) = lines_of(capsys)
    assert (line["event"], line["key"], line["outcome"]) == ("image", KEY, "ok")
    if name.startswith("sqs-"):
        assert result == {"batchItemFailures": []}  # the message is deleted
        assert line["message_id"] == load_event(name)["Records"][0]["messageId"]
    else:
        assert result == {"ok": 1, "failed": 0, "skipped": 0}


@pytest.mark.parametrize("event", [
    load_event("sqs-s3-test-event.json"),
    {"Records": [{"EventSource": "aws:sns", "Sns": {"Type": "Notification", "TopicArn": "arn:aws:sns:::t",
                                                     "Message": json.dumps(load_event("aws-test-event.json"))}}]},
])
def test_the_s3_test_event_through_sqs_or_sns_is_skipped_successfully(s3, lambda_context, capsys, event):
    result = lambda_entry.handler(event, lambda_context)
    assert result in ({"batchItemFailures": []}, {"ok": 0, "failed": 0, "skipped": 0})
    (line,) = lines_of(capsys)
    assert (line["event"], line["reason"], line["level"]) == ("ignored", "s3:TestEvent", "INFO")
    assert output_keys(s3) == []


def test_an_sqs_batch_hands_back_only_the_transiently_failed_messages(s3, lambda_context, capsys, monkeypatch):
    good = encode(photo(400, 300))
    s3.put_object(Bucket=IN, Key="uploads/ok.jpg", Body=good)
    s3.put_object(Bucket=IN, Key="uploads/corrupt.jpg", Body=good[: len(good) // 3])
    s3.put_object(Bucket=IN, Key="uploads/throttled.jpg", Body=good)
    batch = sqs_batch({
        "m-ok": json.dumps(put_event(IN, ["uploads/ok.jpg"])),
        "m-corrupt": json.dumps(put_event(IN, ["uploads/corrupt.jpg"])),
        "m-throttled": json.dumps(put_event(IN, ["uploads/throttled.jpg"])),
        "m-test": json.dumps(load_event("aws-test-event.json")),
    })
    client = lambda_entry.runtime().client("s3")

    def slow_down(params, **_):
        if params.get("Key") == "uploads/throttled.jpg":
            from botocore.exceptions import ClientError
            raise ClientError({"Error": {"Code": "SlowDown", "Message": "Please reduce your request rate."},
                               "ResponseMetadata": {"HTTPStatusCode": 503}}, "GetObject")

    client.meta.events.register("before-parameter-build.s3.GetObject", slow_down)

    result = lambda_entry.handler(batch, lambda_context)

    assert result == {"batchItemFailures": [{"itemIdentifier": "m-throttled"}]}
    by_id = {line["message_id"]: line for line in lines_of(capsys)}
    assert by_id["m-ok"]["outcome"] == "ok"
    assert by_id["m-corrupt"]["outcome"] == "failed" and by_id["m-corrupt"]["error"]["transient"] is False
    assert by_id["m-corrupt"]["level"] == "ERROR"  # logged, and its message deleted (not retried)
    assert by_id["m-throttled"]["error"]["transient"] is True
    assert by_id["m-test"]["event"] == "ignored"
    assert output_keys(s3) == sorted(s3_output_key("", "uploads/ok.jpg", r) for r in RENDITIONS)


def test_an_unreadable_sqs_message_is_an_error_and_goes_back_to_the_queue(s3, lambda_context, capsys):
    s3.put_object(Bucket=IN, Key="uploads/ok.jpg", Body=encode(photo(300, 200)))
    batch = sqs_batch({"m-ok": json.dumps(put_event(IN, ["uploads/ok.jpg"])), "m-junk": "hello, not JSON"})

    result = lambda_entry.handler(batch, lambda_context)

    # back to the queue, so redrive parks it in the dead-letter queue for a person to look at
    assert result == {"batchItemFailures": [{"itemIdentifier": "m-junk"}]}
    junk = [x for x in lines_of(capsys) if x.get("message_id") == "m-junk"]
    assert [(x["level"], x["event"], x["outcome"]) for x in junk] == [("ERROR", "unrecognised", "failed")]
    assert "not JSON" in junk[0]["error"]["message"]


@pytest.mark.parametrize("name", ["eventbridge-scheduled.json"])
def test_an_event_of_no_s3_route_fails_the_invocation_with_an_error_line(s3, lambda_context, capsys, name):
    with pytest.raises(lambda_entry.UnrecognisedEvent, match="not an S3 event imgproc can read"):
        lambda_entry.handler(load_event(name), lambda_context)
    (line,) = lines_of(capsys)
    assert (line["level"], line["event"], line["outcome"]) == ("ERROR", "unrecognised", "failed")
    assert line["error"]["type"] == "UnrecognisedEvent"


def test_a_transient_failure_through_sns_or_eventbridge_raises_for_a_retry(s3, lambda_context, capsys):
    s3.put_object(Bucket=IN, Key=KEY, Body=encode(photo(300, 200)))
    client = lambda_entry.runtime().client("s3")

    def slow_down(**_):
        from botocore.exceptions import ClientError
        raise ClientError({"Error": {"Code": "SlowDown", "Message": "slow down"},
                           "ResponseMetadata": {"HTTPStatusCode": 503}}, "GetObject")

    client.meta.events.register("before-parameter-build.s3.GetObject", slow_down)
    for name in ("sns-s3-put.json", "eventbridge-s3-object-created.json"):
        with pytest.raises(lambda_entry.RetryableFailure):
            lambda_entry.handler(load_event(name), lambda_context)

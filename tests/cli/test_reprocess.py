"""`imgproc reprocess` library parts against moto: classifying sources, queue messages the handler
reads, Ctrl-C while sending, the Batch Operations manifest, --since."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import boto3
import pytest
from rich.console import Console

from cli.errors import UsageError
from cli.reprocess.batch import manifest_csv
from cli.reprocess.plan import (
    CURRENT,
    FAILED,
    MISSING,
    STALE,
    Deployed,
    DeployedRendition,
    Plan,
    Source,
    classify,
    list_sources,
    parse_since,
)
from cli.reprocess.send import send_to_queue
from core.events import Delivery

IN, OUT = "rp-in", "rp-out"
THUMB = DeployedRendition("thumb", "jpeg", "thumb.jpg", "r-thumb-2")
WEB = DeployedRendition("web", "webp", "web.webp", "r-web-1")


def deployed(**extra) -> Deployed:
    return Deployed(stack="imgproc", input_bucket=IN, output_bucket=OUT, input_prefix="up/", output_prefix="",
                    suffixes=(".jpg",), recipe="set-2", renditions=(THUMB, WEB),
                    presets={"thumb": ("thumb.jpg",), "web": ("web.webp",)}, function_name="imgproc-process", **extra)


@pytest.fixture
def s3(aws):
    client = boto3.client("s3")
    client.create_bucket(Bucket=IN)
    client.create_bucket(Bucket=OUT)
    return client


def source(s3, key: str, body: bytes = b"\xff\xd8 a photo") -> str:
    return s3.put_object(Bucket=IN, Key=key, Body=body)["ETag"].strip('"')


def rendition(s3, key: str, etag: str, own: str | None, set_recipe: str = "set-2") -> None:
    meta = {"imgproc-source-key": "x", "imgproc-source-etag": etag, "imgproc-recipe": set_recipe}
    if own is not None:
        meta["imgproc-rendition-recipe"] = own
    s3.put_object(Bucket=OUT, Key=key, Body=b"r", Metadata=meta)


def test_sources_are_classified_as_the_functions_idempotency_check_judges_them(s3):
    d = deployed()
    tags = {}
    tags["current"] = source(s3, "up/current.jpg")
    rendition(s3, "thumb/up/current.jpg", tags["current"], "r-thumb-2")
    rendition(s3, "web/up/current.webp", tags["current"], "r-web-1")
    tags["preset"] = source(s3, "up/preset.jpg")
    rendition(s3, "thumb/up/preset.jpg", tags["preset"], "r-thumb-1")  # made before the thumb preset changed
    rendition(s3, "web/up/preset.webp", tags["preset"], "r-web-1")
    tags["old"] = source(s3, "up/old.jpg")
    rendition(s3, "thumb/up/old.jpg", tags["old"], None)  # written before renditions kept their own recipe
    rendition(s3, "web/up/old.webp", tags["old"], None)
    tags["replaced"] = source(s3, "up/replaced.jpg")
    rendition(s3, "thumb/up/replaced.jpg", "0" * 32, "r-thumb-2")  # from the previous upload
    rendition(s3, "web/up/replaced.webp", "0" * 32, "r-web-1")
    source(s3, "up/never.jpg")
    source(s3, "up/corrupt.jpg")
    source(s3, "up/fixed.jpg")
    source(s3, "up/notes.txt")  # no suffix match: the function never sees it
    source(s3, "elsewhere/a.jpg")  # outside the input prefix
    sources = list_sources(s3, d)
    uploaded = {s.key: s.modified for s in sources}
    failures = {"up/corrupt.jpg": (uploaded["up/corrupt.jpg"] + 5, "NotAnImage: up/corrupt.jpg"),
                "up/fixed.jpg": (uploaded["up/fixed.jpg"] - 60, "NotAnImage: before the re-upload")}

    classify(s3, d, sources, d.renditions, failures)

    found = {s.key: s.category for s in sources}
    assert found == {"up/current.jpg": CURRENT, "up/old.jpg": CURRENT, "up/preset.jpg": STALE,
                     "up/replaced.jpg": STALE, "up/never.jpg": MISSING, "up/corrupt.jpg": FAILED,
                     "up/fixed.jpg": MISSING}
    by_key = {s.key: s for s in sources}
    assert by_key["up/preset.jpg"].renditions == {"thumb.jpg": "stale-recipe", "web.webp": CURRENT}
    assert by_key["up/replaced.jpg"].renditions == {"thumb.jpg": "stale-source", "web.webp": "stale-source"}
    plan = Plan(d, sources)
    assert sorted(s.key for s in plan.to_send) == ["up/fixed.jpg", "up/never.jpg", "up/preset.jpg", "up/replaced.jpg"]
    assert plan.rendition_counts() == {"missing": 4, "stale-recipe": 1, "stale-source": 2}
    assert "up/corrupt.jpg" in {s.key for s in Plan(d, sources, retry_failed=True).to_send}


def test_preset_filter_checks_only_that_presets_renditions(s3):
    d = deployed()
    etag = source(s3, "up/a.jpg")
    rendition(s3, "web/up/a.webp", etag, "r-web-1")  # the thumb is missing
    sources = list_sources(s3, d)
    classify(s3, d, sources, d.selected(["web"]), {})
    assert sources[0].category == CURRENT and sources[0].renditions == {"web.webp": CURRENT}
    with pytest.raises(UsageError, match="--preset hero: the deployed function renders thumb, web"):
        d.selected(["hero"])


def test_queue_messages_are_s3_events_the_handlers_sqs_route_reads(aws):
    sqs = boto3.client("sqs")
    url = sqs.create_queue(QueueName="uploads")["QueueUrl"]
    d = deployed(queue_url=url)
    sources = [Source(f"up/photo {i}+é.jpg", f"{i:032x}", 100 + i, 0.0) for i in range(13)]

    report = send_to_queue(sqs, d, sources, Console(quiet=True))

    assert (report.how, report.sent, report.failed, report.interrupted) == ("queue", 13, [], False)
    received = []
    while True:
        batch = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", [])
        if not batch:
            break
        received += batch
        sqs.delete_message_batch(QueueUrl=url, Entries=[{"Id": m["MessageId"], "ReceiptHandle": m["ReceiptHandle"]}
                                                        for m in batch])
    event = {"Records": [{"eventSource": "aws:sqs", "messageId": m["MessageId"], "body": m["Body"]}
                         for m in received]}
    delivery = Delivery.parse(event)
    records = [r for m in delivery.messages for r in m.records]
    assert delivery.source == "sqs" and all(m.problem is None for m in delivery.messages)
    assert sorted(r.key for r in records) == sorted(s.key for s in sources)
    assert all(r.is_created and r.bucket == IN for r in records)
    assert {r.key: r.etag for r in records}["up/photo 3+é.jpg"] == f"{3:032x}"


def test_ctrl_c_stops_sending_and_what_was_sent_stays_sent(aws):
    sqs = boto3.client("sqs")
    url = sqs.create_queue(QueueName="uploads")["QueueUrl"]
    calls = []

    def interrupt_the_second_batch(**_):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt

    sqs.meta.events.register("before-call.sqs.SendMessageBatch", interrupt_the_second_batch)
    sources = [Source(f"up/{i}.jpg", "e", 1, 0.0) for i in range(35)]

    report = send_to_queue(sqs, deployed(queue_url=url), sources, Console(quiet=True))

    assert report.interrupted and report.sent == 10 and report.total == 35
    attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages"])
    assert attributes["Attributes"]["ApproximateNumberOfMessages"] == "10"


def test_the_manifest_lists_bucket_and_url_encoded_key():
    rows = manifest_csv(deployed(), [Source("up/cat 1+x,é.jpg", "e", 1, 0.0)]).decode()
    assert rows == "rp-in,up/cat%201%2Bx%2C%C3%A9.jpg\n"


def test_since_takes_a_date_an_iso_time_or_a_duration():
    now = datetime(2026, 11, 30, 12, 0, tzinfo=UTC).timestamp()
    assert parse_since("90m", now) == now - 5400
    assert parse_since("7d", now) == now - 7 * 86400
    assert parse_since("2026-11-01", now) == datetime(2026, 11, 1, tzinfo=UTC).timestamp()
    assert parse_since("2026-11-01T10:00:00Z", now) == datetime(2026, 11, 1, 10, tzinfo=UTC).timestamp()
    with pytest.raises(UsageError, match="--since 'yesterday'"):
        parse_since("yesterday", now)


def test_plan_json_has_counts_and_every_item():
    d = deployed()
    plan = Plan(d, [Source("up/a.jpg", "e", 1, 0.0, MISSING, {"thumb.jpg": MISSING, "web.webp": CURRENT})])
    doc = json.loads(json.dumps(plan.as_json()))
    assert doc["counts"] == {"current": 0, "missing": 1, "stale": 0, "failed": 0} and doc["to_send"] == 1
    assert doc["items"][0]["renditions"] == {"thumb.jpg": "missing", "web.webp": "current"}


def test_reprocess_looks_for_renditions_where_the_functions_naming_puts_them(s3):
    # [output] naming = "extension" keeps cat.jpg and cat.png apart: the plan must use the same names.
    etag = source(s3, "up/cat.jpg")
    rendition(s3, "thumb/up/cat.jpg.jpg", etag, THUMB.recipe)
    rendition(s3, "web/up/cat.jpg.webp", etag, WEB.recipe)
    d = deployed(naming="extension")
    assert d.output_key("up/cat.jpg", THUMB) == "thumb/up/cat.jpg.jpg"
    sources = list_sources(s3, d)
    classify(s3, d, sources, d.renditions, {})
    assert [(s.key, s.category) for s in sources] == [("up/cat.jpg", CURRENT)]
    assert Plan(d, sources).to_send == []

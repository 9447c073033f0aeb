"""S3 event views: every record, every key decoded, in AWS's, moto's and LocalStack's encodings."""

from __future__ import annotations

import pytest

from core.events import S3Event, S3Record, decode_key, encode_key, put_event

from testdata import load_event

DECODED = {
    "aws-put.json": ["uploads/My Photo (1).JPG"],
    "aws-multi.json": [
        "uploads/cat 1.jpg",
        "uploads/c++ notes/a+b=c.jpg",
        "uploads/été/写真 2026.jpg",
        "uploads/2026/11/26/a/b/c/d/photo (copy).png",
    ],
    "moto-put.json": ["uploads/deep/er/a+b (1) é/ünï 写真.jpg"],
    "localstack-put.json": ["uploads/cat 1 (2)+x é.jpg"],
}


@pytest.mark.parametrize("name", sorted(DECODED))
def test_every_record_is_read_and_every_key_decoded(name):
    event = S3Event.parse(load_event(name))
    assert [r.key for r in event.records] == DECODED[name]
    assert all(r.is_created and not r.is_removed for r in event.records)
    assert all(r.bucket == "imgproc-in" for r in event.records)


def test_record_fields_come_from_the_event():
    rec = S3Event.parse(load_event("aws-put.json")).records[0]
    assert rec.event_name == "ObjectCreated:Put"
    assert rec.raw_key == "uploads/My+Photo+%281%29.JPG"
    assert rec.size == 1024
    assert rec.etag == "0123456789abcdef0123456789abcdef"
    assert rec.region == "us-east-1"
    assert rec.sequencer == "0062E1A3B6C4A2F1D0"


@pytest.mark.parametrize("name", ["aws-test-event.json", "moto-test-event.json"])
def test_the_s3_test_event_is_recognised(name):
    event = S3Event.parse(load_event(name))
    assert event.is_test_event
    assert event.records == ()
    assert event.test_bucket == "imgproc-in"


@pytest.mark.parametrize("name", ["aws-removed.json", "moto-removed.json"])
def test_object_removed_is_not_a_created_record(name):
    (rec,) = S3Event.parse(load_event(name)).records
    assert rec.is_removed and not rec.is_created
    assert rec.key.startswith("uploads/")


def test_the_three_encodings_of_one_key_decode_alike():
    # EMULATORS.md: the same upload as AWS, moto and LocalStack encode it
    assert {decode_key(k) for k in ("uploads/cat+1.jpg", "uploads%2Fcat+1.jpg", "uploads/cat%201.jpg")} == {
        "uploads/cat 1.jpg"
    }


@pytest.mark.parametrize(
    "key, encoded",
    [
        ("my photo (1).jpg", "my+photo+%281%29.jpg"),
        ("uploads/cat 1.jpg", "uploads/cat+1.jpg"),
        ("c++/a+b.jpg", "c%2B%2B/a%2Bb.jpg"),
        ("été/写真.jpg", "%C3%A9t%C3%A9/%E5%86%99%E7%9C%9F.jpg"),
        ("dt=2026-11-26/x.jpg", "dt%3D2026-11-26/x.jpg"),
    ],
)
def test_keys_are_encoded_as_aws_encodes_them(key, encoded):
    assert encode_key(key) == encoded
    assert decode_key(encoded) == key


def test_put_event_has_the_shape_of_a_real_aws_event():
    real = load_event("aws-put.json")["Records"][0]
    built = put_event("imgproc-in", ["uploads/My Photo (1).JPG"], sizes={"uploads/My Photo (1).JPG": 1024})["Records"][0]
    assert set(built) == set(real)
    assert set(built["s3"]) == set(real["s3"])
    assert set(built["s3"]["object"]) == set(real["s3"]["object"])
    assert built["s3"]["object"]["key"] == real["s3"]["object"]["key"]
    assert S3Record.parse(built).key == "uploads/My Photo (1).JPG"


def test_put_event_with_several_keys_has_one_record_each():
    event = S3Event.parse(put_event("b-in", ["a.jpg", "b c.jpg"]))
    assert [r.key for r in event.records] == ["a.jpg", "b c.jpg"]


@pytest.mark.parametrize(
    "raw, problem",
    [
        ("nope", "not a JSON object"),
        ({"eventSource": "aws:sqs", "body": "{}"}, "not an S3 record (aws:sqs)"),
        ({"eventSource": "aws:s3", "eventName": "ObjectCreated:Put", "s3": {"bucket": {"name": "b"}, "object": {}}},
         "without bucket or key"),
    ],
)
def test_records_that_are_not_s3_records_carry_a_problem_instead_of_raising(raw, problem):
    rec = S3Record.parse(raw)
    assert problem in rec.problem
    assert not rec.is_created


@pytest.mark.parametrize("event", [{}, {"Records": "x"}, [], None])
def test_events_without_records_parse_to_no_records(event):
    assert S3Event.parse(event).records == ()

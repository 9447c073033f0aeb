"""Failure paths that need exact AWS answers: a throttled GetObject (S3 Stubber) and
Rekognition labels (moto's DetectLabels is canned, so Rekognition is stubbed)."""

from __future__ import annotations

import io
import json
import os

import boto3
import pytest
from botocore.response import StreamingBody
from botocore.stub import ANY, Stubber

import lambda_entry
from core.events import put_event
from core.recipe import builtin_config

from imaging import decode, encode, photo

IN, OUT = "imgproc-in", "imgproc-out"
RENDITIONS = builtin_config().select()


@pytest.fixture
def env(monkeypatch):
    monkeypatch.setenv("IMGPROC_OUTPUT_BUCKET", OUT)
    monkeypatch.setenv("IMGPROC_INPUT_BUCKET", IN)
    for var in ("IMGPROC_PRESETS", "IMGPROC_OUTPUT_PREFIX", "IMGPROC_INPUT_PREFIX", "IMGPROC_CONFIG"):
        monkeypatch.delenv(var, raising=False)
    lambda_entry.reset()
    yield monkeypatch
    lambda_entry.reset()


def use_clients(monkeypatch, **clients):
    """Install a cold-start runtime whose clients are the given (stubbed or moto) ones."""
    runtime = lambda_entry.Runtime.from_env(os.environ, client_factory=lambda service: clients[service])
    monkeypatch.setattr(lambda_entry, "_RUNTIME", runtime)
    return runtime


def image_lines(capsys):
    lines = [json.loads(x) for x in capsys.readouterr().out.splitlines() if x.strip()]
    return [x for x in lines if x.get("event") == "image"]


def test_a_throttled_get_object_raises_after_every_record_is_handled(env, lambda_context, capsys):
    s3 = boto3.client("s3", region_name="us-east-1")
    data = encode(photo(320, 240))
    stub = Stubber(s3)
    # a.jpg: found, no outputs yet, then GetObject is throttled (after botocore's own retries)
    stub.add_response("head_object", {"ContentLength": len(data), "ETag": '"aaa"', "Metadata": {}},
                      {"Bucket": IN, "Key": "a.jpg"})
    for _ in RENDITIONS:
        stub.add_client_error("head_object", "404", "Not Found", 404)
    stub.add_client_error("get_object", "SlowDown", "Please reduce your request rate.", 503)
    # b.jpg: processed normally after a.jpg failed
    stub.add_response("head_object", {"ContentLength": len(data), "ETag": '"bbb"', "Metadata": {}},
                      {"Bucket": IN, "Key": "b.jpg"})
    for _ in RENDITIONS:
        stub.add_client_error("head_object", "404", "Not Found", 404)
    # pinned to the ETag HeadObject saw and to one byte over the size limit
    limit = builtin_config().limits.max_source_bytes
    stub.add_response("get_object", {"Body": StreamingBody(io.BytesIO(data), len(data))},
                      {"Bucket": IN, "Key": "b.jpg", "IfMatch": '"bbb"', "Range": f"bytes=0-{limit}"})
    for r in RENDITIONS:
        stub.add_response("put_object", {"ETag": '"x"'}, {
            "Bucket": OUT, "Key": f"{r.name}/b.{r.ext}", "Body": ANY, "ContentType": r.content_type,
            "Metadata": ANY, "CacheControl": "public, max-age=31536000, immutable",
            "IfNoneMatch": "*"})  # a new key: never replaces what another source wrote meanwhile
    use_clients(env, s3=s3)

    with stub, pytest.raises(lambda_entry.RetryableFailure, match="1 of 2 images failed for a transient reason"):
        lambda_entry.handler(put_event(IN, ["a.jpg", "b.jpg"]), lambda_context)

    stub.assert_no_pending_responses()  # b.jpg was fully processed before the raise
    a, b = image_lines(capsys)
    assert a["outcome"] == "failed" and a["error"] == {
        "type": "TransientStorageError", "message": "s3://imgproc-in/a.jpg: SlowDown", "transient": True}
    assert b["outcome"] == "ok" and [r["outcome"] for r in b["renditions"]] == ["written"] * len(RENDITIONS)


def test_a_permanent_storage_error_does_not_raise(env, lambda_context, capsys):
    s3 = boto3.client("s3", region_name="us-east-1")
    stub = Stubber(s3)
    stub.add_client_error("head_object", "403", "Forbidden", 403)
    use_clients(env, s3=s3)
    with stub:
        result = lambda_entry.handler(put_event(IN, ["private.jpg"]), lambda_context)
    assert result == {"ok": 0, "failed": 1, "skipped": 0}
    (line,) = image_lines(capsys)
    assert line["error"]["type"] == "StorageError" and line["error"]["transient"] is False


# --- Rekognition -------------------------------------------------------------------------------

LABELS = {
    "Labels": [
        {"Name": "Pet", "Confidence": 97.25, "Parents": [{"Name": "Animal"}]},
        {"Name": "Dog", "Confidence": 99.41, "Parents": [{"Name": "Pet"}, {"Name": "Animal"}]},
        {"Name": "Golden Retriever", "Confidence": 88.0, "Parents": [{"Name": "Dog"}]},
    ],
    "LabelModelVersion": "3.0",
}


@pytest.fixture
def buckets(aws):
    s3 = boto3.client("s3")
    s3.create_bucket(Bucket=IN)
    s3.create_bucket(Bucket=OUT)
    s3.put_object(Bucket=IN, Key="uploads/dog 1.jpg", Body=encode(photo(1200, 800)))
    return s3


def test_labels_become_a_sidecar_and_tags_on_every_rendition(env, buckets, lambda_context, capsys):
    env.setenv("IMGPROC_REKOGNITION", "on")
    rekognition = boto3.client("rekognition")
    sent = []
    rekognition.meta.events.register("before-parameter-build.rekognition.DetectLabels",
                                     lambda params, **kw: sent.append(params["Image"]["Bytes"]))
    stub = Stubber(rekognition)
    stub.add_response("detect_labels", LABELS, {"Image": {"Bytes": ANY}, "MaxLabels": 20, "MinConfidence": 70.0})
    use_clients(env, s3=buckets, rekognition=rekognition)

    with stub:
        result = lambda_entry.handler(put_event(IN, ["uploads/dog 1.jpg"]), lambda_context)

    stub.assert_no_pending_responses()  # exactly one DetectLabels for the source
    assert result["ok"] == 1
    assert decode(sent[0]).size == (1200, 800) and decode(sent[0]).format == "JPEG"  # the web JPEG, under 5 MB
    sidecar = buckets.get_object(Bucket=OUT, Key="labels/uploads/dog 1.jpg.json")
    assert sidecar["ContentType"] == "application/json"
    doc = json.loads(sidecar["Body"].read())
    assert doc["source_key"] == "uploads/dog 1.jpg"
    assert [(x["name"], x["confidence"]) for x in doc["labels"]] == [("Dog", 99.41), ("Pet", 97.25),
                                                                      ("Golden Retriever", 88.0)]
    assert doc["labels"][0]["parents"] == ["Pet", "Animal"]
    for key in ("thumb/uploads/dog 1.jpg", "web/uploads/dog 1.jpg", "web/uploads/dog 1.webp"):
        tags = {t["Key"]: t["Value"] for t in buckets.get_object_tagging(Bucket=OUT, Key=key)["TagSet"]}
        assert tags == {"Dog": "99.4", "Pet": "97.2", "Golden Retriever": "88.0"}
    (line,) = image_lines(capsys)
    assert line["labels"]["outcome"] == "ok" and line["labels"]["names"] == ["Dog", "Pet", "Golden Retriever"]


def test_a_rekognition_failure_never_loses_the_renditions(env, buckets, lambda_context, capsys):
    env.setenv("IMGPROC_REKOGNITION", "on")
    rekognition = boto3.client("rekognition")
    stub = Stubber(rekognition)
    stub.add_client_error("detect_labels", "AccessDeniedException", "not authorized", 400)
    use_clients(env, s3=buckets, rekognition=rekognition)

    with stub:
        result = lambda_entry.handler(put_event(IN, ["uploads/dog 1.jpg"]), lambda_context)

    assert result == {"ok": 1, "failed": 0, "skipped": 0}
    keys = sorted(o["Key"] for o in buckets.list_objects_v2(Bucket=OUT)["Contents"])
    assert keys == ["thumb/uploads/dog 1.jpg", "web/uploads/dog 1.jpg", "web/uploads/dog 1.webp"]
    (line,) = image_lines(capsys)
    assert line["outcome"] == "ok"
    assert line["labels"]["outcome"] == "failed" and line["labels"]["error"]["type"] == "AccessDeniedException"


def test_rekognition_is_not_called_when_off(env, buckets, lambda_context, capsys):
    rekognition = boto3.client("rekognition")
    stub = Stubber(rekognition)  # no responses queued: any call would fail the test
    use_clients(env, s3=buckets, rekognition=rekognition)
    with stub:
        assert lambda_entry.handler(put_event(IN, ["uploads/dog 1.jpg"]), lambda_context)["ok"] == 1
    assert "labels" not in image_lines(capsys)[0]


def test_a_forbidden_head_on_an_output_still_writes_it(env, lambda_context, capsys):
    # Without s3:ListBucket on the output bucket, S3 answers HEAD of a missing key with 403.
    env.setenv("IMGPROC_PRESETS", "thumb")
    s3 = boto3.client("s3", region_name="us-east-1")
    data = encode(photo(320, 240))
    stub = Stubber(s3)
    stub.add_response("head_object", {"ContentLength": len(data), "ETag": '"aaa"', "Metadata": {}})
    stub.add_client_error("head_object", "403", "Forbidden", 403)
    stub.add_response("get_object", {"Body": StreamingBody(io.BytesIO(data), len(data))})
    stub.add_response("put_object", {"ETag": '"x"'}, {
        "Bucket": OUT, "Key": "thumb/a.jpg", "Body": ANY, "ContentType": "image/jpeg", "Metadata": ANY,
        "CacheControl": "public, max-age=31536000, immutable", "IfNoneMatch": "*"})
    use_clients(env, s3=s3)
    with stub:
        assert lambda_entry.handler(put_event(IN, ["a.jpg"]), lambda_context)["ok"] == 1
    stub.assert_no_pending_responses()

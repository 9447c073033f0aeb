"""The handler's side of `imgproc reprocess`: per-rendition recipes, S3 Batch Operations tasks
(schemas 1.0 and 2.0), deletes that follow sources, and the describe answer."""

from __future__ import annotations

import json
from urllib.parse import quote

import pytest

import lambda_entry
from core.batchops import PERMANENT_FAILURE, SUCCEEDED, TEMPORARY_FAILURE, BatchEvent, result_for
from core.events import put_event

from imaging import decode, encode, photo

IN, OUT = "imgproc-in", "imgproc-out"

PRESETS = """
[presets.thumb]
[[presets.thumb.renditions]]
name = "thumb"
width = {thumb}
height = {thumb}
format = "jpeg"

[presets.web]
[[presets.web.renditions]]
name = "web"
width = 400
height = 400
format = ["jpeg", "webp"]
"""


@pytest.fixture
def s3(handler_s3, monkeypatch, tmp_path):
    use_presets(monkeypatch, tmp_path, thumb=100)
    return handler_s3


def use_presets(monkeypatch, tmp_path, thumb: int) -> None:
    """A new deployment of the presets file: the function's next cold start reads it."""
    path = tmp_path / f"imgproc-{thumb}.toml"
    path.write_text(PRESETS.format(thumb=thumb))
    monkeypatch.setenv("IMGPROC_CONFIG", str(path))
    lambda_entry.reset()


def upload(s3, key: str, fmt: str = "JPEG", seed: int = 1) -> None:
    s3.put_object(Bucket=IN, Key=key, Body=encode(photo(800, 600, seed=seed), fmt))


def handle(event, context, capsys):
    result = lambda_entry.handler(event, context)
    lines = [json.loads(x) for x in capsys.readouterr().out.splitlines() if x.strip()]
    return result, [x for x in lines if "_aws" not in x]


def outcomes(line) -> dict[str, str]:
    return {r["output_key"]: r["outcome"] for r in line["renditions"]}


def batch_event(version: str, tasks: list[tuple[str, str]]) -> dict:
    def task(i: int, key: str, bucket: str) -> dict:
        where = {"s3Bucket": bucket} if version == "2.0" else {"s3BucketArn": f"arn:aws:s3:::{bucket}"}
        return {"taskId": f"task-{i}", "s3Key": quote(key, safe="/"), "s3VersionId": None, **where}

    job: dict = {"id": "job-1"}
    if version == "2.0":
        job["userArguments"] = {"origin": "imgproc-reprocess"}
    return {"invocationSchemaVersion": version, "invocationId": "inv-1", "job": job,
            "tasks": [task(i, key, bucket) for i, (bucket, key) in enumerate(tasks)]}


# --- a preset change re-renders exactly the affected renditions -----------------------------


def test_every_rendition_records_its_source_and_its_own_recipe(s3, lambda_context, capsys):
    upload(s3, "up/a.jpg")
    handle(put_event(IN, ["up/a.jpg"]), lambda_context, capsys)
    etag = s3.head_object(Bucket=IN, Key="up/a.jpg")["ETag"].strip('"')
    described = lambda_entry.handler({"imgproc": "describe"}, lambda_context)
    own = {r["label"]: r["recipe"] for r in described["renditions"]}

    for label, key in (("thumb.jpg", "thumb/up/a.jpg"), ("web.jpg", "web/up/a.jpg"), ("web.webp", "web/up/a.webp")):
        meta = s3.head_object(Bucket=OUT, Key=key)["Metadata"]
        assert meta["imgproc-source-key"] == "up/a.jpg" and meta["imgproc-source-etag"] == etag
        assert meta["imgproc-recipe"] == described["recipe"]
        assert meta["imgproc-rendition-recipe"] == own[label]
    assert len(set(own.values())) == 3


def test_a_preset_change_rewrites_only_that_presets_renditions(s3, lambda_context, capsys, monkeypatch, tmp_path):
    upload(s3, "up/a.jpg")
    event = put_event(IN, ["up/a.jpg"])
    handle(event, lambda_context, capsys)
    before = {k: s3.head_object(Bucket=OUT, Key=k)["ETag"] for k in ("web/up/a.jpg", "web/up/a.webp")}

    use_presets(monkeypatch, tmp_path, thumb=150)
    _, (line,) = handle(event, lambda_context, capsys)

    assert outcomes(line) == {"thumb/up/a.jpg": "written", "web/up/a.jpg": "unchanged", "web/up/a.webp": "unchanged"}
    assert decode(s3.get_object(Bucket=OUT, Key="thumb/up/a.jpg")["Body"].read()).size == (150, 113)
    assert {k: s3.head_object(Bucket=OUT, Key=k)["ETag"] for k in before} == before
    _, (again,) = handle(event, lambda_context, capsys)
    assert again["outcome"] == "skipped" and "already processed" in again["reason"]


def test_outputs_from_before_rendition_recipes_are_judged_by_the_set_recipe(s3, lambda_context, capsys):
    upload(s3, "up/a.jpg")
    event = put_event(IN, ["up/a.jpg"])
    handle(event, lambda_context, capsys)
    for key in ("thumb/up/a.jpg", "web/up/a.jpg", "web/up/a.webp"):  # as an older function wrote them
        meta = s3.head_object(Bucket=OUT, Key=key)["Metadata"]
        del meta["imgproc-rendition-recipe"]
        s3.copy_object(Bucket=OUT, Key=key, CopySource={"Bucket": OUT, "Key": key}, Metadata=meta,
                       MetadataDirective="REPLACE")

    _, (line,) = handle(event, lambda_context, capsys)

    assert line["outcome"] == "skipped" and set(outcomes(line).values()) == {"unchanged"}


# --- S3 Batch Operations ---------------------------------------------------------------------


@pytest.mark.parametrize("version", ["1.0", "2.0"])
def test_batch_operations_tasks_get_a_result_code_each(s3, lambda_context, capsys, version):
    upload(s3, "up/cat 1+x.jpg")
    s3.put_object(Bucket=IN, Key="up/broken.jpg", Body=b"\xff\xd8 not a jpeg")
    event = batch_event(version, [(IN, "up/cat 1+x.jpg"), (IN, "up/broken.jpg"), (IN, "up/gone.jpg")])

    answer, lines = handle(event, lambda_context, capsys)

    assert answer["invocationSchemaVersion"] == version and answer["invocationId"] == "inv-1"
    assert answer["treatMissingKeysAs"] == PERMANENT_FAILURE
    codes = {r["taskId"]: r["resultCode"] for r in answer["results"]}
    assert codes == {"task-0": SUCCEEDED, "task-1": PERMANENT_FAILURE, "task-2": PERMANENT_FAILURE}
    assert "3 rendition(s) written" == answer["results"][0]["resultString"]
    assert "broken.jpg" in answer["results"][1]["resultString"]
    assert s3.head_object(Bucket=OUT, Key="thumb/up/cat 1+x.jpg")["Metadata"]["imgproc-source-key"]
    assert [x["key"] for x in lines] == ["up/cat 1+x.jpg", "up/broken.jpg", "up/gone.jpg"]
    assert {x["route"] for x in lines} == {"batchops"} and lines[0]["job_id"] == "job-1"

    again, _ = handle(event, lambda_context, capsys)
    assert again["results"][0] == {"taskId": "task-0", "resultCode": SUCCEEDED, "resultString": "up to date"}


def test_a_transient_failure_is_a_temporary_failure_s3_retries():
    code, text = result_for({"outcome": "failed", "error": {"type": "TransientStorageError",
                                                            "message": "503 SlowDown", "transient": True}})
    assert (code, text) == (TEMPORARY_FAILURE, "TransientStorageError: 503 SlowDown")


def test_an_unknown_schema_fails_every_task_permanently(s3, lambda_context, capsys):
    event = batch_event("1.0", [(IN, "up/a.jpg")])
    event["invocationSchemaVersion"] = "9.9"
    answer, lines = handle(event, lambda_context, capsys)
    assert answer["results"][0]["resultCode"] == PERMANENT_FAILURE
    assert "schema '9.9'" in answer["results"][0]["resultString"]
    assert lines[-1]["level"] == "ERROR"
    assert BatchEvent.parse({"Records": []}) is None


# --- deletes follow sources --------------------------------------------------------------------


def deleted(key: str) -> dict:
    event = put_event(IN, [key])
    event["Records"][0]["eventName"] = "ObjectRemoved:Delete"
    return event


def keys(s3) -> set[str]:
    return {o["Key"] for o in s3.list_objects_v2(Bucket=OUT).get("Contents", [])}


def test_a_deleted_source_takes_its_renditions_and_never_another_sources(s3, lambda_context, capsys, monkeypatch):
    monkeypatch.setenv("IMGPROC_ON_DELETE", "remove")
    lambda_entry.reset()
    upload(s3, "up/a.png", fmt="PNG", seed=2)
    handle(put_event(IN, ["up/a.png"]), lambda_context, capsys)  # makes thumb/up/a.jpg too
    mine = s3.get_object(Bucket=OUT, Key="thumb/up/a.jpg")["Body"].read()
    upload(s3, "up/b.jpg")
    handle(put_event(IN, ["up/b.jpg"]), lambda_context, capsys)
    s3.put_object(Bucket=OUT, Key="labels/up/b.jpg.json", Body=b"{}",
                  Metadata={"imgproc-source-key": "up/b.jpg", "imgproc-source-etag": "x"})
    s3.delete_object(Bucket=IN, Key="up/b.jpg")
    s3.delete_object(Bucket=IN, Key="up/a.jpg")  # never existed: its stem's outputs are a.png's

    _, (line_b,) = handle(deleted("up/b.jpg"), lambda_context, capsys)
    _, (line_a,) = handle(deleted("up/a.jpg"), lambda_context, capsys)

    assert line_b["event"] == "removed" and line_b["outcome"] == "ok"
    assert set(outcomes(line_b).values()) == {"removed"}
    assert keys(s3) == {"thumb/up/a.jpg", "web/up/a.jpg", "web/up/a.webp"}
    assert line_a["outcome"] == "skipped" and set(outcomes(line_a).values()) == {"kept"}
    assert s3.get_object(Bucket=OUT, Key="thumb/up/a.jpg")["Body"].read() == mine


def test_a_source_uploaded_again_before_the_delete_event_keeps_its_renditions(s3, lambda_context, capsys,
                                                                               monkeypatch):
    monkeypatch.setenv("IMGPROC_ON_DELETE", "remove")
    lambda_entry.reset()
    upload(s3, "up/b.jpg")
    handle(put_event(IN, ["up/b.jpg"]), lambda_context, capsys)
    _, (line,) = handle(deleted("up/b.jpg"), lambda_context, capsys)  # the source is still there
    assert line["outcome"] == "skipped" and "exists again" in line["reason"]
    assert len(keys(s3)) == 3


def test_deletes_are_ignored_unless_on_delete_is_remove(s3, lambda_context, capsys):
    upload(s3, "up/b.jpg")
    handle(put_event(IN, ["up/b.jpg"]), lambda_context, capsys)
    s3.delete_object(Bucket=IN, Key="up/b.jpg")
    _, (line,) = handle(deleted("up/b.jpg"), lambda_context, capsys)
    assert line["outcome"] == "skipped" and "ignored" in line["reason"]
    assert len(keys(s3)) == 3


def test_describe_says_how_the_function_names_its_outputs(s3, lambda_context):
    described = lambda_entry.handler({"imgproc": "describe"}, lambda_context)
    assert described["naming"] == "stem"

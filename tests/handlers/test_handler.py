"""lambda_entry.handler against moto: uploads -> renditions, keys in every encoding, failures, guards, logs."""

from __future__ import annotations

import json
from pathlib import PurePosixPath
from urllib.parse import unquote

import pytest

import lambda_entry
from core.events import S3Event, put_event
from core.jobs import CACHE_CONTROL
from core.naming import s3_output_key
from core.recipe import builtin_config

from imaging import decode, encode, photo, psnr, reference_resize
from testdata import load_event

IN, OUT = "imgproc-in", "imgproc-out"
RENDITIONS = builtin_config().select()


@pytest.fixture
def s3(handler_s3):
    """moto buckets and a fresh handler cold start, configured like a deployed function."""
    return handler_s3


def invoke(event, context, capsys):
    """Run the handler; return its result and the JSON lines it printed (image lines, EMF lines)."""
    result = lambda_entry.handler(event, context)
    return result, *split_lines(capsys)


def split_lines(capsys):
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.strip()]
    return [x for x in lines if "_aws" not in x], [x for x in lines if "_aws" in x]


def upload(s3, key, data=None, **extra):
    if data is None:
        fmt = "PNG" if key.lower().endswith(".png") else "JPEG"
        data = encode(photo(800, 600, seed=len(key)), fmt)
    s3.put_object(Bucket=IN, Key=key, Body=data, **extra)
    return data


def output_keys(s3):
    return sorted(o["Key"] for o in s3.list_objects_v2(Bucket=OUT).get("Contents", []))


def count_calls(client, operation):
    """Count real calls of one S3 operation made by the handler's own client."""
    calls = []
    client.meta.events.register(f"before-parameter-build.s3.{operation}", lambda params, **kw: calls.append(params.get("Key")))
    return calls


# --- the happy path -----------------------------------------------------------------------


def test_upload_to_renditions_with_type_cache_control_and_metadata(s3, lambda_context, capsys):
    key = "uploads/My Photo (1).JPG"
    src = photo(1200, 900)
    upload(s3, key, encode(src, "JPEG", quality=95))
    etag = s3.head_object(Bucket=IN, Key=key)["ETag"].strip('"')

    result, lines, _ = invoke(load_event("aws-put.json"), lambda_context, capsys)

    assert result == {"ok": 1, "failed": 0, "skipped": 0}
    assert output_keys(s3) == sorted(["thumb/uploads/My Photo (1).jpg", "web/uploads/My Photo (1).jpg",
                                      "web/uploads/My Photo (1).webp"])
    assert lines[0]["outcome"] == "ok"
    recipe = None
    for r in RENDITIONS:
        out_key = s3_output_key("", key, r)
        obj = s3.get_object(Bucket=OUT, Key=out_key)
        assert obj["ContentType"] == r.content_type
        assert obj["CacheControl"] == CACHE_CONTROL == "public, max-age=31536000, immutable"
        meta = obj["Metadata"]
        assert meta["imgproc-source-key"] == "uploads/My%20Photo%20%281%29.JPG"
        assert meta["imgproc-source-etag"] == etag
        assert len(meta["imgproc-recipe"]) == 16
        recipe = recipe or meta["imgproc-recipe"]
        assert meta["imgproc-recipe"] == recipe  # one recipe hash for the set rendered together
        img = decode(obj["Body"].read())
        assert img.format == r.format.upper()
        expected = (200, 150) if r.name == "thumb" else (1200, 900)
        assert img.size == expected
        assert psnr(img, reference_resize(src, expected)) > 27  # thumb is JPEG q80 of a grainy photo


def test_log_line_follows_the_contract(s3, lambda_context, capsys):
    upload(s3, "uploads/cat 1.jpg", encode(photo(640, 480)))
    _, (line,), _ = invoke(put_event(IN, ["uploads/cat 1.jpg"]), lambda_context, capsys)

    assert list(line)[:5] == ["timestamp", "level", "service", "event", "request_id"]
    assert line["timestamp"].endswith("Z") and line["level"] == "INFO" and line["service"] == "imgproc"
    assert line["event"] == "image" and line["request_id"] == lambda_context.aws_request_id
    assert (line["bucket"], line["key"], line["outcome"]) == (IN, "uploads/cat 1.jpg", "ok")
    src = line["source"]
    assert (src["width"], src["height"], src["format"]) == (640, 480, "jpeg")
    assert src["bytes"] == line["bytes_in"] and src["etag"]
    assert {r["output_key"] for r in line["renditions"]} == {
        "thumb/uploads/cat 1.jpg", "web/uploads/cat 1.jpg", "web/uploads/cat 1.webp"}
    for r in line["renditions"]:
        assert set(r) == {"name", "format", "output_key", "bytes", "width", "height", "ms", "outcome"}
        assert r["outcome"] == "written" and r["bytes"] > 0
    assert line["bytes_out"] == sum(r["bytes"] for r in line["renditions"])
    assert set(line["ms"]) >= {"download", "decode", "transform", "encode", "upload", "total"}
    assert all(v >= 0 for v in line["ms"].values())
    assert "error" not in line and "reason" not in line


def test_emf_lines_parse_with_the_documented_fields(s3, lambda_context, capsys):
    upload(s3, "a.jpg")
    upload(s3, "b.jpg", b"not an image")
    _, lines, emf = invoke(put_event(IN, ["a.jpg", "b.jpg"]), lambda_context, capsys)

    assert len(emf) == len(lines) == 2
    for doc, line in zip(emf, lines, strict=False):
        meta = doc["_aws"]
        assert isinstance(meta["Timestamp"], int)
        (directive,) = meta["CloudWatchMetrics"]
        assert directive["Namespace"] == "imgproc"
        names = {m["Name"] for m in directive["Metrics"]}
        assert names >= {"ImagesProcessed", "ImagesFailed", "ProcessingMs", "BytesIn", "BytesOut"}
        for name in names:
            assert isinstance(doc[name], (int, float))  # every metric has its value at the top level
        for dims in directive["Dimensions"]:
            assert all(d in doc for d in dims)
        assert doc["FunctionName"] == lambda_context.function_name
        assert doc["ProcessingMs"] == line["ms"]["total"]
    assert (emf[0]["ImagesProcessed"], emf[0]["ImagesFailed"]) == (1, 0)
    assert (emf[1]["ImagesProcessed"], emf[1]["ImagesFailed"]) == (0, 1)
    assert emf[0]["BytesOut"] == lines[0]["bytes_out"] > 0


def test_logs_hold_no_image_bytes_or_credentials(s3, lambda_context, capsys, monkeypatch):
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "wJalrXUtnFEMI-imgproc-secret")
    lambda_entry.reset()
    data = upload(s3, "a.jpg", encode(photo(300, 200)))
    lambda_entry.handler(put_event(IN, ["a.jpg"]), lambda_context)
    out = capsys.readouterr().out
    assert "wJalrXUtnFEMI" not in out and "testing" not in out
    assert len(out) < 4000 < len(data)


# --- keys in every encoding; every record -------------------------------------------------------


@pytest.mark.parametrize("name", ["aws-put.json", "aws-multi.json", "moto-put.json", "localstack-put.json"])
def test_keys_in_every_emulators_encoding_reach_the_right_outputs(s3, lambda_context, capsys, name):
    event = load_event(name)
    keys = [r.key for r in S3Event.parse(event).records]
    for key in keys:
        upload(s3, key)

    result, lines, _ = invoke(event, lambda_context, capsys)

    assert result == {"ok": len(keys), "failed": 0, "skipped": 0}
    assert [line["key"] for line in lines] == keys
    assert output_keys(s3) == sorted(s3_output_key("", k, r) for k in keys for r in RENDITIONS)
    for key in keys:  # e.g. "thumb/uploads/c++ notes/a+b=c.jpg": the extension changes, nothing else
        stem = str(PurePosixPath(key).with_suffix(""))
        assert f"thumb/{stem}.jpg" in output_keys(s3)
        meta = s3.head_object(Bucket=OUT, Key=f"thumb/{stem}.jpg")["Metadata"]
        assert meta["imgproc-source-key"].isascii() and unquote(meta["imgproc-source-key"]) == key


def test_a_corrupt_object_among_good_ones(s3, lambda_context, capsys):
    good = encode(photo(400, 300))
    upload(s3, "uploads/one.jpg", good)
    upload(s3, "uploads/broken.jpg", good[: len(good) // 3])
    upload(s3, "uploads/notes.jpg", b"just text, not a JPEG")
    upload(s3, "uploads/two.jpg", good)

    result, lines, _ = invoke(put_event(IN, ["uploads/one.jpg", "uploads/broken.jpg", "uploads/notes.jpg",
                                             "uploads/two.jpg"]), lambda_context, capsys)

    assert result == {"ok": 2, "failed": 2, "skipped": 0}  # permanent failures do not raise
    by_key = {line["key"]: line for line in lines}
    assert by_key["uploads/broken.jpg"]["error"]["type"] == "CorruptImage"
    assert by_key["uploads/notes.jpg"]["error"]["type"] == "NotAnImage"
    for bad in ("uploads/broken.jpg", "uploads/notes.jpg"):
        line = by_key[bad]
        assert line["level"] == "ERROR" and line["outcome"] == "failed"
        assert line["error"]["transient"] is False and bad in line["error"]["message"]
    assert output_keys(s3) == sorted(s3_output_key("", k, r) for k in ("uploads/one.jpg", "uploads/two.jpg")
                                     for r in RENDITIONS)


def test_source_too_large_is_refused_before_download(s3, lambda_context, capsys, monkeypatch):
    monkeypatch.setenv("IMGPROC_MAX_SOURCE_BYTES", "5000")
    upload(s3, "big.jpg", encode(photo(800, 600)))
    gets = count_calls(lambda_entry.runtime().client("s3"), "GetObject")

    result, (line,), _ = invoke(put_event(IN, ["big.jpg"]), lambda_context, capsys)

    assert result["failed"] == 1 and line["error"]["type"] == "SourceTooLarge"
    assert "5,000-byte limit" in line["error"]["message"]
    assert gets == [] and output_keys(s3) == []


def source_gets(client):
    """What each GetObject of the handler's client asked for and how many bytes S3 sent back."""
    gets = []
    client.meta.events.register("before-parameter-build.s3.GetObject",
                                lambda params, **kw: gets.append({"if_match": params.get("IfMatch"),
                                                                  "range": params.get("Range"), "bytes": 0}))
    client.meta.events.register("after-call.s3.GetObject",
                                lambda parsed, **kw: gets[-1].update(bytes=int(parsed.get("ContentLength") or 0)))
    return gets


def after_source_head(client, action):
    """Run ``action(parsed)`` right after the handler's first HeadObject of a source in the input bucket."""
    state = {"source": False, "done": False}

    def before(params, **kw):
        state["source"] = params.get("Bucket") == IN

    def after(parsed, **kw):
        if state["source"] and not state["done"]:
            state["done"] = True
            action(parsed)

    client.meta.events.register("before-parameter-build.s3.HeadObject", before)
    client.meta.events.register("after-call.s3.HeadObject", after)


def test_source_swapped_for_a_huge_one_after_its_size_check_is_not_downloaded(s3, lambda_context, capsys,
                                                                              monkeypatch):
    monkeypatch.setenv("IMGPROC_MAX_SOURCE_BYTES", "100000")
    upload(s3, "uploads/swap.jpg", encode(photo(320, 240)))
    handler_s3 = lambda_entry.runtime().client("s3")
    gets = source_gets(handler_s3)
    huge = b"\xff\xd8" + bytes(2_000_000)  # the attacker's replacement, between HeadObject and GetObject
    after_source_head(handler_s3, lambda parsed: s3.put_object(Bucket=IN, Key="uploads/swap.jpg", Body=huge))

    with pytest.raises(lambda_entry.RetryableFailure):
        lambda_entry.handler(put_event(IN, ["uploads/swap.jpg"]), lambda_context)
    (line,), _ = split_lines(capsys)

    assert line["outcome"] == "failed" and line["error"]["type"] == "SourceChanged"
    assert line["error"]["transient"] is True  # Lambda retries: the retry examines the new object
    assert gets and all(g["bytes"] == 0 and g["if_match"] for g in gets) and output_keys(s3) == []
    # The retry HEADs the replacement and refuses it by size, before downloading a byte.
    result, (line,), _ = invoke(put_event(IN, ["uploads/swap.jpg"]), lambda_context, capsys)
    assert result["failed"] == 1 and line["error"]["type"] == "SourceTooLarge"
    assert all(g["bytes"] == 0 for g in gets)


def test_source_larger_than_its_head_said_is_cut_off_at_the_limit(s3, lambda_context, capsys, monkeypatch):
    # A store that answers HeadObject with a stale size (or ignores If-Match) must still not make the
    # handler download more than the limit: GetObject asks for at most limit + 1 bytes.
    monkeypatch.setenv("IMGPROC_MAX_SOURCE_BYTES", "100000")
    upload(s3, "uploads/grown.jpg", b"\xff\xd8" + bytes(2_000_000))
    handler_s3 = lambda_entry.runtime().client("s3")
    gets = source_gets(handler_s3)
    after_source_head(handler_s3, lambda parsed: parsed.update(ContentLength=5000))

    result, (line,), _ = invoke(put_event(IN, ["uploads/grown.jpg"]), lambda_context, capsys)

    assert result["failed"] == 1 and line["error"]["type"] == "SourceTooLarge"
    assert "100,000-byte limit" in line["error"]["message"]
    assert [g["range"] for g in gets] == ["bytes=0-100000"] and gets[0]["bytes"] == 100_001
    assert output_keys(s3) == []


def test_test_event_and_removed_objects_are_ignored(s3, lambda_context, capsys):
    result, lines, emf = invoke(load_event("moto-test-event.json"), lambda_context, capsys)
    assert result == {"ok": 0, "failed": 0, "skipped": 0}
    assert [(x["event"], x["reason"]) for x in lines] == [("ignored", "s3:TestEvent")] and emf == []

    result, (line,), _ = invoke(load_event("aws-removed.json"), lambda_context, capsys)
    assert result == {"ok": 0, "failed": 0, "skipped": 1}
    assert line["outcome"] == "skipped" and "ObjectRemoved:Delete" in line["reason"]
    assert output_keys(s3) == []


def test_presets_and_output_prefix_from_the_environment(s3, lambda_context, capsys, monkeypatch):
    monkeypatch.setenv("IMGPROC_PRESETS", "thumb")
    monkeypatch.setenv("IMGPROC_OUTPUT_PREFIX", "renditions/")
    upload(s3, "uploads/a.png")
    invoke(put_event(IN, ["uploads/a.png"]), lambda_context, capsys)
    assert output_keys(s3) == ["renditions/thumb/uploads/a.jpg"]


def test_input_prefix_scopes_the_records(s3, lambda_context, capsys, monkeypatch):
    monkeypatch.setenv("IMGPROC_INPUT_PREFIX", "uploads/")
    upload(s3, "other/a.jpg")
    result, (line,), _ = invoke(put_event(IN, ["other/a.jpg"]), lambda_context, capsys)
    assert result["skipped"] == 1 and "IMGPROC_INPUT_PREFIX" in line["reason"]


# --- configuration at cold start ------------------------------------------------------------


def test_cold_start_refuses_a_configuration_that_would_loop(s3, lambda_context, capsys, monkeypatch):
    monkeypatch.setenv("IMGPROC_INPUT_BUCKET", OUT)  # same bucket, whole bucket watched
    upload(s3, "a.jpg")
    with pytest.raises(Exception) as info:
        lambda_entry.handler(put_event(OUT, ["a.jpg"]), lambda_context)
    assert type(info.value).__name__ == "ConfigError"
    (line,) = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert line["event"] == "config_error" and line["level"] == "ERROR"
    assert line["error"]["type"] == "ConfigError" and line["error"]["message"].startswith("IMGPROC_OUTPUT_BUCKET")
    assert output_keys(s3) == []


def test_cold_start_config_errors_name_the_variable(s3, lambda_context, capsys, monkeypatch, tmp_path):
    monkeypatch.setenv("IMGPROC_PRESETS", "thumb,huge")
    with pytest.raises(Exception, match=r"^IMGPROC_PRESETS: unknown preset 'huge'"):
        lambda_entry.handler(put_event(IN, ["a.jpg"]), lambda_context)
    monkeypatch.delenv("IMGPROC_PRESETS")
    monkeypatch.setenv("IMGPROC_CONFIG", str(tmp_path / "missing.toml"))
    lambda_entry.reset()
    with pytest.raises(Exception, match=r"^IMGPROC_CONFIG: .*missing.toml does not exist"):
        lambda_entry.handler(put_event(IN, ["a.jpg"]), lambda_context)


def test_presets_file_from_imgproc_config(s3, lambda_context, capsys, monkeypatch, tmp_path):
    conf = tmp_path / "imgproc.toml"
    conf.write_text('[presets.tiny]\n[[presets.tiny.renditions]]\nname = "tiny"\nwidth = 32\nformat = "png"\n')
    monkeypatch.setenv("IMGPROC_CONFIG", str(conf))
    upload(s3, "a.jpg")
    _, (line,), _ = invoke(put_event(IN, ["a.jpg"]), lambda_context, capsys)
    assert output_keys(s3) == ["tiny/a.png"]
    assert (line["renditions"][0]["width"], line["renditions"][0]["format"]) == (32, "png")


# --- loops and duplicates -------------------------------------------------------------------


def test_objects_carrying_imgproc_metadata_are_skipped(s3, lambda_context, capsys):
    upload(s3, "uploads/a.jpg", Metadata={"imgproc-recipe": "0123456789abcdef"})
    result, (line,), _ = invoke(put_event(IN, ["uploads/a.jpg"]), lambda_context, capsys)
    assert result == {"ok": 0, "failed": 0, "skipped": 1}
    assert line["level"] == "WARNING" and "loop guard" in line["reason"]
    assert output_keys(s3) == []


def test_an_output_delivered_back_to_the_function_is_not_reprocessed(s3, lambda_context, capsys, monkeypatch):
    # One bucket, input bucket not declared: the first run writes thumb/...; its event comes back.
    monkeypatch.delenv("IMGPROC_INPUT_BUCKET")
    monkeypatch.setenv("IMGPROC_OUTPUT_BUCKET", IN)
    monkeypatch.setenv("IMGPROC_PRESETS", "thumb")
    upload(s3, "uploads/a.jpg")
    invoke(put_event(IN, ["uploads/a.jpg"]), lambda_context, capsys)
    puts = count_calls(lambda_entry.runtime().client("s3"), "PutObject")

    result, (line,), _ = invoke(put_event(IN, ["thumb/uploads/a.jpg"]), lambda_context, capsys)

    assert result["skipped"] == 1 and "loop guard" in line["reason"] and puts == []


def test_a_duplicate_delivery_skips_without_writing(s3, lambda_context, capsys):
    upload(s3, "uploads/a.jpg")
    event = put_event(IN, ["uploads/a.jpg"])
    invoke(event, lambda_context, capsys)
    before = {k: s3.head_object(Bucket=OUT, Key=k)["LastModified"] for k in output_keys(s3)}
    puts = count_calls(lambda_entry.runtime().client("s3"), "PutObject")
    gets = count_calls(lambda_entry.runtime().client("s3"), "GetObject")

    result, (line,), _ = invoke(event, lambda_context, capsys)

    assert result == {"ok": 0, "failed": 0, "skipped": 1}
    assert "already processed" in line["reason"]
    assert {r["outcome"] for r in line["renditions"]} == {"unchanged"}
    assert puts == [] and gets == []  # not even downloaded
    assert {k: s3.head_object(Bucket=OUT, Key=k)["LastModified"] for k in output_keys(s3)} == before


def test_a_missing_output_is_rewritten_and_the_rest_left_alone(s3, lambda_context, capsys):
    upload(s3, "uploads/a.jpg")
    event = put_event(IN, ["uploads/a.jpg"])
    invoke(event, lambda_context, capsys)
    s3.delete_object(Bucket=OUT, Key="web/uploads/a.webp")
    puts = count_calls(lambda_entry.runtime().client("s3"), "PutObject")

    _, (line,), _ = invoke(event, lambda_context, capsys)

    assert line["outcome"] == "ok"
    assert {r["output_key"]: r["outcome"] for r in line["renditions"]} == {
        "thumb/uploads/a.jpg": "unchanged", "web/uploads/a.jpg": "unchanged", "web/uploads/a.webp": "written"}
    assert puts == ["web/uploads/a.webp"]


def test_a_new_version_of_the_source_is_processed_again(s3, lambda_context, capsys):
    upload(s3, "uploads/a.jpg", encode(photo(400, 300, seed=1)))
    event = put_event(IN, ["uploads/a.jpg"])
    invoke(event, lambda_context, capsys)
    first = s3.get_object(Bucket=OUT, Key="thumb/uploads/a.jpg")["Body"].read()
    upload(s3, "uploads/a.jpg", encode(photo(400, 300, seed=2)))

    _, (line,), _ = invoke(event, lambda_context, capsys)

    assert {r["outcome"] for r in line["renditions"]} == {"written"}
    second = s3.get_object(Bucket=OUT, Key="thumb/uploads/a.jpg")
    assert second["Body"].read() != first
    assert second["Metadata"]["imgproc-source-etag"] == s3.head_object(Bucket=IN, Key="uploads/a.jpg")["ETag"].strip('"')


# --- the cold-start contract ------------------------------------------------------------------


def test_clients_are_created_once_and_reused_with_standard_retries(s3, lambda_context, capsys):
    assert lambda_entry._RUNTIME is None
    upload(s3, "a.jpg")
    lambda_entry.handler(put_event(IN, ["a.jpg"]), lambda_context)
    runtime = lambda_entry._RUNTIME
    client = runtime.client("s3")
    lambda_entry.handler(put_event(IN, ["a.jpg"]), lambda_context)
    assert lambda_entry._RUNTIME is runtime and runtime.client("s3") is client
    assert client.meta.config.retries["mode"] == "standard"


def test_importing_the_handler_loads_neither_boto3_nor_pillow():
    import subprocess
    import sys
    from pathlib import Path

    code = ("import sys, lambda_entry; "
            "print(sorted(m for m in ('boto3', 'botocore', 'PIL', 'lambda_api', 'typer') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=Path(lambda_entry.__file__).parent).stdout
    assert out.strip() == "[]"


def test_api_handler_delegates_to_lambda_api(monkeypatch):
    import types

    module = types.ModuleType("lambda_api")
    module.handle = lambda event, context: {"statusCode": 200, "body": event["path"]}
    monkeypatch.setitem(__import__("sys").modules, "lambda_api", module)
    assert lambda_entry.api_handler({"path": "/thumb/a.jpg"}, None) == {"statusCode": 200, "body": "/thumb/a.jpg"}

"""Same-stem sources (uploads/cat.jpg beside uploads/cat.png) in S3: one never overwrites the other's
renditions, in the handler and in the API, without a race; `[output] naming = "extension"` keeps both."""

from __future__ import annotations

import json

import boto3
import pytest

import lambda_api
import lambda_entry
from core import signing
from core.events import put_event

from imaging import decode, encode, photo, psnr
from testdata import load_event

IN, OUT = "imgproc-in", "imgproc-out"
JPG, PNG = "uploads/cat.jpg", "uploads/cat.png"
THUMB = "[presets.thumb]\n[[presets.thumb.renditions]]\nname = \"thumb\"\nwidth = 200\nformat = \"jpeg\"\n"


@pytest.fixture
def s3(aws, monkeypatch, tmp_path):
    client = boto3.client("s3")
    for bucket in (IN, OUT):
        client.create_bucket(Bucket=bucket)
    client.put_object(Bucket=IN, Key=JPG, Body=encode(photo(400, 300, seed=1), "JPEG", quality=95))
    client.put_object(Bucket=IN, Key=PNG, Body=encode(photo(400, 300, seed=2), "PNG"))
    for var in ("IMGPROC_INPUT_PREFIX", "IMGPROC_OUTPUT_PREFIX", "IMGPROC_PRESETS", "IMGPROC_REKOGNITION"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("IMGPROC_INPUT_BUCKET", IN)
    monkeypatch.setenv("IMGPROC_OUTPUT_BUCKET", OUT)
    config = tmp_path / "imgproc.toml"
    config.write_text(THUMB)
    monkeypatch.setenv("IMGPROC_CONFIG", str(config))
    lambda_entry.reset()
    lambda_api.reset()
    yield client
    lambda_entry.reset()
    lambda_api.reset()


def use_naming(naming: str, monkeypatch, tmp_path) -> None:
    config = tmp_path / "imgproc.toml"
    config.write_text(f'[output]\nnaming = "{naming}"\n\n{THUMB}')
    monkeypatch.setenv("IMGPROC_CONFIG", str(config))


def handle(keys, lambda_context, capsys) -> dict[str, dict]:
    capsys.readouterr()
    lambda_entry.handler(put_event(IN, keys), lambda_context)
    lines = [json.loads(x) for x in capsys.readouterr().out.splitlines() if x.strip()]
    return {line["key"]: line for line in lines if line.get("event") == "image"}


def picture(s3, key: str):
    return decode(s3.get_object(Bucket=OUT, Key=key)["Body"].read())


def looks_like(s3, out_key: str, source_key: str) -> bool:
    """The rendition shows this source's picture (not the other one's)."""
    source = decode(s3.get_object(Bucket=IN, Key=source_key)["Body"].read())
    out = picture(s3, out_key)
    return psnr(out, source.resize(out.size)) > 30


def test_handler_keeps_the_first_rendition_and_fails_the_other_source_naming_both(s3, lambda_context, capsys):
    lines = handle([JPG, PNG], lambda_context, capsys)
    assert lines[JPG]["outcome"] == "ok"
    png = lines[PNG]
    assert png["outcome"] == "failed" and png["error"]["type"] == "OutputCollision"
    assert JPG in png["error"]["message"] and PNG in png["error"]["message"]
    assert 'naming = "extension"' in png["error"]["message"]
    assert [o["Key"] for o in s3.list_objects_v2(Bucket=OUT)["Contents"]] == ["thumb/uploads/cat.jpg"]
    assert looks_like(s3, "thumb/uploads/cat.jpg", JPG)
    # A redelivery of the PNG's event still cannot take the JPEG's rendition.
    assert handle([PNG], lambda_context, capsys)[PNG]["error"]["type"] == "OutputCollision"
    assert looks_like(s3, "thumb/uploads/cat.jpg", JPG)


def test_two_sources_racing_for_one_key_cannot_both_win(s3, lambda_context, capsys):
    """The PNG's HEAD finds the key free; the JPEG's rendition lands before the PNG's PUT."""
    client = lambda_entry.runtime().client("s3")
    other = boto3.client("s3")
    jpg_rendition = {}

    def jpg_wins_first(params, **_):
        if params.get("Key") == "thumb/uploads/cat.jpg" and params.get("Metadata", {}).get(
                "imgproc-source-key") == PNG and not jpg_rendition:
            jpg_rendition["etag"] = other.put_object(
                Bucket=OUT, Key="thumb/uploads/cat.jpg", Body=b"jpeg's thumb",
                Metadata={"imgproc-source-key": JPG})["ETag"]

    client.meta.events.register("before-parameter-build.s3.PutObject", jpg_wins_first)
    line = handle([PNG], lambda_context, capsys)[PNG]
    assert jpg_rendition, "the race was not staged"
    assert line["outcome"] == "failed" and line["error"]["type"] == "OutputCollision"
    assert JPG in line["error"]["message"]
    assert s3.get_object(Bucket=OUT, Key="thumb/uploads/cat.jpg")["Body"].read() == b"jpeg's thumb"


def test_naming_by_extension_renders_both_sources(s3, lambda_context, capsys, monkeypatch, tmp_path):
    use_naming("extension", monkeypatch, tmp_path)
    lines = handle([JPG, PNG], lambda_context, capsys)
    assert {k: line["outcome"] for k, line in lines.items()} == {JPG: "ok", PNG: "ok"}
    assert sorted(o["Key"] for o in s3.list_objects_v2(Bucket=OUT)["Contents"]) == [
        "thumb/uploads/cat.jpg.jpg", "thumb/uploads/cat.png.jpg"]
    assert looks_like(s3, "thumb/uploads/cat.jpg.jpg", JPG)
    assert looks_like(s3, "thumb/uploads/cat.png.jpg", PNG)


# --- the API -------------------------------------------------------------------------------


@pytest.fixture
def api_env(s3, monkeypatch):
    boto3.client("ssm").put_parameter(Name="/imgproc/keys", Type="SecureString", Value='{"k1": "k1-secret-0123456789abcdef"}')
    monkeypatch.setenv("IMGPROC_SIGNING_KEYS_PARAM", "/imgproc/keys")
    return s3


def get(preset: str, key: str, lambda_context) -> dict:
    e = load_event("apigw-get-image.json")
    path = signing.canonical_path(preset, key)
    e["path"], e["requestContext"]["path"] = path, "/prod" + path
    ring = signing.parse_keyring('{"k1": "k1-secret-0123456789abcdef"}', "test")
    import time

    query = signing.sign(path, ring, int(time.time()) + 300)
    e["queryStringParameters"] = query
    e["multiValueQueryStringParameters"] = {k: [v] for k, v in query.items()}
    return lambda_api.handle(e, lambda_context)


def test_api_never_serves_another_sources_rendition(api_env, lambda_context, capsys):
    s3 = api_env
    first = get("thumb", PNG, lambda_context)  # rendered from the PNG into thumb/uploads/cat.jpg
    assert first["statusCode"] in (200, 302)
    capsys.readouterr()
    response = get("thumb", JPG, lambda_context)  # a hit on that key, but it is the PNG's picture
    log = json.loads(capsys.readouterr().out.splitlines()[-1])
    assert response["statusCode"] == 409 and "Location" not in response["headers"]
    assert log["error"]["type"] == "OutputCollision" and PNG in log["error"]["message"]
    assert looks_like(s3, "thumb/uploads/cat.jpg", PNG)  # left as it was


def test_api_with_naming_by_extension_serves_each_source_its_own_picture(api_env, lambda_context,
                                                                         monkeypatch, tmp_path):
    use_naming("extension", monkeypatch, tmp_path)
    for key in (PNG, JPG):
        response = get("thumb", key, lambda_context)
        assert response["statusCode"] in (200, 302), response
    assert looks_like(api_env, "thumb/uploads/cat.jpg.jpg", JPG)
    assert looks_like(api_env, "thumb/uploads/cat.png.jpg", PNG)

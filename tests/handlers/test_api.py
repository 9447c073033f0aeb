"""The retrieval API handler (lambda_api.handle) on API Gateway REST proxy events, against moto.

moto cannot invoke an API Gateway proxy integration, so the handler is called
with the captured-format event directly; S3 and SSM are moto's.
"""

from __future__ import annotations

import base64
import copy
import json
import time
from urllib.parse import parse_qsl, quote, urlsplit

import boto3
import pytest

import lambda_api
from core import signing

from imaging import decode, encode, photo
from testdata import load_event

IN, OUT = "imgproc-in", "imgproc-out"
PARAM = "/imgproc/signing-keys"
K1 = "k1-secret-0123456789abcdefghij"
K2 = "k2-secret-abcdefghij0123456789"
SOURCE = "uploads/cat 1.jpg"

PRESETS = """
[presets.thumb]
[[presets.thumb.renditions]]
name = "thumb"
width = 200
height = 200
format = "jpeg"
quality = 80

[presets.card]
[[presets.card.renditions]]
name = "card"
width = 160
height = 160
format = ["jpeg", "webp", "avif"]

[presets.hidden]
[[presets.hidden.renditions]]
name = "hidden"
width = 100
format = "png"
"""


@pytest.fixture
def api(aws, tmp_path, monkeypatch):
    """Buckets, one source photo, signing keys in SSM and the API's environment."""
    s3 = boto3.client("s3")
    for bucket in (IN, OUT):
        s3.create_bucket(Bucket=bucket)
    s3.put_object(Bucket=IN, Key=SOURCE, Body=encode(photo(640, 480), "JPEG", quality=90), ContentType="image/jpeg")
    ssm = boto3.client("ssm")
    ssm.put_parameter(Name=PARAM, Type="SecureString", Value=json.dumps({"k1": K1}))
    config = tmp_path / "imgproc.toml"
    config.write_text(PRESETS)
    env = {
        "IMGPROC_INPUT_BUCKET": IN, "IMGPROC_OUTPUT_BUCKET": OUT, "IMGPROC_INPUT_PREFIX": "uploads/",
        "IMGPROC_PRESETS": "thumb,card", "IMGPROC_CONFIG": str(config), "IMGPROC_SIGNING_KEYS_PARAM": PARAM,
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    lambda_api.reset()
    yield s3
    lambda_api.reset()


def ring(**keys):
    return signing.parse_keyring(json.dumps(keys or {"k1": K1}), "test")


def event(preset="thumb", key=SOURCE, *, raw_path=None, keys=None, kid=None, expires=None, accept=None,
          headers=None, query=None, fixture="apigw-get-image.json"):
    """The fixture event for GET /images/<preset>/<key>, signed unless ``query`` is given."""
    e = copy.deepcopy(load_event(fixture))
    path = raw_path or signing.canonical_path(preset, key)
    e["path"] = path
    e["requestContext"]["path"] = "/prod" + path
    if query is None:
        canonical = signing.canonical_path(preset, key)
        query = signing.sign(canonical, keys or ring(), expires or int(time.time()) + 300, kid)
    e["queryStringParameters"] = query or None
    e["multiValueQueryStringParameters"] = {k: [v] for k, v in query.items()} or None
    if accept is not None:
        e["headers"]["Accept"] = accept
    e["headers"].update(headers or {})
    return e


def call(e, capsys, lambda_context):
    """Run the handler; return the response and its one log line."""
    capsys.readouterr()
    response = lambda_api.handle(e, lambda_context)
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.strip()]
    requests = [line for line in lines if line.get("event") == "request"]
    assert len(requests) == 1, lines
    return response, requests[0]


def body_image(response):
    assert response["isBase64Encoded"] is True
    return decode(base64.b64decode(response["body"]))


def follow(response):
    """GET the presigned Location (moto intercepts the HTTP call in-process)."""
    import requests

    got = requests.get(response["headers"]["Location"], timeout=10)
    assert got.status_code == 200, got.text[:200]
    return got


def forbidden(response):
    assert response["statusCode"] == 403
    assert json.loads(response["body"]) == {"error": "forbidden"}
    assert response["headers"]["Content-Type"] == "application/json"


# --- the main paths -------------------------------------------------------------------


def test_missing_rendition_is_rendered_stored_and_returned_inline(api, capsys, lambda_context):
    response, log = call(event(), capsys, lambda_context)
    assert response["statusCode"] == 200
    assert response["headers"]["Content-Type"] == "image/jpeg"
    img = body_image(response)
    assert img.size == (200, 150) and img.format == "JPEG"
    stored = api.get_object(Bucket=OUT, Key="thumb/uploads/cat 1.jpg")
    assert stored["Body"].read() == base64.b64decode(response["body"])
    assert stored["ContentType"] == "image/jpeg"
    assert stored["Metadata"]["imgproc-source-key"] == quote(SOURCE, safe="/")
    assert response["headers"]["ETag"] == stored["ETag"]
    assert log["cache"] == "miss" and log["outcome"] == "inline" and log["status"] == 200
    assert log["path"] == "/images/thumb/uploads/cat%201.jpg" and log["preset"] == "thumb"


def test_existing_rendition_redirects_to_a_presigned_url(api, capsys, lambda_context):
    call(event(), capsys, lambda_context)  # renders and stores it
    response, log = call(event(), capsys, lambda_context)
    assert response["statusCode"] == 302
    location = response["headers"]["Location"]
    parts = urlsplit(location)
    assert OUT in parts.netloc + parts.path and parts.path.endswith("/thumb/uploads/cat%201.jpg")
    assert "X-Amz-Signature" in dict(parse_qsl(parts.query))
    assert dict(parse_qsl(parts.query))["X-Amz-Expires"] == "300"
    assert decode(follow(response).content).size == (200, 150)
    assert log["cache"] == "hit" and log["outcome"] == "redirect" and log["status"] == 302
    assert response["body"] == ""


def test_large_result_is_stored_and_redirected_not_inlined(api, capsys, lambda_context, monkeypatch):
    monkeypatch.setenv("IMGPROC_API_INLINE_MAX_BYTES", "1000")
    lambda_api.reset()
    response, log = call(event(), capsys, lambda_context)
    assert response["statusCode"] == 302 and log["cache"] == "miss" and log["bytes"] > 1000
    assert decode(follow(response).content).size == (200, 150)
    assert api.head_object(Bucket=OUT, Key="thumb/uploads/cat 1.jpg")["ContentLength"] == log["bytes"]


@pytest.mark.parametrize("accept, fmt", [
    ("image/avif,image/webp,image/apng,*/*;q=0.8", "avif"),
    ("image/webp,*/*", "webp"),
    ("image/avif;q=0,image/webp;q=0.5", "webp"),
    ("*/*", "jpeg"),
    ("image/*", "jpeg"),
    (None, "jpeg"),
])
def test_accept_picks_avif_then_webp_else_the_presets_format(api, capsys, lambda_context, accept, fmt):
    e = event("card")
    if accept is None:
        del e["headers"]["Accept"]
    else:
        e["headers"]["Accept"] = accept
    response, log = call(e, capsys, lambda_context)
    assert response["statusCode"] == 200
    assert response["headers"]["Content-Type"] == f"image/{fmt}"
    assert response["headers"]["Vary"] == "Accept"
    img = body_image(response)
    assert img.format == fmt.upper() and max(img.size) == 160
    assert log["format"] == fmt
    ext = {"jpeg": "jpg"}.get(fmt, fmt)
    api.head_object(Bucket=OUT, Key=f"card/uploads/cat 1.{ext}")


def test_preset_without_modern_formats_ignores_accept(api, capsys, lambda_context):
    response, _ = call(event("thumb", accept="image/avif,image/webp"), capsys, lambda_context)
    assert response["headers"]["Content-Type"] == "image/jpeg"


def test_if_none_match_gives_304(api, capsys, lambda_context):
    first, _ = call(event(), capsys, lambda_context)
    etag = first["headers"]["ETag"]
    response, log = call(event(headers={"If-None-Match": etag}), capsys, lambda_context)
    assert response["statusCode"] == 304 and response["body"] == ""
    assert response["headers"]["ETag"] == etag and "Location" not in response["headers"]
    assert log["outcome"] == "not_modified" and log["cache"] == "hit"
    stale, _ = call(event(headers={"If-None-Match": '"0123"'}), capsys, lambda_context)
    assert stale["statusCode"] == 302


def test_cache_control_never_outlives_the_signed_url(api, capsys, lambda_context):
    response, _ = call(event(expires=int(time.time()) + 120), capsys, lambda_context)
    max_age = int(response["headers"]["Cache-Control"].split("max-age=")[1])
    assert response["headers"]["Cache-Control"].startswith("private") and 100 <= max_age <= 120


def test_key_with_spaces_and_unicode_from_a_custom_domain(api, capsys, lambda_context):
    key = "uploads/Zürich café (1).jpg"
    api.put_object(Bucket=IN, Key=key, Body=encode(photo(300, 400, seed=3), "JPEG"), ContentType="image/jpeg")
    e = load_event("apigw-get-unicode.json")
    e["queryStringParameters"] = signing.sign(signing.canonical_path("card", key), ring(), int(time.time()) + 60)
    assert e["path"].endswith(signing.canonical_path("card", key))
    response, log = call(e, capsys, lambda_context)
    assert response["statusCode"] == 200 and response["headers"]["Content-Type"] == "image/jpeg"
    assert body_image(response).size == (120, 160)
    api.head_object(Bucket=OUT, Key="card/uploads/Zürich café (1).jpg")
    assert log["path"] == signing.canonical_path("card", key)


# --- authentication -----------------------------------------------------------------------


def test_unsigned_request_is_refused(api, capsys, lambda_context):
    response, log = call(event(query={}), capsys, lambda_context)
    forbidden(response)
    assert log["reason"] == "missing" and log["level"] == "WARNING"


def test_tampered_path_is_refused(api, capsys, lambda_context):
    e = event("thumb", "uploads/other.jpg")
    e["path"] = signing.canonical_path("thumb", SOURCE)  # signature was for another key
    response, log = call(e, capsys, lambda_context)
    forbidden(response)
    assert log["reason"] == "bad_signature"
    assert not api.list_objects_v2(Bucket=OUT).get("Contents")


def test_tampered_signature_and_expiry_are_refused(api, capsys, lambda_context):
    e = event()
    e["queryStringParameters"]["expires"] = str(int(e["queryStringParameters"]["expires"]) + 3600)
    forbidden(call(e, capsys, lambda_context)[0])
    e = event()
    e["queryStringParameters"]["sig"] = "f" * 64
    forbidden(call(e, capsys, lambda_context)[0])


def test_expired_url_is_refused(api, capsys, lambda_context):
    response, log = call(event(expires=int(time.time()) - 1), capsys, lambda_context)
    forbidden(response)
    assert log["reason"] == "expired"


def test_signature_with_unknown_key_is_refused(api, capsys, lambda_context):
    response, log = call(event(keys=ring(k9=K2)), capsys, lambda_context)
    forbidden(response)
    assert log["reason"] == "unknown_key"


def test_repeated_signature_parameter_is_refused(api, capsys, lambda_context):
    e = event()
    e["multiValueQueryStringParameters"]["sig"] = ["f" * 64, e["queryStringParameters"]["sig"]]
    forbidden(call(e, capsys, lambda_context)[0])


def test_rotated_key_is_picked_up_by_a_warm_container_and_old_urls_keep_working(api, capsys, lambda_context):
    assert call(event(), capsys, lambda_context)[0]["statusCode"] == 200  # warm: k1 cached
    boto3.client("ssm").put_parameter(Name=PARAM, Type="SecureString", Overwrite=True,
                                      Value=json.dumps({"k2": K2, "k1": K1}))
    rotated = ring(k2=K2, k1=K1)
    assert call(event(keys=rotated), capsys, lambda_context)[0]["statusCode"] == 302  # signed with k2
    assert call(event(keys=ring()), capsys, lambda_context)[0]["statusCode"] == 302  # old k1 URL
    boto3.client("ssm").put_parameter(Name=PARAM, Type="SecureString", Overwrite=True, Value=json.dumps({"k2": K2}))
    lambda_api.reset()  # the next cold start no longer knows k1
    forbidden(call(event(keys=ring()), capsys, lambda_context)[0])
    assert call(event(keys=rotated), capsys, lambda_context)[0]["statusCode"] == 302


def test_keys_are_read_from_ssm_once_per_cold_start(api, capsys, lambda_context):
    calls = []
    lambda_api._client("ssm").meta.events.register("before-call.ssm.GetParameter", lambda **kw: calls.append(1))
    for _ in range(3):
        call(event(), capsys, lambda_context)
    forbidden(call(event(keys=ring(k9=K2)), capsys, lambda_context)[0])  # unknown kid: one refresh
    forbidden(call(event(keys=ring(k9=K2)), capsys, lambda_context)[0])  # rate-limited: no second read
    assert len(calls) == 2


def test_missing_key_parameter_fails_closed(api, capsys, lambda_context):
    boto3.client("ssm").delete_parameter(Name=PARAM)
    response, log = call(event(), capsys, lambda_context)
    assert response["statusCode"] == 500 and json.loads(response["body"]) == {"error": "internal error"}
    assert log["level"] == "ERROR" and PARAM in log["error"]["message"]


def test_correctly_signed_url_valid_until_year_33658_is_refused(api, capsys, lambda_context):
    response, log = call(event(expires=999_999_999_999), capsys, lambda_context)  # a leaked key's forever-URL
    forbidden(response)
    assert log["reason"] == "too_long"
    longest = int(time.time()) + signing.MAX_VALIDITY_SECONDS - 60  # what `imgproc sign --expires 366d` makes
    assert call(event(expires=longest), capsys, lambda_context)[0]["statusCode"] == 200


def test_leading_zero_spelling_of_a_signed_url_is_refused(api, capsys, lambda_context):
    e = event()
    e["queryStringParameters"]["expires"] = "0" + e["queryStringParameters"]["expires"]
    response, log = call(e, capsys, lambda_context)
    forbidden(response)
    assert log["reason"] == "malformed"


def count_ssm_reads(raise_code=None):
    """Count GetParameter calls on the handler's SSM client; optionally fail each with ``raise_code``."""
    from botocore.exceptions import ClientError

    calls = []

    def hook(**kwargs):
        calls.append(1)
        if raise_code:
            raise ClientError({"Error": {"Code": raise_code, "Message": "rate exceeded"}}, "GetParameter")

    lambda_api._client("ssm").meta.events.register("before-call.ssm.GetParameter", hook)
    return calls


class Clock:
    """Stands in for lambda_api._clock so a test can step through the SSM backoff."""

    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


def garbled_queries():
    good = signing.sign(signing.canonical_path("thumb", SOURCE), ring(), int(time.time()) + 300)
    return [{}, {"sig": "f" * 64}, {**good, "sig": "xyz"}, {**good, "expires": "0" + good["expires"]},
            {**good, "expires": "999999999999"}, {**good, "kid": "../../etc"}, {**good, "sig": good["sig"].upper()}]


def test_unsigned_flood_is_refused_without_reading_ssm(api, capsys, lambda_context):
    boto3.client("ssm").delete_parameter(Name=PARAM)  # even a broken key store must not turn these into 500s
    calls = count_ssm_reads()
    for _ in range(20):
        for query in garbled_queries():
            response, _log = call(event(query=query), capsys, lambda_context)
            forbidden(response)
    assert calls == []


def test_failed_ssm_read_is_not_repeated_on_every_request(api, capsys, lambda_context, monkeypatch):
    clock = Clock()
    monkeypatch.setattr(lambda_api, "_clock", clock)
    boto3.client("ssm").delete_parameter(Name=PARAM)
    calls = count_ssm_reads()
    for _ in range(10):
        response, log = call(event(), capsys, lambda_context)
        assert response["statusCode"] == 500 and PARAM in log["error"]["message"]
    assert len(calls) == 1  # the failure is remembered
    clock.now += lambda_api.KEY_RETRY_MIN_SECONDS
    call(event(), capsys, lambda_context)
    assert len(calls) == 2  # retried once the backoff passed ...
    clock.now += lambda_api.KEY_RETRY_MIN_SECONDS
    call(event(), capsys, lambda_context)
    assert len(calls) == 2  # ... which doubled after the second failure
    boto3.client("ssm").put_parameter(Name=PARAM, Type="SecureString", Value=json.dumps({"k1": K1}))
    clock.now += lambda_api.KEY_RETRY_MIN_SECONDS
    assert call(event(), capsys, lambda_context)[0]["statusCode"] == 200  # recovered without a cold start
    assert len(calls) == 3


def test_throttled_ssm_answers_503_and_backs_off_up_to_a_minute(api, capsys, lambda_context, monkeypatch):
    clock = Clock()
    monkeypatch.setattr(lambda_api, "_clock", clock)
    calls = count_ssm_reads(raise_code="ThrottlingException")
    for _ in range(10):  # ten failures in a row, each after its backoff has passed
        for _ in range(5):
            response, _log = call(event(), capsys, lambda_context)
            assert response["statusCode"] == 503 and response["headers"]["Retry-After"]
            assert json.loads(response["body"]) == {"error": "try again later"}
        clock.now += lambda_api.KEY_RETRY_MAX_SECONDS
    assert len(calls) == 10
    clock.now -= 1  # 59 s after the tenth failure: still backing off
    call(event(), capsys, lambda_context)
    assert len(calls) == 10
    clock.now += 1  # the backoff is capped at KEY_RETRY_MAX_SECONDS
    call(event(), capsys, lambda_context)
    assert len(calls) == 11


def test_failed_refresh_keeps_serving_with_the_known_keys(api, capsys, lambda_context, monkeypatch):
    clock = Clock()
    monkeypatch.setattr(lambda_api, "_clock", clock)
    assert call(event(), capsys, lambda_context)[0]["statusCode"] == 200  # keys cached
    calls = count_ssm_reads(raise_code="ThrottlingException")
    forbidden(call(event(keys=ring(k9=K2)), capsys, lambda_context)[0])  # unknown kid: refresh fails -> 403
    assert call(event(), capsys, lambda_context)[0]["statusCode"] == 302  # k1 URLs still work
    assert len(calls) == 1


def test_api_key_mode_trusts_the_gateway_but_needs_its_key(api, capsys, lambda_context, monkeypatch):
    monkeypatch.setenv("IMGPROC_AUTH", "apikey")
    monkeypatch.delenv("IMGPROC_SIGNING_KEYS_PARAM")
    lambda_api.reset()
    e = load_event("apigw-get-apikey.json")
    response, _ = call(e, capsys, lambda_context)
    assert response["statusCode"] == 200 and body_image(response).size == (200, 150)
    del e["requestContext"]["identity"]["apiKeyId"], e["requestContext"]["identity"]["apiKey"]
    forbidden(call(e, capsys, lambda_context)[0])


# --- what may be requested -------------------------------------------------------------------


def test_unknown_and_unlisted_presets_are_404(api, capsys, lambda_context):
    for preset in ("nope", "hidden"):  # "hidden" is in the presets file but not in IMGPROC_PRESETS
        response, _log = call(event(preset), capsys, lambda_context)
        assert response["statusCode"] == 404 and json.loads(response["body"]) == {"error": "not found"}
    assert not api.list_objects_v2(Bucket=OUT).get("Contents")


def test_unknown_preset_without_signature_is_403_not_404(api, capsys, lambda_context):
    forbidden(call(event("nope", query={}), capsys, lambda_context)[0])


def test_key_outside_the_input_prefix_is_404(api, capsys, lambda_context):
    api.put_object(Bucket=IN, Key="private/cat.jpg", Body=encode(photo(64, 48), "JPEG"))
    response, log = call(event(key="private/cat.jpg"), capsys, lambda_context)
    assert response["statusCode"] == 404 and log["reason"] == "key outside the input prefix"
    assert not api.list_objects_v2(Bucket=OUT).get("Contents")


def test_missing_source_is_404_and_not_an_image_is_422(api, capsys, lambda_context):
    assert call(event(key="uploads/none.jpg"), capsys, lambda_context)[0]["statusCode"] == 404
    api.put_object(Bucket=IN, Key="uploads/notes.jpg", Body=b"this is not an image at all")
    response, log = call(event(key="uploads/notes.jpg"), capsys, lambda_context)
    assert response["statusCode"] == 422 and log["error"]["type"] == "NotAnImage"


@pytest.mark.parametrize("raw_path", [
    "/images/thumb/uploads/../secret.jpg",
    "/images/thumb/uploads/%2e%2e/secret.jpg",
    "/images/thumb/uploads/%2E%2E%2Fsecret.jpg",
    "/images/thumb/uploads/..%5Csecret.jpg",
    "/images/thumb/uploads%5C..%5Csecret.jpg",
    "/images/thumb/%2Fetc%2Fpasswd",
    "/images/thumb//secret.jpg",
    "/images/thumb/uploads/%252e%252e/secret.jpg",
    "/images/thumb/uploads/x%00.jpg",
    "/images/thumb/uploads/%zz.jpg",
    "/images/thumb/uploads/%C3%28.jpg",
    "/images/..%2Fthumb/uploads/cat.jpg",
])
def test_path_traversal_is_refused_before_any_storage_call(api, capsys, lambda_context, raw_path):
    api.put_object(Bucket=IN, Key="secret.jpg", Body=encode(photo(64, 48), "JPEG"))
    e = event(raw_path=raw_path, query={"expires": "9999999999", "sig": "0" * 64})
    response, log = call(e, capsys, lambda_context)
    assert response["statusCode"] in (400, 404)
    assert "s3" not in lambda_api._clients  # no S3 client was even created
    assert log["outcome"] in ("bad_request", "not_found")


def test_signed_traversal_still_refused(api, capsys, lambda_context):
    """Even a correctly signed URL for '..' is not served: the key check comes first."""
    raw = "/images/thumb/uploads/%2E%2E/secret.jpg"
    query = signing.sign("/images/thumb/uploads/../secret.jpg", ring(), int(time.time()) + 60)
    response, _ = call(event(raw_path=raw, query=query), capsys, lambda_context)
    assert response["statusCode"] == 400


def test_only_get(api, capsys, lambda_context):
    e = event()
    e["httpMethod"] = "POST"
    response, _log = call(e, capsys, lambda_context)
    assert response["statusCode"] == 405 and response["headers"]["Allow"] == "GET, HEAD"


def test_bad_configuration_answers_500_and_logs_the_variable(api, capsys, lambda_context, monkeypatch):
    monkeypatch.setenv("IMGPROC_AUTH", "none")
    lambda_api.reset()
    response, log = call(event(), capsys, lambda_context)
    assert response["statusCode"] == 500 and "IMGPROC_AUTH" in log["error"]["message"]


def test_log_line_has_the_contract_fields_and_never_the_signature(api, capsys, lambda_context):
    e = event()
    _, log = call(e, capsys, lambda_context)
    for field in ("timestamp", "level", "service", "event", "request_id", "path", "preset", "outcome",
                  "status", "ms", "cache"):
        assert field in log
    assert log["request_id"] == lambda_context.aws_request_id and log["ms"] > 0
    assert e["queryStringParameters"]["sig"] not in json.dumps(log)

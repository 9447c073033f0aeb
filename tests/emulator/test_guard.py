"""A web page open in the user's browser must not be able to use the emulator (issue 12, item 1).

Each attack is sent as a browser would send it (Origin, preflight, Sec-Fetch-Site, a rebound Host)
to the real emulator, and the same request without the browser's headers shows it would have worked.
"""

from __future__ import annotations

import http.client
import json
import shutil
import subprocess
import sys
import uuid
from pathlib import Path
from urllib.parse import urlsplit

import boto3
import pytest

from cli.emulator.guard import LocalOnly
from cli.emulator.server import Emulator

from testdata import subprocess_env

pytestmark = pytest.mark.slow

EVIL = "http://evil.example"
STACK_TEMPLATE = json.dumps({"Resources": {"Queue": {"Type": "AWS::SQS::Queue", "Properties": {"QueueName": "planted"}}}})


@pytest.fixture
def emulator(tmp_path):
    running = Emulator(port=0, state_dir=tmp_path / "state", persist=False, say=lambda _message: None)
    running.start()
    # moto's state lives in this process: start from nothing, whatever ran before.
    assert send(running, "POST", "/moto-api/reset")[0] == 200
    try:
        yield running
    finally:
        running.stop()


def send(emulator: Emulator, method: str, path: str, headers: dict[str, str] | None = None,
         body: bytes | str | None = None) -> tuple[int, dict[str, str], bytes]:
    """One raw HTTP request, headers exactly as given (Host included), as a browser or curl sends it."""
    connection = http.client.HTTPConnection("127.0.0.1", emulator.port, timeout=30)
    try:
        connection.request(method, path, body=body, headers=headers or {})
        response = connection.getresponse()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
    finally:
        connection.close()


def client(service: str, endpoint: str):
    return boto3.client(service, endpoint_url=endpoint, region_name="us-east-1")


def form_post_object(bucket: str, key: str, origin: str | None) -> tuple[dict[str, str], bytes]:
    """S3 POST Object: the HTML form upload a page can submit to any site without a preflight."""
    boundary = uuid.uuid4().hex
    parts = [f'--{boundary}\r\nContent-Disposition: form-data; name="key"\r\n\r\n{key}\r\n',
             f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="x.jpg"\r\n'
             "Content-Type: image/jpeg\r\n\r\npayload\r\n",
             f"--{boundary}--\r\n"]
    headers = {"Content-Type": f"multipart/form-data; boundary={boundary}"}
    if origin:
        headers["Origin"] = origin
    return headers, "".join(parts).encode()


def objects(emulator: Emulator, bucket: str) -> list[str]:
    return [o["Key"] for o in client("s3", emulator.endpoint).list_objects_v2(Bucket=bucket).get("Contents", [])]


def stacks(emulator: Emulator) -> list[str]:
    return [s["StackName"] for s in client("cloudformation", emulator.endpoint).list_stacks()["StackSummaries"]]


def test_a_cors_preflight_from_another_site_is_refused(emulator):
    status, headers, _ = send(emulator, "OPTIONS", "/", {
        "Origin": EVIL, "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "content-type,x-amz-target"})
    assert status == 403
    assert "access-control-allow-origin" not in headers  # the browser will not send the real request


def test_a_cross_origin_form_post_creates_nothing(emulator):
    client("s3", emulator.endpoint).create_bucket(Bucket="uploads")
    headers, body = form_post_object("uploads", "planted.jpg", origin=EVIL)
    status, _, reply = send(emulator, "POST", "/uploads", headers, body)
    assert status == 403, reply
    assert b"AccessDenied" in reply
    assert objects(emulator, "uploads") == []

    # The same form without the browser's Origin header is an upload moto accepts: the guard stopped it.
    headers, body = form_post_object("uploads", "local.jpg", origin=None)
    assert send(emulator, "POST", "/uploads", headers, body)[0] in (200, 204)
    assert objects(emulator, "uploads") == ["local.jpg"]


def test_a_cross_origin_create_stack_is_refused(emulator):
    form = f"Action=CreateStack&Version=2010-05-15&StackName=planted&TemplateBody={_quote(STACK_TEMPLATE)}"
    headers = {"Content-Type": "application/x-www-form-urlencoded", "Origin": EVIL}
    assert send(emulator, "POST", "/", headers, form)[0] == 403
    assert stacks(emulator) == []


def test_a_cross_site_get_without_origin_is_refused(emulator):
    # <img src="http://127.0.0.1:PORT/?Action=CreateQueue..."> sends no Origin, but Sec-Fetch-Site and a Referer.
    path = "/?Action=CreateQueue&QueueName=planted"
    browser = {"Sec-Fetch-Site": "cross-site", "Sec-Fetch-Mode": "no-cors", "Referer": f"{EVIL}/page.html"}
    assert send(emulator, "GET", path, {"Host": f"127.0.0.1:{emulator.port}", **browser})[0] == 403
    older_browser = {"Referer": f"{EVIL}/page.html"}
    assert send(emulator, "GET", path, {"Host": f"127.0.0.1:{emulator.port}", **older_browser})[0] == 403
    assert client("sqs", emulator.endpoint).list_queues().get("QueueUrls", []) == []


@pytest.mark.parametrize("host", ["evil.example:{port}", "evil.example", "127.0.0.1:1", "localhost.evil.example:{port}"])
def test_a_rebound_host_name_is_refused(emulator, host):
    # DNS rebinding: evil.example now resolves to 127.0.0.1, so the page's requests are same-origin
    # to the browser (no Origin on a GET) but name the attacker's host.
    status, _, _ = send(emulator, "PUT", "/planted-bucket", {"Host": host.format(port=emulator.port)})
    assert status == 403
    assert client("s3", emulator.endpoint).list_buckets()["Buckets"] == []


@pytest.mark.parametrize("name", ["127.0.0.1", "localhost", "[::1]"])
def test_local_programs_and_the_emulators_own_pages_get_through(emulator, name):
    host = f"{name}:{emulator.port}"
    status, _, _ = send(emulator, "PUT", f"/bucket-{len(name)}", {"Host": host})
    assert status == 200
    # A page the emulator serves itself (moto's dashboard) may call it: its Origin is the emulator's.
    status, _, _ = send(emulator, "GET", "/", {"Host": host, "Origin": f"http://{host}", "Sec-Fetch-Site": "same-origin"})
    assert status == 200


@pytest.mark.parametrize("name", ["127.0.0.1", "localhost"])
def test_boto3_works_unchanged(emulator, name):
    s3 = client("s3", f"http://{name}:{emulator.port}")
    s3.create_bucket(Bucket="boto-bucket")
    s3.put_object(Bucket="boto-bucket", Key="a.jpg", Body=b"1")
    assert s3.get_object(Bucket="boto-bucket", Key="a.jpg")["Body"].read() == b"1"
    sqs = client("sqs", f"http://{name}:{emulator.port}")
    url = sqs.create_queue(QueueName="q")["QueueUrl"]
    sqs.send_message(QueueUrl=url, MessageBody="m")
    assert sqs.receive_message(QueueUrl=url)["Messages"][0]["Body"] == "m"


def aws_cli() -> str | None:
    beside = Path(sys.executable).parent / "aws"
    return str(beside) if beside.exists() else shutil.which("aws")


@pytest.mark.skipif(aws_cli() is None, reason="the AWS CLI is not installed (pip install awscli)")
def test_the_aws_cli_works_unchanged(emulator, tmp_path):
    source = tmp_path / "photo.jpg"
    source.write_bytes(b"jpeg bytes")
    env = subprocess_env(AWS_ACCESS_KEY_ID="test", AWS_SECRET_ACCESS_KEY="test", AWS_DEFAULT_REGION="us-east-1")

    def run(*args: str) -> str:
        result = subprocess.run([aws_cli(), "--endpoint-url", emulator.endpoint, *args],  # type: ignore[list-item]
                                capture_output=True, text=True, env=env, timeout=120)
        assert result.returncode == 0, result.stderr
        return result.stdout

    run("s3", "mb", "s3://cli-bucket")
    run("s3", "cp", str(source), "s3://cli-bucket/in/photo.jpg")
    assert "in/photo.jpg" in run("s3", "ls", "--recursive", "s3://cli-bucket")
    run("s3", "cp", "s3://cli-bucket/in/photo.jpg", str(tmp_path / "back.jpg"))
    assert (tmp_path / "back.jpg").read_bytes() == b"jpeg bytes"


def test_layers_added_to_the_emulator_stay_behind_the_guard(emulator):
    seen: list[str] = []

    def layer(app):
        def spy(environ, start_response):
            seen.append(environ["PATH_INFO"])
            return app(environ, start_response)
        return spy

    emulator.server.wrap(layer)
    assert send(emulator, "GET", "/from-a-page", {"Origin": EVIL})[0] == 403
    assert send(emulator, "GET", "/from-curl")[0] != 403
    assert seen == ["/from-curl"]


def test_the_guard_names_why_it_refused():
    guard = LocalOnly(app=None, port=4567, say=lambda _message: None)
    local = {"HTTP_HOST": "127.0.0.1:4567"}
    assert guard.refusal(local) is None
    assert "Host" in (guard.refusal({"HTTP_HOST": "evil.example:4567"}) or "")
    assert "cross-origin" in (guard.refusal({**local, "HTTP_ORIGIN": "null"}) or "")  # sandboxed frame, file://
    assert "cross-origin" in (guard.refusal({**local, "HTTP_ORIGIN": "http://127.0.0.1:9999"}) or "")


def _quote(text: str) -> str:
    from urllib.parse import quote

    return quote(text, safe="")


def test_a_gallery_page_may_show_presigned_images_but_not_use_the_query_api(emulator):
    # `imgproc gallery` writes a page opened from disk: its <img> tags load presigned S3 URLs cross-site.
    s3 = client("s3", emulator.endpoint)
    s3.create_bucket(Bucket="out")
    s3.put_object(Bucket="out", Key="thumb/cat.jpg", Body=b"jpeg bytes")
    url = urlsplit(s3.generate_presigned_url("get_object", Params={"Bucket": "out", "Key": "thumb/cat.jpg"}))
    img = {"Host": f"127.0.0.1:{emulator.port}", "Sec-Fetch-Site": "cross-site", "Sec-Fetch-Mode": "no-cors"}
    status, _, body = send(emulator, "GET", f"{url.path}?{url.query}", img)
    assert (status, body) == (200, b"jpeg bytes")
    # The same kind of request may still change nothing: a query-API call dressed as a presigned read,
    # a fetch() (it carries an Origin), and a presigned PUT are refused.
    planted = "/?Action=CreateQueue&QueueName=planted&X-Amz-Signature=00"
    assert send(emulator, "GET", planted, img)[0] == 403
    assert send(emulator, "GET", f"{url.path}?{url.query}", {**img, "Origin": EVIL})[0] == 403
    put = urlsplit(s3.generate_presigned_url("put_object", Params={"Bucket": "out", "Key": "planted.jpg"}))
    assert send(emulator, "PUT", f"{put.path}?{put.query}", img, b"x")[0] == 403
    assert client("sqs", emulator.endpoint).list_queues().get("QueueUrls", []) == []
    assert objects(emulator, "out") == ["thumb/cat.jpg"]

"""The package really runs on Lambda's Python: unzip it, start AWS's runtime interface client
(awslambdaric) under python3.12 against a local Runtime API stub, hand it a real S3 event
captured from moto's server, and find the renditions in the output bucket, byte-identical to
what the local engine renders."""

from __future__ import annotations

import glob
import json
import os
import subprocess
import threading
import time
import zipfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from cli.deploy.package import cache_dir
from core.naming import s3_output_key
from core.pipeline import render
from core.recipe import load_config

from helpers_deploy import client, imgproc, ok
from imaging import decode, encode, photo, psnr

pytestmark = pytest.mark.slow

PRESETS = """
[presets.small]
description = "Small JPEG and WebP"
[[presets.small.renditions]]
name = "small"
width = 160
height = 160
format = ["jpeg", "webp"]
quality = { jpeg = 78, webp = 70 }
"""
IN_BUCKET, OUT_BUCKET = "runtime-in", "runtime-out"
KEY = "uploads/cat 1.jpg"
REQUEST_ID = "8476a536-e9f4-11e8-9739-2dfe598c3fcd"


def python312() -> str:
    """The python3.12 interpreter (PATH, else pyenv's install), or skip."""
    candidates = [*sorted(glob.glob(os.path.expanduser("~/.pyenv/versions/3.12*/bin/python3.12"))), "python3.12"]
    for cand in candidates:
        try:
            proc = subprocess.run([cand, "-c", "import sys; print(sys.version_info[:2] == (3, 12))"],
                                  capture_output=True, text=True, timeout=30)
        except OSError:
            continue
        if proc.stdout.strip() == "True":
            return cand
    pytest.skip("python3.12 is not installed")


@pytest.fixture(scope="module")
def runtime_deps() -> tuple[str, Path]:
    """awslambdaric and boto3 for python3.12 in a cached --target folder (what Lambda's image provides)."""
    py = python312()
    target = cache_dir() / "lambda-runtime-py312"
    marker = target / ".imgproc-ready"
    if not marker.exists():
        proc = subprocess.run([py, "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
                               "--target", str(target), "awslambdaric", "boto3"],
                              capture_output=True, text=True, timeout=600)
        assert proc.returncode == 0, proc.stderr[-2000:]
        marker.write_text("awslambdaric boto3\n")
    return py, target


class RuntimeApi:
    """The Lambda Runtime API on 127.0.0.1: hands out one event, collects the answer."""

    def __init__(self, event: dict):
        self.event = json.dumps(event).encode()
        self.result: tuple[str, bytes] | None = None
        self.sent = False
        self.answered = threading.Event()
        self.finished = threading.Event()
        api = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                if self.path != "/2018-06-01/runtime/invocation/next":
                    self.send_error(404)
                    return
                if api.sent:
                    api.finished.wait(60)  # the client polls for the next event; keep it waiting
                    self.close_connection = True
                    return
                api.sent = True
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Lambda-Runtime-Aws-Request-Id", REQUEST_ID)
                self.send_header("Lambda-Runtime-Deadline-Ms", str(int(time.time() * 1000) + 60_000))
                self.send_header("Lambda-Runtime-Invoked-Function-Arn",
                                 "arn:aws:lambda:us-east-1:123456789012:function:imgproc-process")
                self.send_header("Lambda-Runtime-Trace-Id", "Root=1-5bef4de7-ad49b0e87f6ef6c87fc2e700;Parent=0;Sampled=0")
                self.send_header("Content-Length", str(len(api.event)))
                self.end_headers()
                self.wfile.write(api.event)

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                api.result = (self.path.rsplit("/", 1)[-1], body)  # "response" or "error"
                self.send_response(202)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"{}")
                api.answered.set()

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.server.handle_error = lambda request, address: None  # the client is killed mid-poll
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.server.server_address[1]}"

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.finished.set()
        self.server.shutdown()
        self.server.server_close()


def captured_s3_event(s3, sqs, key: str, body: bytes) -> dict:
    """Upload ``key`` with an S3 -> SQS notification and return the event S3 delivered."""
    queue = sqs.create_queue(QueueName="capture")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    s3.put_bucket_notification_configuration(Bucket=IN_BUCKET, NotificationConfiguration={
        "QueueConfigurations": [{"QueueArn": arn, "Events": ["s3:ObjectCreated:*"]}]})
    s3.put_object(Bucket=IN_BUCKET, Key=key, Body=body, ContentType="image/jpeg")
    for _ in range(20):
        for msg in sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10, WaitTimeSeconds=1).get("Messages", []):
            event = json.loads(msg["Body"])
            if "Records" in event:  # the first message is S3's s3:TestEvent
                return event
    raise AssertionError("moto delivered no S3 event")


def test_the_package_runs_under_awslambdaric_on_python312(moto_server, runtime_deps, tmp_path):
    py, deps = runtime_deps
    (tmp_path / "imgproc.toml").write_text(PRESETS, encoding="utf-8")
    ok(imgproc("package", "-o", "lambda.zip", cwd=tmp_path))
    task = tmp_path / "task"
    with zipfile.ZipFile(tmp_path / "lambda.zip") as zf:
        zf.extractall(task)

    env = {"PATH": os.environ.get("PATH", ""), "PYTHONPATH": f"{task}{os.pathsep}{deps}", "PYTHONNOUSERSITE": "1",
           "LAMBDA_TASK_ROOT": str(task), "_HANDLER": "lambda_entry.handler", "TZ": ":UTC",
           "AWS_LAMBDA_FUNCTION_NAME": "imgproc-process", "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
           "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "1024", "AWS_LAMBDA_LOG_GROUP_NAME": "/aws/lambda/imgproc-process",
           "AWS_LAMBDA_LOG_STREAM_NAME": "2026/11/26/[$LATEST]0123", "AWS_REGION": "us-east-1",
           "AWS_DEFAULT_REGION": "us-east-1", "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
           "AWS_ENDPOINT_URL": moto_server, "IMGPROC_OUTPUT_BUCKET": OUT_BUCKET, "IMGPROC_INPUT_BUCKET": IN_BUCKET,
           "IMGPROC_INPUT_PREFIX": "uploads/", "IMGPROC_PRESETS": "small"}

    # Pillow comes from the package (the manylinux wheel), not from any local install.
    where = subprocess.run([py, "-s", "-c", "import PIL, PIL._imaging, PIL.features; "
                            "print(PIL.__file__); print(PIL.features.check('webp'))"],
                           env=env, cwd=task, capture_output=True, text=True, timeout=60)
    assert where.returncode == 0, where.stderr
    assert where.stdout.split() == [str(task / "PIL" / "__init__.py"), "True"]

    s3, sqs = client("s3"), client("sqs")
    s3.create_bucket(Bucket=IN_BUCKET)
    s3.create_bucket(Bucket=OUT_BUCKET)
    source = encode(photo(800, 600, seed=7), "JPEG", quality=90)
    event = captured_s3_event(s3, sqs, KEY, source)

    log = tmp_path / "function.log"
    with RuntimeApi(event) as api, open(log, "wb") as out:
        env["AWS_LAMBDA_RUNTIME_API"] = api.address
        proc = subprocess.Popen([py, "-s", "-m", "awslambdaric", "lambda_entry.handler"], cwd=task, env=env,
                                stdout=out, stderr=subprocess.STDOUT)
        try:
            answered = api.answered.wait(90)
        finally:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
    output = log.read_text(errors="replace")
    assert answered, f"no answer from the function:\n{output}"
    kind, body = api.result
    assert kind == "response", f"{kind}: {body!r}\n{output}"

    lines = [json.loads(line) for line in output.splitlines() if line.startswith("{")]
    (image,) = [line for line in lines if line.get("event") == "image"]
    assert (image["outcome"], image["key"], image["request_id"]) == ("ok", KEY, REQUEST_ID)

    config = load_config(tmp_path / "imgproc.toml")
    renditions = config.select(["small"])
    local = {o.rendition.label: o.data for o in render(source, renditions, config.limits, KEY).outputs}
    for r in renditions:
        written = s3.get_object(Bucket=OUT_BUCKET, Key=s3_output_key("", KEY, r))
        data = written["Body"].read()
        assert written["ContentType"] == r.content_type
        assert decode(data).size == (160, 120)
        assert psnr(decode(data), decode(local[r.label])) > 45
        # Same Pillow version, same wheel libraries: the same bytes as `imgproc process`.
        assert data == local[r.label], f"{r.label}: Lambda bytes differ from the local render"

"""End to end, offline, as a user: `imgproc local up`, deploy, push --wait, renditions, logs --follow,
a corrupt upload, stats, destroy, `imgproc local down` — and no process left behind.

Everything goes through the real `imgproc` command in subprocesses, against each Docker-free engine
on a free port: `moto` (our emulator) and `localstack` (real LocalStack on the host, installed on
first use into a cached venv, with our executor plugin); the function runs from the zip
`imgproc deploy` built and uploaded. Every wait is bounded; the emulator is stopped (and its
process group killed) even on failure.
"""

from __future__ import annotations

import io
import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import boto3
import pytest
from PIL import Image

from cli.emulator.localstack_engine import LocalStackUnavailable, find_python313
from cli.emulator.runner import find_runtime_python
from core.naming import s3_output_key
from core.recipe import builtin_config

from imaging import encode, jpeg_with_orientation, photo, psnr, reference_resize, stored_for_orientation
from processes import alive, descendants
from testdata import subprocess_env

pytestmark = pytest.mark.slow

IMGPROC = Path(sys.executable).parent / "imgproc"
STACK = "imgproc"


class Offline:
    """A running `imgproc local up` and the environment that points commands at it."""

    def __init__(self, home: Path, engine: str):
        self.home, self.engine = home, engine
        self.state_dir = home / "emulator"
        self.env = subprocess_env(
            AWS_ACCESS_KEY_ID="test", AWS_SECRET_ACCESS_KEY="test", AWS_DEFAULT_REGION="us-east-1", AWS_REGION="us-east-1",
        )
        self.endpoint = ""
        self.pid = 0

    def run(self, *args: str, timeout: float = 120, ok: bool = True) -> subprocess.CompletedProcess:
        result = subprocess.run([str(IMGPROC), *args], capture_output=True, text=True, timeout=timeout,
                                cwd=self.home, env=self.env)
        if ok:
            assert result.returncode == 0, f"imgproc {' '.join(args)} -> {result.returncode}\n{result.stdout}\n{result.stderr}"
        return result

    def client(self, service: str):
        return boto3.client(service, endpoint_url=self.endpoint, region_name="us-east-1",
                            aws_access_key_id="test", aws_secret_access_key="test")


def _localstack_runnable() -> None:
    """LocalStack needs Python 3.13: CI has it (and must run this); elsewhere its absence skips."""
    try:
        find_python313()
    except LocalStackUnavailable as exc:
        if os.environ.get("CI"):
            raise
        pytest.skip(str(exc))


@pytest.fixture(params=["moto", "localstack"])
def offline(tmp_path, request):
    env = Offline(tmp_path, request.param)
    if env.engine == "localstack":
        _localstack_runnable()
    # The first LocalStack run installs it (about 30 s, once per machine; the venv is cached).
    started = env.run("local", "up", "--engine", env.engine, "--port", "0", "--state-dir", str(env.state_dir),
                      "--no-persist", timeout=600)
    info = json.loads((env.state_dir / "emulator.json").read_text())
    env.endpoint, env.pid = info["endpoint"], info["pid"]
    assert f"export AWS_ENDPOINT_URL={env.endpoint}" in started.stdout
    env.env["AWS_ENDPOINT_URL"] = env.endpoint  # what the user exports
    try:
        yield env
    finally:
        subprocess.run([str(IMGPROC), "local", "down", "--state-dir", str(env.state_dir), "--timeout", "15"],
                       capture_output=True, timeout=60, cwd=tmp_path, env=env.env)
        try:
            os.killpg(env.pid, signal.SIGKILL)  # only if `local down` could not stop it
        except ProcessLookupError:
            pass


class Follower:
    """`imgproc logs --follow --format json` in the background; collects the JSON lines it prints."""

    def __init__(self, offline: Offline):
        self.proc = subprocess.Popen(
            [str(IMGPROC), "logs", "--stack", STACK, "--follow", "--format", "json", "--since", "30m"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=offline.home, env=offline.env,
        )
        self.lines: queue.Queue[str] = queue.Queue()
        self.records: list[dict] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for line in self.proc.stdout:  # type: ignore[union-attr]
            self.lines.put(line)

    def images(self) -> list[dict]:
        while True:
            try:
                line = self.lines.get_nowait()
            except queue.Empty:
                break
            try:
                self.records.append(json.loads(line))
            except ValueError:
                pass
        return [r for r in self.records if r.get("event") == "image"]

    def wait_for(self, condition, timeout: float, what: str) -> list[dict]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            images = self.images()
            if condition(images):
                return images
            if self.proc.poll() is not None:
                raise AssertionError(f"logs --follow exited ({self.proc.returncode}): {self.proc.stderr.read()}")  # type: ignore[union-attr]
            time.sleep(0.3)
        raise AssertionError(f"logs --follow did not show {what} within {timeout} s; saw {self.images()}")

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
        return self.proc.returncode


def write_photos(folder: Path) -> dict[str, Image.Image]:
    """Sample photos with tricky names; returns the upright image each one should display."""
    upright = {
        "cat 1.jpg": photo(600, 800, seed=11),
        "trip 2026/été+plage.png": photo(640, 480, seed=12),
        "a+b c ü.webp": photo(500, 375, seed=13),
    }
    data = {
        "cat 1.jpg": jpeg_with_orientation(stored_for_orientation(upright["cat 1.jpg"], 6), 6, gps=True),
        "trip 2026/été+plage.png": encode(upright["trip 2026/été+plage.png"], "PNG"),
        "a+b c ü.webp": encode(upright["a+b c ü.webp"], "WEBP", quality=95),
    }
    for name, payload in data.items():
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(payload)
    return upright


def assert_cross_origin_refused(endpoint: str, bucket: str) -> None:
    """A web page the user visits must not drive the local AWS: LocalStack refuses foreign origins everywhere."""
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))

    def status(method: str, path: str, data: bytes | None = None, **headers: str) -> int:
        request = urllib.request.Request(endpoint + path, data=data, method=method, headers=headers)
        try:
            with opener.open(request, timeout=10) as response:
                return response.status
        except urllib.error.HTTPError as exc:
            return exc.code

    evil = {"Origin": "http://attacker.example"}
    form = {"Content-Type": "application/x-www-form-urlencoded"}  # a "simple" request: no preflight
    # Reading a bucket listing and uploading into the watched bucket (S3 checks nothing by default) ...
    assert status("GET", f"/{bucket}", **evil) == 403
    assert status("PUT", f"/{bucket}/uploads/evil.jpg", data=b"x", **evil) == 403
    assert status("GET", f"/{bucket}", Referer="http://attacker.example/page") == 403
    # ... and a form POST to a query-protocol API (deleting the stack).
    assert status("POST", "/", data=b"Action=DeleteStack&StackName=imgproc&Version=2010-05-15", **evil, **form) == 403
    # The same requests without a foreign origin (CLI, SDKs) still work.
    assert status("GET", f"/{bucket}") == 200


def assert_signed_url_serves(offline: Offline, s3, output_bucket: str, rendition) -> None:
    """`imgproc sign` gives a URL LocalStack serves (its /_aws/execute-api/ form), redirecting to the rendition."""
    url = offline.run("sign", f"{rendition.name}/cat 1.jpg", "--expires", "10m", timeout=60).stdout.strip()
    assert url.startswith(f"{offline.endpoint}/_aws/execute-api/"), url
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(url, timeout=60) as response:  # 302 to a presigned S3 URL, then the image
        served = response.read()
    stored = s3.get_object(Bucket=output_bucket, Key=s3_output_key("", "cat 1.jpg", rendition))["Body"].read()
    assert served == stored
    tampered = url.replace("cat%201.jpg", "cat%202.jpg") if "cat%201.jpg" in url else url + "x"
    with pytest.raises(urllib.error.HTTPError) as refused:
        opener.open(tampered, timeout=60)
    assert refused.value.code in {401, 403}


def assert_failed_event_reaches_failure_queue(offline: Offline, outputs: dict[str, str]) -> None:
    """A misconfigured function fails every attempt; after its retries the async event lands in the failure queue."""
    lam, sqs = offline.client("lambda"), offline.client("sqs")
    function = outputs["FunctionName"]
    variables = lam.get_function_configuration(FunctionName=function)["Environment"]["Variables"]
    lam.update_function_configuration(FunctionName=function,
                                      Environment={"Variables": {**variables, "IMGPROC_PRESETS": "no-such-preset"}})
    lam.get_waiter("function_updated_v2").wait(FunctionName=function)
    # A direct call failing on the new setting proves the new configuration is live before the async event.
    deadline = time.monotonic() + 30
    while "IMGPROC_PRESETS" not in lam.invoke(FunctionName=function, Payload=b'{"Records": []}')["Payload"].read().decode():
        assert time.monotonic() < deadline, "the updated function never ran with its new environment"
        time.sleep(0.5)
    event = {"Records": [{"eventSource": "aws:s3", "eventName": "ObjectCreated:Put", "awsRegion": "us-east-1",
                          "s3": {"bucket": {"name": outputs["InputBucketName"]}, "object": {"key": "retried.jpg"}}}]}
    lam.invoke(FunctionName=function, InvocationType="Event", Payload=json.dumps(event).encode())
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        messages = sqs.receive_message(QueueUrl=outputs["DeadLetterQueueUrl"], WaitTimeSeconds=2).get("Messages", [])
        if messages:
            failure = json.loads(messages[0]["Body"])
            assert failure["requestContext"]["condition"] == "RetriesExhausted", failure
            assert failure["requestContext"]["approximateInvokeCount"] == 3  # the first attempt and two retries
            assert "IMGPROC_PRESETS" in failure["responsePayload"]["errorMessage"]
            assert failure["requestPayload"]["Records"][0]["s3"]["object"]["key"] == "retried.jpg"
            return
    raise AssertionError("the failed event did not reach the failure queue within 60 s")


def test_offline_pipeline_end_to_end(offline, tmp_path):
    _python, warning = find_runtime_python("python3.12")
    assert warning is None, f"the e2e test needs Lambda's Python: {warning}"
    photos = tmp_path / "photos"
    upright = write_photos(photos)

    # Deploy: the stack, the package built for python3.12, the wiring (checked by deploy and status).
    # LocalStack serves API Gateway: deploy the retrieval API there too (moto's cannot invoke it).
    offline.run("deploy", "--yes", *(["--api"] if offline.engine == "localstack" else []), timeout=300)
    if offline.engine == "localstack":  # LocalStack ignores the template's lifecycle rule: status reports, --repair applies
        assert "problem lifecycle rule" in offline.run("status", timeout=60, ok=False).stdout
        offline.run("status", "--repair", timeout=60)
    offline.run("status", timeout=60)
    outputs = {o["OutputKey"]: o["OutputValue"]
               for o in offline.client("cloudformation").describe_stacks(StackName=STACK)["Stacks"][0]["Outputs"]}
    if offline.engine == "localstack":
        assert_cross_origin_refused(offline.endpoint, outputs["InputBucketName"])

    follower = Follower(offline)
    try:
        # Push and wait for every rendition.
        offline.run("push", str(photos), "--wait", "--timeout", "150", timeout=200)
        s3 = offline.client("s3")
        keys = sorted(o["Key"] for o in s3.list_objects_v2(Bucket=outputs["InputBucketName"])["Contents"])
        assert sorted(keys) == sorted(upright)

        # Renditions: format, size, orientation applied, no EXIF (GPS included), close to a careful resize.
        renditions = builtin_config().select(None)
        for key in keys:
            for rendition in renditions:
                body = s3.get_object(Bucket=outputs["OutputBucketName"], Key=s3_output_key("", key, rendition))["Body"].read()
                image = Image.open(io.BytesIO(body))
                image.load()
                assert image.format.lower() == rendition.format
                source = upright[key]
                scale = min(1.0, rendition.width / source.width, rendition.height / source.height)
                expected = (round(source.width * scale), round(source.height * scale))
                assert abs(image.width - expected[0]) <= 1 and abs(image.height - expected[1]) <= 1, (key, rendition.label)
                assert not image.getexif(), f"{key} {rendition.label} still has EXIF"
                assert psnr(image, reference_resize(source, image.size)) > 25, (key, rendition.label)  # JPEG q95 source, q80 thumb

        if offline.engine == "localstack":
            assert_signed_url_serves(offline, s3, outputs["OutputBucketName"], renditions[0])

        # The logs, followed: exactly one line per image, all ok.
        expected_keys = set(upright)
        follower.wait_for(lambda imgs: {r["key"] for r in imgs} >= expected_keys, 60, "one line per image")

        # A corrupt upload fails alone, and its error shows up in the followed logs.
        s3.put_object(Bucket=outputs["InputBucketName"], Key="broken photo.jpg", Body=b"\xff\xd8\xff\xe0" + b"not a jpeg" * 50)
        images = follower.wait_for(lambda imgs: any(r["key"] == "broken photo.jpg" for r in imgs), 90, "the corrupt file")
        time.sleep(2)  # a duplicate, if any, would arrive within a poll or two
        images = follower.images()
    finally:
        follower.stop()

    by_key: dict[str, list[dict]] = {}
    for record in images:
        by_key.setdefault(record["key"], []).append(record)
    assert sorted(by_key) == sorted(expected_keys | {"broken photo.jpg"})
    assert all(len(records) == 1 for records in by_key.values()), by_key
    assert all(by_key[key][0]["outcome"] == "ok" for key in expected_keys)
    broken = by_key["broken photo.jpg"][0]
    assert broken["outcome"] == "failed" and broken["level"] == "ERROR"
    assert broken["error"]["type"] in {"CorruptImage", "NotAnImage"} and broken["error"]["transient"] is False

    # Lambda's own lines were written too (START/END/REPORT), which `stats` reads.
    stats = offline.run("stats", "--stack", STACK, "--since", "1h", timeout=60)
    rows = {}
    for line in stats.stdout.splitlines():
        cells = [c.strip() for c in line.strip("│┃ ").split("│")]
        if len(cells) == 2:
            rows[cells[0]] = cells[1]
    assert rows["invocations"] == "4" and rows["images processed"] == "3" and rows["images failed"] == "1", rows
    # One per warm worker: our emulator runs two; LocalStack starts an environment per concurrent event.
    cold_starts = int(rows["cold starts"].split()[0])
    assert 1 <= cold_starts <= (2 if offline.engine == "moto" else 4), rows

    if offline.engine == "moto":
        # Open problem on LocalStack: after UpdateFunctionConfiguration on a function that already ran, its
        # async events (S3 notifications and Invoke Event, accepted with 202) never ran in 4 of 5 e2e runs,
        # so none reached the queue, although a synchronous call ran the new configuration.
        assert_failed_event_reaches_failure_queue(offline, outputs)

    # Tear down: the stack goes, then the emulator, with every process it started.
    processes = descendants(offline.pid)
    assert len(processes) >= 2  # the emulator and at least one warm function worker
    offline.run("destroy", "--delete-data", "--yes", timeout=120)
    with pytest.raises(offline.client("cloudformation").exceptions.ClientError):
        offline.client("cloudformation").describe_stacks(StackName=STACK)
    if offline.engine == "moto":
        # The walkthrough is repeatable: after `destroy --delete-data` the same stack deploys again.
        offline.run("deploy", "--stack", STACK, "--yes", timeout=300)
        # Adding the API to the existing stack is an update that keeps every output, the API's included.
        offline.run("deploy", "--stack", STACK, "--api", "--yes", timeout=300)
        status = json.loads(offline.run("status", "--stack", STACK, "--json", ok=False, timeout=60).stdout)
        assert {"InputBucketName", "FunctionName", "ApiUrl"} <= set(status["outputs"]), status["outputs"]
        assert "/_aws/execute-api/" in status["outputs"]["ApiUrl"]
        offline.run("destroy", "--stack", STACK, "--delete-data", "--yes", timeout=120)
    offline.run("local", "down", "--state-dir", str(offline.state_dir), timeout=60)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and any(alive(pid) for pid in processes):
        time.sleep(0.2)
    assert not [pid for pid in processes if alive(pid)], "processes left behind"

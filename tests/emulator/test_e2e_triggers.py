"""End to end per trigger, offline, through the real CLI: `imgproc local up`, `deploy --trigger
queue|eventbridge`, `status`, `push --wait`, a corrupt upload, `logs`; and a burst of 200 uploads
in queue mode that must give every rendition exactly once.

Like test_e2e.py: subprocesses against the Docker-free emulator on a free port; every wait is
bounded and the emulator is stopped even on failure.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import boto3
import pytest

from core.naming import s3_output_key
from core.recipe import builtin_config

from imaging import encode, photo
from testdata import subprocess_env

pytestmark = pytest.mark.slow

IMGPROC = Path(sys.executable).parent / "imgproc"
STACK = "imgproc"
RENDITIONS = builtin_config().select(None)


class Offline:
    def __init__(self, home: Path):
        self.home, self.state_dir = home, home / "emulator"
        self.env = subprocess_env(AWS_ACCESS_KEY_ID="test", AWS_SECRET_ACCESS_KEY="test",
                                  AWS_DEFAULT_REGION="us-east-1", AWS_REGION="us-east-1")
        self.endpoint, self.pid = "", 0

    def run(self, *args: str, timeout: float = 120, ok: bool = True) -> subprocess.CompletedProcess:
        result = subprocess.run([str(IMGPROC), *args], capture_output=True, text=True, timeout=timeout,
                                cwd=self.home, env=self.env)
        if ok:
            assert result.returncode == 0, f"imgproc {' '.join(args)} -> {result.returncode}\n{result.stdout}\n{result.stderr}"
        return result

    def client(self, service: str):
        return boto3.client(service, endpoint_url=self.endpoint, region_name="us-east-1",
                            aws_access_key_id="test", aws_secret_access_key="test")

    def outputs(self) -> dict[str, str]:
        stack = self.client("cloudformation").describe_stacks(StackName=STACK)["Stacks"][0]
        return {o["OutputKey"]: o["OutputValue"] for o in stack["Outputs"]}

    def image_lines(self) -> list[dict]:
        out = self.run("logs", "--stack", STACK, "--format", "json", "--since", "1h", timeout=60).stdout
        lines = [json.loads(x) for x in out.splitlines() if x.startswith("{")]
        return [x for x in lines if x.get("event") == "image"]

    def depth(self, url: str) -> int:
        attrs = self.client("sqs").get_queue_attributes(QueueUrl=url, AttributeNames=[
            "ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"])["Attributes"]
        return int(attrs["ApproximateNumberOfMessages"]) + int(attrs["ApproximateNumberOfMessagesNotVisible"])


@pytest.fixture
def offline(tmp_path):
    env = Offline(tmp_path)
    env.run("local", "up", "--port", "0", "--state-dir", str(env.state_dir), "--no-persist", timeout=60)
    info = json.loads((env.state_dir / "emulator.json").read_text())
    env.endpoint, env.pid = info["endpoint"], info["pid"]
    env.env["AWS_ENDPOINT_URL"] = env.endpoint
    try:
        yield env
    finally:
        subprocess.run([str(IMGPROC), "local", "down", "--state-dir", str(env.state_dir), "--timeout", "15"],
                       capture_output=True, timeout=60, cwd=tmp_path, env=env.env)
        try:
            os.killpg(env.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def write_photos(folder: Path, count: int, size: tuple[int, int] = (320, 240)) -> list[str]:
    names = []
    for i in range(count):
        name = f"burst/img {i:03d}.jpg" if count > 5 else f"photo {i}+é.jpg"
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(encode(photo(*size, seed=i), "JPEG"))
        names.append(name)
    return names


def output_keys(offline: Offline, bucket: str) -> list[str]:
    pages = offline.client("s3").get_paginator("list_objects_v2").paginate(Bucket=bucket)
    return sorted(o["Key"] for page in pages for o in page.get("Contents", []))


def wait_for(condition, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.5)
    raise AssertionError(f"{what} did not happen within {timeout} s")


@pytest.mark.parametrize("trigger", ["queue", "eventbridge"])
def test_every_trigger_end_to_end(offline, tmp_path, trigger):
    (tmp_path / "imgproc.toml").write_text(f'[deploy]\ntrigger = "{trigger}"\nbatch_window = 1\n', encoding="utf-8")
    photos = tmp_path / "photos"
    names = write_photos(photos, 3)

    offline.run("deploy", "--yes", timeout=300)
    status = json.loads(offline.run("status", "--json", timeout=60).stdout)
    assert {c["name"]: c["detail"] for c in status["checks"]}["trigger"] == trigger
    outputs = offline.outputs()

    offline.run("push", str(photos), "--wait", "--timeout", "150", timeout=200)
    assert output_keys(offline, outputs["OutputBucketName"]) == sorted(
        s3_output_key("", name, r) for name in names for r in RENDITIONS)

    # A corrupt upload is logged as failed once, and not retried (nothing left in any queue).
    offline.client("s3").put_object(Bucket=outputs["InputBucketName"], Key="broken.jpg",
                                    Body=b"\xff\xd8\xff\xe0" + b"not a jpeg" * 50)
    wait_for(lambda: any(x["key"] == "broken.jpg" for x in offline.image_lines()), 90, "the corrupt file's line")
    time.sleep(3)  # a retry would log a second line within a poll or two
    lines = offline.image_lines()
    by_key: dict[str, list[dict]] = {}
    for line in lines:
        by_key.setdefault(line["key"], []).append(line)
    assert sorted(by_key) == sorted([*names, "broken.jpg"])
    assert all(len(v) == 1 for v in by_key.values()), by_key
    (broken,) = by_key["broken.jpg"]
    assert broken["outcome"] == "failed" and broken["error"]["transient"] is False
    if trigger == "queue":
        assert all(line.get("message_id") for line in lines)  # delivered by the SQS poller
        assert offline.depth(outputs["UploadQueueUrl"]) == 0
        assert offline.depth(outputs["UploadDeadLetterQueueUrl"]) == 0
    assert offline.depth(outputs["DeadLetterQueueUrl"]) == 0
    offline.run("status", timeout=60)  # every check ok, dead-letter queues empty
    stats = json.loads(offline.run("stats", "--stack", STACK, "--since", "1h", "--json", timeout=60).stdout)
    assert (stats["images"]["processed"], stats["images"]["failed"]) == (len(names), 1)
    expected = {"failure queue": 0, **({"upload queue": 0, "dead-letter queue": 0} if trigger == "queue" else {})}
    assert stats["queues"] == expected
    table = offline.run("stats", "--stack", STACK, "--since", "1h", timeout=60).stdout
    assert "queues now: failure queue 0" in table


@pytest.mark.parametrize("trigger", ["queue", "notification", "eventbridge"])
def test_a_burst_of_200_uploads_gives_every_rendition_once(offline, tmp_path, trigger):
    (tmp_path / "imgproc.toml").write_text(f'[deploy]\ntrigger = "{trigger}"\nbatch_size = 10\nbatch_window = 1\n'
                                           'presets = ["thumb"]\n', encoding="utf-8")
    photos = tmp_path / "photos"
    names = write_photos(photos, 200, size=(160, 120))
    offline.run("deploy", "--yes", timeout=300)
    outputs = offline.outputs()

    started = time.monotonic()
    offline.run("push", str(photos), "--wait", "--timeout", "600", timeout=700)
    elapsed = time.monotonic() - started

    thumb = [r for r in RENDITIONS if r.name == "thumb"]
    assert output_keys(offline, outputs["OutputBucketName"]) == sorted(
        s3_output_key("", name, r) for name in names for r in thumb)
    lines = offline.image_lines()
    keys = [line["key"] for line in lines]
    assert sorted(keys) == sorted(names)  # each image processed exactly once
    assert all(line["outcome"] == "ok" for line in lines)
    if trigger == "queue":
        assert offline.depth(outputs["UploadQueueUrl"]) == 0 and offline.depth(outputs["UploadDeadLetterQueueUrl"]) == 0
    batches = len({line["request_id"] for line in lines})
    print(f"\nburst ({trigger}): {len(names)} uploads -> {len(lines)} image lines in {batches} invocations, "
          f"{elapsed:.1f} s from push to the last rendition")

"""The `imgproc reprocess` scenario against `imgproc local up`, through the real CLI.

Shared by tests/emulator/test_reprocess_e2e.py (a few dozen images, in CI) and
tests/support/measure_reprocess.py (500 images, measured once). Every wait is bounded;
`LocalUp` stops the emulator (and its process group) even when a step fails.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import boto3

from imaging import encode, photo
from testdata import subprocess_env

IMGPROC = Path(sys.executable).parent / "imgproc"
STACK = "imgproc"
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
width = 320
height = 320
format = ["jpeg", "webp"]
"""
LABELS = ("thumb.jpg", "web.jpg", "web.webp")


class LocalUp:
    """A running `imgproc local up` in ``home`` and the environment that points `imgproc` at it."""

    def __init__(self, home: Path):
        self.home = home
        self.state_dir = home / "emulator"
        self.env = subprocess_env(AWS_ACCESS_KEY_ID="test", AWS_SECRET_ACCESS_KEY="test",
                                  AWS_DEFAULT_REGION="us-east-1", AWS_REGION="us-east-1",
                                  XDG_CONFIG_HOME=str(home / "config"))
        self.endpoint, self.pid = "", 0

    def __enter__(self) -> LocalUp:
        self.run("local", "up", "--port", "0", "--state-dir", str(self.state_dir), "--no-persist", timeout=60)
        info = json.loads((self.state_dir / "emulator.json").read_text())
        self.endpoint, self.pid = info["endpoint"], info["pid"]
        self.env["AWS_ENDPOINT_URL"] = self.endpoint
        return self

    def __exit__(self, *exc: Any) -> None:
        subprocess.run([str(IMGPROC), "local", "down", "--state-dir", str(self.state_dir), "--timeout", "15"],
                       capture_output=True, timeout=60, cwd=self.home, env=self.env)
        try:
            os.killpg(self.pid, signal.SIGKILL)  # only if `local down` could not stop it
        except (ProcessLookupError, PermissionError):
            pass

    def run(self, *args: str, timeout: float = 300, codes: tuple[int, ...] = (0,)) -> subprocess.CompletedProcess:
        result = subprocess.run([str(IMGPROC), *args], capture_output=True, text=True, timeout=timeout,
                                cwd=self.home, env=self.env)
        assert result.returncode in codes, (f"imgproc {' '.join(args)} -> {result.returncode}\n"
                                            f"{result.stdout}\n{result.stderr}")
        return result

    def json(self, *args: str, timeout: float = 300, codes: tuple[int, ...] = (0,)) -> dict:
        return json.loads(self.run(*args, "--json", timeout=timeout, codes=codes).stdout)

    def client(self, service: str) -> Any:
        return boto3.client(service, endpoint_url=self.endpoint, region_name="us-east-1",
                            aws_access_key_id="test", aws_secret_access_key="test")

    def outputs(self) -> dict[str, str]:
        stack = self.client("cloudformation").describe_stacks(StackName=STACK)["Stacks"][0]
        return {o["OutputKey"]: o["OutputValue"] for o in stack["Outputs"]}


def deploy(local: LocalUp, thumb: int, deploy_table: str = "") -> None:
    """Write imgproc.toml (the presets, and ``[deploy]`` settings such as 'trigger = "queue"') and deploy."""
    table = f"[deploy]\n{deploy_table}\n" if deploy_table else ""
    (local.home / "imgproc.toml").write_text(table + PRESETS.format(thumb=thumb))
    local.run("deploy", "--yes", timeout=300)
    time.sleep(1)  # an event sent right as a function update turns Active can be lost (EMULATORS.md)


def upload_without_trigger(local: LocalUp, count: int, prefix: str, first_seed: int = 0) -> list[str]:
    """Remove the bucket's notification (the broken wiring), then upload ``count`` photos."""
    s3, bucket = local.client("s3"), local.outputs()["InputBucketName"]
    s3.put_bucket_notification_configuration(Bucket=bucket, NotificationConfiguration={})
    keys = []
    for i in range(count):
        key = f"{prefix}photo {i:04d}+x.jpg"
        s3.put_object(Bucket=bucket, Key=key, Body=encode(photo(480, 360, seed=first_seed + i), "JPEG", quality=85))
        keys.append(key)
    return keys


def wait_until_current(local: LocalUp, expected: int, timeout: float, prefix: str = "") -> tuple[dict, float]:
    """Poll `reprocess --dry-run --json` until ``expected`` sources are current; (plan, seconds waited)."""
    started = time.monotonic()
    args = ["reprocess", "--dry-run"] + (["--prefix", prefix] if prefix else [])
    plan = local.json(*args)["plan"]
    while plan["counts"]["current"] < expected and time.monotonic() - started < timeout:
        time.sleep(1.0)
        plan = local.json(*args)["plan"]
    return plan, time.monotonic() - started


def output_heads(local: LocalUp, keys: list[str], labels: tuple[str, ...] = LABELS) -> dict[str, dict]:
    """{output key: HeadObject} for each source's renditions."""
    s3, bucket = local.client("s3"), local.outputs()["OutputBucketName"]
    heads = {}
    for key in keys:
        stem = key.rpartition(".")[0]
        for label in labels:
            name, ext = label.split(".")
            out = f"{name}/{stem}.{ext}"
            heads[out] = s3.head_object(Bucket=bucket, Key=out)
    return heads


def report_rows(local: LocalUp, report_url: str) -> list[list[str]]:
    """Every row of a Batch Operations completion report (s3://bucket/prefix/job-<id>/)."""
    import csv
    import io

    s3 = local.client("s3")
    bucket, _, prefix = report_url.removeprefix("s3://").partition("/")
    manifest = json.loads(s3.get_object(Bucket=bucket, Key=f"{prefix}manifest.json")["Body"].read())
    rows = []
    for result in manifest["Results"]:
        text = s3.get_object(Bucket=result["Bucket"], Key=result["Key"])["Body"].read().decode()
        rows += list(csv.reader(io.StringIO(text)))
    return rows

"""`imgproc local up/down/status` as a user runs them: a background emulator, saved state, clean stop."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import boto3
import pytest

from cli.emulator import settings

from lambdazip import HANDLER, make_zip
from processes import alive, descendants
from testdata import subprocess_env

pytestmark = pytest.mark.slow

IMGPROC = Path(sys.executable).parent / "imgproc"


def imgproc(*args: str, cwd: Path, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(IMGPROC), *args], capture_output=True, text=True, timeout=timeout, cwd=cwd, env=subprocess_env(),
    )


def aws(service: str, endpoint: str):
    return boto3.client(service, endpoint_url=endpoint, region_name="us-east-1")


def test_up_prints_the_export_and_down_stops_everything_and_state_survives_a_restart(state_dir, tmp_path):
    started = imgproc("local", "up", "--port", "0", "--state-dir", str(state_dir), cwd=tmp_path)
    assert started.returncode == 0, started.stdout + started.stderr
    info = json.loads((state_dir / "emulator.json").read_text())
    endpoint = info["endpoint"]
    assert f"export AWS_ENDPOINT_URL={endpoint}" in started.stdout
    assert endpoint.startswith("http://127.0.0.1:")
    assert imgproc("local", "status", "--state-dir", str(state_dir), cwd=tmp_path).returncode == 0

    # A user's pipeline: function, buckets, notification; one upload runs the function (a warm worker).
    iam, lam, s3 = aws("iam", endpoint), aws("lambda", endpoint), aws("s3", endpoint)
    role = iam.create_role(RoleName="r", AssumeRolePolicyDocument="{}")["Role"]["Arn"]
    arn = lam.create_function(FunctionName="fn", Runtime="python3.12", Role=role, Handler="app.handler",
                              Code={"ZipFile": make_zip(HANDLER)}, Environment={"Variables": {"OUT": "out-bucket"}})["FunctionArn"]
    for bucket in ("in-bucket", "out-bucket"):
        s3.create_bucket(Bucket=bucket)
    s3.put_bucket_notification_configuration(Bucket="in-bucket", NotificationConfiguration={
        "LambdaFunctionConfigurations": [{"LambdaFunctionArn": arn, "Events": ["s3:ObjectCreated:*"]}]})
    s3.put_object(Bucket="in-bucket", Key="first.jpg", Body=b"1")
    wait_for(lambda: key_exists(s3, "out-bucket", "copy/first.jpg"), 60)
    processes = descendants(info["pid"])
    assert len(processes) >= 2  # the emulator and a warm function worker

    stopped = imgproc("local", "down", "--state-dir", str(state_dir), cwd=tmp_path)
    assert stopped.returncode == 0, stopped.stdout + stopped.stderr
    assert not [pid for pid in processes if alive(pid)]
    assert not (state_dir / "emulator.json").exists()
    assert settings.port_available("127.0.0.1", info["port"])

    # Same folder again: buckets, objects, the function and its wiring are back, and they run.
    again = imgproc("local", "up", "--port", "0", "--state-dir", str(state_dir), cwd=tmp_path)
    assert again.returncode == 0, again.stdout + again.stderr
    endpoint = json.loads((state_dir / "emulator.json").read_text())["endpoint"]
    s3 = aws("s3", endpoint)
    assert s3.get_object(Bucket="out-bucket", Key="copy/first.jpg")["Body"].read() == b"1"
    s3.put_object(Bucket="in-bucket", Key="second.jpg", Body=b"2")
    wait_for(lambda: key_exists(s3, "out-bucket", "copy/second.jpg"), 60)
    starts = [e["message"] for e in aws("logs", endpoint).filter_log_events(logGroupName="/aws/lambda/fn")["events"]
              if e["message"].startswith("START")]
    assert len(starts) == 2  # the log group and its first invocation were kept too
    assert imgproc("local", "down", "--state-dir", str(state_dir), cwd=tmp_path).returncode == 0


def test_reset_starts_empty(state_dir, tmp_path):
    assert imgproc("local", "up", "--port", "0", "--state-dir", str(state_dir), cwd=tmp_path).returncode == 0
    endpoint = json.loads((state_dir / "emulator.json").read_text())["endpoint"]
    aws("s3", endpoint).create_bucket(Bucket="kept-bucket")
    assert imgproc("local", "down", "--state-dir", str(state_dir), cwd=tmp_path).returncode == 0
    assert imgproc("local", "up", "--port", "0", "--state-dir", str(state_dir), "--reset", cwd=tmp_path).returncode == 0
    endpoint = json.loads((state_dir / "emulator.json").read_text())["endpoint"]
    assert aws("s3", endpoint).list_buckets()["Buckets"] == []
    assert imgproc("local", "down", "--state-dir", str(state_dir), cwd=tmp_path).returncode == 0


def test_a_busy_port_and_a_second_up_are_clear_errors(state_dir, tmp_path):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = imgproc("local", "up", "--port", str(port), "--state-dir", str(state_dir), cwd=tmp_path)
    assert result.returncode == 1
    assert f"port {port} on 127.0.0.1 is in use" in result.stdout + result.stderr
    assert "Traceback" not in result.stdout + result.stderr

    assert imgproc("local", "up", "--port", "0", "--state-dir", str(state_dir), cwd=tmp_path).returncode == 0
    second = imgproc("local", "up", "--port", "0", "--state-dir", str(state_dir), cwd=tmp_path)
    assert second.returncode == 1 and "already running" in second.stdout + second.stderr
    assert imgproc("local", "down", "--state-dir", str(state_dir), cwd=tmp_path).returncode == 0


def test_down_and_status_without_an_emulator(tmp_path):
    down = imgproc("local", "down", "--state-dir", str(tmp_path / "none"), cwd=tmp_path)
    assert down.returncode == 0 and "No emulator is running" in down.stdout
    status = imgproc("local", "status", "--state-dir", str(tmp_path / "none"), cwd=tmp_path)
    assert status.returncode == 1 and "imgproc local up" in status.stdout


def test_missing_moto_names_the_extra_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "moto.server", None)
    with pytest.raises(settings.EmulatorUnavailable, match=r"pip install -e '\.\[local\]'"):
        settings.require_moto()


def key_exists(s3, bucket: str, key: str) -> bool:
    try:
        s3.head_object(Bucket=bucket, Key=key)
    except s3.exceptions.ClientError:
        return False
    return True


def wait_for(condition, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.2)
    raise AssertionError(f"condition not met within {timeout} s")



def test_foreground_runs_until_ctrl_c_and_saves_state(state_dir, tmp_path):
    proc = subprocess.Popen(
        [str(IMGPROC), "local", "up", "--foreground", "--port", "0", "--state-dir", str(state_dir)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=tmp_path, env=subprocess_env(),
    )
    try:
        wait_for(lambda: (state_dir / "emulator.json").exists() or proc.poll() is not None, 30)
        endpoint = json.loads((state_dir / "emulator.json").read_text())["endpoint"]
        aws("s3", endpoint).create_bucket(Bucket="made-in-foreground")
        proc.send_signal(signal.SIGINT)
        output, _ = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=5)
    assert proc.returncode == 0, output
    assert "Traceback" not in output
    assert (state_dir / "state.pickle").exists() and not (state_dir / "emulator.json").exists()

"""`imgproc local up --engine localstack` without what it needs: one clear line, nothing started or written.

The engine itself (install, start, the executor plugin, the whole pipeline) is exercised end to end
in test_e2e.py.
"""

from __future__ import annotations

import base64
import json
import os
import signal

import boto3
import pytest
from typer.testing import CliRunner

from cli.app import app
from cli.emulator import control, localstack_engine

from lambdazip import make_zip


def test_no_python_313_is_one_clear_line_and_installs_nothing(tmp_path, monkeypatch):
    venv = tmp_path / "cache" / "localstack-venv"
    monkeypatch.setenv("IMGPROC_LOCALSTACK_VENV", str(venv))
    monkeypatch.delenv("IMGPROC_LOCALSTACK_PYTHON", raising=False)
    monkeypatch.setattr(localstack_engine, "find_runtime_python", lambda runtime: ("/usr/bin/python3", "not found"))
    monkeypatch.setattr(localstack_engine.shutil, "which", lambda name: None)  # no uv either

    result = CliRunner().invoke(app, ["local", "up", "--engine", "localstack", "--port", "0",
                                      "--state-dir", str(tmp_path / "state")])

    assert result.exit_code == 2, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and "LocalStack needs Python 3.13" in lines[0], result.output
    assert not venv.exists() and not (tmp_path / "state" / "emulator.json").exists()


def test_plugin_is_reinstalled_when_the_shared_runner_changes(monkeypatch, tmp_path):
    # runner.py is shared with the moto engine through a symlink: editing it must reach LocalStack's venv.
    plugin = tmp_path / "plugin"
    (plugin / "src").mkdir(parents=True)
    shared = tmp_path / "runner.py"
    shared.write_text("A = 1\n")
    (plugin / "src" / "runner.py").symlink_to(shared)
    monkeypatch.setattr(localstack_engine, "PLUGIN_DIR", plugin)
    before = localstack_engine.plugin_digest()
    shared.write_text("A = 2\n")
    assert localstack_engine.plugin_digest() != before


LIMITS_HANDLER = r'''
import os, sys, time

def handler(event, context):
    if "sleep" in event:
        time.sleep(event["sleep"])
    if "allocate_mb" in event:
        block = bytearray(event["allocate_mb"] * 1024 * 1024)
        block[::4096] = b"x" * len(block[::4096])  # touch every page: resident, not just reserved
    return {"python": "%d.%d" % sys.version_info[:2], "endpoint": os.environ.get("AWS_ENDPOINT_URL"),
            "task_root": os.environ.get("LAMBDA_TASK_ROOT"), "cwd": os.getcwd(), "pid": os.getpid()}
'''


@pytest.fixture
def localstack(tmp_path):
    try:
        localstack_engine.find_python313()
    except localstack_engine.LocalStackUnavailable as exc:
        if os.environ.get("CI"):
            raise
        pytest.skip(str(exc))
    state = tmp_path / "state"
    info = localstack_engine.start_detached(0, state, say=lambda line: None)
    try:
        yield info
    finally:
        control.stop(state, timeout_s=20)
        try:
            os.killpg(info["pid"], signal.SIGKILL)
        except ProcessLookupError:
            pass


@pytest.mark.slow
def test_executor_runs_python312_with_the_functions_timeout_and_memory(localstack):
    endpoint = localstack["endpoint"]
    client = boto3.client("lambda", endpoint_url=endpoint, region_name="us-east-1",
                          aws_access_key_id="test", aws_secret_access_key="test")
    client.create_function(FunctionName="limits", Runtime="python3.12", Role="arn:aws:iam::000000000000:role/r",
                           Handler="app.handler", Code={"ZipFile": make_zip(LIMITS_HANDLER)}, Timeout=2, MemorySize=128)
    client.get_waiter("function_active_v2").wait(FunctionName="limits")

    def invoke(event: dict) -> tuple[dict, str, str]:
        response = client.invoke(FunctionName="limits", Payload=json.dumps(event), LogType="Tail")
        body = json.loads(response["Payload"].read())
        return body, response.get("FunctionError", ""), base64.b64decode(response.get("LogResult", "")).decode()

    body, error, log = invoke({})
    assert not error and body["python"] == "3.12", body  # Lambda's runtime, not LocalStack's 3.13
    assert body["endpoint"] == endpoint and body["cwd"] == body["task_root"]
    report = next(line for line in log.splitlines() if line.startswith("REPORT"))
    assert "Init Duration" in report and 0 < int(report.split("Max Memory Used: ")[1].split()[0]) <= 128

    warm, _, log = invoke({})
    assert warm["pid"] == body["pid"] and "Init Duration" not in log  # the same warm worker

    body, error, log = invoke({"sleep": 5})  # over the 2 s timeout
    assert error == "Unhandled" and body["errorType"] == "Sandbox.Timedout", body
    assert "Task timed out after 2.00 seconds" in log

    body, error, _ = invoke({"allocate_mb": 200})  # over the 128 MB memory size
    assert error == "Unhandled" and body["errorType"] == "Runtime.OutOfMemory", body

    after, error, log = invoke({})  # a fresh environment replaces the killed one
    assert not error and after["pid"] != warm["pid"] and "Init Duration" in log

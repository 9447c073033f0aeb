"""The one error edge and the one AWS target, as a user meets them on every command."""

from __future__ import annotations

import boto3
import pytest
from typer.testing import CliRunner

from cli.app import build

runner = CliRunner()
REGION = "eu-west-1"


@pytest.fixture
def only_aws_region(monkeypatch, tmp_path, aws):
    """A shell with AWS_REGION and nothing else (botocore itself reads only AWS_DEFAULT_REGION)."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("AWS_DEFAULT_REGION", raising=False)
    monkeypatch.setenv("AWS_REGION", REGION)
    logs = boto3.client("logs", region_name=REGION)
    logs.create_log_group(logGroupName="/aws/lambda/photos")
    logs.create_log_stream(logGroupName="/aws/lambda/photos", logStreamName="s")
    return logs


def invoke(*args: str):
    return runner.invoke(build(args[0]), list(args))


@pytest.mark.parametrize("command", ["logs", "stats"])
def test_logs_and_stats_read_the_group_in_the_aws_region(only_aws_region, command):
    result = invoke(command, "--log-group", "/aws/lambda/photos", "--since", "1h")
    assert result.exit_code == 0, result.output
    assert "no AWS region" not in result.output


@pytest.mark.parametrize("args", [
    ("status",), ("destroy", "--yes"), ("push", "."), ("logs",), ("stats",),
])
def test_every_cloud_command_goes_to_the_aws_region(only_aws_region, args):
    # No stack is deployed in eu-west-1: each command must get as far as asking AWS there.
    result = invoke(*args)
    assert "no AWS region" not in result.output
    assert "imgproc" in result.output and result.exit_code in (1, 2), result.output


def test_no_region_anywhere_is_a_usage_error(monkeypatch, tmp_path, aws):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("AWS_DEFAULT_REGION", raising=False)
    monkeypatch.delenv("AWS_REGION", raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    result = invoke("status")
    assert result.exit_code == 2
    assert "no AWS region" in result.output


def test_a_bug_is_an_internal_error_not_an_aws_error_and_debug_shows_the_traceback(only_aws_region, monkeypatch):
    from cli.logs import source

    def broken(*_args, **_kwargs):
        raise ZeroDivisionError("division by zero")

    monkeypatch.setattr(source.Fetcher, "fetch", broken)
    quiet = invoke("logs", "--log-group", "/aws/lambda/photos")
    assert quiet.exit_code == 1
    assert "internal error: ZeroDivisionError" in quiet.output and "--debug" in quiet.output
    assert "Traceback" not in quiet.output

    loud = runner.invoke(build("logs"), ["--debug", "logs", "--log-group", "/aws/lambda/photos"])
    assert loud.exit_code == 1 and "Traceback" in loud.output

    monkeypatch.setenv("IMGPROC_DEBUG", "1")
    assert "Traceback" in invoke("logs", "--log-group", "/aws/lambda/photos").output


def test_user_text_with_brackets_is_printed_literally(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = invoke("process", str(tmp_path / "[red]missing[/red]"))
    assert result.exit_code == 2
    assert "[red]missing[/red]: no such folder" in result.output

"""Fixtures for the log reader tests."""

from __future__ import annotations

import pytest

from logsdata import GROUP


@pytest.fixture
def logs_client(aws, tmp_path, monkeypatch):
    """A CloudWatch Logs client on moto with GROUP created; cwd has no imgproc.toml."""
    import boto3

    monkeypatch.chdir(tmp_path)
    client = boto3.client("logs")
    client.create_log_group(logGroupName=GROUP)
    return client

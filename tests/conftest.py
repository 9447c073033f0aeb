"""Fixtures shared across the suite: fake AWS credentials, moto (in-process and
server), a Lambda context, and event loading."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

FIXTURES = Path(__file__).parent / "fixtures"
REGION = "us-east-1"


@pytest.fixture(autouse=True)
def _no_real_aws(monkeypatch):
    """No test may reach real AWS: fake credentials, a fixed region, no profile."""
    for var in ("AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_ENDPOINT_URL", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    monkeypatch.setenv("AWS_REGION", REGION)


@pytest.fixture
def aws():
    """moto in-process for the test's duration."""
    from moto import mock_aws

    with mock_aws():
        yield


@pytest.fixture(scope="session")
def moto_server_url():
    """moto's server on 127.0.0.1, a free port, one per session (reset per test by `moto_server`)."""
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()


@pytest.fixture
def moto_server(moto_server_url, monkeypatch):
    """A clean moto server; AWS_ENDPOINT_URL points at it for subprocesses and boto3."""
    import urllib.request

    urllib.request.urlopen(urllib.request.Request(f"{moto_server_url}/moto-api/reset", method="POST")).read()
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_server_url)
    yield moto_server_url


class LambdaContext:
    """The attributes of the Lambda context object our handlers read."""

    function_name = "imgproc-test"
    function_version = "$LATEST"
    memory_limit_in_mb = 1024
    invoked_function_arn = f"arn:aws:lambda:{REGION}:123456789012:function:imgproc-test"
    aws_request_id = "6f1c1e7e-0000-4000-8000-000000000001"
    log_group_name = "/aws/lambda/imgproc-test"
    log_stream_name = "2026/11/26/[$LATEST]0123456789abcdef"

    def get_remaining_time_in_millis(self) -> int:
        return 300_000


@pytest.fixture
def lambda_context():
    return LambdaContext()


def load_event(name: str) -> dict:
    """A captured event JSON from tests/fixtures/events/."""
    return json.loads((FIXTURES / "events" / name).read_text(encoding="utf-8"))


def subprocess_env(**extra: str) -> dict[str, str]:
    """The environment for running `imgproc` as a subprocess in tests."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
    env.update(extra)
    return env

"""Fixtures shared across the suite: fake AWS credentials, moto (in-process and
server) and a Lambda context. Helpers that tests import live in tests/support/."""

from __future__ import annotations

import pytest

from testdata import REGION, LambdaContext


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


@pytest.fixture
def lambda_context():
    return LambdaContext()

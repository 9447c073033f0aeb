"""The API URL imgproc prints (deploy/status outputs, `imgproc sign`) must be one the target serves."""

from __future__ import annotations

import pytest

from cli.deploy.changeset import reachable_api_url, stack_outputs

LOCALSTACK = "http://127.0.0.1:4566"


def test_localstack_api_url_becomes_its_execute_api_path():
    # LocalStack fills AWS::URLSuffix with its own host: this host name does not resolve.
    url = "https://a1b2c3d4e5.execute-api.127.0.0.1:4566/prod"
    assert reachable_api_url(url, LOCALSTACK) == "http://127.0.0.1:4566/_aws/execute-api/a1b2c3d4e5/prod"


@pytest.mark.parametrize("url", [
    "https://a1b2c3d4e5.execute-api.us-east-1.amazonaws.com/prod",
    "https://a1b2c3d4e5.execute-api.cn-north-1.amazonaws.com.cn/prod",
    "https://images.example.com/prod",
])
def test_aws_and_custom_domain_urls_are_kept(url):
    assert reachable_api_url(url, LOCALSTACK) == url


def test_stack_outputs_rewrite_only_behind_an_endpoint():
    stack = {"Outputs": [{"OutputKey": "ApiUrl", "OutputValue": "https://abc.execute-api.localhost:4566/live"},
                         {"OutputKey": "InputBucketName", "OutputValue": "in"}]}
    assert stack_outputs(stack)["ApiUrl"] == "https://abc.execute-api.localhost:4566/live"
    behind = stack_outputs(stack, "http://localhost:4566/")
    assert behind == {"ApiUrl": "http://localhost:4566/_aws/execute-api/abc/live", "InputBucketName": "in"}

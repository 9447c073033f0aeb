"""The shared AWS target options: flags over imgproc.toml, emulator-friendly S3 addressing."""

from __future__ import annotations

import pytest

from cli.aws.target import LOCALSTACK_URL, AwsTarget
from cli.errors import UsageError

TABLE = {"profile": "prod", "region": "eu-west-1", "endpoint_url": "http://127.0.0.1:4567"}


def test_flags_win_over_the_config_table():
    target = AwsTarget.resolve(None, "dev", None, defaults=TABLE, environ={})
    assert (target.profile, target.region, target.endpoint_url) == ("dev", "eu-west-1", "http://127.0.0.1:4567")


def test_the_aws_environment_wins_over_the_config_table_as_in_every_aws_tool():
    env = {"AWS_REGION": "ap-south-1", "AWS_PROFILE": "ci", "AWS_ENDPOINT_URL": "http://127.0.0.1:9"}
    target = AwsTarget.resolve(defaults=TABLE, environ=env)
    assert (target.profile, target.region, target.endpoint_url) == ("ci", "ap-south-1", "http://127.0.0.1:9")


def test_aws_region_wins_over_aws_default_region():
    target = AwsTarget.resolve(environ={"AWS_REGION": "eu-north-1", "AWS_DEFAULT_REGION": "us-west-2"})
    assert target.region == "eu-north-1"
    assert AwsTarget.resolve(environ={"AWS_DEFAULT_REGION": "us-west-2"}).region == "us-west-2"


def test_an_unknown_key_in_the_aws_table_is_a_usage_error():
    with pytest.raises(UsageError, match=r"aws.regoin"):
        AwsTarget.resolve(defaults={"regoin": "eu-west-1"}, environ={})


def test_one_client_per_service_is_made_and_reused():
    target = AwsTarget.resolve(region="us-east-1", environ={})
    assert target.client("s3") is target.client("s3")
    assert target.client("s3").meta.config.connect_timeout == 10


def test_localstack_shortcut():
    assert AwsTarget.resolve(localstack=True).endpoint_url == LOCALSTACK_URL
    assert AwsTarget.resolve("http://127.0.0.1:5000", localstack=True).endpoint_url == "http://127.0.0.1:5000"


def test_emulator_endpoints_use_path_style_s3_urls():
    s3 = AwsTarget.resolve(localstack=True, region="us-east-1").client("s3")
    url = s3.generate_presigned_url("get_object", Params={"Bucket": "photos-in", "Key": "a.jpg"})
    assert url.startswith("http://localhost:4566/photos-in/a.jpg")


def test_real_aws_keeps_virtual_host_urls():
    s3 = AwsTarget.resolve(region="us-east-1").client("s3")
    url = s3.generate_presigned_url("get_object", Params={"Bucket": "photos-in", "Key": "a.jpg"})
    assert url.startswith("https://photos-in.s3.amazonaws.com/a.jpg")


def test_clients_retry_in_standard_mode():
    client = AwsTarget.resolve(region="us-east-1").client("s3")
    assert client.meta.config.retries["mode"] == "standard"

"""The shared AWS target options: flags over imgproc.toml, emulator-friendly S3 addressing."""

from __future__ import annotations

from cli.aws import LOCALSTACK_URL, AwsTarget


def test_flags_win_over_the_config_table():
    target = AwsTarget.resolve(None, "dev", None, defaults={"profile": "prod", "region": "eu-west-1"})
    assert (target.profile, target.region) == ("dev", "eu-west-1")


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

"""`imgproc sign`: URLs that the API handler accepts; keys from --secret, SSM or the stack."""

from __future__ import annotations

import json
import time
from urllib.parse import parse_qsl, urlsplit

import boto3
import pytest
from typer.testing import CliRunner

from cli.app import build
from cli.deploy import api_keys
from core import signing
from core.signing import Verdict

SECRET = "offline-secret-0123456789abcdef"
RING = {"k2": "k2-secret-abcdefghij0123456789", "k1": "k1-secret-0123456789abcdefghij"}
runner = CliRunner()


@pytest.fixture
def app(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # no ./imgproc.toml: built-in presets, no [api] table
    monkeypatch.delenv("IMGPROC_SIGNING_SECRET", raising=False)
    return build("sign")


def sign(app, *args, env=None):
    result = runner.invoke(app, ["sign", *args], env=env)
    return result, result.stdout.strip()


def verdict(url: str, ring: signing.KeyRing, now: float | None = None) -> Verdict:
    """What the API would decide for this URL (path decoded the way the handler decodes it)."""
    import lambda_api

    parts = urlsplit(url)
    preset, key = lambda_api.parse_route(parts.path)
    return signing.verify(signing.canonical_path(preset, key), dict(parse_qsl(parts.query)), ring,
                          now if now is not None else time.time())


def test_offline_secret_prints_a_url_the_api_accepts(app):
    result, url = sign(app, "thumb/uploads/cat 1.jpg", "--secret", SECRET, "--base-url",
                       "https://abc.execute-api.eu-west-1.amazonaws.com/prod/")
    assert result.exit_code == 0, result.output
    assert url.startswith("https://abc.execute-api.eu-west-1.amazonaws.com/prod/images/thumb/uploads/cat%201.jpg?")
    query = dict(parse_qsl(urlsplit(url).query))
    assert "kid" not in query and abs(int(query["expires"]) - (time.time() + 3600)) < 5
    assert verdict(url, signing.single_key(SECRET)) is Verdict.OK
    assert verdict(url, signing.single_key(SECRET), now=time.time() + 3601) is Verdict.EXPIRED
    assert verdict(url, signing.single_key("another-secret-0123456789")) is Verdict.BAD_SIGNATURE


def test_relative_url_when_no_base_and_secret_from_the_environment(app):
    result, url = sign(app, "/images/web/Zürich café.jpg", "-e", "15m", env={"IMGPROC_SIGNING_SECRET": SECRET})
    assert result.exit_code == 0, result.output
    assert url.startswith("/images/web/Z%C3%BCrich%20caf%C3%A9.jpg?expires=")
    assert "relative" in result.stderr
    assert verdict(url, signing.single_key(SECRET)) is Verdict.OK


def test_keys_from_ssm_sign_with_the_first_key_or_the_named_one(app, aws):
    boto3.client("ssm").put_parameter(Name="/imgproc/signing-keys", Type="SecureString", Value=json.dumps(RING))
    ring = signing.parse_keyring(json.dumps(RING), "test")
    result, url = sign(app, "thumb/a b.jpg", "--base-url", "https://x.example/prod")
    assert result.exit_code == 0, result.output
    assert dict(parse_qsl(urlsplit(url).query))["kid"] == "k2" and verdict(url, ring) is Verdict.OK
    result, url = sign(app, "thumb/a b.jpg", "--key-id", "k1", "--base-url", "https://x.example/prod")
    assert dict(parse_qsl(urlsplit(url).query))["kid"] == "k1" and verdict(url, ring) is Verdict.OK
    result, _ = sign(app, "thumb/a b.jpg", "--key-id", "k7")
    assert result.exit_code == 2 and "k7" in result.stderr


def test_stack_outputs_give_the_base_url_and_the_key_parameter(app, aws):
    boto3.client("ssm").put_parameter(Name="/photos/keys", Type="SecureString", Value=json.dumps(RING))
    template = {"Resources": {"Topic": {"Type": "AWS::SNS::Topic"}}, "Outputs": {
        "ApiUrl": {"Value": "https://abc123.execute-api.us-east-1.amazonaws.com/prod"},
        "SigningKeysParam": {"Value": "/photos/keys"}}}
    boto3.client("cloudformation").create_stack(StackName="photos", TemplateBody=json.dumps(template))
    result, url = sign(app, "thumb/cat.jpg", "--stack", "photos", "--expires", "7d")
    assert result.exit_code == 0, result.output
    assert url.startswith("https://abc123.execute-api.us-east-1.amazonaws.com/prod/images/thumb/cat.jpg?")
    assert verdict(url, signing.parse_keyring(json.dumps(RING), "t")) is Verdict.OK


def test_failures_are_one_line_with_the_right_exit_code(app, aws):
    result, _ = sign(app, "thumb/cat.jpg")  # no such SSM parameter
    assert result.exit_code == 1 and "/imgproc/signing-keys" in result.stderr
    assert "ParameterNotFound" in result.stderr and len(result.stderr.strip().splitlines()) == 1
    result, _ = sign(app, "thumb/cat.jpg", "--stack", "nope")
    assert result.exit_code == 1 and "nope" in result.stderr
    for bad in (["thumb/../etc/passwd.jpg"], ["thumb"], ["thumb/a.jpg", "-e", "2w"], ["thumb/a.jpg", "-e", "400d"],
                ["thumb/a.jpg", "--base-url", "ftp://x"]):
        result, _ = sign(app, *bad, "--secret", SECRET)
        assert result.exit_code == 2, (bad, result.output)
        assert result.stderr.startswith("Error:")


def test_api_table_of_imgproc_toml_is_validated_and_used(app, tmp_path):
    (tmp_path / "imgproc.toml").write_text('[api]\nbase_url = "https://img.example.com"\n')
    result, url = sign(app, "thumb/cat.jpg", "--secret", SECRET)
    assert result.exit_code == 0 and url.startswith("https://img.example.com/images/thumb/cat.jpg?")
    (tmp_path / "imgproc.toml").write_text('[api]\nbase_uri = "https://img.example.com"\n')
    result, _ = sign(app, "thumb/cat.jpg", "--secret", SECRET)
    assert result.exit_code == 2 and "api.base_uri" in result.stderr and "imgproc.toml" in result.stderr


def test_ensure_signing_keys_creates_once_and_never_overwrites(aws):
    ssm = boto3.client("ssm")
    assert api_keys.ensure_signing_keys(ssm, "/imgproc/signing-keys") is True
    param = ssm.get_parameter(Name="/imgproc/signing-keys", WithDecryption=True)["Parameter"]
    assert param["Type"] == "SecureString"
    ring = signing.parse_keyring(param["Value"], "ssm")
    assert len(ring.keys[ring.current]) >= 32
    assert api_keys.ensure_signing_keys(ssm, "/imgproc/signing-keys") is False
    assert ssm.get_parameter(Name="/imgproc/signing-keys", WithDecryption=True)["Parameter"]["Value"] == param["Value"]


def test_help_has_an_example(app):
    result = runner.invoke(app, ["sign", "--help"])
    assert result.exit_code == 0 and "Example" in result.stdout and "imgproc sign" in result.stdout


def test_without_flags_the_deployed_stack_gives_base_url_and_keys(app, aws):
    boto3.client("ssm").put_parameter(Name="/imgproc/signing-keys", Type="SecureString", Value=json.dumps(RING))
    result, url = sign(app, "thumb/cat.jpg")
    assert result.exit_code == 0 and url.startswith("/images/thumb/cat.jpg?")  # no stack yet: relative
    template = {"Resources": {"Topic": {"Type": "AWS::SNS::Topic"}},
                "Outputs": {"ApiUrl": {"Value": "https://def456.execute-api.us-east-1.amazonaws.com/prod"}}}
    boto3.client("cloudformation").create_stack(StackName="imgproc", TemplateBody=json.dumps(template))
    result, url = sign(app, "thumb/cat.jpg")
    assert result.exit_code == 0 and url.startswith("https://def456.execute-api.us-east-1.amazonaws.com/prod/images/")
    assert verdict(url, signing.parse_keyring(json.dumps(RING), "t")) is Verdict.OK

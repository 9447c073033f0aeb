"""The [deploy] table: defaults, validation with key + file in the message, early refusals in the CLI."""

from __future__ import annotations

import pytest

from cli.deploy.settings import DeploySettings
from core.errors import ConfigError

from helpers_deploy import imgproc


def test_defaults_and_derived_names():
    s = DeploySettings.from_table(None)
    assert (s.stack_name, s.memory, s.architecture, s.function_name, s.log_group_name) == (
        "imgproc", 1024, "x86_64", "imgproc-process", "/aws/lambda/imgproc-process")
    assert s.bucket_names("123456789012", "eu-west-1") == (
        "imgproc-input-123456789012-eu-west-1", "imgproc-output-123456789012-eu-west-1")


def test_a_full_table_is_parsed():
    s = DeploySettings.from_table({
        "stack_name": "photos", "memory": 2048, "timeout": 30, "reserved_concurrency": 5, "architecture": "arm64",
        "lifecycle_days": 90, "lifecycle_action": "expire", "log_retention_days": 14, "input_prefix": "uploads/",
        "output_prefix": "r/", "suffixes": [".jpg", ".jpg", ".png"], "presets": ["thumb"], "rekognition": True,
        "input_bucket": "acme-in", "output_bucket": "acme-out", "retry_attempts": 0,
    })
    assert s.suffixes == (".jpg", ".png") and s.presets == ("thumb",)
    assert s.bucket_names("1", "r") == ("acme-in", "acme-out")


@pytest.mark.parametrize("table, message", [
    ({"memroy": 1}, "deploy.memroy: unknown key"),
    ({"stack_name": "My Stack"}, "deploy.stack_name: 'My Stack'"),
    ({"stack_name": "a" * 31}, "deploy.stack_name"),
    ({"memory": 64}, "deploy.memory: 64 is out of range 128..10240"),
    ({"timeout": True}, "deploy.timeout: expected an integer"),
    ({"architecture": "arm"}, "deploy.architecture: 'arm'"),
    ({"log_retention_days": 10}, "deploy.log_retention_days: 10 is not one of"),
    ({"lifecycle_action": "delete"}, "deploy.lifecycle_action"),
    ({"lifecycle_action": "STANDARD_IA", "lifecycle_days": 7}, "deploy.lifecycle_days: S3 moves"),
    ({"input_prefix": "/uploads"}, "deploy.input_prefix"),
    ({"input_prefix": "uploads"}, "deploy.input_prefix"),
    ({"suffixes": ["jpg"]}, "deploy.suffixes: 'jpg'"),
    ({"presets": ["Thumb"]}, "deploy.presets"),
    ({"input_bucket": "Bad_Bucket"}, "deploy.input_bucket: 'Bad_Bucket' is not a valid S3 bucket name"),
    ({"input_bucket": "same-name", "output_bucket": "same-name"}, "deploy.output_bucket: must differ"),
])
def test_bad_settings_name_the_key_and_the_file(table, message):
    with pytest.raises(ConfigError) as info:
        DeploySettings.from_table(table, "/x/imgproc.toml")
    assert message in str(info.value) and str(info.value).endswith("in /x/imgproc.toml")


@pytest.mark.parametrize("toml, args, message", [
    ('[deploy]\ninput_bucket = "photos"\noutput_bucket = "photos"\n', [], "must differ from input_bucket"),
    ('[deploy]\nstack_name = "Bad Name"\n', [], "deploy.stack_name"),
    ("", ["--stack", "bad_name!"], "deploy.stack_name: 'bad_name!'"),
    ('[deploy]\npresets = ["nope"]\n', [], "unknown preset 'nope'"),
    ("", [], "no AWS region"),
    ("", ["--region", "Europe"], "'Europe' is not an AWS region name"),
])
def test_deploy_refuses_early_with_exit_2(tmp_path, toml, args, message):
    (tmp_path / "imgproc.toml").write_text(toml, encoding="utf-8")
    proc = imgproc("deploy", "--yes", *args, cwd=tmp_path,
                   env={"AWS_REGION": "", "AWS_DEFAULT_REGION": "", "AWS_CONFIG_FILE": str(tmp_path / "none"),
                        "AWS_ENDPOINT_URL": "http://127.0.0.1:9"})
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert message in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1

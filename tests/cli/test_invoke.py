"""`imgproc invoke`: a real-shaped S3 Put event, the handler in-process, a summary, exit codes."""

from __future__ import annotations

import json

import boto3
import pytest
from typer.testing import CliRunner

from cli.app import app
from core.events import S3Event

from imaging import encode, photo
from testdata import FIXTURES

IN, OUT = "imgproc-in", "imgproc-out"
runner = CliRunner()


@pytest.fixture
def clean_env(monkeypatch, tmp_path):
    for var in ("IMGPROC_OUTPUT_BUCKET", "IMGPROC_INPUT_BUCKET", "IMGPROC_PRESETS", "IMGPROC_OUTPUT_PREFIX",
                "IMGPROC_INPUT_PREFIX", "IMGPROC_REKOGNITION", "IMGPROC_CONFIG"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.chdir(tmp_path)  # no ./imgproc.toml: built-in presets


def make_buckets(**client_kwargs):
    s3 = boto3.client("s3", **client_kwargs)
    s3.create_bucket(Bucket=IN)
    s3.create_bucket(Bucket=OUT)
    return s3


def outputs(s3):
    return sorted(o["Key"] for o in s3.list_objects_v2(Bucket=OUT).get("Contents", []))


def test_print_event_encodes_the_key_as_aws_does(clean_env):
    result = runner.invoke(app, ["invoke", "--bucket", IN, "--key", "my photo (1).jpg", "--key", "c++/é.jpg",
                                 "--print-event"])
    assert result.exit_code == 0, result.output
    event = json.loads(result.stdout)
    assert [r["s3"]["object"]["key"] for r in event["Records"]] == ["my+photo+%281%29.jpg", "c%2B%2B/%C3%A9.jpg"]
    assert [r.key for r in S3Event.parse(event).records] == ["my photo (1).jpg", "c++/é.jpg"]
    assert {r["eventName"] for r in event["Records"]} == {"ObjectCreated:Put"}
    assert event["Records"][0]["s3"]["bucket"] == {"name": IN, "ownerIdentity": {"principalId": "EXAMPLE"},
                                                   "arn": f"arn:aws:s3:::{IN}"}


def test_invoke_runs_the_handler_and_summarises(clean_env, aws):
    s3 = make_buckets()
    s3.put_object(Bucket=IN, Key="my photo (1).jpg", Body=encode(photo(640, 480)))

    result = runner.invoke(app, ["invoke", "--bucket", IN, "--key", "my photo (1).jpg", "--output-bucket", OUT])

    assert result.exit_code == 0, result.output
    assert outputs(s3) == ["thumb/my photo (1).jpg", "web/my photo (1).jpg", "web/my photo (1).webp"]
    assert "my photo (1).jpg" in result.stdout and "640x480 jpeg" in result.stdout
    assert "1 ok, 0 skipped, 0 failed" in result.stdout


def test_invoke_exits_1_when_a_record_fails_and_json_prints_the_log_lines(clean_env, aws, monkeypatch):
    monkeypatch.setenv("IMGPROC_OUTPUT_BUCKET", OUT)
    s3 = make_buckets()
    s3.put_object(Bucket=IN, Key="good.jpg", Body=encode(photo(320, 240)))
    s3.put_object(Bucket=IN, Key="bad.jpg", Body=b"<html>not an image</html>")

    result = runner.invoke(app, ["invoke", "-b", IN, "-k", "good.jpg", "-k", "bad.jpg", "--preset", "thumb", "--json"])

    assert result.exit_code == 1, result.output
    lines = [json.loads(x) for x in result.stdout.splitlines()]
    images = [x for x in lines if x.get("event") == "image"]
    assert [(x["key"], x["outcome"]) for x in images] == [("good.jpg", "ok"), ("bad.jpg", "failed")]
    assert images[1]["error"]["type"] == "NotAnImage"
    assert sum("_aws" in x for x in lines) == 2
    assert outputs(s3) == ["thumb/good.jpg"]


def test_the_table_shows_the_error_of_a_failed_record(clean_env, aws):
    s3 = make_buckets()
    s3.put_object(Bucket=IN, Key="bad.jpg", Body=b"nope")
    result = runner.invoke(app, ["invoke", "-b", IN, "-k", "bad.jpg", "--output-bucket", OUT])
    assert result.exit_code == 1
    assert "NotAnImage" in result.stdout and "0 ok, 0 skipped, 1 failed" in result.stdout


def test_event_file_from_an_emulator(clean_env, aws):
    s3 = make_buckets()
    key = "uploads/deep/er/a+b (1) é/ünï 写真.jpg"
    s3.put_object(Bucket=IN, Key=key, Body=encode(photo(300, 200)))
    result = runner.invoke(app, ["invoke", "--event-file", str(FIXTURES / "events" / "moto-put.json"),
                                 "--output-bucket", OUT, "--preset", "thumb", "--json"])
    assert result.exit_code == 0, result.output
    assert outputs(s3) == ["thumb/uploads/deep/er/a+b (1) é/ünï 写真.jpg"]


def test_endpoint_url_sends_the_handlers_calls_to_moto_server(clean_env, moto_server, monkeypatch):
    monkeypatch.delenv("AWS_ENDPOINT_URL")  # only the flag says where AWS is
    s3 = make_buckets(endpoint_url=moto_server)
    s3.put_object(Bucket=IN, Key="uploads/cat 1.jpg", Body=encode(photo(400, 300)))

    result = runner.invoke(app, ["invoke", "-b", IN, "-k", "uploads/cat 1.jpg", "--output-bucket", OUT,
                                 "--endpoint-url", moto_server, "-p", "thumb"])

    assert result.exit_code == 0, result.output
    assert outputs(s3) == ["thumb/uploads/cat 1.jpg"]


def test_presets_come_from_the_local_imgproc_toml(clean_env, aws, tmp_path):
    (tmp_path / "imgproc.toml").write_text(
        '[presets.tiny]\n[[presets.tiny.renditions]]\nname = "tiny"\nwidth = 16\nformat = "png"\n')
    s3 = make_buckets()
    s3.put_object(Bucket=IN, Key="a.jpg", Body=encode(photo(64, 48)))
    result = runner.invoke(app, ["invoke", "-b", IN, "-k", "a.jpg", "--output-bucket", OUT])
    assert result.exit_code == 0, result.output
    assert outputs(s3) == ["tiny/a.png"]


@pytest.mark.parametrize(
    "args, message",
    [
        (["--bucket", IN, "--key", "a.jpg"], "no output bucket: pass --output-bucket or set IMGPROC_OUTPUT_BUCKET"),
        (["--bucket", IN], "pass --bucket and --key"),
        (["--key", "a.jpg", "--output-bucket", OUT], "pass --bucket and --key"),
        (["-b", IN, "-k", "a.jpg", "--output-bucket", OUT, "--preset", "huge"], "IMGPROC_PRESETS: unknown preset 'huge'"),
        (["-b", IN, "-k", "a.jpg", "--output-bucket", "Not_A_Bucket"], "IMGPROC_OUTPUT_BUCKET: 'Not_A_Bucket'"),
        (["--event-file", "missing.json", "--output-bucket", OUT], "cannot read event file missing.json"),
    ],
)
def test_usage_errors_exit_2_with_one_line(clean_env, args, message):
    result = runner.invoke(app, ["invoke", *args])
    assert result.exit_code == 2, result.output
    assert message in " ".join(result.stderr.split())
    assert result.stderr.strip().startswith("Error:")


def test_a_bad_event_file_is_a_usage_error(clean_env, tmp_path):
    bad = tmp_path / "ev.json"
    bad.write_text("{not json")
    result = runner.invoke(app, ["invoke", "--event-file", str(bad), "--output-bucket", OUT])
    assert result.exit_code == 2 and "is not JSON" in result.stderr

"""Where am I pointing? (issue 12 item 5): every command that changes something prints its target on stderr
first — the endpoint, or the AWS account and region — and destroy lists what it will delete before asking."""

from __future__ import annotations

import pytest

from helpers_deploy import ACCOUNT, IN_BUCKET, OUT_BUCKET, REGION, client, deploy, imgproc, ok

pytestmark = pytest.mark.slow


def test_deploy_push_repair_and_destroy_name_the_endpoint_first(moto_server, tmp_path):
    line = f"target: endpoint {moto_server} (region {REGION})"
    first = deploy(tmp_path)
    assert first.stderr.splitlines()[0] == line  # before the package is built or anything is created

    (tmp_path / "photos").mkdir()
    (tmp_path / "photos" / "a.jpg").write_bytes(b"\xff\xd8 not really a jpeg")
    assert ok(imgproc("push", "photos", cwd=tmp_path)).stderr.splitlines()[0] == line
    assert imgproc("status", "--repair", cwd=tmp_path).stderr.splitlines()[0] == line
    assert line not in imgproc("status", cwd=tmp_path).stderr  # reading changes nothing: no line

    refused = imgproc("destroy", cwd=tmp_path)  # no terminal to ask on: the plan is shown, nothing deleted
    assert refused.returncode == 2 and refused.stderr.splitlines()[0] == line
    plan = [row.strip() for row in refused.stdout.splitlines()]
    assert plan[0].startswith("destroy: stack imgproc (") and plan[0].endswith("resources) will be deleted")
    assert f"bucket {IN_BUCKET}: 1 object version -> kept (not empty; --delete-data deletes it)" in plan
    assert f"bucket {OUT_BUCKET}: empty -> deleted (empty)" in plan
    assert "log group /aws/lambda/imgproc-process -> kept (--delete-data deletes it)" in plan
    assert client("cloudformation").describe_stacks(StackName="imgproc")["Stacks"]

    with_data = imgproc("destroy", "--delete-data", cwd=tmp_path)
    assert f"bucket {IN_BUCKET}: 1 object version -> EMPTIED AND DELETED" in with_data.stdout
    assert "log group /aws/lambda/imgproc-process -> DELETED" in with_data.stdout
    assert with_data.returncode == 2 and client("s3").list_objects_v2(Bucket=IN_BUCKET)["KeyCount"] == 1


@pytest.mark.parametrize("command", [["deploy", "--yes"], ["push", "photos"], ["status", "--repair"],
                                     ["destroy", "--yes"]])
def test_without_an_endpoint_the_line_names_the_aws_account_and_region(aws, tmp_path, monkeypatch, command):
    """A new shell without AWS_ENDPOINT_URL targets real AWS (moto in-process stands in for it here)."""
    from typer.testing import CliRunner

    from cli.app import app
    from cli.deploy import package
    from cli.errors import PackageError

    monkeypatch.chdir(tmp_path)
    def no_build(*args, **kwargs):
        raise PackageError("not built in this test")

    monkeypatch.setattr(package, "build", no_build)
    (tmp_path / "photos").mkdir()
    (tmp_path / "photos" / "a.jpg").write_bytes(b"\xff\xd8")
    result = CliRunner().invoke(app, command)
    # No stack (push, status, destroy) or no package (deploy): each stops, after naming the target.
    assert result.exit_code != 0
    assert result.stderr.splitlines()[0] == f"target: AWS account {ACCOUNT}, region {REGION}"


def test_a_named_profile_is_part_of_the_line():
    from cli.aws.target import AwsTarget

    target = AwsTarget(profile="prod", region="eu-west-1")
    assert target.describe("210987654321") == "AWS account 210987654321, region eu-west-1 (profile prod)"
    assert AwsTarget(endpoint_url="http://127.0.0.1:4566", region="eu-west-1").describe() == (
        "endpoint http://127.0.0.1:4566 (region eu-west-1)")

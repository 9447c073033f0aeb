"""The template's part in reprocess: the Batch Operations role, and deletes that follow sources."""

from __future__ import annotations

import json

import pytest

from cli.deploy.settings import DeploySettings
from cli.deploy.template import render, template

PRESETS = ("thumb", "web")


def lint(doc: dict) -> list[str]:
    """cfn-lint errors and warnings (informational rules ignored)."""
    from cfnlint.api import ManualArgs
    from cfnlint.api import lint as cfn_lint

    matches = cfn_lint(render(doc), config=ManualArgs(regions=["us-east-1", "eu-west-1"]))
    return [f"{m.rule.id} {m.message}" for m in matches if not m.rule.id.startswith("I")]


@pytest.mark.parametrize("trigger", ["notification", "queue", "eventbridge"])
def test_on_delete_remove_is_cfn_lint_clean_in_every_trigger_mode(trigger):
    s = DeploySettings().replace(trigger=trigger, on_delete="remove", input_prefix="up/", suffixes=(".jpg", ".png"))
    assert lint(template(s, PRESETS, code=("artifacts", "imgproc/lambda-abc.zip"))) == []


def test_batch_operations_role_may_invoke_the_function_and_touch_only_its_reprocess_prefix():
    doc = template(DeploySettings().replace(stack_name="photos"), PRESETS)
    role = doc["Resources"]["BatchOperationsRole"]["Properties"]
    (trust,) = role["AssumeRolePolicyDocument"]["Statement"]
    assert trust["Principal"] == {"Service": "batchoperations.s3.amazonaws.com"}
    statements = {st["Sid"]: st for st in role["Policies"][0]["PolicyDocument"]["Statement"]}
    assert statements["InvokeTheFunction"]["Action"] == ["lambda:InvokeFunction"]
    assert statements["InvokeTheFunction"]["Resource"][0] == {"Fn::GetAtt": ["Function", "Arn"]}
    for sid in ("ReadManifests", "WriteReports"):
        (resource,) = statements[sid]["Resource"]
        assert resource["Fn::Sub"].endswith(":::imgproc-artifacts-${AWS::AccountId}-${AWS::Region}/reprocess/photos/*")
    assert "s3:DeleteObject" not in json.dumps(statements)
    assert doc["Outputs"]["BatchOperationsRoleArn"]["Value"] == {"Fn::GetAtt": ["BatchOperationsRole", "Arn"]}


def notification_events(doc: dict) -> list[str]:
    config = doc["Resources"]["InputBucket"]["Properties"]["NotificationConfiguration"]
    entries = config.get("LambdaConfigurations") or config.get("QueueConfigurations") or []
    return sorted(e["Event"] for e in entries)


def test_deletes_reach_the_function_and_it_may_remove_renditions_only_when_asked():
    keep = template(DeploySettings(), PRESETS)
    remove = template(DeploySettings().replace(on_delete="remove"), PRESETS)
    assert notification_events(keep) == ["s3:ObjectCreated:*"]
    assert notification_events(remove) == ["s3:ObjectCreated:*", "s3:ObjectRemoved:*"]
    assert remove["Resources"]["Function"]["Properties"]["Environment"]["Variables"]["IMGPROC_ON_DELETE"] == "remove"
    policy = json.dumps(remove["Resources"]["FunctionRole"]["Properties"]["Policies"])
    assert "s3:DeleteObject" in policy and "s3:DeleteObject" not in json.dumps(keep["Resources"]["FunctionRole"])
    queue = template(DeploySettings().replace(on_delete="remove", trigger="queue"), PRESETS)
    assert notification_events(queue) == ["s3:ObjectCreated:*", "s3:ObjectRemoved:*"]
    bridge = template(DeploySettings().replace(on_delete="remove", trigger="eventbridge"), PRESETS)
    pattern = bridge["Resources"]["UploadRule"]["Properties"]["EventPattern"]
    assert pattern["detail-type"] == ["Object Created", "Object Deleted"]


def test_on_delete_accepts_keep_or_remove():
    from core.errors import ConfigError

    with pytest.raises(ConfigError, match=r"deploy\.on_delete: .purge.: choose keep or remove"):
        DeploySettings.from_table({"on_delete": "purge"})

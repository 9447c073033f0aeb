"""The API's CloudFormation resources: cfn-lint clean, least privilege, and they deploy on moto."""

from __future__ import annotations

import io
import json
import zipfile

import boto3
import pytest

from cli.deploy.settings import DeploySettings
from cli.deploy.template import GROUPS, render, template
from cli.deploy.template_api import ApiSettings, api_group
from core.errors import ConfigError

PRESETS = ("thumb", "web")


def stack_doc(auth: str = "signed", settings: DeploySettings | None = None, **api) -> dict:
    return template(settings or DeploySettings(), PRESETS, groups=[*GROUPS, api_group(ApiSettings(auth=auth, **api))])


def statements(doc: dict) -> dict[str, dict]:
    policy = doc["Resources"]["ApiFunctionRole"]["Properties"]["Policies"][0]["PolicyDocument"]
    return {s["Sid"]: s for s in policy["Statement"]}


@pytest.fixture(scope="module")
def lint():
    from cfnlint.api import ManualArgs
    from cfnlint.api import lint as cfn_lint

    def run(doc: dict) -> list[str]:  # errors, warnings and informational findings (I3011 DeletionPolicy...)
        return [f"{m.rule.id} {m.message}" for m in cfn_lint(render(doc), config=ManualArgs(include_checks=["I"]))]

    return run


@pytest.mark.parametrize("auth", ["signed", "apikey"])
def test_template_with_the_api_passes_cfn_lint(lint, auth):
    assert lint(stack_doc(auth)) == []


def test_api_resources_and_outputs(lint):
    doc = stack_doc()
    res = doc["Resources"]
    assert res["Api"]["Properties"]["BinaryMediaTypes"] == ["*/*"]
    paths = [res[r]["Properties"]["PathPart"] for r in ("ApiImagesResource", "ApiPresetResource", "ApiKeyResource")]
    assert paths == ["images", "{preset}", "{key+}"]
    method = res["ApiGetMethod"]["Properties"]
    assert method["HttpMethod"] == "GET" and method["Integration"]["Type"] == "AWS_PROXY"
    assert method["ApiKeyRequired"] is False
    fn = res["ApiFunction"]["Properties"]
    assert fn["Handler"] == "lambda_entry.api_handler" and fn["Timeout"] <= 29
    env = fn["Environment"]["Variables"]
    assert env["IMGPROC_AUTH"] == "signed" and env["IMGPROC_SIGNING_KEYS_PARAM"] == "/imgproc/signing-keys"
    assert env["IMGPROC_PRESETS"] == "thumb,web" and "IMGPROC_OUTPUT_BUCKET" in env
    assert set(doc["Outputs"]) >= {"ApiUrl", "ApiFunctionName", "SigningKeysParam", "FunctionName"}
    stage = res["ApiStage"]["Properties"]["MethodSettings"][0]
    assert stage["ThrottlingRateLimit"] == 50 and stage["ThrottlingBurstLimit"] == 100


def test_api_role_is_least_privilege():
    s = DeploySettings(input_prefix="uploads/", output_prefix="out/")
    signed = statements(stack_doc(settings=s))
    assert {sid: st["Action"] for sid, st in signed.items()} == {
        "ReadSources": ["s3:GetObject"], "ReadWriteRenditions": ["s3:GetObject", "s3:PutObject"],
        "OwnLogGroup": ["logs:CreateLogStream", "logs:PutLogEvents"], "ReadSigningKeys": ["ssm:GetParameter"]}
    assert signed["ReadSources"]["Resource"][0]["Fn::Sub"].endswith(":::imgproc-input-${AWS::AccountId}-${AWS::Region}/uploads/*")
    assert signed["ReadWriteRenditions"]["Resource"][0]["Fn::Sub"].endswith("/out/*")
    assert signed["ReadSigningKeys"]["Resource"][0]["Fn::Sub"].endswith(":parameter/imgproc/signing-keys")
    assert "/aws/lambda/imgproc-api:*" in signed["OwnLogGroup"]["Resource"][0]["Fn::Sub"]
    assert "ReadSigningKeys" not in statements(stack_doc("apikey"))


def key_policy(doc: dict) -> dict[str, dict]:
    policy = doc["Resources"]["SigningKey"]["Properties"]["KeyPolicy"]
    return {st["Sid"]: st for st in policy["Statement"]}


def test_signing_keys_are_encrypted_under_a_key_only_the_api_role_and_the_deployer_can_use():
    doc = stack_doc()
    key = doc["Resources"]["SigningKey"]
    assert key["Type"] == "AWS::KMS::Key" and key["Properties"]["EnableKeyRotation"] is True
    policy = key_policy(doc)
    via_ssm = {"StringEquals": {"kms:ViaService": {"Fn::Sub": "ssm.${AWS::Region}.amazonaws.com"}}}
    # The account administers the key (KMS requires it) but cannot use it: no decrypt, no grants.
    admin = policy["AccountAdministersTheKey"]
    assert admin["Principal"] == {"AWS": {"Fn::Sub": "arn:${AWS::Partition}:iam::${AWS::AccountId}:root"}}
    assert "kms:PutKeyPolicy" in admin["Action"]
    assert not {a for a in admin["Action"] if a.split(":")[1].startswith(("Decrypt", "Encrypt", "ReEncrypt",
                                                                          "GenerateDataKey", "CreateGrant"))}
    assert not any("*" in a for a in admin["Action"])
    api = policy["ApiFunctionDecryptsThroughSsm"]
    assert api["Principal"] == {"AWS": {"Fn::GetAtt": ["ApiFunctionRole", "Arn"]}}
    assert api["Action"] == ["kms:Decrypt"] and api["Condition"] == via_ssm
    deployer = policy["DeployerUsesTheKeyThroughSsm"]
    assert deployer["Condition"]["ArnLike"] == {"aws:PrincipalArn": {"Ref": "SigningKeyUsers"}}
    assert deployer["Condition"]["StringEquals"] == via_ssm["StringEquals"]
    assert set(policy) == {"AccountAdministersTheKey", "ApiFunctionDecryptsThroughSsm", "DeployerUsesTheKeyThroughSsm"}
    assert doc["Outputs"]["SigningKmsKeyArn"]["Value"] == {"Fn::GetAtt": ["SigningKey", "Arn"]}
    assert "kms" not in json.dumps(statements(doc))  # the key policy grants the role; no IAM statement, no cycle


def test_an_existing_kms_key_is_used_by_arn_and_no_key_is_created():
    arn = "arn:aws:kms:eu-west-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab"
    doc = stack_doc(signing_kms_key=arn)
    assert "SigningKey" not in doc["Resources"] and "SigningKeyUsers" not in doc.get("Parameters", {})
    decrypt = statements(doc)["DecryptSigningKeys"]
    assert decrypt["Action"] == ["kms:Decrypt"] and decrypt["Resource"] == [arn]
    assert decrypt["Condition"]["StringEquals"]["kms:ViaService"] == {"Fn::Sub": "ssm.${AWS::Region}.amazonaws.com"}
    assert doc["Outputs"]["SigningKmsKeyArn"]["Value"] == arn
    assert "SigningKey" not in stack_doc("apikey")["Resources"]


@pytest.mark.parametrize("caller, patterns", [
    ("arn:aws:sts::123456789012:assumed-role/Deployer/alice",
     ["arn:aws:iam::123456789012:role/Deployer", "arn:aws:iam::123456789012:role/*/Deployer"]),
    ("arn:aws:iam::123456789012:user/ci", ["arn:aws:iam::123456789012:user/ci"]),
])
def test_the_deployer_is_named_by_its_role_not_its_session(caller, patterns):
    from cli.deploy.template_api import principal_patterns

    assert principal_patterns(caller) == patterns


def test_api_key_mode_adds_a_usage_plan_and_requires_the_key():
    doc = stack_doc("apikey")
    res = doc["Resources"]
    assert res["ApiGetMethod"]["Properties"]["ApiKeyRequired"] is True
    assert {"ApiUsagePlan", "ApiClientKey", "ApiUsagePlanKey"} <= set(res)
    assert "ApiKeyId" in doc["Outputs"] and "SigningKeysParam" not in doc["Outputs"]
    assert "IMGPROC_SIGNING_KEYS_PARAM" not in res["ApiFunction"]["Properties"]["Environment"]["Variables"]


def test_a_changed_method_gets_a_new_deployment():
    a = [k for k in stack_doc("signed")["Resources"] if k.startswith("ApiDeployment")]
    b = [k for k in stack_doc("apikey")["Resources"] if k.startswith("ApiDeployment")]
    assert len(a) == len(b) == 1 and a != b
    assert stack_doc("signed")["Resources"]["ApiStage"]["Properties"]["DeploymentId"] == {"Ref": a[0]}


@pytest.mark.parametrize("table, key", [
    ({"auth": "none"}, "api.auth"), ({"timeout": 60}, "api.timeout"), ({"memory": "big"}, "api.memory"),
    ({"stage": "prod-1"}, "api.stage"), ({"signing_keys_param": "has space"}, "api.signing_keys_param"),
    ({"colour": 1}, "api.colour"), ({"signing_kms_key": "alias/aws/ssm"}, "api.signing_kms_key"),
    ({"signing_key_users": ["*"]}, "api.signing_key_users"), ({"inline_max_bytes": 6_000_000}, "api.inline_max_bytes"),
])
def test_bad_api_settings_name_the_key_and_file(table, key):
    with pytest.raises(ConfigError) as info:
        ApiSettings.from_table(table, "site/imgproc.toml")
    assert str(info.value).startswith(key) and "site/imgproc.toml" in str(info.value)


def test_the_stack_with_the_api_deploys_on_moto(aws):
    s3 = boto3.client("s3")
    s3.create_bucket(Bucket="code")
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("lambda_entry.py", "def handler(e, c):\n    return {}\n\ndef api_handler(e, c):\n    return {}\n")
    s3.put_object(Bucket="code", Key="pkg.zip", Body=buf.getvalue())
    cfn = boto3.client("cloudformation")
    cfn.create_stack(StackName="imgproc", TemplateBody=render(stack_doc()), Capabilities=["CAPABILITY_IAM"],
                     Parameters=[{"ParameterKey": "CodeBucket", "ParameterValue": "code"},
                                 {"ParameterKey": "CodeKey", "ParameterValue": "pkg.zip"}])
    stack = cfn.describe_stacks(StackName="imgproc")["Stacks"][0]
    assert stack["StackStatus"] == "CREATE_COMPLETE"
    outputs = {o["OutputKey"]: o["OutputValue"] for o in stack["Outputs"]}
    api_id = outputs["ApiUrl"].split("//")[1].split(".")[0]
    assert outputs["ApiUrl"].endswith("/prod") and outputs["ApiFunctionName"] == "imgproc-api"
    apigw = boto3.client("apigateway")
    paths = {r["path"]: r for r in apigw.get_resources(restApiId=api_id)["items"]}
    assert "/images/{preset}/{key+}" in paths
    integration = apigw.get_integration(restApiId=api_id, resourceId=paths["/images/{preset}/{key+}"]["id"],
                                        httpMethod="GET")
    assert integration["type"] == "AWS_PROXY"
    fn = boto3.client("lambda").get_function_configuration(FunctionName="imgproc-api")
    assert fn["Handler"] == "lambda_entry.api_handler"
    assert json.loads(json.dumps(fn["Environment"]["Variables"]))["IMGPROC_AUTH"] == "signed"


def test_deploy_template_only_includes_the_api_with_the_flag_or_an_api_table(tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from cli.app import app

    monkeypatch.chdir(tmp_path)
    runner = CliRunner()
    plain = runner.invoke(app, ["deploy", "--template-only"])
    assert plain.exit_code == 0 and "ApiUrl" not in json.loads(plain.stdout)["Outputs"]
    flagged = runner.invoke(app, ["deploy", "--template-only", "--api"])
    assert flagged.exit_code == 0 and "ApiUrl" in json.loads(flagged.stdout)["Outputs"]
    (tmp_path / "imgproc.toml").write_text('[api]\nauth = "apikey"\n')
    table = runner.invoke(app, ["deploy", "--template-only"])
    assert table.exit_code == 0 and "ApiKeyId" in json.loads(table.stdout)["Outputs"]
    (tmp_path / "imgproc.toml").write_text('[api]\nauth = "open"\n')
    bad = runner.invoke(app, ["deploy", "--template-only"])
    assert bad.exit_code == 2 and "api.auth" in bad.stderr


@pytest.mark.slow
def test_deploy_api_then_sign_then_the_function_serves_the_url(moto_server, tmp_path, monkeypatch):
    """deploy --api creates the key parameter; `sign --stack` makes a URL the deployed function's
    handler (its real environment, on moto's server) answers with the rendition."""
    import os
    import subprocess
    import sys
    from urllib.parse import parse_qsl, urlsplit

    import lambda_api

    from imaging import decode, encode, photo
    from testdata import LambdaContext, load_event, subprocess_env

    exe = os.path.join(os.path.dirname(sys.executable), "imgproc")
    env = subprocess_env(COLUMNS="200", NO_COLOR="1")

    def run(*args):
        proc = subprocess.run([exe, *args], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=180)
        assert proc.returncode in (0, 1), proc.stderr  # 1: emulator wiring problems are reported, not fatal
        return proc

    deployed = run("deploy", "--api", "--yes")
    assert "ApiUrl" in deployed.stdout and "created SSM SecureString /imgproc/signing-keys" in deployed.stderr
    assert "No changes" in run("deploy", "--api", "--yes").stdout
    key_arn = boto3.client("cloudformation").describe_stacks(StackName="imgproc")["Stacks"][0]["Outputs"]
    key_arn = {o["OutputKey"]: o["OutputValue"] for o in key_arn}["SigningKmsKeyArn"]
    assert boto3.client("ssm").describe_parameters()["Parameters"][0]["KeyId"] == key_arn  # not aws/ssm
    with zipfile.ZipFile(tmp_path / "build" / "imgproc-lambda-x86_64.zip") as z:
        # lambda_entry.api_handler imports lambda_api: without it the API function cannot start.
        assert "lambda_api.py" in z.namelist()
    fn = boto3.client("lambda").get_function_configuration(FunctionName="imgproc-api")
    variables = fn["Environment"]["Variables"]
    boto3.client("s3").put_object(Bucket=variables["IMGPROC_INPUT_BUCKET"], Key="cat 1.jpg",
                                  Body=encode(photo(400, 300), "JPEG"))
    signed = run("sign", "thumb/cat 1.jpg", "--stack", "imgproc")
    url = urlsplit(signed.stdout.strip())
    assert url.scheme == "https" and url.path.endswith("/prod/images/thumb/cat%201.jpg")

    event = load_event("apigw-get-image.json")
    event["path"] = url.path.removeprefix("/prod")
    event["queryStringParameters"] = dict(parse_qsl(url.query))
    event["multiValueQueryStringParameters"] = None
    for name, value in variables.items():
        monkeypatch.setenv(name, value)
    lambda_api.reset()
    try:
        response = lambda_api.handle(event, LambdaContext())
        again = lambda_api.handle(event, LambdaContext())
    finally:
        lambda_api.reset()
    assert response["statusCode"] == 200 and response["headers"]["Content-Type"] == "image/jpeg"
    assert again["statusCode"] == 302
    import requests

    assert decode(requests.get(again["headers"]["Location"], timeout=10).content).size == (200, 150)

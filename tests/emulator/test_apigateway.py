"""The emulator serves REST APIs like API Gateway: /_aws/execute-api/<id>/<stage>/<path> -> Lambda proxy.

A moto server on a free port with the dispatcher and the API Gateway proxy installed; the API and an
echo function are created with boto3 as any user would, and requests go over real HTTP.
"""

from __future__ import annotations

import base64
import http.client
import json
from urllib.parse import quote, urlsplit

import boto3
import pytest
from browser import chromium, watch

from cli.emulator import apigateway
from cli.emulator.dispatcher import Dispatcher

from imaging import encode, photo
from lambdazip import make_zip

pytestmark = pytest.mark.slow
REGION = "us-east-1"
PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(256))

ECHO = f'''
import base64, json

def handler(event, context):
    path = event["path"]
    if path.endswith("/binary.png"):
        return {{"statusCode": 200, "headers": {{"Content-Type": "image/png"}},
                "body": base64.b64encode({PNG!r}).decode(), "isBase64Encoded": True}}
    if path.endswith("/moved"):
        to = (event["queryStringParameters"] or {{}}).get("to", "http://example.invalid/x.jpg")
        return {{"statusCode": 302, "headers": {{"Location": to}},
                "multiValueHeaders": {{"Set-Cookie": ["a=1", "b=2"]}}, "body": ""}}
    if path.endswith("/broken"):
        return "not a proxy response"
    return {{"statusCode": 200, "headers": {{"Content-Type": "application/json"}}, "body": json.dumps(event)}}
'''


@pytest.fixture(scope="module")
def emulator(tmp_path_factory):
    """moto's server with the dispatcher and the API Gateway proxy, on 127.0.0.1, always stopped."""
    from cli.emulator.server import GuardedMotoServer

    server = GuardedMotoServer("127.0.0.1", 0, say=lambda _line: None)
    endpoint = f"http://127.0.0.1:{server.port}"
    apigateway.install(server, endpoint)
    dispatcher = Dispatcher(endpoint, tmp_path_factory.mktemp("cache"), concurrency=1).install()
    try:
        yield endpoint
    finally:
        dispatcher.uninstall(drain_s=5)
        server.stop()
        apigateway.uninstall(server)


def client(service: str, endpoint: str):
    return boto3.client(service, endpoint_url=endpoint, region_name=REGION,
                        aws_access_key_id="test", aws_secret_access_key="test")


@pytest.fixture(scope="module")
def api(emulator):
    """GET/ANY /images/{preset}/{key+} -> the echo function, deployed to stage 'prod'."""
    role = client("iam", emulator).create_role(RoleName="echo-role", AssumeRolePolicyDocument="{}")["Role"]["Arn"]
    arn = client("lambda", emulator).create_function(
        FunctionName="echo", Runtime="python3.12", Role=role, Handler="app.handler",
        Code={"ZipFile": make_zip(ECHO)}, Timeout=30)["FunctionArn"]
    gw = client("apigateway", emulator)
    api_id = gw.create_rest_api(name="echo")["id"]
    # moto ignores binaryMediaTypes on create and reads an added type from "value"
    gw.update_rest_api(restApiId=api_id, patchOperations=[
        {"op": "add", "path": "/binaryMediaTypes/image~1*", "value": "image/*"}])
    root = next(r["id"] for r in gw.get_resources(restApiId=api_id)["items"] if r["path"] == "/")
    parent = root
    for part in ("images", "{preset}", "{key+}"):
        parent = gw.create_resource(restApiId=api_id, parentId=parent, pathPart=part)["id"]
    gw.put_method(restApiId=api_id, resourceId=parent, httpMethod="ANY", authorizationType="NONE")
    gw.put_integration(restApiId=api_id, resourceId=parent, httpMethod="ANY", type="AWS_PROXY",
                       integrationHttpMethod="POST",
                       uri=f"arn:aws:apigateway:{REGION}:lambda:path/2015-03-31/functions/{arn}/invocations")
    gw.create_deployment(restApiId=api_id, stageName="prod")
    return f"/_aws/execute-api/{api_id}/prod"


@pytest.fixture(scope="module")
def echo_arn(emulator, api):
    return client("lambda", emulator).get_function(FunctionName="echo")["Configuration"]["FunctionArn"]


def request(endpoint: str, method: str, path: str, body: bytes | None = None, headers: dict | None = None):
    """One HTTP request, redirects not followed: (status, headers as (name, value) list, body)."""
    host = urlsplit(endpoint).netloc
    conn = http.client.HTTPConnection(host, timeout=60)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        resp = conn.getresponse()
        return resp.status, resp.getheaders(), resp.read()
    finally:
        conn.close()


def test_get_builds_the_proxy_event_api_gateway_sends(emulator, api):
    key = "uploads/Z%C3%BCrich%20caf%C3%A9%20%281%29.jpg"
    status, _headers, body = request(emulator, "GET", f"{api}/images/thumb/{key}?x=1&x=2&y=a%20b&flag",
                                     headers={"Accept": "image/avif,image/webp", "X-Trace": "t1"})
    assert status == 200
    event = json.loads(body)
    assert event["resource"] == "/images/{preset}/{key+}"
    assert event["path"] == f"/images/thumb/{key}"  # REST APIs deliver the path still percent-encoded
    assert event["pathParameters"] == {"preset": "thumb", "key": key}
    assert event["queryStringParameters"] == {"x": "2", "y": "a b", "flag": ""}
    assert event["multiValueQueryStringParameters"] == {"x": ["1", "2"], "y": ["a b"], "flag": [""]}
    assert event["headers"]["Accept"] == "image/avif,image/webp" and event["multiValueHeaders"]["X-Trace"] == ["t1"]
    assert event["requestContext"]["stage"] == "prod" and event["requestContext"]["path"] == f"/prod/images/thumb/{key}"
    assert event["httpMethod"] == "GET" and event["body"] is None and event["isBase64Encoded"] is False


def test_binary_request_body_arrives_base64_and_text_stays_text(emulator, api):
    _s, _h, body = request(emulator, "POST", f"{api}/images/thumb/a.png", body=PNG, headers={"Content-Type": "image/png"})
    event = json.loads(body)
    assert event["isBase64Encoded"] is True and base64.b64decode(event["body"]) == PNG
    _s, _h, body = request(emulator, "POST", f"{api}/images/thumb/a.txt", body=b"hello", headers={"Content-Type": "text/plain"})
    event = json.loads(body)
    assert event["isBase64Encoded"] is False and event["body"] == "hello"


def test_base64_response_body_is_sent_as_bytes(emulator, api):
    status, headers, body = request(emulator, "GET", f"{api}/images/thumb/binary.png", headers={"Accept": "image/png"})
    assert status == 200 and body == PNG and ("Content-Type", "image/png") in headers
    # an Accept outside the binary media types gets the base64 text, as from API Gateway
    _s, _h, body = request(emulator, "GET", f"{api}/images/thumb/binary.png", headers={"Accept": "text/html"})
    assert base64.b64decode(body) == PNG


def test_redirect_and_multi_value_headers(emulator, api):
    status, headers, _body = request(emulator, "GET", f"{api}/images/thumb/moved")
    assert status == 302 and ("Location", "http://example.invalid/x.jpg") in headers
    assert [v for n, v in headers if n.lower() == "set-cookie"] == ["a=1", "b=2"]


@pytest.mark.parametrize("path, status, message", [
    ("/images/thumb", 403, "Missing Authentication Token"),  # {key+} needs at least one segment
    ("/nothing/here", 403, "Missing Authentication Token"),
])
def test_unknown_routes_answer_like_api_gateway(emulator, api, path, status, message):
    got, _h, body = request(emulator, "GET", api + path)
    assert (got, json.loads(body)) == (status, {"message": message})


def test_unknown_stage_or_api(emulator, api):
    assert request(emulator, "GET", api.replace("/prod", "/dev") + "/images/a/b")[0] == 403
    assert request(emulator, "GET", "/_aws/execute-api/nosuchapi/prod/images/a/b")[0] == 404


def test_a_malformed_function_response_is_a_502(emulator, api):
    status, _h, body = request(emulator, "GET", f"{api}/images/thumb/broken")
    assert (status, json.loads(body)) == (502, {"message": "Internal server error"})


def test_other_requests_still_reach_moto(emulator, api):
    s3 = client("s3", emulator)
    s3.create_bucket(Bucket="still-moto")
    assert "still-moto" in [b["Name"] for b in s3.list_buckets()["Buckets"]]


def test_stack_api_url_output_points_at_the_emulator_and_binary_types_are_kept(emulator):
    template = {"Resources": {"Api": {"Type": "AWS::ApiGateway::RestApi",
                                      "Properties": {"Name": "cfn", "BinaryMediaTypes": ["*/*"]}}}, "Outputs": {
        "ApiUrl": {"Value": {"Fn::Sub": "https://abc123.execute-api.${AWS::Region}.${AWS::URLSuffix}/prod"}},
        "Other": {"Value": "https://example.com/x"}}}
    cfn = client("cloudformation", emulator)
    cfn.create_stack(StackName="urls", TemplateBody=json.dumps(template))
    outputs = {o["OutputKey"]: o["OutputValue"] for o in cfn.describe_stacks(StackName="urls")["Stacks"][0]["Outputs"]}
    assert outputs == {"ApiUrl": f"{emulator}/_aws/execute-api/abc123/prod", "Other": "https://example.com/x"}
    api_id = cfn.describe_stack_resource(StackName="urls", LogicalResourceId="Api")["StackResourceDetail"]["PhysicalResourceId"]
    assert client("apigateway", emulator).get_rest_api(restApiId=api_id).get("binaryMediaTypes") == ["*/*"]


@pytest.mark.parametrize("template, path, expected", [
    ("/images/{preset}/{key+}", "/images/t/a/b%2Fc.jpg", {"preset": "t", "key": "a/b%2Fc.jpg"}),
    ("/images/{preset}/{key+}", "/images/t/", None),
    ("/images/{preset}/{key+}", "/images//a.jpg", None),
    ("/{proxy+}", "/x/y", {"proxy": "x/y"}),
    ("/", "/", {}),
    ("/images", "/images/x", None),
])
def test_path_templates(template, path, expected):
    assert apigateway.match(template, path) == expected


def test_an_api_deployed_by_cloudformation_is_served_on_its_stage(emulator, echo_arn):
    """The shape `imgproc deploy --api` creates: moto's CloudFormation has no AWS::ApiGateway::Stage."""
    ref = {"Ref": "Api"}
    template = {"Resources": {
        "Api": {"Type": "AWS::ApiGateway::RestApi", "Properties": {"Name": "cfn-api", "BinaryMediaTypes": ["*/*"]}},
        "Images": {"Type": "AWS::ApiGateway::Resource", "Properties": {
            "RestApiId": ref, "ParentId": {"Fn::GetAtt": ["Api", "RootResourceId"]}, "PathPart": "images"}},
        "Proxy": {"Type": "AWS::ApiGateway::Resource", "Properties": {
            "RestApiId": ref, "ParentId": {"Ref": "Images"}, "PathPart": "{proxy+}"}},
        "Get": {"Type": "AWS::ApiGateway::Method", "Properties": {
            "RestApiId": ref, "ResourceId": {"Ref": "Proxy"}, "HttpMethod": "GET", "AuthorizationType": "NONE",
            "Integration": {"Type": "AWS_PROXY", "IntegrationHttpMethod": "POST",
                            "Uri": f"arn:aws:apigateway:{REGION}:lambda:path/2015-03-31/functions/{echo_arn}/invocations"}}},
        "Deployment": {"Type": "AWS::ApiGateway::Deployment", "DependsOn": ["Get"], "Properties": {"RestApiId": ref}},
        "Stage": {"Type": "AWS::ApiGateway::Stage", "Properties": {
            "RestApiId": ref, "DeploymentId": {"Ref": "Deployment"}, "StageName": "live"}},
    }, "Outputs": {"ApiUrl": {"Value": {"Fn::Sub": "https://${Api}.execute-api.${AWS::Region}.${AWS::URLSuffix}/live"}}}}
    cfn = client("cloudformation", emulator)
    cfn.create_stack(StackName="cfn-api", TemplateBody=json.dumps(template))
    url = cfn.describe_stacks(StackName="cfn-api")["Stacks"][0]["Outputs"][0]["OutputValue"]
    status, _h, body = request(emulator, "GET", urlsplit(url).path + "/images/a/b.png/binary.png")
    assert (status, body) == (200, PNG)  # "*/*" kept: any Accept gets the decoded bytes
    status, _h, body = request(emulator, "GET", urlsplit(url).path + "/images/x%20y")
    assert status == 200 and json.loads(body)["pathParameters"] == {"proxy": "x%20y"}


def test_a_browser_follows_the_redirect_to_a_presigned_image(emulator, api, tmp_path):
    s3 = client("s3", emulator)
    s3.create_bucket(Bucket="renditions")
    s3.put_object(Bucket="renditions", Key="thumb/cat 1.jpg", Body=encode(photo(320, 200), "JPEG"),
                  ContentType="image/jpeg")
    presigned = s3.generate_presigned_url("get_object", Params={"Bucket": "renditions", "Key": "thumb/cat 1.jpg"})
    with chromium(tmp_path / "profile") as browser:
        page = browser.new_page()
        log = watch(page)
        page.goto(f"{emulator}{api}/images/thumb/moved?to={quote(presigned, safe='')}")
        size = page.evaluate("[document.images[0].naturalWidth, document.images[0].naturalHeight]")
        assert size == [320, 200] and log.errors == []

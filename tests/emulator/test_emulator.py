"""The `imgproc local` dispatcher: Lambda functions run from their zip on S3 uploads and Invoke.

These tests run moto's server in the test process (the `moto_server` fixture) with the
dispatcher installed, and deploy small test functions with boto3 as any AWS user would.
"""

from __future__ import annotations

import base64
import json

import boto3
import pytest

from cli.emulator.cfn import cfn_lifecycle, cfn_notification
from cli.emulator.dispatcher import Dispatcher
from cli.emulator.runner import find_runtime_python

from lambdazip import make_zip

pytestmark = pytest.mark.slow

REGION = "us-east-1"

# A function that behaves like ours: reads the event, copies each object, prints one JSON line.
@pytest.fixture(scope="session")
def code_cache(tmp_path_factory):
    """Unpacked code and compiled modules shared by the tests (cold starts stay cheap)."""
    return tmp_path_factory.mktemp("emulator-cache")


@pytest.fixture
def dispatcher(moto_server, code_cache):
    messages: list[str] = []
    active = Dispatcher(moto_server, code_cache, concurrency=2, retry_delays=(0.1,), say=messages.append).install()
    active.messages = messages  # type: ignore[attr-defined]
    try:
        yield active
    finally:
        active.uninstall(drain_s=5)


def client(service: str, endpoint: str):
    return boto3.client(service, endpoint_url=endpoint, region_name=REGION)


def create_function(endpoint: str, name: str = "fn", timeout: int = 30, memory: int = 256, code: bytes | None = None) -> str:
    iam = client("iam", endpoint)
    try:
        role = iam.create_role(RoleName="fn-role", AssumeRolePolicyDocument="{}")["Role"]["Arn"]
    except iam.exceptions.EntityAlreadyExistsException:
        role = iam.get_role(RoleName="fn-role")["Role"]["Arn"]
    return client("lambda", endpoint).create_function(
        FunctionName=name, Runtime="python3.12", Role=role, Handler="app.handler",
        Code={"ZipFile": code or make_zip()}, Timeout=timeout, MemorySize=memory,
        Environment={"Variables": {"OUT": "out-bucket", "IMGPROC_PRESETS": "thumb"}},
    )["FunctionArn"]


def wire(endpoint: str, arn: str, prefix: str = "") -> None:
    s3 = client("s3", endpoint)
    for bucket in ("in-bucket", "out-bucket"):
        s3.create_bucket(Bucket=bucket)
    config = {"Id": "imgproc", "LambdaFunctionArn": arn, "Events": ["s3:ObjectCreated:*"]}
    if prefix:
        config["Filter"] = {"Key": {"FilterRules": [{"Name": "prefix", "Value": prefix}]}}
    s3.put_bucket_notification_configuration(
        Bucket="in-bucket", NotificationConfiguration={"LambdaFunctionConfigurations": [config]}
    )


def log_messages(endpoint: str, group: str = "/aws/lambda/fn") -> list[str]:
    events = client("logs", endpoint).filter_log_events(logGroupName=group)["events"]
    return [e["message"] for e in sorted(events, key=lambda e: (e["timestamp"], e["eventId"]))]


def test_upload_runs_the_function_from_its_zip_and_logs_like_lambda(dispatcher, moto_server):
    arn = create_function(moto_server, memory=256)
    wire(moto_server, arn, prefix="uploads/")
    s3 = client("s3", moto_server)
    key = "uploads/cat 1+été.jpg"
    s3.put_object(Bucket="in-bucket", Key=key, Body=b"meow")
    s3.put_object(Bucket="in-bucket", Key="elsewhere/dog.jpg", Body=b"woof")  # outside the prefix
    assert dispatcher.drain(60)

    assert s3.get_object(Bucket="out-bucket", Key=f"copy/{key}")["Body"].read() == b"meow"
    assert [o["Key"] for o in s3.list_objects_v2(Bucket="out-bucket")["Contents"]] == [f"copy/{key}"]

    lines = log_messages(moto_server)
    assert lines[0] == "init in fn"  # init output comes before the first START, as in Lambda
    assert lines[1].startswith("START RequestId: ") and lines[1].endswith(" Version: $LATEST")
    request_id = lines[1].split()[2]
    record = json.loads(lines[2])
    # The exact event moto built: its key encoding, the notification's id, the request id.
    assert record["key"] == key and record["raw_key"] == "uploads%2Fcat+1%2B%C3%A9t%C3%A9.jpg"
    assert record["configuration"] == "imgproc" and record["request_id"] == request_id
    assert lines[3] == f"END RequestId: {request_id}"
    report = lines[4].split("\t")
    assert report[0] == f"REPORT RequestId: {request_id}"
    assert report[3] == "Memory Size: 256 MB"
    assert report[4].startswith("Max Memory Used: ") and int(report[4].split()[3]) > 5
    assert report[5].startswith("Init Duration: ")
    assert len(lines) == 5


def test_warm_invocations_reuse_the_worker_and_report_no_init(dispatcher, moto_server):
    arn = create_function(moto_server)
    wire(moto_server, arn)
    s3 = client("s3", moto_server)
    for n in range(3):
        s3.put_object(Bucket="in-bucket", Key=f"p{n}.jpg", Body=b"x")
        assert dispatcher.drain(60)  # one at a time, so a warm worker is free each time
    reports = [line for line in log_messages(moto_server) if line.startswith("REPORT")]
    assert len(reports) == 3
    assert sum("Init Duration" in r for r in reports) == 1
    assert len(client("logs", moto_server).describe_log_streams(logGroupName="/aws/lambda/fn")["logStreams"]) == 1


def test_invoke_returns_the_result_with_the_function_environment(dispatcher, moto_server):
    create_function(moto_server, timeout=7, memory=512)
    response = client("lambda", moto_server).invoke(
        FunctionName="fn",
        Payload=json.dumps({"echo": ["OUT", "AWS_LAMBDA_FUNCTION_NAME", "AWS_ENDPOINT_URL", "AWS_REGION", "HOME_IS_NOT_LEAKED"]}),
        LogType="Tail",
    )
    assert "FunctionError" not in response
    result = json.loads(response["Payload"].read())
    assert result["env"] == {
        "OUT": "out-bucket", "AWS_LAMBDA_FUNCTION_NAME": "fn", "AWS_ENDPOINT_URL": moto_server,
        "AWS_REGION": REGION, "HOME_IS_NOT_LEAKED": None,
    }
    assert result["function_name"] == "fn" and result["memory"] == 512
    assert 0 < result["remaining_ms"] <= 7000
    _python, warning = find_runtime_python("python3.12")
    if warning is None:
        assert result["python"] == "3.12"
    tail = base64.b64decode(response["LogResult"]).decode()
    assert f"START RequestId: {result['request_id']}" in tail and "REPORT RequestId" in tail


def test_function_error_is_unhandled_with_type_and_traceback_in_the_log(dispatcher, moto_server):
    create_function(moto_server)
    response = client("lambda", moto_server).invoke(FunctionName="fn", Payload=json.dumps({"fail": "boom"}))
    assert response["FunctionError"] == "Unhandled"
    error = json.loads(response["Payload"].read())
    assert error["errorType"] == "ValueError" and error["errorMessage"] == "boom"
    lines = log_messages(moto_server)
    assert "[ERROR] ValueError: boom" in lines
    assert "Traceback (most recent call last):" in lines


def test_timeout_kills_the_worker_and_the_next_call_is_cold(dispatcher, moto_server):
    create_function(moto_server, timeout=1)
    lam = client("lambda", moto_server)
    response = lam.invoke(FunctionName="fn", Payload=json.dumps({"sleep": 5}))
    assert response["FunctionError"] == "Unhandled"
    assert "Task timed out after 1.00 seconds" in json.loads(response["Payload"].read())["errorMessage"]
    assert not dispatcher.runner.pids()  # the timed-out worker is gone
    lam.invoke(FunctionName="fn", Payload=json.dumps({"echo": []}))
    lines = log_messages(moto_server)
    assert any(line.endswith("Task timed out after 1.00 seconds") for line in lines)
    reports = [line for line in lines if line.startswith("REPORT")]
    assert "Status: timeout" in reports[0]
    assert "Init Duration" in reports[1]


def test_failed_async_invocation_is_retried_then_sent_to_the_on_failure_queue(dispatcher, moto_server):
    arn = create_function(moto_server)
    wire(moto_server, arn)
    sqs = client("sqs", moto_server)
    queue_url = sqs.create_queue(QueueName="fn-dlq")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    client("lambda", moto_server).put_function_event_invoke_config(
        FunctionName="fn", MaximumRetryAttempts=1, DestinationConfig={"OnFailure": {"Destination": queue_arn}}
    )
    client("s3", moto_server).put_object(Bucket="in-bucket", Key="broken.bad", Body=b"x")
    assert dispatcher.drain(60)

    starts = [line for line in log_messages(moto_server) if line.startswith("START")]
    assert len(starts) == 2 and starts[0] == starts[1]  # one retry, same request id (as Lambda)
    messages = sqs.receive_message(QueueUrl=queue_url, WaitTimeSeconds=1)["Messages"]
    record = json.loads(messages[0]["Body"])
    assert record["requestContext"]["condition"] == "RetriesExhausted"
    assert record["requestPayload"]["Records"][0]["s3"]["object"]["key"] == "broken.bad"
    assert record["responsePayload"]["errorType"] == "RuntimeError"


def test_updated_code_runs_in_a_new_worker(dispatcher, moto_server):
    create_function(moto_server)
    lam = client("lambda", moto_server)
    lam.invoke(FunctionName="fn", Payload=json.dumps({"echo": []}))
    lam.update_function_code(FunctionName="fn", ZipFile=make_zip("def handler(event, context):\n    return 'v2'\n"))
    assert json.loads(lam.invoke(FunctionName="fn", Payload=b"{}")["Payload"].read()) == "v2"


def test_import_error_is_reported_like_lambda(dispatcher, moto_server):
    create_function(moto_server, code=make_zip("import not_a_module_anywhere\n"))
    response = client("lambda", moto_server).invoke(FunctionName="fn", Payload=b"{}")
    assert response["FunctionError"] == "Unhandled"
    assert json.loads(response["Payload"].read())["errorType"] == "Runtime.ImportModuleError"
    assert any(line.startswith("[ERROR] Runtime.ImportModuleError: Unable to import module 'app.handler'")
               for line in log_messages(moto_server))


def test_cloudformation_bucket_notification_and_lifecycle_are_applied(dispatcher, moto_server):
    """moto ignores these two bucket properties in templates; the emulator applies them like AWS."""
    iam = client("iam", moto_server)
    role = iam.create_role(RoleName="cfn-role", AssumeRolePolicyDocument="{}")["Role"]["Arn"]
    s3 = client("s3", moto_server)
    s3.create_bucket(Bucket="artifacts")
    s3.put_object(Bucket="artifacts", Key="fn.zip", Body=make_zip())
    s3.create_bucket(Bucket="out-bucket")
    template = {
        "Resources": {
            "Fn": {"Type": "AWS::Lambda::Function", "Properties": {
                "FunctionName": "fn", "Runtime": "python3.12", "Handler": "app.handler", "Role": role,
                "Code": {"S3Bucket": "artifacts", "S3Key": "fn.zip"}, "Timeout": 30,
                "Environment": {"Variables": {"OUT": "out-bucket"}}}},
            "In": {"Type": "AWS::S3::Bucket", "Properties": {
                "BucketName": "in-bucket",
                "LifecycleConfiguration": {"Rules": [{"Id": "expire", "Status": "Enabled", "ExpirationInDays": 30}]},
                "NotificationConfiguration": {"LambdaConfigurations": [{
                    "Event": "s3:ObjectCreated:*", "Function": {"Fn::GetAtt": ["Fn", "Arn"]},
                    "Filter": {"S3Key": {"Rules": [{"Name": "prefix", "Value": "up/"}]}}}]}}},
        }
    }
    cfn = client("cloudformation", moto_server)
    cfn.create_stack(StackName="st", TemplateBody=json.dumps(template))
    assert cfn.describe_stacks(StackName="st")["Stacks"][0]["StackStatus"] == "CREATE_COMPLETE"

    rules = s3.get_bucket_lifecycle_configuration(Bucket="in-bucket")["Rules"]
    assert rules[0]["ID"] == "expire" and rules[0]["Expiration"]["Days"] == 30
    notification = s3.get_bucket_notification_configuration(Bucket="in-bucket")["LambdaFunctionConfigurations"][0]
    assert notification["LambdaFunctionArn"].endswith(":function:fn")
    s3.put_object(Bucket="in-bucket", Key="up/a.jpg", Body=b"a")
    assert dispatcher.drain(60)
    assert s3.head_object(Bucket="out-bucket", Key="copy/up/a.jpg")["ContentLength"] == 1


def test_cfn_property_translation_keeps_filters_and_transitions():
    notification = cfn_notification({"NotificationConfiguration": {"QueueConfigurations": [{
        "Event": "s3:ObjectCreated:Put", "Queue": "arn:aws:sqs:us-east-1:123456789012:q",
        "Filter": {"S3Key": {"Rules": [{"Name": "Suffix", "Value": ".jpg"}]}}}]}})
    assert notification == {"QueueConfiguration": [{
        "Queue": "arn:aws:sqs:us-east-1:123456789012:q", "Event": ["s3:ObjectCreated:Put"],
        "Filter": {"S3Key": {"FilterRule": [{"Name": "suffix", "Value": ".jpg"}]}}}]}
    lifecycle = cfn_lifecycle({"LifecycleConfiguration": {"Rules": [{
        "Status": "Enabled", "Prefix": "thumb/", "Transitions": [{"StorageClass": "GLACIER", "TransitionInDays": 90}]}]}})
    assert lifecycle[0]["Filter"] == {"Prefix": "thumb/"}
    assert lifecycle[0]["Transition"] == [{"Days": "90", "StorageClass": "GLACIER"}]
    assert cfn_notification({}) is None and cfn_lifecycle({}) is None


def test_cloudformation_invoke_config_and_public_access_block_are_applied(dispatcher, moto_server):
    iam = client("iam", moto_server)
    role = iam.create_role(RoleName="cfn-role", AssumeRolePolicyDocument="{}")["Role"]["Arn"]
    template = {"Resources": {
        "Fn": {"Type": "AWS::Lambda::Function", "Properties": {
            "FunctionName": "fn", "Runtime": "python3.12", "Handler": "app.handler", "Role": role,
            "Code": {"ZipFile": "def handler(e, c):\n    return 1\n"}}},
        "Dlq": {"Type": "AWS::SQS::Queue", "Properties": {"QueueName": "fn-failures"}},
        "InvokeConfig": {"Type": "AWS::Lambda::EventInvokeConfig", "Properties": {
            "FunctionName": {"Ref": "Fn"}, "Qualifier": "$LATEST", "MaximumRetryAttempts": 1,
            "DestinationConfig": {"OnFailure": {"Destination": {"Fn::GetAtt": ["Dlq", "Arn"]}}}}},
        "Bucket": {"Type": "AWS::S3::Bucket", "Properties": {"BucketName": "private-bucket",
            "PublicAccessBlockConfiguration": {"BlockPublicAcls": True, "BlockPublicPolicy": True,
                                               "IgnorePublicAcls": True, "RestrictPublicBuckets": True}}},
    }}
    client("cloudformation", moto_server).create_stack(StackName="st", TemplateBody=json.dumps(template))
    config = client("lambda", moto_server).get_function_event_invoke_config(FunctionName="fn")
    assert config["MaximumRetryAttempts"] == 1
    assert config["DestinationConfig"]["OnFailure"]["Destination"].endswith(":fn-failures")
    block = client("s3", moto_server).get_public_access_block(Bucket="private-bucket")["PublicAccessBlockConfiguration"]
    assert block == {"BlockPublicAcls": True, "IgnorePublicAcls": True, "BlockPublicPolicy": True, "RestrictPublicBuckets": True}


def test_uninstall_gives_moto_back_unchanged(moto_server, code_cache):
    """Other tests share this process's moto: after the emulator stops, moto behaves as before."""
    import moto.cloudformation.parsing as cfn_parsing
    import moto.s3.notifications as notifications
    from moto.awslambda.models import LambdaFunction
    from moto.s3.models import FakeBucket

    before = (notifications._invoke_awslambda, LambdaFunction.invoke, cfn_parsing.resource_class_from_type,
              FakeBucket.create_from_cloudformation_json, FakeBucket.update_from_cloudformation_json)
    Dispatcher(moto_server, code_cache).install().uninstall()
    after = (notifications._invoke_awslambda, LambdaFunction.invoke, cfn_parsing.resource_class_from_type,
             FakeBucket.create_from_cloudformation_json, FakeBucket.update_from_cloudformation_json)
    assert after == before


def test_going_over_the_memory_size_kills_the_environment(dispatcher, moto_server):
    hog = "def handler(event, context):\n    blob = bytearray(200 * 1024 * 1024)\n    return len(blob)\n"
    create_function(moto_server, memory=128, code=make_zip(hog))
    response = client("lambda", moto_server).invoke(FunctionName="fn", Payload=b"{}")
    assert response["FunctionError"] == "Unhandled"
    assert json.loads(response["Payload"].read())["errorType"] == "Runtime.OutOfMemory"
    report = next(line for line in log_messages(moto_server) if line.startswith("REPORT"))
    assert "Memory Size: 128 MB" in report and "Error Type: Runtime.OutOfMemory" in report
    assert int(report.split("Max Memory Used: ")[1].split()[0]) > 128

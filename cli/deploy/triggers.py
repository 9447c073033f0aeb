"""How uploads reach the function: `[deploy] trigger` = notification | queue | eventbridge.

- ``notification``: the input bucket invokes the function asynchronously (Lambda retries,
  then the failure queue). Simplest; no buffer, concurrency follows the upload rate.
- ``queue``: the bucket notifies an encrypted SQS queue; an event source mapping polls it
  and invokes the function with batches (ReportBatchItemFailures: only transiently failed
  messages come back), at most ``max_concurrency`` at once; a message received
  ``max_receive_count`` times moves to the dead-letter queue.
- ``eventbridge``: the bucket sends every event to EventBridge; a rule on the input bucket,
  prefix and suffixes targets the function (asynchronous, like a notification).

Each mode contributes the bucket's NotificationConfiguration, what the bucket must wait for,
its resources, and the function role's statements.
"""

from __future__ import annotations

from typing import Any

from cli.deploy.checkov import SSE_SQS, checkov_skip
from cli.deploy.settings import DeploySettings

Doc = dict[str, Any]
CREATED_EVENT = "s3:ObjectCreated:*"
REMOVED_EVENT = "s3:ObjectRemoved:*"  # with [deploy] on_delete = "remove"
# AWS: set the source queue's visibility timeout to at least six times the function's timeout.
VISIBILITY_TIMEOUT_FACTOR = 6
QUEUE_RETENTION_SECONDS = 4 * 24 * 3600  # SQS's default
DLQ_RETENTION_SECONDS = 14 * 24 * 3600  # SQS's maximum: longer than the source queue's, as AWS advises


def _sub(text: str) -> Doc:
    return {"Fn::Sub": text}


def _arn(name: str) -> Doc:
    return {"Fn::GetAtt": [name, "Arn"]}


def input_bucket_name(s: DeploySettings) -> str:
    """The input bucket's name as an Fn::Sub string (no reference: that would make a cycle)."""
    return s.input_bucket or f"{s.stack_name}-input-${{AWS::AccountId}}-${{AWS::Region}}"


def input_bucket_arn(s: DeploySettings) -> Doc:
    return _sub(f"arn:${{AWS::Partition}}:s3:::{input_bucket_name(s)}")


def key_filters(s: DeploySettings) -> list[list[Doc]]:
    """S3 filter rules, one list per suffix (S3 allows one suffix rule per configuration)."""
    out = []
    for suffix in s.suffixes or (None,):
        rules = []
        if s.input_prefix:
            rules.append({"Name": "prefix", "Value": s.input_prefix})
        if suffix:
            rules.append({"Name": "suffix", "Value": suffix})
        out.append(rules)
    return out


def events(s: DeploySettings) -> tuple[str, ...]:
    """The S3 event types the function hears: uploads, and deletes when they remove renditions."""
    return (CREATED_EVENT, REMOVED_EVENT) if s.on_delete == "remove" else (CREATED_EVENT,)


def _entries(s: DeploySettings, target_key: str, target: Doc) -> list[Doc]:
    entries = []
    for event in events(s):
        for rules in key_filters(s):
            entry: Doc = {"Event": event, target_key: target}
            if rules:
                entry["Filter"] = {"S3Key": {"Rules": rules}}
            entries.append(entry)
    return entries


def notification_configuration(s: DeploySettings) -> Doc:
    """The input bucket's NotificationConfiguration for the trigger."""
    if s.trigger == "queue":
        return {"QueueConfigurations": _entries(s, "Queue", _arn("UploadQueue"))}
    if s.trigger == "eventbridge":
        return {"EventBridgeConfiguration": {"EventBridgeEnabled": True}}
    return {"LambdaConfigurations": _entries(s, "Function", _arn("Function"))}


def bucket_depends_on(s: DeploySettings) -> list[str]:
    """S3 checks a destination when the configuration is set: it must accept S3 first."""
    return {"queue": ["UploadQueuePolicy"], "eventbridge": []}.get(s.trigger, ["InvokePermission"])


def role_statements(s: DeploySettings) -> list[Doc]:
    """What the function's role needs for the trigger: the queue mode's poller, on that queue only."""
    if s.trigger != "queue":
        return []
    return [{"Sid": "ReadUploadQueue", "Effect": "Allow",
             "Action": ["sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:GetQueueAttributes"],
             "Resource": [_arn("UploadQueue")]}]


def event_pattern(s: DeploySettings) -> Doc:
    """EventBridge pattern: Object Created in the input bucket, under the prefix, with a suffix."""
    detail: Doc = {"bucket": {"name": [input_bucket_name(s)]}}
    if s.input_prefix and s.suffixes:
        # prefix AND suffix in one matcher; the prefix cannot hold '*' or '\' (settings refuse them)
        detail["object"] = {"key": [{"wildcard": f"{s.input_prefix}*{x}"} for x in s.suffixes]}
    elif s.input_prefix:
        detail["object"] = {"key": [{"prefix": s.input_prefix}]}
    elif s.suffixes:
        detail["object"] = {"key": [{"suffix": x} for x in s.suffixes]}
    kinds = ["Object Created", "Object Deleted"] if s.on_delete == "remove" else ["Object Created"]
    return {"source": ["aws.s3"], "detail-type": kinds, "detail": detail}


def _needs_sub(pattern: Doc) -> Doc:
    """The pattern with the bucket name substituted (it holds ${AWS::AccountId} when derived)."""
    name = pattern["detail"]["bucket"]["name"][0]
    if "${" not in name:
        return pattern
    return {**pattern, "detail": {**pattern["detail"], "bucket": {"name": [_sub(name)]}}}


def trigger_resources(s: DeploySettings, presets: tuple[str, ...]) -> Doc:
    """The resources of the configured trigger (a template resource group)."""
    if s.trigger == "queue":
        return queue_resources(s)
    if s.trigger == "eventbridge":
        return eventbridge_resources(s)
    return {"Resources": {"InvokePermission": {"Type": "AWS::Lambda::Permission", "Properties": {
        "Action": "lambda:InvokeFunction", "FunctionName": {"Ref": "Function"},
        "Principal": "s3.amazonaws.com", "SourceAccount": {"Ref": "AWS::AccountId"},
        "SourceArn": input_bucket_arn(s),
    }}}}


def queue_resources(s: DeploySettings) -> Doc:
    return {
        "Resources": {
            "UploadDeadLetterQueue": {"Type": "AWS::SQS::Queue", "Properties": {
                "MessageRetentionPeriod": DLQ_RETENTION_SECONDS, "SqsManagedSseEnabled": True},
                "Metadata": checkov_skip(CKV_AWS_27=SSE_SQS)},
            "UploadQueue": {"Type": "AWS::SQS::Queue", "Properties": {
                "SqsManagedSseEnabled": True,
                "MessageRetentionPeriod": QUEUE_RETENTION_SECONDS,
                "VisibilityTimeout": VISIBILITY_TIMEOUT_FACTOR * s.timeout,
                "RedrivePolicy": {"deadLetterTargetArn": _arn("UploadDeadLetterQueue"),
                                  "maxReceiveCount": s.max_receive_count},
            }, "Metadata": checkov_skip(CKV_AWS_27=SSE_SQS)},
            "UploadQueuePolicy": {"Type": "AWS::SQS::QueuePolicy", "Properties": {
                "Queues": [{"Ref": "UploadQueue"}],
                "PolicyDocument": {"Version": "2012-10-17", "Statement": [{
                    "Sid": "InputBucketSendsEvents", "Effect": "Allow",
                    "Principal": {"Service": "s3.amazonaws.com"}, "Action": "sqs:SendMessage",
                    "Resource": _arn("UploadQueue"),
                    "Condition": {"ArnEquals": {"aws:SourceArn": input_bucket_arn(s)},
                                  "StringEquals": {"aws:SourceAccount": {"Ref": "AWS::AccountId"}}},
                }]},
            }},
            "QueueEventSource": {"Type": "AWS::Lambda::EventSourceMapping", "Properties": {
                "EventSourceArn": _arn("UploadQueue"),
                "FunctionName": {"Ref": "Function"},
                "BatchSize": s.batch_size,
                "MaximumBatchingWindowInSeconds": s.batch_window,
                "FunctionResponseTypes": ["ReportBatchItemFailures"],
                "ScalingConfig": {"MaximumConcurrency": s.max_concurrency},
            }},
        },
        "Outputs": {
            "UploadQueueUrl": {"Description": "S3 events waiting for the function", "Value": {"Ref": "UploadQueue"}},
            "UploadDeadLetterQueueUrl": {"Description": f"S3 events received {s.max_receive_count} times "
                                         "without success", "Value": {"Ref": "UploadDeadLetterQueue"}},
        },
    }


def eventbridge_resources(s: DeploySettings) -> Doc:
    return {
        "Resources": {
            "UploadRule": {"Type": "AWS::Events::Rule", "Properties": {
                "Description": "imgproc: Object Created in the input bucket -> the function",
                "State": "ENABLED",
                "EventPattern": _needs_sub(event_pattern(s)),
                "Targets": [{"Id": "imgproc-function", "Arn": _arn("Function")}],
            }},
            "InvokePermission": {"Type": "AWS::Lambda::Permission", "Properties": {
                "Action": "lambda:InvokeFunction", "FunctionName": {"Ref": "Function"},
                "Principal": "events.amazonaws.com", "SourceArn": _arn("UploadRule"),
            }},
        },
        "Outputs": {"UploadRuleArn": {"Description": "EventBridge rule sending uploads to the function",
                                      "Value": _arn("UploadRule")}},
    }

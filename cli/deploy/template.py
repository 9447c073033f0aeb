"""The CloudFormation template, generated from code: one small function per resource group.

`template(settings, presets, groups)` merges the resource groups (GROUPS by
default); a new group (the API's) is one more entry: `[*GROUPS, api_group(a)]`. Names that
would create the classic bucket -> notification -> permission -> function
cycle are built as strings (`Fn::Sub`) instead of references: the input
bucket's name is fixed from the stack name, account and region.

Example::

    from cli.deploy.settings import DeploySettings
    doc = template(DeploySettings(), ("thumb", "web"))
    print(render(doc, "yaml"))
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from cli.deploy import alarms, dashboard, triggers
from cli.deploy.checkov import SSE_SQS, checkov_skip
from cli.deploy.settings import DeploySettings

RUNTIME = "python3.12"
HANDLER = "lambda_entry.handler"
LIFECYCLE_RULE_ID = "imgproc-renditions"
NOTIFICATION_ID_PREFIX = "imgproc-"
CREATED_EVENT = "s3:ObjectCreated:*"

Doc = dict[str, Any]


def sub(text: str) -> Doc:
    return {"Fn::Sub": text}


def ref(name: str) -> Doc:
    return {"Ref": name}


def get_att(name: str, attr: str) -> Doc:
    return {"Fn::GetAtt": [name, attr]}


#: Stateful resources outlive the stack: `imgproc destroy` deletes them only when empty or with --delete-data.
RETAIN = {"DeletionPolicy": "Retain", "UpdateReplacePolicy": "Retain"}
#: Old versions of originals (overwritten or deleted) are kept this long, then expire.
NONCURRENT_ORIGINAL_DAYS = 30
NONCURRENT_RULE_ID = "imgproc-old-originals"
#: Why no bucket writes S3 access logs (CKV_AWS_18).
NO_ACCESS_LOGS = ("server access logs need a log bucket the user owns and pays for; "
                  "CloudTrail S3 data events are the audit trail to enable")


def bucket_name(s: DeploySettings, which: str) -> Doc | str:
    """The input/output bucket name: the configured one, else <stack>-<which>-<account>-<region>."""
    fixed = s.input_bucket if which == "input" else s.output_bucket
    return fixed or sub(f"{s.stack_name}-{which}-${{AWS::AccountId}}-${{AWS::Region}}")


def bucket_arn(s: DeploySettings, which: str, suffix: str = "") -> Doc:
    name = s.input_bucket if which == "input" else s.output_bucket
    name = name or f"{s.stack_name}-{which}-${{AWS::AccountId}}-${{AWS::Region}}"
    return sub(f"arn:${{AWS::Partition}}:s3:::{name}{suffix}")


# --- resource groups ------------------------------------------------------------------


def parameters_group(s: DeploySettings, presets: tuple[str, ...], code: tuple[str, str] | None = None) -> Doc:
    """Where the package is. Deploy sets the defaults to the artifact bucket and the
    content-addressed key, so new code is a template change (emulators diff templates only)."""
    params: Doc = {
        "CodeBucket": {"Type": "String", "Description": "Bucket holding the Lambda package"},
        "CodeKey": {"Type": "String", "Description": "Key of the Lambda package (content-addressed)"},
    }
    if code:
        params["CodeBucket"]["Default"], params["CodeKey"]["Default"] = code
    return {"Parameters": params}


def _secure_bucket(name: Doc | str, lifecycle: Doc | None = None) -> Doc:
    props: Doc = {
        "BucketName": name,
        "BucketEncryption": {"ServerSideEncryptionConfiguration": [
            {"ServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}}]},
        "PublicAccessBlockConfiguration": {
            "BlockPublicAcls": True, "BlockPublicPolicy": True,
            "IgnorePublicAcls": True, "RestrictPublicBuckets": True},
        "OwnershipControls": {"Rules": [{"ObjectOwnership": "BucketOwnerEnforced"}]},
    }
    if lifecycle:
        props["LifecycleConfiguration"] = lifecycle
    return {"Type": "AWS::S3::Bucket", **RETAIN, "Properties": props}


def _tls_only_policy(bucket_logical_id: str) -> Doc:
    arn = get_att(bucket_logical_id, "Arn")
    return {"Type": "AWS::S3::BucketPolicy", "Properties": {
        "Bucket": ref(bucket_logical_id),
        "PolicyDocument": {"Version": "2012-10-17", "Statement": [{
            "Sid": "DenyInsecureTransport", "Effect": "Deny", "Principal": "*", "Action": "s3:*",
            "Resource": [arn, sub(f"${{{bucket_logical_id}.Arn}}/*")],
            "Condition": {"Bool": {"aws:SecureTransport": "false"}},
        }]},
    }}


def lifecycle_rules(s: DeploySettings) -> list[Doc]:
    """The output bucket's lifecycle rule in CloudFormation form ([] when lifecycle_days = 0)."""
    if not s.lifecycle_days:
        return []
    rule: Doc = {"Id": LIFECYCLE_RULE_ID, "Status": "Enabled",
                 "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": 7}}
    if s.output_prefix:
        rule["Prefix"] = s.output_prefix
    if s.lifecycle_action == "expire":
        rule["ExpirationInDays"] = s.lifecycle_days
    else:
        rule["Transitions"] = [{"StorageClass": s.lifecycle_action, "TransitionInDays": s.lifecycle_days}]
    return [rule]


def storage_resources(s: DeploySettings, presets: tuple[str, ...]) -> Doc:
    """Input and output buckets: private, encrypted, TLS-only; lifecycle on the output bucket."""
    rules = lifecycle_rules(s)
    # Versioned: an overwritten or deleted original can be restored for NONCURRENT_ORIGINAL_DAYS.
    inp = _secure_bucket(bucket_name(s, "input"), {"Rules": [{
        "Id": NONCURRENT_RULE_ID, "Status": "Enabled",
        "NoncurrentVersionExpiration": {"NoncurrentDays": NONCURRENT_ORIGINAL_DAYS}}]})
    inp["Properties"]["VersioningConfiguration"] = {"Status": "Enabled"}
    inp["Metadata"] = checkov_skip(CKV_AWS_18=NO_ACCESS_LOGS)
    # The notification's target must accept S3 first (S3 sends it a test event): the invoke
    # permission, or the queue policy in queue mode.
    depends = triggers.bucket_depends_on(s)
    if depends:
        inp["DependsOn"] = depends
    inp["Properties"]["NotificationConfiguration"] = triggers.notification_configuration(s)
    out = _secure_bucket(bucket_name(s, "output"), {"Rules": rules} if rules else None)
    out["Metadata"] = checkov_skip(
        CKV_AWS_18=NO_ACCESS_LOGS,
        CKV_AWS_21="renditions are derived from the (versioned) originals and re-rendered on demand; "
                   "versions would only add cost")
    return {
        "Resources": {
            "InputBucket": inp,
            "InputBucketPolicy": _tls_only_policy("InputBucket"),
            "OutputBucket": out,
            "OutputBucketPolicy": _tls_only_policy("OutputBucket"),
        },
        "Outputs": {
            "InputBucketName": {"Description": "Upload images here", "Value": ref("InputBucket")},
            "OutputBucketName": {"Description": "Renditions appear here", "Value": ref("OutputBucket")},
        },
    }


def failure_resources(s: DeploySettings, presets: tuple[str, ...]) -> Doc:
    """Where failed asynchronous invocations go after the retries: an encrypted SQS queue."""
    return {
        # Retained: the failed events are the list of images to retry, still wanted after `destroy`.
        "Resources": {"FailureQueue": {"Type": "AWS::SQS::Queue", **RETAIN, "Properties": {
            "MessageRetentionPeriod": 1209600, "SqsManagedSseEnabled": True},
            "Metadata": checkov_skip(CKV_AWS_27=SSE_SQS)}},
        "Outputs": {"DeadLetterQueueUrl": {"Description": "Failed S3 events (after retries)",
                                           "Value": ref("FailureQueue")}},
    }


def write_actions(s: DeploySettings) -> list[str]:
    """What the handler does to the output bucket: HEAD/PUT renditions, tag them with labels,
    remove a deleted source's renditions (on_delete = "remove")."""
    return (["s3:GetObject", "s3:PutObject"] + (["s3:PutObjectTagging"] if s.rekognition else [])
            + (["s3:DeleteObject"] if s.on_delete == "remove" else []))


def role_policy(s: DeploySettings) -> Doc:
    """Least privilege: exactly what the handler does, on exactly its resources."""
    statements = [
        {"Sid": "ReadSources", "Effect": "Allow", "Action": ["s3:GetObject"],
         "Resource": [bucket_arn(s, "input", f"/{s.input_prefix}*")]},
        # GetObject on the outputs lets the handler HEAD a rendition to skip up-to-date work
        # (without it S3 answers 403 instead of 404).
        {"Sid": "WriteRenditions", "Effect": "Allow", "Action": write_actions(s),
         "Resource": [bucket_arn(s, "output", f"/{s.output_prefix}*")]},
        {"Sid": "OwnLogGroup", "Effect": "Allow", "Action": ["logs:CreateLogStream", "logs:PutLogEvents"],
         "Resource": [sub(f"arn:${{AWS::Partition}}:logs:${{AWS::Region}}:${{AWS::AccountId}}:"
                          f"log-group:{s.log_group_name}:*")]},
        {"Sid": "FailureDestination", "Effect": "Allow", "Action": ["sqs:SendMessage"],
         "Resource": [get_att("FailureQueue", "Arn")]},
    ]
    statements.extend(triggers.role_statements(s))
    if s.rekognition:
        # DetectLabels on image bytes has no resource-level permissions.
        statements.append({"Sid": "DetectLabels", "Effect": "Allow", "Action": ["rekognition:DetectLabels"],
                           "Resource": ["*"]})
    return {"Version": "2012-10-17", "Statement": statements}


def environment(s: DeploySettings, presets: tuple[str, ...]) -> dict[str, Any]:
    """The handler's environment (the cross-team contract)."""
    return {
        "IMGPROC_OUTPUT_BUCKET": ref("OutputBucket"),
        "IMGPROC_INPUT_BUCKET": bucket_name(s, "input"),
        "IMGPROC_INPUT_PREFIX": s.input_prefix,
        "IMGPROC_OUTPUT_PREFIX": s.output_prefix,
        "IMGPROC_PRESETS": ",".join(presets),
        "IMGPROC_REKOGNITION": "on" if s.rekognition else "off",
        "IMGPROC_ON_DELETE": s.on_delete,
    }


#: Why log groups use CloudWatch's default encryption, not a KMS key (CKV_AWS_158).
LOG_GROUP_KMS = ("CloudWatch Logs encrypts at rest by default; the lines hold keys and errors, no secrets, "
                 "and a KMS key would need its own policy for the logs service")


NO_RESERVED = ("reserved concurrency is opt-in (deploy.reserved_concurrency): reserving fails on accounts "
               "with the default limit of 10 concurrent executions")


def function_skips(concurrency: str = "") -> dict[str, str]:
    """checkov checks that do not apply to imgproc's functions, with the reason (Metadata of each function);
    ``concurrency``: why the function has no reserved concurrency ("" when it has)."""
    skips = {
        "CKV_AWS_117": "it calls only public AWS endpoints (S3, SSM, Logs); a VPC would need NAT or endpoints "
                       "and protects nothing here",
        "CKV_AWS_173": "the environment holds bucket names and settings, no secrets (signing keys are in SSM); "
                       "Lambda encrypts it at rest",
    }
    if concurrency:
        skips["CKV_AWS_115"] = concurrency
    return skips


def function_resources(s: DeploySettings, presets: tuple[str, ...]) -> Doc:
    """The function, its role, log group and retry/failure settings (the trigger is triggers.py's)."""
    fn: Doc = {
        "FunctionName": s.function_name,
        "Description": "imgproc: renders presets for images uploaded to the input bucket",
        "Runtime": RUNTIME, "Handler": HANDLER,
        "Code": {"S3Bucket": ref("CodeBucket"), "S3Key": ref("CodeKey")},
        "Role": get_att("FunctionRole", "Arn"),
        "MemorySize": s.memory, "Timeout": s.timeout, "Architectures": [s.architecture],
        "Environment": {"Variables": environment(s, presets)},
    }
    if s.reserved_concurrency >= 0:
        fn["ReservedConcurrentExecutions"] = s.reserved_concurrency
    return {
        "Resources": {
            "FunctionRole": {"Type": "AWS::IAM::Role", "Properties": {
                "AssumeRolePolicyDocument": {"Version": "2012-10-17", "Statement": [{
                    "Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"},
                    "Action": "sts:AssumeRole"}]},
                "Policies": [{"PolicyName": "imgproc-function", "PolicyDocument": role_policy(s)}],
            }},
            # Retained: the log of what happened stays readable after `destroy` (until its retention).
            "LogGroup": {"Type": "AWS::Logs::LogGroup", **RETAIN, "Properties": {
                "LogGroupName": s.log_group_name, "RetentionInDays": s.log_retention_days},
                "Metadata": checkov_skip(CKV_AWS_158=LOG_GROUP_KMS)},
            "Function": {"Type": "AWS::Lambda::Function", "DependsOn": ["LogGroup"], "Properties": fn,
                         "Metadata": checkov_skip(**function_skips(NO_RESERVED if s.reserved_concurrency < 0 else ""),
                                                  CKV_AWS_116="S3 invokes it asynchronously: failed events go to "
                                                              "FailureQueue through the OnFailure destination "
                                                              "(InvokeConfig), which supersedes a DLQ")},
            "InvokeConfig": {"Type": "AWS::Lambda::EventInvokeConfig", "Properties": {
                "FunctionName": ref("Function"), "Qualifier": "$LATEST",
                "MaximumRetryAttempts": s.retry_attempts,
                "DestinationConfig": {"OnFailure": {"Destination": get_att("FailureQueue", "Arn")}},
            }},
        },
        "Outputs": {
            "FunctionName": {"Value": ref("Function")},
            "FunctionArn": {"Value": get_att("Function", "Arn")},
            "LogGroupName": {"Value": ref("LogGroup")},
        },
    }


from cli.deploy.template_reprocess import batch_operations_resources  # noqa: E402 - it uses sub/get_att above

Group = Callable[[DeploySettings, tuple[str, ...]], Doc]
# One entry per resource group; the API adds `api_resources` here.
GROUPS: list[Group] = [storage_resources, failure_resources, function_resources, triggers.trigger_resources,
                       alarms.alarm_resources, dashboard.dashboard_resources, batch_operations_resources]


def _merge(doc: Doc, part: Doc) -> None:
    for section, items in part.items():
        target = doc.setdefault(section, {})
        clash = sorted(set(target) & set(items))
        if clash:
            raise ValueError(f"template: {section}.{clash[0]} defined by two resource groups")
        target.update(items)


def template(s: DeploySettings, presets: tuple[str, ...], groups: list[Group] | None = None, *,
             code: tuple[str, str] | None = None) -> Doc:
    """The whole stack as one CloudFormation document (a dict); ``code`` = (bucket, key) of the package."""
    doc: Doc = {
        "AWSTemplateFormatVersion": "2010-09-09",
        "Description": f"imgproc stack {s.stack_name}: event-driven image processing",
    }
    for group in groups if groups is not None else GROUPS:
        _merge(doc, group(s, presets))
    _merge(doc, parameters_group(s, presets, code))
    return doc


def render(doc: Doc, fmt: str = "json") -> str:
    """JSON (stable, indented) or YAML text of a template."""
    if fmt == "yaml":
        import yaml

        class NoAliases(yaml.SafeDumper):  # CloudFormation rejects YAML anchors/aliases
            def ignore_aliases(self, data: Any) -> bool:
                return True

        return yaml.dump(doc, Dumper=NoAliases, sort_keys=False, default_flow_style=False, width=120)
    return json.dumps(doc, indent=2) + "\n"


# --- the same settings in S3 API form (for `status --repair` on emulators) --------------------


def notification_api(entries: list[Doc]) -> list[Doc]:
    """CloudFormation LambdaConfigurations -> S3 API LambdaFunctionConfigurations."""
    out = []
    for i, e in enumerate(entries):
        api: Doc = {"Id": f"{NOTIFICATION_ID_PREFIX}{i}", "LambdaFunctionArn": e["Function"], "Events": [e["Event"]]}
        rules = e.get("Filter", {}).get("S3Key", {}).get("Rules", [])
        if rules:
            api["Filter"] = {"Key": {"FilterRules": [{"Name": r["Name"], "Value": r["Value"]} for r in rules]}}
        out.append(api)
    return out


def lifecycle_api(rules: list[Doc]) -> list[Doc]:
    """CloudFormation lifecycle Rules -> S3 API Rules."""
    out = []
    for r in rules:
        api: Doc = {"ID": r["Id"], "Status": r["Status"], "Filter": {"Prefix": r.get("Prefix", "")}}
        if "ExpirationInDays" in r:
            api["Expiration"] = {"Days": r["ExpirationInDays"]}
        if "Transitions" in r:
            api["Transitions"] = [{"Days": t["TransitionInDays"], "StorageClass": t["StorageClass"]}
                                  for t in r["Transitions"]]
        if "NoncurrentVersionExpiration" in r:
            api["NoncurrentVersionExpiration"] = r["NoncurrentVersionExpiration"]
        if "AbortIncompleteMultipartUpload" in r:
            api["AbortIncompleteMultipartUpload"] = r["AbortIncompleteMultipartUpload"]
        out.append(api)
    return out

"""What moto's CloudFormation ignores and `imgproc local` applies, so a deployed stack is wired as on AWS.

For ``AWS::S3::Bucket``: NotificationConfiguration, LifecycleConfiguration and
PublicAccessBlockConfiguration (moto applies only encryption and tags). ``AWS::Lambda::EventInvokeConfig``
(async retries, on-failure destination), which moto skips, becomes the function's invoke config.
AWS::S3::BucketPolicy stays unapplied: the emulator speaks plain HTTP and moto ignores policy
conditions, so a TLS-only policy (Deny unless aws:SecureTransport) would deny every request.
"""

from __future__ import annotations

import uuid
from typing import Any


def cfn_notification(properties: dict[str, Any]) -> dict[str, Any] | None:
    """AWS::S3::Bucket NotificationConfiguration -> moto's parsed PutBucketNotification body."""
    cfn = properties.get("NotificationConfiguration")
    if not cfn:
        return None
    kinds = {
        "LambdaConfigurations": ("CloudFunctionConfiguration", "Function", "CloudFunction"),
        "QueueConfigurations": ("QueueConfiguration", "Queue", "Queue"),
        "TopicConfigurations": ("TopicConfiguration", "Topic", "Topic"),
    }
    body: dict[str, Any] = {}
    for cfn_kind, (kind, cfn_target, target) in kinds.items():
        for item in cfn.get(cfn_kind, []):
            entry: dict[str, Any] = {target: item[cfn_target], "Event": [item["Event"]]}
            rules = item.get("Filter", {}).get("S3Key", {}).get("Rules", [])
            if rules:
                entry["Filter"] = {"S3Key": {"FilterRule": [{"Name": r["Name"].lower(), "Value": r["Value"]} for r in rules]}}
            body.setdefault(kind, []).append(entry)
    if cfn.get("EventBridgeConfiguration", {}).get("EventBridgeEnabled"):
        body["EventBridgeConfiguration"] = {}
    return body


def cfn_lifecycle(properties: dict[str, Any]) -> list[dict[str, Any]] | None:
    """AWS::S3::Bucket LifecycleConfiguration -> moto's parsed PutBucketLifecycleConfiguration rules."""
    rules = properties.get("LifecycleConfiguration", {}).get("Rules")
    if not rules:
        return None
    converted = []
    for rule in rules:
        out: dict[str, Any] = {"ID": rule.get("Id", uuid.uuid4().hex), "Status": rule.get("Status", "Enabled")}
        out["Filter"] = {"Prefix": rule.get("Prefix", "")}
        if "ExpirationInDays" in rule:
            out["Expiration"] = {"Days": str(rule["ExpirationInDays"])}
        if "ExpirationDate" in rule:
            out["Expiration"] = {"Date": str(rule["ExpirationDate"])}
        transitions = list(rule.get("Transitions", []))
        if "Transition" in rule:
            transitions.append(rule["Transition"])
        if transitions:
            out["Transition"] = [
                {"Days": str(t["TransitionInDays"]), "StorageClass": t["StorageClass"]} for t in transitions if "TransitionInDays" in t
            ]
        if "AbortIncompleteMultipartUpload" in rule:
            days = rule["AbortIncompleteMultipartUpload"]["DaysAfterInitiation"]
            out["AbortIncompleteMultipartUpload"] = {"DaysAfterInitiation": str(days)}
        if "NoncurrentVersionExpirationInDays" in rule:
            out["NoncurrentVersionExpiration"] = {"NoncurrentDays": str(rule["NoncurrentVersionExpirationInDays"])}
        if "NoncurrentVersionExpiration" in rule:
            out["NoncurrentVersionExpiration"] = {"NoncurrentDays": str(rule["NoncurrentVersionExpiration"]["NoncurrentDays"])}
        converted.append(out)
    return converted


def apply_bucket_properties(bucket: Any, cloudformation_json: dict[str, Any], account_id: str, region_name: str) -> None:
    from moto.s3.models import s3_backends
    from moto.utilities.utils import get_partition

    properties = cloudformation_json.get("Properties", {}) or {}
    backend = s3_backends[account_id][get_partition(region_name)]
    public_access = properties.get("PublicAccessBlockConfiguration")
    if public_access:
        backend.put_public_access_block(bucket.name, {k: str(v).lower() for k, v in public_access.items()})
    versioning = properties.get("VersioningConfiguration", {}).get("Status")
    if versioning:
        backend.put_bucket_versioning(bucket.name, versioning)
    lifecycle = cfn_lifecycle(properties)
    if lifecycle:
        backend.put_bucket_lifecycle(bucket.name, lifecycle)
    notification = cfn_notification(properties)
    if notification is not None:
        backend.put_bucket_notification_configuration(bucket.name, notification)


class _ExtraResource:
    """A CloudFormation resource type moto's CloudFormation skips (duck-typed CloudFormationModel)."""

    def __init__(self, physical_id: str, properties: dict[str, Any]):
        self.physical_resource_id = physical_id
        self.properties = properties

    @classmethod
    def cloudformation_name_type(cls) -> str:
        return ""

    @classmethod
    def has_cfn_attr(cls, attr: str) -> bool:
        return False

    def is_created(self) -> bool:
        return True

    @classmethod
    def update_from_cloudformation_json(cls, original_resource, new_resource_name, cloudformation_json, account_id, region_name):
        return cls.create_from_cloudformation_json(new_resource_name, cloudformation_json, account_id, region_name)

    @classmethod
    def delete_from_cloudformation_json(cls, resource_name, cloudformation_json, account_id, region_name):
        pass

    @classmethod
    def create_from_cloudformation_json(cls, resource_name, cloudformation_json, account_id, region_name, **kwargs):
        raise NotImplementedError

    def delete(self, account_id: str, region_name: str) -> None:
        try:
            self._delete(account_id, region_name)
        except Exception:  # noqa: BLE001 - the target may already be gone with the stack
            pass

    def _delete(self, account_id: str, region_name: str) -> None:
        raise NotImplementedError


class _EventInvokeConfigResource(_ExtraResource):
    """AWS::Lambda::EventInvokeConfig: async retries and the on-failure destination."""

    @classmethod
    def create_from_cloudformation_json(cls, resource_name, cloudformation_json, account_id, region_name, **kwargs):
        from moto.awslambda.utils import get_backend

        properties = cloudformation_json.get("Properties", {})
        function_name = properties["FunctionName"].split(":function:")[-1].split(":")[0]
        config = {k: properties[k] for k in ("MaximumRetryAttempts", "MaximumEventAgeInSeconds", "DestinationConfig")
                  if k in properties}
        backend = get_backend(account_id, region_name)
        backend.get_function(function_name).event_invoke_config = []
        backend.put_function_event_invoke_config(function_name, config)
        return cls(function_name, properties)

    def _delete(self, account_id: str, region_name: str) -> None:
        from moto.awslambda.utils import get_backend

        get_backend(account_id, region_name).get_function(self.physical_resource_id).event_invoke_config = []


class _ApiStageResource(_ExtraResource):
    """AWS::ApiGateway::Stage: without it the API has no stage to serve (cli/emulator/apigateway.py)."""

    @classmethod
    def create_from_cloudformation_json(cls, resource_name, cloudformation_json, account_id, region_name, **kwargs):
        from moto.apigateway.models import apigateway_backends

        properties = cloudformation_json.get("Properties", {})
        api_id, name = properties["RestApiId"], properties["StageName"]
        backend = apigateway_backends[account_id][region_name]
        backend.get_rest_api(api_id).stages.pop(name, None)  # an update points the stage at the new deployment
        backend.create_stage(api_id, name, properties["DeploymentId"], variables=properties.get("Variables"),
                             description=properties.get("Description", ""))
        return cls(name, properties)

    def _delete(self, account_id: str, region_name: str) -> None:
        from moto.apigateway.models import apigateway_backends

        apigateway_backends[account_id][region_name].delete_stage(self.properties["RestApiId"], self.physical_resource_id)


# Resource types moto's CloudFormation does not know, by type name (BucketPolicy deliberately absent).
EXTRA_CFN_TYPES = {"AWS::Lambda::EventInvokeConfig": _EventInvokeConfigResource,
                   "AWS::ApiGateway::Stage": _ApiStageResource}

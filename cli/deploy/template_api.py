"""The retrieval API's CloudFormation resources (`imgproc deploy --api`) and its `[api]` settings.

One resource group, ``api_group(api_settings)``, in the shape of the groups in
cli/template.py: a REST API ``GET /images/{preset}/{key+}`` with a Lambda
proxy integration (binary media types on, so inline images arrive as bytes),
its own function running ``lambda_entry.api_handler`` from the same package,
a least-privilege role (read sources, read/write renditions, read the key
parameter), a log group, throttling on the stage, and in API-key mode a usage
plan and key.

Example::

    from cli.deploy.settings import DeploySettings
    from cli.deploy.template import GROUPS, template
    doc = template(DeploySettings(), ("thumb",), [*GROUPS, api_group(ApiSettings())])
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from core.errors import ConfigError

Doc = dict[str, Any]
API_HANDLER = "lambda_entry.api_handler"
ROUTE = ("images", "{preset}", "{key+}")

# name -> (default, one-line meaning): the `[api]` table of imgproc.toml.
SETTINGS: dict[str, tuple[Any, str]] = {
    "auth": ("signed", "'signed' (HMAC-signed URLs, `imgproc sign`) or 'apikey' (API Gateway usage plan key)"),
    "signing_keys_param": ("", "SSM SecureString with the keys ('' = /<stack>/signing-keys, created by deploy)"),
    "signing_kms_key": ("", "KMS key ARN encrypting the key parameter ('' = a key the stack creates; decrypt is "
                            "limited to the API function's role and the deployer)"),
    "signing_key_users": ([], "more IAM principal ARN patterns that may use the stack's signing key through SSM "
                               "(e.g. to run `imgproc sign`); the deployer always may"),
    "base_url": ("", "API base URL for `imgproc sign` when not read from the stack ('' = stack output ApiUrl)"),
    "stage": ("prod", "API Gateway stage name"),
    "memory": (1024, "API function memory in MB (128..10240)"),
    "timeout": (28, "API function timeout in seconds (1..29: API Gateway gives up after 29 s)"),
    "throttle_rate": (50, "steady requests per second the stage allows (1..10000)"),
    "throttle_burst": (100, "burst requests the stage allows (1..5000)"),
    "redirect_ttl": (300, "seconds a presigned redirect stays valid (10..3600)"),
    "inline_max_bytes": (262144, "fresh renders up to this size are answered inline (0..4194304; 0 = always redirect)"),
    "cache_seconds": (86400, "max-age for inline answers, capped by the URL's expiry (0..31536000)"),
}
_RANGES = {"memory": (128, 10240), "timeout": (1, 29), "throttle_rate": (1, 10000), "throttle_burst": (1, 5000),
           "redirect_ttl": (10, 3600), "inline_max_bytes": (0, 4 * 1024 * 1024), "cache_seconds": (0, 31536000)}
_STAGE = re.compile(r"^[A-Za-z0-9_]{1,128}$")
_PARAM = re.compile(r"^/?[A-Za-z0-9_.\-/]{1,1000}$")
_PRINCIPAL = re.compile(r"arn:aws[a-z-]*:iam::[0-9]{12}:(role|user)/[A-Za-z0-9+=,.@_/*-]+")
_KMS_KEY_ARN = re.compile(r"arn:aws[a-z-]*:kms:[a-z0-9-]+:[0-9]{12}:key/[A-Za-z0-9-]+")


@dataclass(frozen=True)
class ApiSettings:
    """The validated `[api]` table."""

    auth: str = SETTINGS["auth"][0]
    signing_keys_param: str = SETTINGS["signing_keys_param"][0]
    signing_kms_key: str = SETTINGS["signing_kms_key"][0]
    signing_key_users: tuple[str, ...] = ()
    base_url: str = SETTINGS["base_url"][0]
    stage: str = SETTINGS["stage"][0]
    memory: int = SETTINGS["memory"][0]
    timeout: int = SETTINGS["timeout"][0]
    throttle_rate: int = SETTINGS["throttle_rate"][0]
    throttle_burst: int = SETTINGS["throttle_burst"][0]
    redirect_ttl: int = SETTINGS["redirect_ttl"][0]
    inline_max_bytes: int = SETTINGS["inline_max_bytes"][0]
    cache_seconds: int = SETTINGS["cache_seconds"][0]
    source: str = field(default="defaults", compare=False)

    @classmethod
    def from_table(cls, table: Mapping[str, Any] | None, source: str = "imgproc.toml") -> ApiSettings:
        """Validate the raw `[api]` table (None -> defaults); errors name `api.<key>` and the file."""
        values = dict(table or {})

        def err(key: str, problem: str) -> ConfigError:
            return ConfigError(f"api.{key}: {problem} in {source}")

        for key in values:
            if key not in SETTINGS:
                raise err(key, f"unknown key (known: {', '.join(SETTINGS)})")
        for key, (lo, hi) in _RANGES.items():
            if key in values:
                v = values[key]
                if isinstance(v, bool) or not isinstance(v, int) or not lo <= v <= hi:
                    raise err(key, f"expected a whole number in {lo}..{hi}, got {v!r}")
        if values.get("auth", "signed") not in ("signed", "apikey"):
            raise err("auth", f"{values['auth']!r}: choose 'signed' or 'apikey'")
        if not _STAGE.match(str(values.get("stage", "prod"))):
            raise err("stage", "letters, digits and '_' only")
        param = values.get("signing_keys_param", "")
        if not isinstance(param, str) or (param and not _PARAM.match(param)):
            raise err("signing_keys_param", f"{param!r} is not an SSM parameter name")
        kms = values.get("signing_kms_key", "")
        if not isinstance(kms, str) or (kms and not _KMS_KEY_ARN.fullmatch(kms)):
            raise err("signing_kms_key", f"{kms!r}: expected a KMS key ARN arn:aws:kms:REGION:ACCOUNT:key/ID")
        users = values.get("signing_key_users", [])
        if not isinstance(users, list) or not all(isinstance(u, str) and _PRINCIPAL.fullmatch(u) for u in users):
            raise err("signing_key_users", f"{users!r}: expected a list of arn:aws:iam::ACCOUNT:(role|user)/NAME")
        values["signing_key_users"] = tuple(users)
        base = values.get("base_url", "")
        if not isinstance(base, str) or (base and not base.startswith(("https://", "http://"))):
            raise err("base_url", f"{base!r}: expected https://...")
        return cls(**values, source=source)

    def keys_param(self, stack: str) -> str:
        return self.signing_keys_param or f"/{stack}/signing-keys"

    @property
    def creates_kms_key(self) -> bool:
        """Signed mode without signing_kms_key: the stack creates the key that encrypts the parameter."""
        return self.auth == "signed" and not self.signing_kms_key


def _sub(text: str) -> Doc:
    return {"Fn::Sub": text}


def _ref(name: str) -> Doc:
    return {"Ref": name}


def _att(name: str, attr: str) -> Doc:
    return {"Fn::GetAtt": [name, attr]}


def parameter_arn(name: str) -> Doc:
    """SSM parameter ARN: names with a leading '/' are appended as they are."""
    tail = name if name.startswith("/") else f"/{name}"
    return _sub(f"arn:${{AWS::Partition}}:ssm:${{AWS::Region}}:${{AWS::AccountId}}:parameter{tail}")


def api_role_policy(s, a: ApiSettings, log_group: str) -> Doc:
    """Least privilege: read sources, read/write renditions, write its own logs, read the key parameter."""
    from cli.deploy.template import bucket_arn

    statements: list[Doc] = [
        {"Sid": "ReadSources", "Effect": "Allow", "Action": ["s3:GetObject"],
         "Resource": [bucket_arn(s, "input", f"/{s.input_prefix}*")]},
        # GetObject also makes HEAD answer 404 (not 403) for a missing rendition and signs the redirects.
        {"Sid": "ReadWriteRenditions", "Effect": "Allow", "Action": ["s3:GetObject", "s3:PutObject"],
         "Resource": [bucket_arn(s, "output", f"/{s.output_prefix}*")]},
        {"Sid": "OwnLogGroup", "Effect": "Allow", "Action": ["logs:CreateLogStream", "logs:PutLogEvents"],
         "Resource": [_sub(f"arn:${{AWS::Partition}}:logs:${{AWS::Region}}:${{AWS::AccountId}}:"
                           f"log-group:{log_group}:*")]},
    ]
    if a.auth == "signed":
        statements.append({"Sid": "ReadSigningKeys", "Effect": "Allow", "Action": ["ssm:GetParameter"],
                           "Resource": [parameter_arn(a.keys_param(s.stack_name))]})
    if a.auth == "signed" and a.signing_kms_key:
        # An existing key: its own policy must delegate to IAM (the usual root statement) for this to count.
        # (The stack's own key names this role in its key policy instead: no IAM statement, no cycle.)
        statements.append({"Sid": "DecryptSigningKeys", "Effect": "Allow", "Action": ["kms:Decrypt"],
                           "Resource": [a.signing_kms_key], "Condition": via_ssm()})
    return {"Version": "2012-10-17", "Statement": statements}


#: The template parameter deploy fills with the deployer's principal ARN patterns.
KEY_USERS_PARAM = "SigningKeyUsers"
#: What the account's IAM administrators may do with the signing key: manage it, never use it.
#: (Without kms:PutKeyPolicy for the account KMS refuses the policy: it would lock everyone out.)
KEY_ADMIN_ACTIONS = [
    "kms:DescribeKey", "kms:GetKeyPolicy", "kms:GetKeyRotationStatus", "kms:ListGrants", "kms:ListKeyPolicies",
    "kms:ListResourceTags", "kms:PutKeyPolicy", "kms:EnableKey", "kms:DisableKey", "kms:EnableKeyRotation",
    "kms:DisableKeyRotation", "kms:UpdateKeyDescription", "kms:TagResource", "kms:UntagResource",
    "kms:RevokeGrant", "kms:ScheduleKeyDeletion", "kms:CancelKeyDeletion",
]


def via_ssm() -> Doc:
    """Only when SSM asks on the caller's behalf: the key cannot decrypt anything else for them."""
    return {"StringEquals": {"kms:ViaService": _sub("ssm.${AWS::Region}.amazonaws.com")}}


def signing_key_policy() -> Doc:
    """The stack's signing key: the account administers it, only the API role and the deployer use it.

    Anyone else with ssm:GetParameter (even kms:Decrypt on "*") gets AccessDenied
    from KMS, unlike with the AWS-managed aws/ssm key.
    """
    root = _sub("arn:${AWS::Partition}:iam::${AWS::AccountId}:root")
    return {"Version": "2012-10-17", "Statement": [
        {"Sid": "AccountAdministersTheKey", "Effect": "Allow", "Principal": {"AWS": root},
         "Action": KEY_ADMIN_ACTIONS, "Resource": "*"},
        {"Sid": "ApiFunctionDecryptsThroughSsm", "Effect": "Allow",
         "Principal": {"AWS": _att("ApiFunctionRole", "Arn")}, "Action": ["kms:Decrypt"], "Resource": "*",
         "Condition": via_ssm()},
        # The deployer writes the parameter (deploy) and reads it (`imgproc sign`); named by ARN pattern so
        # an assumed role matches whatever its session name.
        {"Sid": "DeployerUsesTheKeyThroughSsm", "Effect": "Allow", "Principal": {"AWS": root},
         "Action": ["kms:Encrypt", "kms:Decrypt", "kms:GenerateDataKey"], "Resource": "*",
         "Condition": {**via_ssm(), "ArnLike": {"aws:PrincipalArn": _ref(KEY_USERS_PARAM)}}},
    ]}


def signing_key_resources() -> Doc:
    """The customer-managed KMS key for the key parameter, and the parameter listing who may use it."""
    return {
        "Parameters": {KEY_USERS_PARAM: {
            "Type": "CommaDelimitedList", "Default": "",
            "Description": "IAM principal ARN patterns that may use the signing key through SSM (deploy: the deployer)"}},
        "Resources": {"SigningKey": {
            # Retained: the parameter stays encrypted under it after `imgproc destroy`.
            "Type": "AWS::KMS::Key", "DeletionPolicy": "Retain", "UpdateReplacePolicy": "Retain",
            "Properties": {"Description": "imgproc retrieval API: encrypts the signing-keys SSM parameter",
                           "EnableKeyRotation": True, "KeyPolicy": signing_key_policy()}}},
    }


def principal_patterns(caller_arn: str) -> list[str]:
    """``sts get-caller-identity`` ARN -> aws:PrincipalArn patterns naming that user or role.

    An assumed-role session ``arn:aws:sts::123:assumed-role/Deployer/alice`` is the
    role ``arn:aws:iam::123:role/Deployer`` (or ``role/<path>/Deployer``: STS drops the path).
    """
    parts = caller_arn.split(":", 5)
    if len(parts) == 6 and parts[2] == "sts" and parts[5].startswith("assumed-role/"):
        role = parts[5].split("/")[1]
        base = f"arn:{parts[1]}:iam::{parts[4]}:role/"
        return [f"{base}{role}", f"{base}*/{role}"]
    return [caller_arn]


def api_environment(s, a: ApiSettings, presets: tuple[str, ...]) -> dict[str, Any]:
    from cli.deploy.template import environment

    env = {**environment(s, presets), "IMGPROC_AUTH": a.auth, "IMGPROC_API_REDIRECT_TTL": str(a.redirect_ttl),
           "IMGPROC_API_INLINE_MAX_BYTES": str(a.inline_max_bytes), "IMGPROC_API_CACHE_SECONDS": str(a.cache_seconds)}
    env.pop("IMGPROC_REKOGNITION", None)  # the API never labels
    if a.auth == "signed":
        env["IMGPROC_SIGNING_KEYS_PARAM"] = a.keys_param(s.stack_name)
    return env


#: The stage's access log line: no query string, so signatures and API keys are never logged.
ACCESS_LOG_FORMAT = {
    "requestId": "$context.requestId", "ip": "$context.identity.sourceIp", "time": "$context.requestTime",
    "method": "$context.httpMethod", "path": "$context.path", "status": "$context.status",
    "bytes": "$context.responseLength", "latencyMs": "$context.responseLatency",
    "error": "$context.error.message",
}


def access_log_group(stack: str) -> str:
    return f"/aws/apigateway/{stack}-access"


def api_resources(s, presets: tuple[str, ...], a: ApiSettings) -> Doc:
    """The API resource group for DeploySettings ``s`` (cli/deploy_settings.py)."""
    from cli.deploy.checkov import checkov_skip
    from cli.deploy.template import LOG_GROUP_KMS, RETAIN, function_skips

    fn_name = f"{s.stack_name}-api"
    log_group = f"/aws/lambda/{fn_name}"
    method: Doc = {"Type": "AWS::ApiGateway::Method", "Metadata": checkov_skip(
        CKV_AWS_59="every request is authenticated: an HMAC-signed URL checked by the function before it reads "
                   "anything (auth = 'signed'), or the usage plan's API key (auth = 'apikey')"), "Properties": {
        "RestApiId": _ref("Api"), "ResourceId": _ref("ApiKeyResource"), "HttpMethod": "GET",
        "AuthorizationType": "NONE", "ApiKeyRequired": a.auth == "apikey",
        "RequestParameters": {"method.request.path.preset": True, "method.request.path.key": True},
        "Integration": {
            "Type": "AWS_PROXY", "IntegrationHttpMethod": "POST",
            "Uri": _sub("arn:${AWS::Partition}:apigateway:${AWS::Region}:lambda:path/2015-03-31/functions/"
                        "${ApiFunction.Arn}/invocations"),
        },
    }}
    # A Deployment is immutable: a new logical id whenever the method changes makes CloudFormation redeploy.
    digest = hashlib.sha256(json.dumps(method, sort_keys=True).encode()).hexdigest()[:8]
    deployment = f"ApiDeployment{digest}"
    resources: Doc = {
        "ApiFunctionRole": {"Type": "AWS::IAM::Role", "Properties": {
            "AssumeRolePolicyDocument": {"Version": "2012-10-17", "Statement": [{
                "Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"}, "Action": "sts:AssumeRole"}]},
            "Policies": [{"PolicyName": "imgproc-api", "PolicyDocument": api_role_policy(s, a, log_group)}],
        }},
        "ApiLogGroup": {"Type": "AWS::Logs::LogGroup", **RETAIN, "Properties": {
            "LogGroupName": log_group, "RetentionInDays": s.log_retention_days},
            "Metadata": checkov_skip(CKV_AWS_158=LOG_GROUP_KMS)},
        # One line per request (who, what, status, latency): the stage's access log.
        "ApiAccessLogGroup": {"Type": "AWS::Logs::LogGroup", **RETAIN, "Properties": {
            "LogGroupName": access_log_group(s.stack_name), "RetentionInDays": s.log_retention_days},
            "Metadata": checkov_skip(CKV_AWS_158=LOG_GROUP_KMS)},
        # API Gateway writes any CloudWatch log through the one role set in the region's account settings.
        # Retained with that setting (it outlives the stack, and other APIs in the account may use it).
        "ApiGatewayLogsRole": {"Type": "AWS::IAM::Role", **RETAIN, "Properties": {
            "AssumeRolePolicyDocument": {"Version": "2012-10-17", "Statement": [{
                "Effect": "Allow", "Principal": {"Service": "apigateway.amazonaws.com"},
                "Action": "sts:AssumeRole"}]},
            "ManagedPolicyArns": [_sub("arn:${AWS::Partition}:iam::aws:policy/service-role/"
                                       "AmazonAPIGatewayPushToCloudWatchLogs")]}},
        "ApiGatewayAccount": {"Type": "AWS::ApiGateway::Account", **RETAIN, "Properties": {
            "CloudWatchRoleArn": _att("ApiGatewayLogsRole", "Arn")}},
        "ApiFunction": {"Type": "AWS::Lambda::Function", "DependsOn": ["ApiLogGroup"], "Properties": {
            "FunctionName": fn_name,
            "Description": "imgproc: GET /images/{preset}/{key} -> redirect to, or render, a rendition",
            "Runtime": "python3.12", "Handler": API_HANDLER,
            "Code": {"S3Bucket": _ref("CodeBucket"), "S3Key": _ref("CodeKey")},
            "Role": _att("ApiFunctionRole", "Arn"),
            "MemorySize": a.memory, "Timeout": a.timeout, "Architectures": [s.architecture],
            "Environment": {"Variables": api_environment(s, a, presets)},
        }, "Metadata": checkov_skip(
            **function_skips("throttled where requests enter: the stage's api.throttle_rate/throttle_burst "
                             "(and the usage plan's) cap how often it runs"),
            CKV_AWS_116="invoked synchronously by API Gateway (the caller sees the error); a DLQ only "
                        "receives asynchronous invocations")},
        "Api": {"Type": "AWS::ApiGateway::RestApi", "Properties": {
            "Name": fn_name, "Description": "imgproc retrieval API",
            "BinaryMediaTypes": ["*/*"], "EndpointConfiguration": {"Types": ["REGIONAL"]},
        }},
        "ApiImagesResource": {"Type": "AWS::ApiGateway::Resource", "Properties": {
            "RestApiId": _ref("Api"), "ParentId": _att("Api", "RootResourceId"), "PathPart": ROUTE[0]}},
        "ApiPresetResource": {"Type": "AWS::ApiGateway::Resource", "Properties": {
            "RestApiId": _ref("Api"), "ParentId": _ref("ApiImagesResource"), "PathPart": ROUTE[1]}},
        "ApiKeyResource": {"Type": "AWS::ApiGateway::Resource", "Properties": {
            "RestApiId": _ref("Api"), "ParentId": _ref("ApiPresetResource"), "PathPart": ROUTE[2]}},
        "ApiGetMethod": method,
        deployment: {"Type": "AWS::ApiGateway::Deployment", "DependsOn": ["ApiGetMethod"], "Properties": {
            "RestApiId": _ref("Api"), "Description": "imgproc retrieval API"}},
        "ApiStage": {"Type": "AWS::ApiGateway::Stage", "DependsOn": ["ApiGatewayAccount"], "Properties": {
            "RestApiId": _ref("Api"), "DeploymentId": _ref(deployment), "StageName": a.stage,
            "MethodSettings": [{"ResourcePath": "/*", "HttpMethod": "*",
                                "ThrottlingRateLimit": a.throttle_rate, "ThrottlingBurstLimit": a.throttle_burst}],
            "AccessLogSetting": {"DestinationArn": _att("ApiAccessLogGroup", "Arn"),
                                 "Format": json.dumps(ACCESS_LOG_FORMAT, separators=(",", ":"))},
        }, "Metadata": checkov_skip(
            CKV_AWS_120="answers are cached where they are used (Cache-Control up to api.cache_seconds, redirects "
                        "to S3); a stage cache is billed per hour and would serve one signed URL's answer to another",
            CKV_AWS_73="X-Ray tracing is billed per trace; the function logs one JSON line per request and the "
                       "stage an access log line")},
        "ApiInvokePermission": {"Type": "AWS::Lambda::Permission", "Properties": {
            "Action": "lambda:InvokeFunction", "FunctionName": _ref("ApiFunction"),
            "Principal": "apigateway.amazonaws.com",
            "SourceArn": _sub("arn:${AWS::Partition}:execute-api:${AWS::Region}:${AWS::AccountId}:${Api}/*/GET/images/*"),
        }},
    }
    outputs: Doc = {
        "ApiUrl": {"Description": "GET <ApiUrl>/images/<preset>/<key>",
                   "Value": _sub(f"https://${{Api}}.execute-api.${{AWS::Region}}.${{AWS::URLSuffix}}/{a.stage}")},
        "ApiFunctionName": {"Value": _ref("ApiFunction")},
    }
    if a.auth == "signed":
        outputs["SigningKeysParam"] = {"Description": "SSM SecureString with the signing keys",
                                       "Value": a.keys_param(s.stack_name)}
        outputs["SigningKmsKeyArn"] = {"Description": "KMS key encrypting the signing keys",
                                       "Value": _att("SigningKey", "Arn") if a.creates_kms_key else a.signing_kms_key}
    else:
        resources["ApiUsagePlan"] = {"Type": "AWS::ApiGateway::UsagePlan", "DependsOn": ["ApiStage"], "Properties": {
            "UsagePlanName": fn_name,
            "ApiStages": [{"ApiId": _ref("Api"), "Stage": a.stage}],
            "Throttle": {"RateLimit": a.throttle_rate, "BurstLimit": a.throttle_burst},
        }}
        resources["ApiClientKey"] = {"Type": "AWS::ApiGateway::ApiKey", "Properties": {
            "Name": f"{fn_name}-key", "Enabled": True}}
        resources["ApiUsagePlanKey"] = {"Type": "AWS::ApiGateway::UsagePlanKey", "Properties": {
            "KeyId": _ref("ApiClientKey"), "KeyType": "API_KEY", "UsagePlanId": _ref("ApiUsagePlan")}}
        outputs["ApiKeyId"] = {"Description": "aws apigateway get-api-key --include-value --api-key <id>",
                               "Value": _ref("ApiClientKey")}
    doc: Doc = {"Resources": resources, "Outputs": outputs}
    if a.creates_kms_key:
        key = signing_key_resources()
        doc["Parameters"] = key["Parameters"]
        resources.update(key["Resources"])
    return doc


def api_group(a: ApiSettings):
    """``api_resources`` bound to the `[api]` settings, in the (settings, presets) shape of template GROUPS."""

    def group(s, presets: tuple[str, ...]) -> Doc:
        return api_resources(s, presets, a)

    group.__name__ = "api_resources"
    return group



def groups_for(config, api_flag: bool):
    """The template's resource groups with the API added, or None (the default groups) without it.

    The API is part of the stack when ``--api`` is passed or imgproc.toml has an
    `[api]` table (so a later plain `imgproc deploy` does not delete it).
    Raises ConfigError for a bad `[api]` table.
    """
    if not (api_flag or "api" in config.extra):
        return None
    from cli.deploy.template import GROUPS

    return [*GROUPS, api_group(ApiSettings.from_table(config.extra.get("api"), config.source))]

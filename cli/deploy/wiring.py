"""The wiring check behind `imgproc status`: each link of the deployed pipeline, ok or a problem.

Where the S3 or Lambda API can restore a link (what emulators ignore in a
template), a check carries a repair.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from cli.aws.errors import AWS_ERRORS, aws_error, error_code
from cli.deploy.changeset import OUTPUT_KEYS, TERMINAL_OK, describe_stack, stack_outputs, template_body
from cli.deploy.template import LIFECYCLE_RULE_ID, lifecycle_api, notification_api
from cli.errors import DeployError


class Resolver:
    """Evaluates Ref / Fn::GetAtt / Fn::Sub / Fn::Join of the deployed template."""

    def __init__(self, stack: dict, resources: dict[str, str], arns: dict[str, str]):
        _, partition, _, region, account, _ = stack["StackId"].split(":", 5)
        self.refs = {"AWS::Partition": partition, "AWS::Region": region, "AWS::AccountId": account,
                     "AWS::StackName": stack["StackName"], **resources}
        self.refs.update({p["ParameterKey"]: p.get("ParameterValue", "") for p in stack.get("Parameters") or []})
        self.arns = arns

    def att(self, name: str, attr: str) -> str:
        if attr == "Arn" and name in self.arns:
            return self.arns[name]
        raise DeployError(f"cannot resolve {name}.{attr} of the deployed template")

    def __call__(self, value: Any) -> Any:
        if isinstance(value, list):
            return [self(v) for v in value]
        if not isinstance(value, dict):
            return value
        if "Ref" in value:
            return self.refs[value["Ref"]]
        if "Fn::GetAtt" in value:
            name, attr = value["Fn::GetAtt"] if isinstance(value["Fn::GetAtt"], list) else value["Fn::GetAtt"].split(".")
            return self.att(name, attr)
        if "Fn::Sub" in value:
            import re

            def repl(m: re.Match) -> str:
                token = m.group(1)
                if "." in token:
                    return self.att(*token.split(".", 1))
                return self.refs[token]

            return re.sub(r"\$\{([^}!]+)\}", repl, value["Fn::Sub"])
        if "Fn::Join" in value:
            sep, parts = value["Fn::Join"]
            return sep.join(str(self(p)) for p in parts)
        return {k: self(v) for k, v in value.items()}


@dataclass
class Check:
    name: str
    ok: bool
    detail: str
    fix: str = ""
    repair: Callable[[], None] | None = None


@dataclass
class Deployed:
    """Everything status needs to know about one deployed stack."""

    stack: dict
    outputs: dict[str, str]
    function: dict = field(default_factory=dict)
    template: dict = field(default_factory=dict)
    resolve: Resolver | None = None


def load_deployed(target, stack_name: str) -> Deployed | None:
    cfn = target.client("cloudformation")
    stack = describe_stack(cfn, stack_name)
    if stack is None:
        return None
    outputs = stack_outputs(stack)
    d = Deployed(stack, outputs)
    if stack["StackStatus"].startswith("DELETE"):
        return d
    try:
        d.template = template_body(cfn, stack_name)
        resources = {r["LogicalResourceId"]: r.get("PhysicalResourceId", "")
                     for r in paged(cfn, "list_stack_resources", "StackResourceSummaries", StackName=stack_name)}
    except AWS_ERRORS as exc:
        raise DeployError(f"stack {stack_name}: {aws_error(exc)}") from None
    if outputs.get("FunctionName"):
        try:
            d.function = target.client("lambda").get_function_configuration(FunctionName=outputs["FunctionName"])
        except AWS_ERRORS:
            d.function = {}
    arns = {"Function": outputs.get("FunctionArn", d.function.get("FunctionArn", ""))}
    for logical in ("InputBucket", "OutputBucket"):
        if resources.get(logical):
            arns[logical] = f"arn:{stack['StackId'].split(':')[1]}:s3:::{resources[logical]}"
    if outputs.get("DeadLetterQueueUrl"):
        try:
            arns["FailureQueue"] = target.client("sqs").get_queue_attributes(
                QueueUrl=outputs["DeadLetterQueueUrl"], AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        except AWS_ERRORS:
            pass
    from cli.deploy.trigger_wiring import trigger_arns

    arns.update({k: v for k, v in trigger_arns(target, outputs, resources, stack["StackId"]).items()
                 if k not in arns})
    d.resolve = Resolver(stack, resources, arns)
    return d


def paged(client, op: str, key: str, **kwargs) -> Iterable[dict]:
    for page in client.get_paginator(op).paginate(**kwargs):
        yield from page.get(key, [])


def _props(d: Deployed, logical: str) -> dict:
    return d.template.get("Resources", {}).get(logical, {}).get("Properties", {})


def wiring_checks(target, d: Deployed) -> list[Check]:
    """ok / problem (+ fix and, where the S3/Lambda API can do it, a repair) for each link."""
    checks: list[Check] = []
    status = d.stack["StackStatus"]
    name = d.stack["StackName"]
    checks.append(Check("stack", status in TERMINAL_OK, status,
                        "" if status in TERMINAL_OK else f"see `aws cloudformation describe-stack-events "
                        f"--stack-name {name}`, then run `imgproc deploy`"))
    missing = [k for k in OUTPUT_KEYS if k not in d.outputs]
    checks.append(Check("outputs", not missing, "all present" if not missing else f"missing {', '.join(missing)}",
                        "" if not missing else "run `imgproc deploy` (the emulator may not report outputs)"))
    if not d.function or d.resolve is None:
        checks.append(Check("function", False, "not found", "run `imgproc deploy`"))
        return checks
    fn = d.function
    fn_ok = fn.get("State", "Active") == "Active" and fn.get("LastUpdateStatus", "Successful") == "Successful"
    checks.append(Check("function", fn_ok, f"state {fn.get('State', '?')}, last update "
                        f"{fn.get('LastUpdateStatus', '?')}{' - ' + fn['LastUpdateStatusReason'] if fn.get('LastUpdateStatusReason') else ''}",
                        "" if fn_ok else "fix the reason shown, then run `imgproc deploy`"))
    lam, s3 = target.client("lambda"), target.client("s3")
    fn_arn = fn["FunctionArn"]
    in_bucket, out_bucket = d.outputs.get("InputBucketName", ""), d.outputs.get("OutputBucketName", "")
    from cli.deploy.trigger_wiring import trigger_checks, trigger_mode

    checks.extend(trigger_checks(target, d, in_bucket))  # per trigger: permission, queue, rule, DLQ depth
    if trigger_mode(d) == "notification":
        checks.append(_check_notification(s3, d, in_bucket, fn_arn))
    from cli.deploy.alarms import check_alarms

    checks.append(check_alarms(target, name))
    checks.append(_check_lifecycle(s3, d, out_bucket))
    checks.append(_check_destination(lam, d, fn["FunctionName"]))
    endpoint = (getattr(target, "endpoint_url", None) or os.environ.get("AWS_ENDPOINT_URL_S3")
                or os.environ.get("AWS_ENDPOINT_URL") or "")
    plain_http = endpoint.startswith("http://")
    for logical, bucket in (("InputBucket", in_bucket), ("OutputBucket", out_bucket)):
        checks.append(_check_private(s3, d, logical, bucket, tls=not plain_http))
    return checks


def _check_notification(s3, d: Deployed, bucket: str, fn_arn: str) -> Check:
    cfn_entries = _props(d, "InputBucket").get("NotificationConfiguration", {}).get("LambdaConfigurations", [])
    expected = notification_api(d.resolve(cfn_entries)) if d.resolve else []
    try:
        current = s3.get_bucket_notification_configuration(Bucket=bucket)
    except AWS_ERRORS as exc:
        return Check("notification", False, f"{bucket}: {aws_error(exc)}", "run `imgproc deploy`")
    current.pop("ResponseMetadata", None)
    have = [c for c in current.get("LambdaFunctionConfigurations", []) if c.get("LambdaFunctionArn") == fn_arn]
    missing = [e for e in expected if not any(_same_notification(e, h) for h in have)]
    if not missing:
        return Check("notification", True, f"{bucket}: ObjectCreated -> {fn_arn.rsplit(':', 1)[-1]}"
                     f"{_filter_text(expected)}")

    def repair() -> None:
        others = [c for c in current.get("LambdaFunctionConfigurations", []) if c.get("LambdaFunctionArn") != fn_arn]
        config = {k: v for k, v in current.items() if k != "LambdaFunctionConfigurations"}
        config["LambdaFunctionConfigurations"] = others + expected
        s3.put_bucket_notification_configuration(Bucket=bucket, NotificationConfiguration=config)

    return Check("notification", False, f"{bucket} does not send ObjectCreated events to the function"
                 f"{_filter_text(missing)}", "run `imgproc status --repair` (emulators ignore the "
                 "template's NotificationConfiguration)", repair)


def _rules(entry: dict) -> set[tuple[str, str]]:
    return {(r["Name"].lower(), r["Value"]) for r in entry.get("Filter", {}).get("Key", {}).get("FilterRules", [])}


def _same_notification(want: dict, have: dict) -> bool:
    events = set(have.get("Events", []))
    return bool(set(want["Events"]) & events) and _rules(want) == _rules(have)


def _filter_text(entries: list[dict]) -> str:
    parts = sorted({f"{n}={v}" for e in entries for n, v in _rules(e)})
    return f" ({', '.join(parts)})" if parts else ""


def _check_lifecycle(s3, d: Deployed, bucket: str) -> Check:
    rules = _props(d, "OutputBucket").get("LifecycleConfiguration", {}).get("Rules", [])
    if not rules:
        return Check("lifecycle rule", True, f"{bucket}: none configured (lifecycle_days = 0)")
    expected = lifecycle_api(rules)
    try:
        current = s3.get_bucket_lifecycle_configuration(Bucket=bucket).get("Rules", [])
    except AWS_ERRORS as exc:
        if error_code(exc) != "NoSuchLifecycleConfiguration":
            return Check("lifecycle rule", False, f"{bucket}: {aws_error(exc)}", "run `imgproc deploy`")
        current = []
    ours = [r for r in current if r.get("ID") == LIFECYCLE_RULE_ID and r.get("Status") == "Enabled"]
    if ours:
        return Check("lifecycle rule", True, f"{bucket}: {_lifecycle_text(ours[0])}")

    def repair() -> None:
        others = [r for r in current if r.get("ID") != LIFECYCLE_RULE_ID]
        s3.put_bucket_lifecycle_configuration(Bucket=bucket, LifecycleConfiguration={"Rules": others + expected})

    return Check("lifecycle rule", False, f"{bucket} has no {LIFECYCLE_RULE_ID} rule "
                 f"(wanted: {_lifecycle_text(expected[0])})",
                 "run `imgproc status --repair` (emulators ignore the template's LifecycleConfiguration)", repair)


def _lifecycle_text(rule: dict) -> str:
    if "Expiration" in rule:
        return f"expire after {rule['Expiration'].get('Days')} days"
    if rule.get("Transitions"):
        t = rule["Transitions"][0]
        return f"move to {t.get('StorageClass')} after {t.get('Days')} days"
    return "enabled"


def _check_destination(lam, d: Deployed, function_name: str) -> Check:
    props = d.template.get("Resources", {}).get("InvokeConfig", {}).get("Properties")
    if not props or d.resolve is None:
        return Check("failure destination", True, "none configured")
    try:
        want = d.resolve(props["DestinationConfig"]["OnFailure"]["Destination"])
    except DeployError:
        return Check("failure destination", False, "the failure queue was not found", "run `imgproc deploy`")
    try:
        have = lam.get_function_event_invoke_config(FunctionName=function_name, Qualifier="$LATEST")
    except AWS_ERRORS:
        have = {}
    if have.get("DestinationConfig", {}).get("OnFailure", {}).get("Destination") == want:
        return Check("failure destination", True, f"failed events -> {want.rsplit(':', 1)[-1]} "
                     f"after {have.get('MaximumRetryAttempts', '?')} retries")

    def repair() -> None:
        lam.put_function_event_invoke_config(
            FunctionName=function_name, Qualifier="$LATEST",
            MaximumRetryAttempts=int(props.get("MaximumRetryAttempts", 2)),
            DestinationConfig={"OnFailure": {"Destination": want}})

    return Check("failure destination", False, "failed asynchronous invocations are not sent to the queue",
                 "run `imgproc status --repair` (emulators ignore AWS::Lambda::EventInvokeConfig)", repair)


def _check_private(s3, d: Deployed, logical: str, bucket: str, tls: bool = True) -> Check:
    """Public access block and the TLS-only bucket policy.

    On a plain-http endpoint (moto's server, LocalStack) the TLS-only policy is
    neither required nor applied: moto enforces it, and every call would be denied.
    """
    label = f"{'input' if logical == 'InputBucket' else 'output'} bucket private"
    problems = []
    try:
        pab = s3.get_public_access_block(Bucket=bucket)["PublicAccessBlockConfiguration"]
        if not all(pab.get(k) for k in ("BlockPublicAcls", "IgnorePublicAcls", "BlockPublicPolicy",
                                          "RestrictPublicBuckets")):
            problems.append("public access not fully blocked")
    except AWS_ERRORS:
        pab = None
        problems.append("no public access block")
    try:
        policy = s3.get_bucket_policy(Bucket=bucket)["Policy"]
    except AWS_ERRORS:
        policy = None
    has_tls = bool(policy) and "aws:SecureTransport" in policy
    if tls and not has_tls:
        problems.append("no TLS-only policy")
    if not problems:
        return Check(label, True, f"{bucket}: public access blocked, "
                     f"{'TLS only' if tls else 'TLS-only policy not checked on a plain-http endpoint'}")
    want_pab = _props(d, logical).get("PublicAccessBlockConfiguration")
    want_policy = _props(d, f"{logical}Policy").get("PolicyDocument")

    def repair() -> None:
        if want_pab and pab != want_pab:
            s3.put_public_access_block(Bucket=bucket, PublicAccessBlockConfiguration=want_pab)
        if tls and want_policy and not has_tls and d.resolve is not None:
            doc = d.resolve(want_policy)
            if policy:  # keep the owner's statements
                existing = json.loads(policy)
                existing["Statement"] = list(existing.get("Statement", [])) + doc["Statement"]
                doc = existing
            s3.put_bucket_policy(Bucket=bucket, Policy=json.dumps(doc))

    return Check(label, False, f"{bucket}: {', '.join(problems)}",
                 "run `imgproc status --repair` (emulators ignore these template settings)", repair)

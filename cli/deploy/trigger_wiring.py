"""`imgproc status` checks for the deployed trigger (notification, queue or eventbridge).

The mode is read from the deployed template, not from imgproc.toml: status reports what is
there. Each link that the S3, SQS, Lambda or EventBridge API can restore carries a repair,
built from the deployed template's own properties (so a repair restores exactly the stack).
"""

from __future__ import annotations

import json
from typing import Any

from cli.aws.errors import AWS_ERRORS, aws_error
from cli.deploy.checks import Check, Deployed
from cli.errors import DeployError

PERMISSION_SID = "imgproc-invoke-repaired"
QUEUE_OUTPUTS = {"UploadQueue": "UploadQueueUrl", "UploadDeadLetterQueue": "UploadDeadLetterQueueUrl",
                 "FailureQueue": "DeadLetterQueueUrl"}


def trigger_mode(d: Deployed) -> str:
    resources = d.template.get("Resources", {})
    if "QueueEventSource" in resources:
        return "queue"
    if "UploadRule" in resources:
        return "eventbridge"
    return "notification"


def trigger_arns(target: Any, outputs: dict[str, str], resources: dict[str, str] | None = None,
                 stack_id: str = "") -> dict[str, str]:
    """ARNs of the trigger's resources, for resolving Fn::GetAtt in the deployed template.

    From the outputs, else from the physical ids (moto's stack updates add resources but not
    their outputs): a queue's physical id is its URL, a rule's its name.
    """
    resources = resources or {}
    arns: dict[str, str] = {}
    for logical, output in QUEUE_OUTPUTS.items():
        url = outputs.get(output) or resources.get(logical, "")
        if url.startswith("http"):
            try:
                arns[logical] = target.client("sqs").get_queue_attributes(
                    QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
            except AWS_ERRORS:
                pass
    rule = outputs.get("UploadRuleArn")
    if not rule and resources.get("UploadRule") and stack_id.count(":") >= 5:
        _, partition, _, region, account, _ = stack_id.split(":", 5)
        rule = f"arn:{partition}:events:{region}:{account}:rule/{resources['UploadRule']}"
    if rule:
        arns["UploadRule"] = rule
    return arns


def _queue_url(d: Deployed, logical: str) -> str:
    url = d.outputs.get(QUEUE_OUTPUTS[logical], "")
    if not url and d.resolve is not None:
        url = str(d.resolve.refs.get(logical, ""))
    return url if url.startswith("http") else ""


def _props(d: Deployed, logical: str) -> dict:
    return d.template.get("Resources", {}).get(logical, {}).get("Properties", {})


def trigger_checks(target: Any, d: Deployed, bucket: str) -> list[Check]:
    """The checks of the deployed mode, then the dead-letter queue's depth."""
    lam, s3, fn = target.client("lambda"), target.client("s3"), d.function
    mode = trigger_mode(d)
    checks = [Check("trigger", True, mode)]
    if mode == "queue":
        checks.append(check_queue_notification(s3, d, bucket))
        checks.append(check_event_source(lam, d, fn["FunctionName"]))
        checks.append(check_queue_depth(target, d, "UploadDeadLetterQueue", "dead-letter queue"))
        return checks
    checks.append(check_permission(lam, d, fn["FunctionName"]))
    if mode == "eventbridge":
        checks.append(check_eventbridge_enabled(s3, bucket))
        checks.append(check_rule(target.client("events"), d, fn["FunctionArn"]))
    checks.append(check_queue_depth(target, d, "FailureQueue", "failure queue"))
    return checks


# --- the invoke permission (notification and eventbridge modes) --------------------------------


def _resolved(d: Deployed, value: Any) -> Any:
    try:
        return d.resolve(value) if d.resolve else None
    except (DeployError, KeyError):
        return None


def check_permission(lam: Any, d: Deployed, function_name: str) -> Check:
    want = _resolved(d, _props(d, "InvokePermission"))
    if not want:
        return Check("invoke permission", False, "the deployed template has no invoke permission",
                     "run `imgproc deploy`")
    principal, source = want["Principal"], want.get("SourceArn", "")
    try:
        policy = json.loads(lam.get_policy(FunctionName=function_name)["Policy"])
    except AWS_ERRORS:
        policy = {"Statement": []}
    for st in policy.get("Statement", []):
        have = st.get("Principal", {})
        service = have.get("Service") if isinstance(have, dict) else have
        if service == principal and json.dumps(source) in json.dumps(st.get("Condition", {})):
            return Check("invoke permission", True, f"{principal} may invoke for {source.rsplit(':', 1)[-1]}")

    def repair() -> None:
        args = {"FunctionName": function_name, "StatementId": PERMISSION_SID, "Action": want["Action"],
                "Principal": principal, "SourceArn": source}
        if want.get("SourceAccount"):
            args["SourceAccount"] = want["SourceAccount"]
        try:
            lam.remove_permission(FunctionName=function_name, StatementId=PERMISSION_SID)
        except AWS_ERRORS:
            pass  # none from an earlier repair
        lam.add_permission(**args)

    return Check("invoke permission", False, f"{principal} may not invoke the function for "
                 f"{source.rsplit(':', 1)[-1]}", "run `imgproc status --repair` (adds the permission "
                 "the stack declares; `imgproc deploy` does not re-add one removed outside CloudFormation)", repair)


# --- queue mode ---------------------------------------------------------------------------------


def _queue_entries(d: Deployed) -> list[dict]:
    cfn = _props(d, "InputBucket").get("NotificationConfiguration", {}).get("QueueConfigurations", [])
    out = []
    for i, e in enumerate(_resolved(d, cfn) or []):
        api: dict = {"Id": f"imgproc-queue-{i}", "QueueArn": e["Queue"], "Events": [e["Event"]]}
        rules = e.get("Filter", {}).get("S3Key", {}).get("Rules", [])
        if rules:
            api["Filter"] = {"Key": {"FilterRules": [{"Name": r["Name"], "Value": r["Value"]} for r in rules]}}
        out.append(api)
    return out


def _rules(entry: dict) -> set[tuple[str, str]]:
    return {(r["Name"].lower(), r["Value"]) for r in entry.get("Filter", {}).get("Key", {}).get("FilterRules", [])}


def check_queue_notification(s3: Any, d: Deployed, bucket: str) -> Check:
    expected = _queue_entries(d)
    if not expected:
        return Check("notification", False, "the upload queue was not found", "run `imgproc deploy`")
    try:
        current = s3.get_bucket_notification_configuration(Bucket=bucket)
    except AWS_ERRORS as exc:
        return Check("notification", False, f"{bucket}: {aws_error(exc)}", "run `imgproc deploy`")
    current.pop("ResponseMetadata", None)
    queue_arn = expected[0]["QueueArn"]
    have = [c for c in current.get("QueueConfigurations", []) if c.get("QueueArn") == queue_arn]
    missing = [e for e in expected if not any(set(e["Events"]) & set(h.get("Events", [])) and
                                              _rules(e) == _rules(h) for h in have)]
    if not missing:
        return Check("notification", True, f"{bucket}: ObjectCreated -> queue {queue_arn.rsplit(':', 1)[-1]}")

    def repair() -> None:
        config = {k: v for k, v in current.items() if k != "QueueConfigurations"}
        others = [c for c in current.get("QueueConfigurations", []) if c.get("QueueArn") != queue_arn]
        config["QueueConfigurations"] = others + expected
        s3.put_bucket_notification_configuration(Bucket=bucket, NotificationConfiguration=config)

    return Check("notification", False, f"{bucket} does not send ObjectCreated events to the upload queue",
                 "run `imgproc status --repair` (emulators ignore the template's NotificationConfiguration)", repair)


def check_event_source(lam: Any, d: Deployed, function_name: str) -> Check:
    want = _resolved(d, _props(d, "QueueEventSource"))
    if not want:
        return Check("event source mapping", False, "the upload queue was not found", "run `imgproc deploy`")
    try:
        mappings = lam.list_event_source_mappings(FunctionName=function_name,
                                                  EventSourceArn=want["EventSourceArn"])["EventSourceMappings"]
    except AWS_ERRORS as exc:
        return Check("event source mapping", False, aws_error(exc), "run `imgproc deploy`")
    good = [m for m in mappings if m.get("State") in ("Enabled", "Enabling", "Creating", "Updating")
            and "ReportBatchItemFailures" in (m.get("FunctionResponseTypes") or [])]
    if good:
        m = good[0]
        cap = (m.get("ScalingConfig") or {}).get("MaximumConcurrency", "-")
        return Check("event source mapping", True, f"queue -> function, batches of {m.get('BatchSize')}, window "
                     f"{m.get('MaximumBatchingWindowInSeconds', 0)} s, max concurrency {cap}, {m.get('State')}")
    settings = {"BatchSize": want["BatchSize"], "MaximumBatchingWindowInSeconds": want["MaximumBatchingWindowInSeconds"],
                "FunctionResponseTypes": want["FunctionResponseTypes"], "ScalingConfig": want["ScalingConfig"]}

    def repair() -> None:
        if mappings:
            lam.update_event_source_mapping(UUID=mappings[0]["UUID"], FunctionName=function_name, Enabled=True,
                                            **settings)
        else:
            lam.create_event_source_mapping(EventSourceArn=want["EventSourceArn"], FunctionName=function_name,
                                            Enabled=True, **settings)

    state = mappings[0].get("State", "?") if mappings else "missing"
    return Check("event source mapping", False, f"the upload queue does not invoke the function with partial "
                 f"batch responses ({state})", "run `imgproc status --repair`", repair)


def check_queue_depth(target: Any, d: Deployed, logical: str, label: str) -> Check:
    url = _queue_url(d, logical)
    if not url:
        return Check(label, True, "none in this stack")
    try:
        attrs = target.client("sqs").get_queue_attributes(QueueUrl=url, AttributeNames=[
            "ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"])["Attributes"]
    except AWS_ERRORS as exc:
        return Check(label, False, aws_error(exc), "run `imgproc deploy`")
    depth = int(attrs.get("ApproximateNumberOfMessages", 0)) + int(attrs.get("ApproximateNumberOfMessagesNotVisible", 0))
    name = url.rsplit("/", 1)[-1]
    if depth == 0:
        return Check(label, True, f"{name}: empty")
    return Check(label, False, f"{name}: {depth} S3 event{'s' if depth != 1 else ''} that failed every retry",
                 "see why with `imgproc logs --errors`, then fix and send them again (`aws sqs "
                 "start-message-move-task`, or re-upload the images)")


# --- eventbridge mode -----------------------------------------------------------------------------


def check_eventbridge_enabled(s3: Any, bucket: str) -> Check:
    try:
        current = s3.get_bucket_notification_configuration(Bucket=bucket)
    except AWS_ERRORS as exc:
        return Check("notification", False, f"{bucket}: {aws_error(exc)}", "run `imgproc deploy`")
    current.pop("ResponseMetadata", None)
    if "EventBridgeConfiguration" in current:
        return Check("notification", True, f"{bucket}: events -> EventBridge")

    def repair() -> None:
        s3.put_bucket_notification_configuration(Bucket=bucket, NotificationConfiguration={
            **current, "EventBridgeConfiguration": {}})

    return Check("notification", False, f"{bucket} does not send its events to EventBridge",
                 "run `imgproc status --repair` (emulators ignore the template's NotificationConfiguration)", repair)


def check_rule(events: Any, d: Deployed, fn_arn: str) -> Check:
    props = _props(d, "UploadRule")
    arn = d.outputs.get("UploadRuleArn", "") or (d.resolve.arns.get("UploadRule", "") if d.resolve else "")
    name = arn.rsplit("/", 1)[-1]
    pattern = _resolved(d, props.get("EventPattern"))
    if not name or pattern is None:
        return Check("eventbridge rule", False, "the rule was not found", "run `imgproc deploy`")
    try:
        rule = events.describe_rule(Name=name)
        targets = events.list_targets_by_rule(Rule=name).get("Targets", [])
    except AWS_ERRORS:
        rule, targets = {}, []
    if rule.get("State") == "ENABLED" and any(t.get("Arn") == fn_arn for t in targets):
        return Check("eventbridge rule", True, f"{name}: Object Created -> {fn_arn.rsplit(':', 1)[-1]}")

    def repair() -> None:
        events.put_rule(Name=name, EventPattern=json.dumps(pattern), State="ENABLED",
                        Description=props.get("Description", "imgproc"))
        events.put_targets(Rule=name, Targets=[{"Id": "imgproc-function", "Arn": fn_arn}])

    problem = "disabled" if rule.get("State") == "DISABLED" else "missing" if not rule else "does not target the function"
    return Check("eventbridge rule", False, f"{name}: {problem}", "run `imgproc status --repair`", repair)


QUEUE_LABELS = {"DeadLetterQueueUrl": "failure queue", "UploadQueueUrl": "upload queue",
                "UploadDeadLetterQueueUrl": "dead-letter queue"}


def queue_depths(target: Any, outputs: dict[str, str], resources: dict[str, str] | None = None) -> dict[str, int]:
    """Messages waiting or in flight in each of the stack's queues, by label (`imgproc stats`).

    A queue is found by its output, else by its physical id (``resources``: logical -> physical;
    moto's stack updates add resources but not their outputs).
    """
    logical_of = {output: logical for logical, output in QUEUE_OUTPUTS.items()}
    depths = {}
    for output, label in QUEUE_LABELS.items():
        url = outputs.get(output) or (resources or {}).get(logical_of[output], "")
        if not url.startswith("http"):
            continue
        try:
            attrs = target.client("sqs").get_queue_attributes(QueueUrl=url, AttributeNames=[
                "ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"])["Attributes"]
        except AWS_ERRORS:
            continue  # stats is about the logs: a queue it cannot read is left out
        depths[label] = int(attrs.get("ApproximateNumberOfMessages", 0)) + int(
            attrs.get("ApproximateNumberOfMessagesNotVisible", 0))
    return depths

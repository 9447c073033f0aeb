"""CloudFormation stacks: describe, plan a change set, apply it, wait with a deadline.

No printing here: functions return values and report progress through a
callback; the deploy command renders.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from cli.aws.errors import AWS_ERRORS, aws_error
from cli.errors import DeployError, WaitTimedOut

TERMINAL_OK = ("CREATE_COMPLETE", "UPDATE_COMPLETE", "IMPORT_COMPLETE")
# Named IAM resources (the API group may add some) need the second capability.
CAPABILITIES = ["CAPABILITY_IAM", "CAPABILITY_NAMED_IAM"]
# How long a command waits for CloudFormation before it stops waiting (the stack operation goes on).
CHANGE_SET_DEADLINE_S = 5 * 60
STACK_DEADLINE_S = 60 * 60
OUTPUT_KEYS = ("InputBucketName", "OutputBucketName", "FunctionName", "FunctionArn", "LogGroupName",
               "DeadLetterQueueUrl")



def describe_stack(cfn, name: str) -> dict | None:
    try:
        stacks = cfn.describe_stacks(StackName=name)["Stacks"]
    except AWS_ERRORS as exc:
        if "does not exist" in aws_error(exc):
            return None
        raise DeployError(f"stack {name}: {aws_error(exc)}") from None
    return stacks[0] if stacks else None


def stack_outputs(stack: dict, endpoint_url: str | None = None) -> dict[str, str]:
    """The stack's outputs; behind an emulator endpoint, the API URL in the form that emulator serves."""
    outputs = {o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs") or []}
    if endpoint_url and outputs.get("ApiUrl"):
        outputs["ApiUrl"] = reachable_api_url(outputs["ApiUrl"], endpoint_url)
    return outputs


def reachable_api_url(api_url: str, endpoint_url: str) -> str:
    """``https://ID.execute-api.HOST/STAGE`` as ``ENDPOINT/_aws/execute-api/ID/STAGE`` when HOST is not AWS's.

    LocalStack fills AWS::URLSuffix with its own host and port, so its ApiUrl output names a host that
    does not resolve; it serves every API under ``/_aws/execute-api/`` on its endpoint instead.
    """
    parts = urlsplit(api_url)
    api_id, marker, suffix = parts.netloc.partition(".execute-api.")
    if not marker or suffix.split(":")[0].endswith((".amazonaws.com", ".amazonaws.com.cn")):
        return api_url
    stage = parts.path.strip("/")
    return f"{endpoint_url.rstrip('/')}/_aws/execute-api/{api_id}/{stage}".rstrip("/")


@dataclass
class Change:
    action: str  # Add / Modify / Remove
    logical_id: str
    resource_type: str
    replacement: str = ""  # True / False / Conditional (Modify only)


@dataclass
class Plan:
    stack_name: str
    create: bool
    changes: list[Change] = field(default_factory=list)
    change_set: str | None = None  # None for a new stack (created with create_stack)
    body: str = ""
    parameters: list[dict[str, str]] = field(default_factory=list)

    @property
    def empty(self) -> bool:
        return not self.changes


def plan(cfn, stack_name: str, body: str, doc: dict, parameters: dict[str, str] | None = None) -> Plan:
    """What a deploy would change. New stack: every resource is added (no change set is
    left behind if the user declines). Existing stack: a change set, deleted when empty."""
    params = [{"ParameterKey": k, "ParameterValue": v} for k, v in sorted((parameters or {}).items())]
    stack = describe_stack(cfn, stack_name)
    if stack is not None and stack["StackStatus"] == "REVIEW_IN_PROGRESS":
        raise DeployError(f"stack {stack_name} only has an unexecuted change set (REVIEW_IN_PROGRESS); "
                          f"run `imgproc destroy --stack {stack_name}` then deploy again")
    if stack is not None and stack["StackStatus"].endswith("_IN_PROGRESS"):
        raise DeployError(f"stack {stack_name} is busy ({stack['StackStatus']}); try again when it settles")
    if stack is not None and stack["StackStatus"] in ("ROLLBACK_COMPLETE", "ROLLBACK_FAILED", "CREATE_FAILED"):
        raise DeployError(f"stack {stack_name} failed to create ({stack['StackStatus']}); "
                          f"run `imgproc destroy --stack {stack_name}` then deploy again")
    if stack is None:
        changes = [Change("Add", lid, res["Type"]) for lid, res in doc["Resources"].items()]
        return Plan(stack_name, True, changes, None, body, params)
    name = f"imgproc-{int(time.time() * 1000)}"
    try:
        cfn.create_change_set(StackName=stack_name, ChangeSetName=name, ChangeSetType="UPDATE",
                              TemplateBody=body, Parameters=params,
                              Capabilities=CAPABILITIES)
    except AWS_ERRORS as exc:
        if "No updates are to be performed" in aws_error(exc):
            return Plan(stack_name, False, [], None, body, params)
        raise DeployError(f"change set for {stack_name}: {aws_error(exc)}") from None
    desc = _wait_change_set(cfn, stack_name, name)
    if desc["Status"] == "FAILED":
        reason = desc.get("StatusReason", "")
        cfn.delete_change_set(StackName=stack_name, ChangeSetName=name)
        if "didn't contain changes" in reason or "No updates" in reason:
            return Plan(stack_name, False, [], None, body, params)
        raise DeployError(f"change set for {stack_name} failed: {reason}")
    changes = []
    for c in desc.get("Changes", []):
        rc = c["ResourceChange"]
        changes.append(Change(rc["Action"], rc["LogicalResourceId"], rc["ResourceType"], rc.get("Replacement", "")))
    if not changes:
        cfn.delete_change_set(StackName=stack_name, ChangeSetName=name)
        return Plan(stack_name, False, [], None, body, params)
    return Plan(stack_name, False, changes, name, body, params)


def _wait_change_set(cfn: Any, stack_name: str, name: str, deadline_s: float = CHANGE_SET_DEADLINE_S) -> dict:
    delay = 0.2
    deadline = time.monotonic() + deadline_s
    while True:
        desc = cfn.describe_change_set(StackName=stack_name, ChangeSetName=name)
        if desc["Status"] in ("CREATE_COMPLETE", "FAILED"):
            return desc
        if time.monotonic() > deadline:
            raise WaitTimedOut(f"change set {name} of stack {stack_name} still {desc['Status']} after "
                               f"{deadline_s:.0f} s; see it in the CloudFormation console")
        time.sleep(delay)
        delay = min(delay * 1.5, 3.0)


def discard(cfn, p: Plan) -> None:
    """Delete an unexecuted change set (the user declined)."""
    if p.change_set:
        cfn.delete_change_set(StackName=p.stack_name, ChangeSetName=p.change_set)


def apply(cfn, p: Plan, progress: Callable[[str], None] = lambda line: None) -> dict:
    """Create the stack or execute the change set, wait, and return the final stack."""
    started = time.time() - 1
    if p.create:
        cfn.create_stack(StackName=p.stack_name, TemplateBody=p.body, Parameters=p.parameters,
                         Capabilities=CAPABILITIES, OnFailure="ROLLBACK")
    else:
        cfn.execute_change_set(StackName=p.stack_name, ChangeSetName=p.change_set)
    return wait(cfn, p.stack_name, started, progress)


def wait(cfn: Any, stack_name: str, since: float, progress: Callable[[str], None], deleting: bool = False,
         deadline_s: float = STACK_DEADLINE_S) -> dict:
    """Poll until the stack leaves *_IN_PROGRESS (or the deadline passes); report each new resource event."""
    seen: set[str] = set()
    delay = 0.2
    deadline = time.monotonic() + deadline_s
    while True:
        try:
            stack = cfn.describe_stacks(StackName=stack_name)["Stacks"][0]
        except AWS_ERRORS as exc:
            if deleting and "does not exist" in aws_error(exc):
                return {"StackStatus": "DELETE_COMPLETE"}
            raise DeployError(f"stack {stack_name}: {aws_error(exc)}") from None
        try:
            events = cfn.describe_stack_events(StackName=stack["StackId"])["StackEvents"]
        except AWS_ERRORS:
            events = []
        for ev in reversed(events):
            if ev["EventId"] in seen or ev["Timestamp"].timestamp() < since:
                continue
            seen.add(ev["EventId"])
            reason = f" ({ev['ResourceStatusReason']})" if ev.get("ResourceStatusReason") else ""
            progress(f"{ev['LogicalResourceId']} {ev['ResourceStatus']}{reason}")
        status = stack["StackStatus"]
        if not status.endswith("_IN_PROGRESS"):
            return stack
        if time.monotonic() > deadline:
            raise WaitTimedOut(f"stack {stack_name} still {status} after {deadline_s / 60:.0f} min; CloudFormation "
                               "goes on: follow it with `imgproc status` or the CloudFormation console")
        time.sleep(delay)
        delay = min(delay * 1.5, 3.0)


def template_body(cfn, stack_name: str) -> dict:
    """The deployed template as a dict (CloudFormation may return JSON text or a parsed object)."""
    body = cfn.get_template(StackName=stack_name, TemplateStage="Original")["TemplateBody"]
    if isinstance(body, str):
        try:
            return json.loads(body)
        except ValueError:
            import yaml

            return yaml.safe_load(body)
    return json.loads(json.dumps(body))

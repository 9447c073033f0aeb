"""What `imgproc stats` reads from the deployed stack besides the logs: queue depths and the
function's architecture (for the price), falling back to `[deploy] architecture`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from cli.logs.cost import PRICE_PER_GB_S


@dataclass(frozen=True)
class Deployed:
    queues: dict[str, int]  # label -> messages waiting or in flight, now
    architecture: str
    architecture_from: str  # said next to the cost, so a reader knows which price applies
    timeout_s: float  # no memory size is suggested at which invocations would come close to it


def read_deployed(ctx: Any, *, stack_wanted: bool) -> Deployed:
    """The stack's queue depths and its function's architecture; [deploy] alone without a readable stack."""
    from cli.deploy.changeset import describe_stack, stack_outputs
    from cli.deploy.trigger_wiring import queue_depths
    from cli.errors import DeployError

    fallback = Deployed({}, ctx.settings.architecture, "[deploy] architecture", ctx.settings.timeout)
    if not stack_wanted:
        return fallback
    try:
        found = describe_stack(ctx.target.client("cloudformation"), ctx.settings.stack_name)
    except DeployError:
        return fallback
    if not found:
        return fallback
    outputs = stack_outputs(found)
    fn = function_config(ctx.target, outputs["FunctionName"]) if outputs.get("FunctionName") else {}
    arch = (fn.get("Architectures") or [""])[0]
    known = arch in PRICE_PER_GB_S
    return Deployed(queue_depths(ctx.target, outputs, stack_resources(ctx.target, ctx.settings.stack_name)),
                    arch if known else fallback.architecture,
                    "the deployed function" if known else fallback.architecture_from,
                    fn.get("Timeout") or fallback.timeout_s)


def stack_resources(target: Any, stack_name: str) -> dict[str, str]:
    """Logical -> physical id of the stack's resources ({} when they cannot be listed)."""
    from cli.aws.errors import AWS_ERRORS
    from cli.deploy.wiring import paged

    try:
        return {r["LogicalResourceId"]: r.get("PhysicalResourceId", "") for r in
                paged(target.client("cloudformation"), "list_stack_resources", "StackResourceSummaries",
                      StackName=stack_name)}
    except AWS_ERRORS:
        return {}


def function_config(target: Any, function_name: str) -> dict[str, Any]:
    """The deployed function's configuration, or {} when it cannot be read."""
    from cli.aws.errors import AWS_ERRORS

    try:
        return target.client("lambda").get_function_configuration(FunctionName=function_name)
    except AWS_ERRORS:
        return {}

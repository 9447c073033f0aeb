"""`imgproc package`, `deploy`, `status`, `destroy` (and `push`, in cli/push.py).

Each command: parse flags -> settings (cli/deploy_settings.py) -> call
cli/package.py, cli/template.py, cli/stack.py -> render with rich. Progress
goes to stderr, results to stdout.
"""

from __future__ import annotations

import json
import sys
import time
from enum import Enum
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from cli.aws.errors import AWS_ERRORS
from cli.aws.owner import expect_owner, stack_account
from cli.aws.target import AwsTarget
from cli.commands.options import (
    ArchOpt,
    ConfigOpt,
    EndpointOpt,
    LocalstackOpt,
    ProfileOpt,
    RegionOpt,
    StackOpt,
    YesOpt,
)
from cli.console import ExitCode, err_console, human_bytes
from cli.deploy import buckets as bkt
from cli.deploy import changeset, template_api, wiring
from cli.deploy import package as pkg
from cli.deploy.api_keys import key_users, secure_api_keys
from cli.deploy.context import resolve
from cli.deploy.flow import check_names_free, stage_package
from cli.deploy.template import render, template
from cli.errors import fail


class Trigger(str, Enum):
    notification = "notification"
    queue = "queue"
    eventbridge = "eventbridge"


class Fmt(str, Enum):
    json = "json"
    yaml = "yaml"


# --- package ----------------------------------------------------------------------------


def package(
    out: Annotated[Path | None, typer.Option("--out", "-o", help="Zip file to write. Default: build/imgproc-lambda-<arch>.zip.",
                                             show_default=False)] = None,
    arch: ArchOpt = None,
    config: ConfigOpt = None,
) -> None:
    """Build the Lambda zip: the handler, core/, your presets and Pillow for python3.12.

    Pillow comes from the manylinux wheel of the same version as the local one
    (downloaded once into ~/.cache/imgproc/wheels), so the function writes the
    same bytes as `imgproc process`. The zip is reproducible: the same sources
    give the same SHA-256.

    Example:

        imgproc package --arch arm64 -o build/lambda.zip
    """
    ctx = resolve(config, arch=arch.value if arch else None)
    arch_name = ctx.settings.architecture
    dest = out or Path("build") / f"imgproc-lambda-{arch_name}.zip"
    with err_console().status(f"Building the {pkg.RUNTIME}/{arch_name} package..."):
        built = pkg.build(dest, arch_name, ctx.config_path)
    console = Console(highlight=False)
    console.print(f"[green]built[/] {built.path}  {human_bytes(built.size)}  {built.files} files  "
                  f"Pillow {built.pillow}{''.join(f' + {p}' for p in built.plugins)} {pkg.RUNTIME}/{built.arch}",
                  soft_wrap=True)
    console.print(f"sha256 {built.sha256}", soft_wrap=True)


# --- deploy -----------------------------------------------------------------------------


def deploy(
    stack: StackOpt = None,
    yes: YesOpt = False,
    template_only: Annotated[bool, typer.Option("--template-only", help="Print the CloudFormation template and exit.")] = False,
    fmt: Annotated[Fmt, typer.Option("--format", help="Template format for --template-only.")] = Fmt.json,
    arch: ArchOpt = None,
    api: Annotated[bool, typer.Option("--api", help="Also deploy the retrieval API, GET /images/PRESET/KEY (see "
                                      "`imgproc sign`); on by default when imgproc.toml has an [api] table.")] = False,
    trigger: Annotated[Trigger | None, typer.Option(
        "--trigger", help="How uploads reach the function: notification (S3 invokes it), queue (S3 -> SQS -> "
        "batches, dead-letter queue, capped concurrency) or eventbridge (S3 -> EventBridge rule). "
        "Default: [deploy].trigger, else notification. Switching is a normal update.",
        show_default=False)] = None,
    config: ConfigOpt = None,
    endpoint_url: EndpointOpt = None,
    profile: ProfileOpt = None,
    region: RegionOpt = None,
    localstack: LocalstackOpt = False,
) -> None:
    """Create or update the whole pipeline as one CloudFormation stack.

    Builds the package, uploads it (content-addressed: unchanged code is not
    uploaded again), shows the planned changes, applies them (asks first
    unless --yes), waits, prints the outputs and checks the wiring. Settings
    come from the [deploy] and [aws] tables of imgproc.toml.

    Example:

        imgproc deploy --stack photos --region eu-west-1 --yes
    """
    ctx = resolve(config, stack, arch.value if arch else None, endpoint_url, profile, region, localstack)
    if trigger is not None:
        ctx.settings = ctx.settings.replace(trigger=trigger.value)
    presets = ctx.presets()
    groups = template_api.groups_for(ctx.config, api)
    doc = template(ctx.settings, presets, groups)
    if template_only:
        print(render(doc, fmt.value), end="")
        return
    region_name = ctx.region()
    out, err = Console(highlight=False), err_console()
    s = ctx.settings
    identity = ctx.target.client("sts").get_caller_identity()
    account = identity["Account"]
    ctx.announce(err, account)
    check_names_free(ctx, doc, account, region_name)
    with err.status(f"Building the {pkg.RUNTIME}/{s.architecture} package..."):
        staged = stage_package(ctx, account, region_name, lambda line: err.print(line, soft_wrap=True))
    built = staged.built
    err.print(f"package {human_bytes(built.size)} sha256 {built.sha256[:12]} "
              f"{'uploaded to' if staged.uploaded else 'already in'} s3://{staged.bucket}/{built.key}", soft_wrap=True)
    cfn = ctx.target.client("cloudformation")
    doc = template(s, presets, groups, code=(staged.bucket, built.key))
    with err.status("Planning changes..."):
        plan = changeset.plan(cfn, s.stack_name, render(doc, "json"), doc,
                              {**staged.parameters,
                               **(key_users(ctx.config, identity["Arn"]) if groups is not None else {})})
    if plan.empty:
        out.print(f"[green]No changes:[/] stack {s.stack_name} is up to date.")
    else:
        render_plan(plan, out)
        if not yes and not _confirm(f"Apply these changes to stack {s.stack_name}?"):
            changeset.discard(cfn, plan)
            fail("nothing changed (declined)", ExitCode.FAILED)
        with err.status(f"{'Creating' if plan.create else 'Updating'} stack {s.stack_name}...") as spinner:
            final = changeset.apply(cfn, plan, lambda line: err.print(f"  {line}", soft_wrap=True))
            spinner.stop()
        if final["StackStatus"] not in changeset.TERMINAL_OK:
            fail(f"stack {s.stack_name} ended in {final['StackStatus']}: see the events above", ExitCode.FAILED)
        out.print(f"[green]{final['StackStatus']}[/] {s.stack_name}")
    deployed = wiring.load_deployed(ctx.target, s.stack_name)
    if groups is not None and deployed:
        secure_api_keys(ctx.target, ctx.config, s.stack_name, deployed.outputs, err)
    render_outputs(deployed.outputs if deployed else {}, out)
    checks = wiring.wiring_checks(ctx.target, deployed) if deployed else []
    problems = [c for c in checks if not c.ok]
    if problems:
        render_checks(problems, out)
        out.print("The stack is deployed; fix the problems above (`imgproc status --repair` applies "
                  "the settings emulators ignore).")


def _confirm(question: str) -> bool:
    if not sys.stdin.isatty():
        fail("no terminal to confirm on: pass --yes", ExitCode.USAGE)
    return typer.confirm(question, default=False)


def render_plan(plan: changeset.Plan, console: Console) -> None:
    table = Table(title=f"{'New stack' if plan.create else 'Changes to'} {plan.stack_name}", title_justify="left")
    for col in ("action", "resource", "type", "replacement"):
        table.add_column(col)
    colour = {"Add": "green", "Modify": "yellow", "Remove": "red"}
    for c in plan.changes:
        table.add_row(f"[{colour.get(c.action, 'white')}]{c.action}[/]", c.logical_id, c.resource_type,
                      c.replacement if c.action == "Modify" else "")
    console.print(table)


def render_outputs(outputs: dict[str, str], console: Console) -> None:
    """One `Key  value` line per output (easy to copy; long values are not folded)."""
    width = max((len(k) for k in outputs), default=0)
    for key, value in outputs.items():
        console.print(f"[bold]{key.ljust(width)}[/]  {escape(value)}", soft_wrap=True)


def render_checks(checks: list[wiring.Check], console: Console) -> None:
    for c in checks:
        mark = "[yellow]notice [/]" if c.notice else "[green]ok     [/]" if c.ok else "[red]problem[/]"
        console.print(f"{mark} {c.name}: {escape(c.detail)}", soft_wrap=True)
        if (c.notice or not c.ok) and c.fix:
            console.print(f"        fix: {c.fix}", soft_wrap=True)


# --- status -----------------------------------------------------------------------------


def status(
    stack: StackOpt = None,
    repair: Annotated[bool, typer.Option("--repair", help="Apply missing notification, lifecycle, failure destination "
                                                          "and bucket privacy settings through the S3/Lambda APIs.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the outputs and checks as JSON.")] = False,
    config: ConfigOpt = None,
    endpoint_url: EndpointOpt = None,
    profile: ProfileOpt = None,
    region: RegionOpt = None,
    localstack: LocalstackOpt = False,
) -> None:
    """Show the stack, its outputs and function, and check the wiring.

    Checks that the input bucket notifies the function, S3 may invoke it, the
    output bucket has its lifecycle rule, failed events reach the queue, the
    buckets are private and TLS-only, and the function's last update
    succeeded. Exit 1 while a problem remains.

    Example:

        imgproc status --stack photos --repair
    """
    ctx = resolve(config, stack, None, endpoint_url, profile, region, localstack)
    ctx.region()
    if repair:
        ctx.announce(err_console())
    name = ctx.settings.stack_name
    out = Console(highlight=False)
    deployed = wiring.load_deployed(ctx.target, name)
    if deployed is None:
        fail(f"no stack named {name} (run `imgproc deploy`)", ExitCode.FAILED)
    checks = wiring.wiring_checks(ctx.target, deployed)
    repaired: list[str] = []
    if repair:
        for c in checks:
            if not c.ok and c.repair:
                c.repair()
                repaired.append(c.name)
        if repaired:
            checks = wiring.wiring_checks(ctx.target, deployed)
    concurrency = _reserved(ctx.target, deployed.function.get("FunctionName"))
    problems = [c for c in checks if not c.ok]
    if as_json:
        print(json.dumps({
            "stack": name, "status": deployed.stack["StackStatus"], "outputs": deployed.outputs,
            "function": _function_summary(deployed.function, concurrency), "repaired": repaired,
            "checks": [{"name": c.name, "ok": c.ok, "detail": c.detail, "fix": c.fix, "notice": c.notice}
                       for c in checks],
        }, indent=2))
    else:
        out.print(f"[bold]{name}[/] {deployed.stack['StackStatus']}")
        render_outputs(deployed.outputs, out)
        if deployed.function:
            fn = _function_summary(deployed.function, concurrency)
            out.print("function: " + ", ".join(f"{k} {v}" for k, v in fn.items()), soft_wrap=True)
        for r in repaired:
            out.print(f"[cyan]repaired[/] {r}")
        render_checks(checks, out)
    raise typer.Exit(int(ExitCode.FAILED if problems else ExitCode.OK))


def _reserved(target: AwsTarget, function_name: str | None) -> int | None:
    if not function_name:
        return None
    try:
        return target.client("lambda").get_function_concurrency(FunctionName=function_name).get(
            "ReservedConcurrentExecutions")
    except AWS_ERRORS:
        return None


def _function_summary(fn: dict, concurrency: int | None) -> dict:
    if not fn:
        return {}
    env = fn.get("Environment", {}).get("Variables", {})
    return {
        "runtime": fn.get("Runtime"), "architecture": ",".join(fn.get("Architectures", [])),
        "memory_mb": fn.get("MemorySize"), "timeout_s": fn.get("Timeout"),
        "reserved_concurrency": concurrency if concurrency is not None else "none",
        "code": human_bytes(int(fn.get("CodeSize", 0))), "presets": env.get("IMGPROC_PRESETS", ""),
        "last_modified": fn.get("LastModified"),
    }


# --- destroy ----------------------------------------------------------------------------


def destroy(
    stack: StackOpt = None,
    delete_data: Annotated[bool, typer.Option("--delete-data", help="Also empty and delete the stack's buckets, "
                                              "log groups and failure queue (images, renditions and logs are lost).")] = False,
    yes: YesOpt = False,
    config: ConfigOpt = None,
    endpoint_url: EndpointOpt = None,
    profile: ProfileOpt = None,
    region: RegionOpt = None,
    localstack: LocalstackOpt = False,
) -> None:
    """Delete the stack. Buckets that still hold objects, log groups and the failure queue are kept unless --delete-data.

    Only what the stack created is deleted: its empty buckets go with it (a
    versioned bucket is empty only without old versions); the shared artifact
    bucket and anything else in the account stay.

    Example:

        imgproc destroy --stack photos --yes
    """
    ctx = resolve(config, stack, None, endpoint_url, profile, region, localstack)
    ctx.region()
    name = ctx.settings.stack_name
    out, err = Console(highlight=False), err_console()
    ctx.announce(err)
    cfn, s3 = ctx.target.client("cloudformation"), ctx.target.client("s3")
    found = changeset.describe_stack(cfn, name)
    if found is None:
        fail(f"no stack named {name}: nothing to destroy", ExitCode.FAILED)
    buckets = bkt.stack_buckets(cfn, name)
    expect_owner(s3, buckets, stack_account(found))
    counts = {b: bkt.count_objects(s3, b) for b in buckets}
    log_groups = bkt.stack_resources(cfn, name, "AWS::Logs::LogGroup")
    queues = bkt.stack_resources(cfn, name, "AWS::SQS::Queue")
    resources = len(bkt.stack_resources(cfn, name, "*"))
    for line in bkt.destroy_plan(name, resources, counts, log_groups, queues, delete_data):
        out.print(escape(line), soft_wrap=True)
    if not yes:
        what = "and EMPTY AND DELETE its buckets" if delete_data else "(buckets with objects are kept)"
        if not _confirm(f"Delete stack {name} {what}?"):
            fail("nothing deleted (declined)", ExitCode.FAILED)
    started = time.time() - 1
    cfn.delete_stack(StackName=found["StackId"])
    with err.status(f"Deleting stack {name}..."):
        final = changeset.wait(cfn, found["StackId"], started, lambda line: err.print(f"  {line}", soft_wrap=True),
                         deleting=True)
    if final["StackStatus"] != "DELETE_COMPLETE":
        fail(f"stack {name} ended in {final['StackStatus']}", ExitCode.FAILED)
    out.print(f"[green]deleted[/] stack {name}")
    kept = []
    for b in buckets:
        if counts[b] < 0:
            continue
        if counts[b] > 0 and not delete_data:
            kept.append(b)
            continue
        n = bkt.empty_bucket(s3, b) if delete_data else 0
        s3.delete_bucket(Bucket=b)
        out.print(f"[green]deleted[/] bucket {b}{f' ({n} objects)' if n else ''}", soft_wrap=True)
    for b in kept:
        out.print(f"[yellow]kept[/] bucket {b} ({bkt.objects_text(counts[b])}); when you no longer need the data, "
                  f"{bkt.keep_bucket_hint(b)}", soft_wrap=True)
    logs, sqs = ctx.target.client("logs"), ctx.target.client("sqs")
    for g in log_groups:
        if delete_data:
            if bkt.delete_log_group(logs, g):
                out.print(f"[green]deleted[/] log group {g}", soft_wrap=True)
        else:
            out.print(f"[yellow]kept[/] log group {g} (expires by its retention); a new deploy needs it gone: "
                      f"`aws logs delete-log-group --log-group-name {g}`", soft_wrap=True)
    for q in queues:
        if delete_data:
            if bkt.delete_queue(sqs, q):
                out.print(f"[green]deleted[/] queue {q}", soft_wrap=True)
        else:
            out.print(f"[yellow]kept[/] failure queue {q} (failed events to retry); "
                      f"`aws sqs delete-queue --queue-url {q}`", soft_wrap=True)


def register(app: typer.Typer) -> None:
    app.command("package")(package)
    app.command("deploy")(deploy)
    app.command("status")(status)
    app.command("destroy")(destroy)

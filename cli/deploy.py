"""`imgproc package`, `deploy`, `status`, `destroy` (and `push`, in cli/push.py).

Each command: parse flags -> settings (cli/deploy_settings.py) -> call
cli/package.py, cli/template.py, cli/stack.py -> render with rich. Progress
goes to stderr, results to stdout.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import time
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Annotated, NoReturn

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from cli import api_cmd, template_api
from cli import package as pkg
from cli import push as push_cmd
from cli import stack as stk
from cli.aws import AwsTarget, EndpointOpt, LocalstackOpt, ProfileOpt, RegionOpt
from cli.common import ConfigOpt, ExitCode, err_console, fail, load_config
from cli.deploy_settings import DeploySettings
from cli.template import render, template
from core.errors import ConfigError, ImgprocError
from core.recipe import Config

StackOpt = Annotated[str | None, typer.Option("--stack", help="Stack name. Default: [deploy].stack_name or 'imgproc'.",
                                              show_default=False)]
YesOpt = Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")]


_REGION = re.compile(r"^[a-z]{2}(-[a-z]+)+-\d{1,2}$")


class Arch(str, Enum):
    x86_64 = "x86_64"
    arm64 = "arm64"


class Fmt(str, Enum):
    json = "json"
    yaml = "yaml"


ArchOpt = Annotated[Arch | None, typer.Option("--arch", help="Lambda architecture. Default: [deploy].architecture or x86_64.",
                                              show_default=False)]


class Clients:
    """An AwsTarget that builds one boto3 session and reuses each client (a deploy makes ~25 calls)."""

    def __init__(self, target: AwsTarget):
        self.target = target
        self.endpoint_url = target.endpoint_url
        self._session = None
        self._clients: dict[tuple, object] = {}

    def region_name(self) -> str | None:
        return self.target.region_name()

    def client(self, service: str, **config):
        key = (service, tuple(sorted(config.items())))
        if key not in self._clients:
            from botocore.config import Config

            if self._session is None:
                self._session = self.target.session()
            kwargs: dict = {"config": Config(retries={"mode": "standard", "max_attempts": 5}, **config)}
            if self.target.endpoint_url:
                kwargs["endpoint_url"] = self.target.endpoint_url
            self._clients[key] = self._session.client(service, **kwargs)
        return self._clients[key]


@dataclass
class Context:
    """What every cloud command resolves first: presets, deploy settings, AWS target."""

    config: Config
    config_path: Path | None
    settings: DeploySettings
    target: Clients

    def presets(self) -> tuple[str, ...]:
        """The preset names the function renders (validated against the presets file)."""
        names = self.settings.presets or tuple(self.config.presets)
        try:
            self.config.select(names)
        except ImgprocError as exc:
            die(f"deploy.presets: {exc}")
        return tuple(names)

    def region(self) -> str:
        region = self.target.region_name() or os.environ.get("AWS_REGION")
        if not region:
            die("no AWS region: pass --region, set AWS_REGION, or add region to [aws] in imgproc.toml")
        if not _REGION.match(region):
            die(f"{region!r} is not an AWS region name (e.g. eu-west-1)")
        if not self.target.target.region:
            self.target = Clients(dataclasses.replace(self.target.target, region=region))
        return region


def resolve(config: Path | None, stack: str | None = None, arch: str | None = None,
            endpoint_url: str | None = None, profile: str | None = None, region: str | None = None,
            localstack: bool = False) -> Context:
    cfg = load_config(config)
    try:
        settings = DeploySettings.from_table(cfg.extra.get("deploy"), cfg.source)
        settings = settings.replace(stack_name=stack, architecture=arch)
    except ConfigError as exc:
        die(str(exc))
    aws_table = cfg.extra.get("aws") or {}
    unknown = sorted(set(aws_table) - {"endpoint_url", "profile", "region"})
    if unknown:
        die(f"aws.{unknown[0]}: unknown key (known: endpoint_url, profile, region) in {cfg.source}")
    target = AwsTarget.resolve(endpoint_url, profile, region, localstack, defaults=aws_table)
    return Context(cfg, pkg.default_config_path(config, Path.cwd()), settings, Clients(target))


def die(message: str, code: ExitCode = ExitCode.USAGE) -> NoReturn:
    """`fail` for messages that may contain [brackets] (printed literally, not as markup)."""
    fail(escape(message), code)


def aws_fail(exc: Exception) -> NoReturn:
    """An AWS or imgproc failure at the CLI edge: one line, exit 1."""
    if isinstance(exc, ImgprocError):
        die(str(exc), ExitCode.FAILED)
    name = type(exc).__name__
    if name in ("NoCredentialsError", "PartialCredentialsError"):
        die("no AWS credentials: configure a profile (--profile) or set AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY",
             ExitCode.USAGE)
    if name in ("EndpointConnectionError", "ConnectionClosedError"):
        die(f"cannot reach the AWS endpoint: {exc}", ExitCode.FAILED)
    die(stk.aws_error(exc), ExitCode.FAILED)


def _mb(n: int) -> str:
    return f"{n / 1_000_000:.1f} MB"


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
    try:
        with err_console().status(f"Building the {pkg.RUNTIME}/{arch_name} package..."):
            built = pkg.build(dest, arch_name, ctx.config_path)
    except ImgprocError as exc:
        die(str(exc), ExitCode.FAILED)
    console = Console(highlight=False)
    console.print(f"[green]built[/] {built.path}  {_mb(built.size)}  {built.files} files  "
                  f"Pillow {built.pillow} {pkg.RUNTIME}/{built.arch}", soft_wrap=True)
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
    presets = ctx.presets()
    try:
        groups = template_api.groups_for(ctx.config, api)
    except ConfigError as exc:
        die(str(exc))
    doc = template(ctx.settings, presets, groups)
    if template_only:
        print(render(doc, fmt.value), end="")
        return
    region_name = ctx.region()
    out, err = Console(highlight=False), err_console()
    s = ctx.settings
    try:
        account = stk.account_id(ctx.target.client("sts"))
        s3, cfn = ctx.target.client("s3"), ctx.target.client("cloudformation")
        artifacts = stk.artifact_bucket_name(account, region_name)
        if stk.describe_stack(cfn, s.stack_name) is None:
            taken = [b for b in s.bucket_names(account, region_name) if stk.bucket_exists(s3, b)]
            if taken:
                die(f"bucket {taken[0]} already exists (kept by an earlier `imgproc destroy`?); the new stack "
                    f"cannot create it: move its objects and delete it, or set deploy.input_bucket/"
                    f"deploy.output_bucket to new names", ExitCode.FAILED)
        with err.status(f"Building the {pkg.RUNTIME}/{s.architecture} package..."):
            # The same file `imgproc package` writes, so the deployed zip can be inspected.
            built = pkg.build(Path("build") / f"imgproc-lambda-{s.architecture}.zip", s.architecture,
                              ctx.config_path)
        if stk.ensure_artifact_bucket(s3, artifacts, region_name):
            err.print(f"created artifact bucket {artifacts}")
        uploaded = stk.upload_artifact(s3, artifacts, built.key, built.path)
        err.print(f"package {_mb(built.size)} sha256 {built.sha256[:12]} "
                  f"{'uploaded to' if uploaded else 'already in'} s3://{artifacts}/{built.key}", soft_wrap=True)
        if groups is not None:
            api_cmd.prepare_api(ctx.target, ctx.config, s.stack_name, err)
        doc = template(s, presets, groups, code=(artifacts, built.key))
        with err.status("Planning changes..."):
            plan = stk.plan(cfn, s.stack_name, render(doc, "json"), doc,
                            {"CodeBucket": artifacts, "CodeKey": built.key})
        if plan.empty:
            out.print(f"[green]No changes:[/] stack {s.stack_name} is up to date.")
        else:
            render_plan(plan, out)
            if not yes and not _confirm(f"Apply these changes to stack {s.stack_name}?"):
                stk.discard(cfn, plan)
                die("nothing changed (declined)", ExitCode.FAILED)
            with err.status(f"{'Creating' if plan.create else 'Updating'} stack {s.stack_name}...") as spinner:
                final = stk.apply(cfn, plan, lambda line: err.print(f"  {line}", soft_wrap=True))
                spinner.stop()
            if final["StackStatus"] not in stk.TERMINAL_OK:
                die(f"stack {s.stack_name} ended in {final['StackStatus']}: see the events above", ExitCode.FAILED)
            out.print(f"[green]{final['StackStatus']}[/] {s.stack_name}")
        deployed = stk.load_deployed(ctx.target, s.stack_name)
        render_outputs(deployed.outputs if deployed else {}, out)
        checks = stk.wiring_checks(ctx.target, deployed) if deployed else []
    except ImgprocError as exc:
        die(str(exc), ExitCode.FAILED)
    except typer.Exit:
        raise
    except Exception as exc:  # botocore errors: one line
        aws_fail(exc)
    problems = [c for c in checks if not c.ok]
    if problems:
        render_checks(problems, out)
        out.print("The stack is deployed; fix the problems above (`imgproc status --repair` applies "
                  "the settings emulators ignore).")


def _confirm(question: str) -> bool:
    import sys

    if not sys.stdin.isatty():
        die("no terminal to confirm on: pass --yes", ExitCode.USAGE)
    return typer.confirm(question, default=False)


def render_plan(plan: stk.Plan, console: Console) -> None:
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


def render_checks(checks: list[stk.Check], console: Console) -> None:
    for c in checks:
        mark = "[green]ok     [/]" if c.ok else "[red]problem[/]"
        console.print(f"{mark} {c.name}: {c.detail}", soft_wrap=True)
        if not c.ok and c.fix:
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
    name = ctx.settings.stack_name
    out = Console(highlight=False)
    try:
        deployed = stk.load_deployed(ctx.target, name)
        if deployed is None:
            die(f"no stack named {name} (run `imgproc deploy`)", ExitCode.FAILED)
        checks = stk.wiring_checks(ctx.target, deployed)
        repaired: list[str] = []
        if repair:
            for c in checks:
                if not c.ok and c.repair:
                    c.repair()
                    repaired.append(c.name)
            if repaired:
                checks = stk.wiring_checks(ctx.target, deployed)
        concurrency = _reserved(ctx.target, deployed.function.get("FunctionName"))
    except typer.Exit:
        raise
    except Exception as exc:
        aws_fail(exc)
    problems = [c for c in checks if not c.ok]
    if as_json:
        print(json.dumps({
            "stack": name, "status": deployed.stack["StackStatus"], "outputs": deployed.outputs,
            "function": _function_summary(deployed.function, concurrency), "repaired": repaired,
            "checks": [{"name": c.name, "ok": c.ok, "detail": c.detail, "fix": c.fix} for c in checks],
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


def _reserved(target: Clients, function_name: str | None) -> int | None:
    if not function_name:
        return None
    try:
        return target.client("lambda").get_function_concurrency(FunctionName=function_name).get(
            "ReservedConcurrentExecutions")
    except Exception:
        return None


def _function_summary(fn: dict, concurrency: int | None) -> dict:
    if not fn:
        return {}
    env = fn.get("Environment", {}).get("Variables", {})
    return {
        "runtime": fn.get("Runtime"), "architecture": ",".join(fn.get("Architectures", [])),
        "memory_mb": fn.get("MemorySize"), "timeout_s": fn.get("Timeout"),
        "reserved_concurrency": concurrency if concurrency is not None else "none",
        "code": _mb(int(fn.get("CodeSize", 0))), "presets": env.get("IMGPROC_PRESETS", ""),
        "last_modified": fn.get("LastModified"),
    }


# --- destroy ----------------------------------------------------------------------------


def destroy(
    stack: StackOpt = None,
    delete_data: Annotated[bool, typer.Option("--delete-data", help="Also empty and delete the stack's buckets "
                                                                    "(images and renditions are lost).")] = False,
    yes: YesOpt = False,
    config: ConfigOpt = None,
    endpoint_url: EndpointOpt = None,
    profile: ProfileOpt = None,
    region: RegionOpt = None,
    localstack: LocalstackOpt = False,
) -> None:
    """Delete the stack. Buckets that still hold objects are kept unless --delete-data.

    Only what the stack created is deleted: its empty buckets go with it; the
    shared artifact bucket and anything else in the account stay.

    Example:

        imgproc destroy --stack photos --yes
    """
    ctx = resolve(config, stack, None, endpoint_url, profile, region, localstack)
    ctx.region()
    name = ctx.settings.stack_name
    out, err = Console(highlight=False), err_console()
    try:
        cfn, s3 = ctx.target.client("cloudformation"), ctx.target.client("s3")
        found = stk.describe_stack(cfn, name)
        if found is None:
            die(f"no stack named {name}: nothing to destroy", ExitCode.FAILED)
        buckets = stk.stack_buckets(cfn, name)
        counts = {b: stk.count_objects(s3, b) for b in buckets}
        for b in buckets:
            out.print(f"bucket {b}: {_objects(counts[b])}", soft_wrap=True)
        if not yes:
            what = "and EMPTY AND DELETE its buckets" if delete_data else "(buckets with objects are kept)"
            if not _confirm(f"Delete stack {name} {what}?"):
                die("nothing deleted (declined)", ExitCode.FAILED)
        started = time.time() - 1
        cfn.delete_stack(StackName=found["StackId"])
        with err.status(f"Deleting stack {name}..."):
            final = stk.wait(cfn, found["StackId"], started, lambda line: err.print(f"  {line}", soft_wrap=True),
                             deleting=True)
        if final["StackStatus"] != "DELETE_COMPLETE":
            die(f"stack {name} ended in {final['StackStatus']}", ExitCode.FAILED)
        out.print(f"[green]deleted[/] stack {name}")
        kept = []
        for b in buckets:
            if counts[b] < 0:
                continue
            if counts[b] > 0 and not delete_data:
                kept.append(b)
                continue
            n = stk.empty_bucket(s3, b) if delete_data else 0
            s3.delete_bucket(Bucket=b)
            out.print(f"[green]deleted[/] bucket {b}{f' ({n} objects)' if n else ''}", soft_wrap=True)
        for b in kept:
            out.print(f"[yellow]kept[/] bucket {b} ({_objects(counts[b])}); delete it with "
                      f"`aws s3 rb s3://{b} --force` when you no longer need the data", soft_wrap=True)
    except typer.Exit:
        raise
    except Exception as exc:
        aws_fail(exc)


def _objects(n: int) -> str:
    if n < 0:
        return "already gone"
    if n >= 1000:
        return "1000+ objects"
    return "empty" if n == 0 else f"{n} object{'s' if n != 1 else ''}"


def register(app: typer.Typer) -> None:
    app.command("package")(package)
    app.command("deploy")(deploy)
    app.command("status")(status)
    push_cmd.register(app)
    app.command("destroy")(destroy)

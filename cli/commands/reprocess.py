"""`imgproc reprocess`: render in AWS what is missing or stale in the output bucket.

Lists the input bucket, asks the deployed function what it renders, classifies every
source (current / missing / stale / failed, see cli/reprocess/plan.py) and sends the
missing and stale ones to the function: below BATCH_THRESHOLD sources through the stack's
queue (queue mode) or asynchronous invocations, from BATCH_THRESHOLD on (or with
--batch-operations) as one S3 Batch Operations job. Nothing is rendered on this machine.

Exit codes: 0 sent (or nothing to send); 1 some sources could not be sent, or the job
failed tasks; 2 bad options or no stack; 130 Ctrl-C (rerun the same command to resume).
"""

from __future__ import annotations

import json
import time
from typing import Annotated

import typer
from rich.console import Console

from cli.commands.options import ConfigOpt, EndpointOpt, LocalstackOpt, ProfileOpt, RegionOpt, StackOpt, YesOpt
from cli.console import ExitCode, err_console
from cli.deploy.context import resolve
from cli.errors import fail

# From this many sources on, one S3 Batch Operations job is cheaper to run and to watch than
# thousands of single sends: S3 tracks every task, retries TemporaryFailure, writes a report.
BATCH_THRESHOLD = 1000
FAILURE_LOOKBACK_S = 30 * 86400  # how far back the function's log is read for failures (default retention)


def reprocess(
    prefix: Annotated[str, typer.Option("--prefix", help="Only sources under this key prefix (below the input prefix), "
                                        "e.g. 'trip/'.")] = "",
    since: Annotated[str | None, typer.Option("--since", help="Only sources uploaded since: a date (2026-11-01), an "
                                              "ISO time or a duration (90m, 12h, 7d).", show_default=False)] = None,
    preset: Annotated[list[str] | None, typer.Option("--preset", "-p", help="Only check these presets' renditions "
                                                     "(repeatable). Default: every deployed preset.",
                                                     show_default=False)] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Show the plan with counts; send nothing.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the plan (and what was sent) as JSON.")] = False,
    batch_operations: Annotated[bool, typer.Option(
        "--batch-operations", help=f"Send as one S3 Batch Operations job even below {BATCH_THRESHOLD} sources.")] = False,
    retry_failed: Annotated[bool, typer.Option(
        "--retry-failed", help="Also send sources the function failed on after their last upload.")] = False,
    concurrency: Annotated[int, typer.Option("--concurrency", min=1, max=64,
                                             help="Invocations in flight when sending without a queue.")] = 8,
    status: Annotated[str | None, typer.Option("--status", help="Show an S3 Batch Operations job's progress and "
                                               "failed tasks, e.g. --status 8f3c...", show_default=False)] = None,
    wait: Annotated[bool, typer.Option("--wait", help="With a Batch Operations job: wait until it is done.")] = False,
    timeout: Annotated[float, typer.Option("--timeout", min=0.0, help="Seconds --wait waits at most.")] = 900.0,
    yes: YesOpt = False,
    stack: StackOpt = None,
    config: ConfigOpt = None,
    endpoint_url: EndpointOpt = None,
    profile: ProfileOpt = None,
    region: RegionOpt = None,
    localstack: LocalstackOpt = False,
) -> None:
    """Render in AWS what is missing or stale: sources uploaded while the trigger was broken,
    renditions of a changed preset, renditions older than their source.

    A second run sends only what is still missing or stale, and the function skips renditions
    that are already current, so it is safe to rerun and safe to stop (Ctrl-C).

    Example:

        imgproc reprocess --dry-run --since 7d
    """
    ctx = resolve(config, stack, None, endpoint_url, profile, region, localstack)
    aws_region = ctx.region()
    out, err = Console(highlight=False), err_console()
    if status:
        raise typer.Exit(_show_status(ctx, status, wait, timeout, as_json, out))
    plan = _plan(ctx, prefix, since, preset or [], retry_failed, err)
    result: dict = {"plan": plan.as_json()} if as_json else {}
    if not as_json:
        _print_plan(plan, out)
    todo = plan.to_send
    if dry_run or not todo:
        if not todo and not as_json:
            out.print("nothing to send: every source is up to date (or failed before: see --retry-failed)")
        _finish(result, as_json, out)
        raise typer.Exit(int(ExitCode.OK))
    use_batch = batch_operations or len(todo) >= BATCH_THRESHOLD
    how = "an S3 Batch Operations job" if use_batch else (
        "the stack's queue" if plan.deployed.queue_url else "asynchronous invocations")
    if not yes and not typer.confirm(f"send {len(todo)} sources to {plan.deployed.function_name} via {how}?",
                                     err=True):
        fail("nothing sent (use --yes to skip this question)", ExitCode.FAILED)
    if use_batch:
        code = _send_batch(ctx, plan, aws_region, wait, timeout, result, as_json, out)
    else:
        code = _send_small(ctx, plan, concurrency, result, as_json, out, err)
    _finish(result, as_json, out)
    raise typer.Exit(int(code))


def _plan(ctx, prefix: str, since: str | None, presets: list[str], retry_failed: bool, err: Console):
    from cli.reprocess.plan import Plan, classify, list_sources, parse_since, read_deployed, read_failures
    from cli.reprocess.send import progress_bar

    if prefix and (prefix.startswith("/") or not prefix.endswith("/")):
        fail("--prefix: use a path ending with '/', without a leading '/', e.g. 'trip/'")
    started = time.monotonic()
    since_s = parse_since(since)
    deployed = read_deployed(ctx)
    renditions = deployed.selected(presets)
    s3 = ctx.target.client("s3", max_pool_connections=32)
    sources = list_sources(s3, deployed, prefix, since_s)
    failures = read_failures(ctx.target.client("logs"), deployed.log_group, time.time() - FAILURE_LOOKBACK_S)
    with progress_bar(err, "checking renditions") as progress:
        task = progress.add_task("check", total=len(sources))
        classify(s3, deployed, sources, renditions, failures, lambda n: progress.advance(task, n))
    return Plan(deployed, sources, retry_failed, time.monotonic() - started)


def _print_plan(plan, out: Console) -> None:
    d, counts = plan.deployed, plan.counts()
    out.print(f"s3://{d.input_bucket}/{d.input_prefix}: {len(plan.sources)} sources checked in {plan.seconds:.1f} s "
              f"against {len(d.renditions)} deployed renditions", soft_wrap=True)
    out.print(f"  up to date {counts['current']}, missing renditions {counts['missing']}, stale {counts['stale']}, "
              f"failed before {counts['failed']}", soft_wrap=True)
    renders = plan.rendition_counts()
    if renders:
        out.print("  to render: " + ", ".join(f"{n} {state}" for state, n in renders.items()), soft_wrap=True)
    for s in plan.by("failed")[:5]:
        out.print(f"  [yellow]failed before[/] {s.key}: {s.error}", soft_wrap=True)


def _send_small(ctx, plan, concurrency: int, result: dict, as_json: bool, out: Console, err: Console) -> int:
    from cli.reprocess.send import send_invokes, send_to_queue

    d, todo = plan.deployed, plan.to_send
    if d.queue_url:
        report = send_to_queue(ctx.target.client("sqs"), d, todo, err)
    else:
        report = send_invokes(ctx.target.client("lambda", max_pool_connections=max(10, concurrency)), d, todo, err,
                              concurrency)
    result["sent"] = {"how": report.how, "sent": report.sent, "total": report.total, "seconds": round(report.seconds, 2),
                      "failed": [{"key": k, "error": e} for k, e in report.failed], "interrupted": report.interrupted}
    if not as_json:
        target = "the queue" if report.how == "queue" else d.function_name
        out.print(f"sent {report.sent}/{report.total} sources to {target} in {report.seconds:.1f} s "
                  f"({report.rate:.1f}/s); the function renders them now (watch: imgproc logs --follow)",
                  soft_wrap=True)
        for key, error in report.failed[:10]:
            out.print(f"[red]not sent[/] {key}: {error}", soft_wrap=True)
    if report.interrupted:
        err.print(f"stopped after sending {report.sent} of {report.total}: rerun the same command to resume "
                  "(it sends only what is still missing or stale)")
        return ExitCode.INTERRUPTED
    return ExitCode.FAILED if report.failed else ExitCode.OK


def _send_batch(ctx, plan, aws_region: str, wait: bool, timeout: float, result: dict, as_json: bool,
                out: Console) -> int:
    from cli.reprocess.batch import create_job, wait_for_job

    job_id, folder = create_job(ctx, plan.deployed, plan.to_send, aws_region)
    result["job"] = {"job_id": job_id, "manifest": f"{folder}manifest.csv", "tasks": len(plan.to_send)}
    if not as_json:
        out.print(f"S3 Batch Operations job {job_id}: {len(plan.to_send)} tasks, manifest and report in {folder}",
                  soft_wrap=True)
        out.print(f"  progress: imgproc reprocess --status {job_id}", soft_wrap=True)
    if not wait:
        return ExitCode.OK
    status = wait_for_job(ctx, job_id, timeout)
    result["job"].update(status.as_json())
    if not as_json:
        _print_status(status, out)
    return ExitCode.OK if status.status == "Complete" and not status.failed else ExitCode.FAILED


def _show_status(ctx, job_id: str, wait: bool, timeout: float, as_json: bool, out: Console) -> int:
    from cli.reprocess.batch import job_status, wait_for_job

    status = wait_for_job(ctx, job_id, timeout) if wait else job_status(ctx, job_id)
    if as_json:
        out.print_json(json.dumps(status.as_json()))
    else:
        _print_status(status, out)
    if status.done and (status.failed or status.status != "Complete"):
        return ExitCode.FAILED
    return ExitCode.OK


def _print_status(status, out: Console) -> None:
    out.print(f"job {status.job_id}: {status.status}, {status.succeeded + status.failed}/{status.total} tasks done "
              f"({status.succeeded} succeeded, {status.failed} failed) in {status.seconds} s", soft_wrap=True)
    for reason in status.failure_reasons:
        out.print(f"  [red]job failure[/] {reason}", soft_wrap=True)
    for key, message in status.failed_tasks[:20]:
        out.print(f"  [red]failed[/] {key}: {message}", soft_wrap=True)
    if status.report:
        out.print(f"  completion report: {status.report}", soft_wrap=True)


def _finish(result: dict, as_json: bool, out: Console) -> None:
    if as_json:
        print(json.dumps(result, indent=2))


def register(app: typer.Typer) -> None:
    app.command("reprocess")(reprocess)

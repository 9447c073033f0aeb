"""`imgproc push SRC`: upload images to the deployed input bucket, optionally wait for renditions.

Uploads run concurrently; an object whose size and ETag (MD5) already match
the local file is skipped. `--wait` polls the output bucket for every
rendition key the function will write (core.naming.s3_output_key with the
deployed presets) and reports the end-to-end latency.
"""

from __future__ import annotations

import statistics
import time
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape

from cli.commands.options import ConfigOpt, EndpointOpt, LocalstackOpt, ProfileOpt, RegionOpt, StackOpt
from cli.console import ExitCode, err_console, human_bytes
from cli.deploy.context import resolve
from cli.deploy.uploads import (
    IMAGE_TYPES,
    collect,
    failure_reader,
    read_target,
    upload_all,
    wait_for,
    without_renditions,
)
from cli.errors import fail


def push(
    src: Annotated[Path, typer.Argument(help="Image file or folder (searched recursively).", show_default=False)],
    prefix: Annotated[str, typer.Option("--prefix", help="Key prefix under the input prefix, e.g. 'trip/'.")] = "",
    wait: Annotated[bool, typer.Option("--wait", help="Wait until every rendition appears in the output bucket.")] = False,
    timeout: Annotated[float, typer.Option("--timeout", min=0.0, help="Seconds --wait waits at most.")] = 120.0,
    jobs: Annotated[int, typer.Option("--jobs", "-j", min=1, max=64, help="Concurrent uploads.")] = 8,
    stack: StackOpt = None,
    config: ConfigOpt = None,
    endpoint_url: EndpointOpt = None,
    profile: ProfileOpt = None,
    region: RegionOpt = None,
    localstack: LocalstackOpt = False,
) -> None:
    """Upload a folder's images to the deployed input bucket.

    Files whose object already has the same size and MD5 are skipped, so a
    rerun uploads only what changed. With --wait, waits until the function has
    written every rendition and reports the end-to-end latency.

    Example:

        imgproc push ./photos --prefix trip/ --wait --timeout 60
    """

    if prefix and (prefix.startswith("/") or not prefix.endswith("/")):
        fail("--prefix: use a path ending with '/', without a leading '/', e.g. 'trip/'")
    ctx = resolve(config, stack, None, endpoint_url, profile, region, localstack)
    ctx.region()
    out, err = Console(highlight=False), err_console()
    ctx.announce(err)
    t = read_target(ctx)
    uploads = collect(src, t.input_prefix + prefix)
    if not uploads:
        fail(f"{src}: no images found ({', '.join(sorted(IMAGE_TYPES))})", ExitCode.USAGE)
    ignored = [u for u in uploads if not t.triggers(u.key)]
    if ignored:
        out.print(f"[yellow]note[/] {len(ignored)} file(s) do not end with {', '.join(t.suffixes)} and will not "
                  f"be processed, e.g. {escape(ignored[0].key)}", soft_wrap=True)
    s3 = ctx.target.client("s3", max_pool_connections=max(10, jobs))
    t.guard(s3)
    started = time.time()
    upload_all(s3, t.input_bucket, uploads, jobs, err)
    seconds = time.time() - started
    done = [u for u in uploads if u.outcome == "uploaded"]
    same = [u for u in uploads if u.outcome == "unchanged"]
    failed = [u for u in uploads if u.outcome == "failed"]
    for u in failed:
        out.print(f"[red]failed[/] {escape(f'{u.path}: {u.error}')}", soft_wrap=True)
    size = sum(u.size for u in done)
    out.print(f"uploaded {len(done)} ({human_bytes(size)}), unchanged {len(same)}, failed {len(failed)} "
              f"-> {escape(f's3://{t.input_bucket}/{t.input_prefix + prefix}')} in {seconds:.1f} s", soft_wrap=True)
    code = ExitCode.FAILED if failed else ExitCode.OK
    done_triggering = [u for u in done if t.triggers(u.key)]
    unrendered = _unrendered(s3, t, ctx.config, same, prefix, out) if wait else []
    if wait and done_triggering:
        failures = failure_reader(ctx.target.client("logs"), t.log_group, started - 1) if t.log_group else dict
        latency, missing, failed_images = wait_for(s3, t, ctx.config, done_triggering, timeout, err, failures)
        for key, error in sorted(failed_images.items()):
            out.print(f"[red]failed[/] {escape(f'{key}: {error}')}", soft_wrap=True)
        if failed_images:
            code = ExitCode.FAILED
        if latency:
            values = sorted(latency.values())
            out.print(f"renditions ready for {len(latency)}/{len(done_triggering)} images: latency median "
                      f"{statistics.median(values):.1f} s, max {values[-1]:.1f} s "
                      f"(upload -> last rendition in {escape(f's3://{t.output_bucket}/{t.output_prefix}')})", soft_wrap=True)
        if missing:
            out.print(f"[red]timeout[/] after {timeout:g} s: {len(missing)} renditions missing, e.g. "
                      f"{escape(missing[0])} (check `imgproc logs` and `imgproc status`)", soft_wrap=True)
            code = ExitCode.FAILED
    elif wait and not unrendered:
        out.print("nothing uploaded that triggers the function: nothing to wait for")
    if unrendered:
        code = ExitCode.FAILED  # --wait asked for renditions that nothing is going to make
    raise typer.Exit(int(code))


def _unrendered(s3, t, config, same: list, prefix: str, out: Console) -> list:
    """Files already in the bucket (so not uploaded again) that have no renditions, said once."""
    lacking = without_renditions(s3, t, config, [u for u in same if t.triggers(u.key)])
    if lacking:
        where = f" --prefix {prefix}" if prefix else ""
        out.print(f"[yellow]note[/] {len(lacking)} file(s) were already uploaded but have no renditions, e.g. "
                  f"{lacking[0].key}: uploading them again changes nothing; render them with "
                  f"`imgproc reprocess{where}`", soft_wrap=True)
    return lacking


def register(app: typer.Typer) -> None:
    app.command("push")(push)

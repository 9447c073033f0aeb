"""`imgproc gallery`: the gallery page of a deployed stack's output bucket, through presigned URLs."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape

from cli.commands.options import ConfigOpt, EndpointOpt, LocalstackOpt, ProfileOpt, RegionOpt, StackOpt
from cli.console import ExitCode, err_console
from cli.deploy.context import resolve
from cli.errors import UsageError
from core.errors import ImgprocError
from core.signing import parse_duration


def gallery(
    out: Annotated[Path, typer.Option("--out", "-o", metavar="FILE", dir_okay=False,
                                      help="Where to write the page.")] = Path("gallery.html"),
    expires: Annotated[str, typer.Option("--expires", "-e", help="How long the image links work: 15m, 1h, 7d "
                                         "(at most 7d, the limit of S3 presigned URLs).")] = "1d",
    jobs: Annotated[int, typer.Option("--jobs", "-j", min=1, max=64, help="Concurrent S3 reads.")] = 8,
    stack: StackOpt = None,
    config: ConfigOpt = None,
    endpoint_url: EndpointOpt = None,
    profile: ProfileOpt = None,
    region: RegionOpt = None,
    localstack: LocalstackOpt = False,
) -> None:
    """Write the gallery page of the deployed stack: every uploaded image with its renditions.

    The same page as `imgproc process --report`, for the buckets: images are
    linked through presigned URLs that stop working after --expires; nothing
    is made public. Sources without renditions are listed as failures (with
    the function's logged error when there is one). Exit code 1 when any.

    Example:

        imgproc gallery --stack imgproc -o gallery.html --expires 1h
    """
    from cli.deploy.uploads import failure_reader, read_target
    from cli.gallery.bucket import MAX_PRESIGN_SECONDS, Buckets, from_buckets
    from cli.gallery.page import render
    from core.storage import atomic_write

    seconds = _expiry(expires, MAX_PRESIGN_SECONDS)
    ctx = resolve(config, stack, None, endpoint_url, profile, region, localstack)
    ctx.region()
    t = read_target(ctx)
    try:
        recipes = ctx.config.select(t.presets)
    except ImgprocError as exc:
        raise UsageError(f"deployed presets {', '.join(t.presets)}: {exc}") from None
    logged = failure_reader(ctx.target.client("logs"), t.log_group, time.time() - 7 * 86400)() if t.log_group else {}
    until = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(time.time() + seconds))
    where = Buckets(t.input_bucket, t.output_bucket, t.input_prefix, t.output_prefix, t.triggers,
                    ctx.config.naming)
    page = from_buckets(ctx.target.client("s3", max_pool_connections=max(10, jobs)), where, recipes, seconds,
                        logged, jobs, title=f"imgproc: {ctx.settings.stack_name}",
                        note=f"s3://{t.output_bucket}/{t.output_prefix} · image links work until {until}")
    atomic_write(out, render(page).encode("utf-8"))
    count = sum(len(s.renditions) for s in page.sources)
    Console(highlight=False, soft_wrap=True).print(
        f"{out}: {len(page.sources)} images, {count} renditions, {len(page.failures)} without renditions "
        f"(links valid until {until})", markup=False)
    for failure in page.failures:
        err_console().print(f"[red]no renditions[/] {escape(f'{failure.name}: {failure.error}')}", soft_wrap=True)
    raise typer.Exit(int(ExitCode.FAILED if page.failures else ExitCode.OK))


def _expiry(text: str, most: int) -> int:
    try:
        seconds = parse_duration(text)
    except ValueError as exc:
        raise UsageError(f"--expires: {exc}") from None
    if seconds > most:
        raise UsageError(f"--expires {text}: at most 7d (S3 presigned URLs expire within 7 days)")
    return seconds


def register(app: typer.Typer) -> None:
    app.command("gallery")(gallery)

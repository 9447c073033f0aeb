"""`imgproc logs` (read and follow the function's CloudWatch logs) and `imgproc stats`
(invocations, images, per-rendition ms, cold starts, memory from the same logs).

Exit codes: 0 ok; 1 a CloudWatch/CloudFormation call failed; 2 bad options or the
stack / LogGroupName output / log group was not found; 130 Ctrl-C.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from enum import Enum
from pathlib import Path
from typing import Annotated

import typer

from cli.commands.options import ConfigOpt, EndpointOpt, LocalstackOpt, ProfileOpt, RegionOpt, StackOpt
from cli.deploy.context import resolve
from cli.errors import UsageError
from cli.logs.cost import of_stats, render_cost
from cli.logs.deployed import Deployed, read_deployed
from cli.logs.render import Line, Selector, classify, iso, make_renderer
from cli.logs.source import Fetcher, Follower, Window, from_ms, log_group_from_stack
from cli.logs.stats import Stats, render_stats

# Injection points for tests: the wall clock (for --since/--until) and the poll sleep.
NOW: Callable[[], datetime] = lambda: datetime.now(UTC)  # noqa: E731
SLEEP: Callable[[float], None] = time.sleep


class Format(str, Enum):
    pretty = "pretty"
    short = "short"
    json = "json"


LogGroupOpt = Annotated[
    str | None,
    typer.Option("--log-group", help="Read this log group directly instead of a stack's.", show_default=False),
]
UntilOpt = Annotated[
    str | None,
    typer.Option("--until", help="End of the window: 30s, 10m, 2h, 1d ago or ISO 8601 (default: now).",
                 show_default=False),
]


def register(app: typer.Typer) -> None:
    app.command("logs")(logs)
    app.command("stats")(stats)


def logs(
    stack: StackOpt = None,
    log_group: LogGroupOpt = None,
    since: Annotated[
        str, typer.Option("--since", help="Start of the window: 30s, 10m, 2h, 1d ago or ISO 8601 (UTC if no zone).")
    ] = "10m",
    until: UntilOpt = None,
    follow: Annotated[
        bool, typer.Option("--follow", "-f", help="Keep polling for new lines until Ctrl-C.")
    ] = False,
    filter_pattern: Annotated[
        str | None,
        typer.Option("--filter-pattern", help="CloudWatch filter pattern, applied by CloudWatch.", show_default=False),
    ] = None,
    key: Annotated[
        str | None,
        typer.Option("--key", help="Only images whose source key contains this text.", show_default=False),
    ] = None,
    errors: Annotated[
        bool, typer.Option("--errors", help="Only failures: outcome failed, level ERROR, timeouts.")
    ] = False,
    fmt: Annotated[
        Format, typer.Option("--format", help="pretty (colour rows), short (plain text) or json (one object a line).")
    ] = Format.pretty,
    limit: Annotated[
        int | None,
        typer.Option("--limit", min=1, help="Show only the newest N matching lines (with --follow: of the backlog).",
                     show_default=False),
    ] = None,
    endpoint_url: EndpointOpt = None,
    profile: ProfileOpt = None,
    region: RegionOpt = None,
    localstack: LocalstackOpt = False,
    config: ConfigOpt = None,
) -> None:
    """Show the function's log lines, newest last; --follow keeps tailing.

    Each imgproc line becomes one row (time, key, renditions, bytes in -> out, ms, outcome; failures in red), Lambda's START/END/REPORT one invocation line; metric (EMF) lines are hidden in the pretty format. Exit codes: 0 ok, 1 AWS call failed, 2 bad option or stack/log group not found, 130 Ctrl-C.

    Example: imgproc logs --follow --since 5m --errors
    """
    err = _stderr()
    if follow and until:
        raise UsageError("--until cannot be used with --follow (following has no end)")
    window = Window.parse(since, until, NOW())
    fetcher = _fetcher(stack, log_group, filter_pattern, config, endpoint_url, profile, region, localstack)
    from rich.console import Console

    renderer = make_renderer(fmt.value, Console(highlight=False, soft_wrap=True), _write_line)
    selector = Selector(key=key, errors=errors)
    (_follow if follow else _show)(fetcher, window, renderer, selector, limit, err)


def stats(
    stack: StackOpt = None,
    log_group: LogGroupOpt = None,
    since: Annotated[
        str, typer.Option("--since", help="Start of the window: 30s, 10m, 2h, 1d ago or ISO 8601.")
    ] = "1h",
    until: UntilOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the figures as one JSON object.")] = False,
    endpoint_url: EndpointOpt = None,
    profile: ProfileOpt = None,
    region: RegionOpt = None,
    localstack: LocalstackOpt = False,
    config: ConfigOpt = None,
) -> None:
    """Summarise the function's logs: invocations, images processed and failed, p50/p95/max ms per rendition, cold starts, memory used vs configured, cost per 1,000 images and the memory size that would cost less.

    Example: imgproc stats --since 1d
    """
    window = Window.parse(since, until, NOW())
    fetcher = _fetcher(stack, log_group, None, config, endpoint_url, profile, region, localstack)
    figures = Stats.from_lines(classify(e) for e in fetcher.fetch(window.start_ms, window.end_ms))
    deployed = _deployed(stack, config, endpoint_url, profile, region, localstack,
                         stack_wanted=not log_group)
    cost = of_stats(figures, deployed.architecture, deployed.architecture_from, deployed.timeout_s)
    if as_json:
        _write_line(json.dumps(
            dict(figures.to_json(), cost=cost.to_json() if cost else None, log_group=fetcher.log_group,
                 queues=deployed.queues, since=iso(window.start_ms), until=iso(window.end_ms) if window.end_ms else None),
        ))
        return
    from rich.console import Console

    console = Console(highlight=False)
    render_stats(figures, console, f"{fetcher.log_group} {_window_text(window)}")
    if cost:
        render_cost(cost, console)
    if deployed.queues:  # now, not over the window: what is still waiting or failed every retry
        console.print("queues now: " + ", ".join(
            f"{label} [{'red' if n and label != 'upload queue' else 'green'}]{n}[/]"
            for label, n in deployed.queues.items()))


def _deployed(stack: str | None, config: Path | None, endpoint_url: str | None, profile: str | None,
              region: str | None, localstack: bool, *, stack_wanted: bool) -> Deployed:
    ctx = resolve(config, stack, None, endpoint_url, profile, region, localstack)
    ctx.region()
    return read_deployed(ctx, stack_wanted=stack_wanted)


# --- building ---------------------------------------------------------------------


def _fetcher(stack: str | None, log_group: str | None, filter_pattern: str | None, config: Path | None,
             endpoint_url: str | None, profile: str | None, region: str | None, localstack: bool) -> Fetcher:
    """The log group from --log-group or the stack's LogGroupName output, and a logs client."""
    if stack and log_group:
        raise UsageError("use either --stack or --log-group, not both")
    ctx = resolve(config, stack, None, endpoint_url, profile, region, localstack)
    region_name = ctx.region()
    if log_group:
        group, origin = log_group, ""
    else:
        name = ctx.settings.stack_name
        group = log_group_from_stack(ctx.target.client("cloudformation"), name, region_name)
        origin = f"output LogGroupName of stack {name!r}"
    return Fetcher(ctx.target.client("logs"), group, filter_pattern or None, origin=origin, region=region_name)


# --- calling ----------------------------------------------------------------------


def _select(events: Iterable, renderer, selector: Selector) -> list[Line]:
    """Classify, keep what --key/--errors asked for and what the format shows, in order."""
    out = []
    for event in events:
        line = classify(event)
        if selector(line) and renderer.shows(line):
            out.append(line)
    return out


def _show(fetcher: Fetcher, window: Window, renderer, selector: Selector, limit: int | None, err) -> None:
    """One window, newest last; says so on stderr when nothing matched."""
    shown = _select(fetcher.fetch(window.start_ms, window.end_ms), renderer, selector)
    if limit:
        shown = shown[-limit:]
    if not shown:
        err.print(f"[dim]No matching log events in {fetcher.log_group} {_window_text(window)}; "
                  "widen it with --since 1h or --since 1d.[/dim]")
    for line in shown:
        renderer.render(line)


def _follow(fetcher: Fetcher, window: Window, renderer, selector: Selector, limit: int | None, err) -> None:
    from rich.markup import escape

    follower = Follower(
        fetcher, window.start_ms, sleep=lambda s: SLEEP(s),
        on_retry=lambda delay, exc: err.print(f"[yellow]{escape(str(exc))}; trying again in {delay:.0f}s[/yellow]"),
    )
    err.print(f"[dim]Following {fetcher.log_group} from {_hms(window.start_ms)} UTC; Ctrl-C to stop.[/dim]")
    first = True
    for batch in follower.batches():
        shown = _select(batch, renderer, selector)
        if first:
            if limit:
                shown = shown[-limit:]
            if not shown:
                err.print(f"[dim]No matching events since {_hms(window.start_ms)} UTC; waiting for new ones...[/dim]")
            first = False
        for line in shown:
            renderer.render(line)


# --- rendering --------------------------------------------------------------------


def _write_line(text: str) -> None:
    sys.stdout.write(text + "\n")
    sys.stdout.flush()


def _stderr():
    from rich.console import Console

    return Console(stderr=True, highlight=False, soft_wrap=True)




def _hms(ms: int) -> str:
    return from_ms(ms).strftime("%H:%M:%S")


def _window_text(window: Window) -> str:
    start = from_ms(window.start_ms).strftime("%Y-%m-%d %H:%M:%S")
    end = from_ms(window.end_ms).strftime("%Y-%m-%d %H:%M:%S") if window.end_ms else "now"
    return f"from {start} UTC to {end}" + (" UTC" if window.end_ms else "")

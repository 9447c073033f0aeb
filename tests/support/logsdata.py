"""Helpers for the log reader tests: a captured session, writing events as Lambda would, a CLI runner."""

from __future__ import annotations

import json
import time

import typer
from typer.testing import CliRunner

from cli.app import build

from testdata import FIXTURES

GROUP = "/aws/lambda/imgproc-ImageFunction-Xy12"
SESSION = FIXTURES / "logs" / "session.jsonl"
STREAM_A = "2026/11/26/[$LATEST]a1b2c3d4e5f60718"
STREAM_B = "2026/11/26/[$LATEST]f0e1d2c3b4a59687"

runner = CliRunner()


def make_app() -> typer.Typer:
    """The real app with the logs group, behind the CLI's one error edge."""
    return build("logs")


def now_ms() -> int:
    return int(time.time() * 1000)


def put_events(client, group: str, stream: str, events: list[tuple[int, str]]) -> None:
    """Write (timestamp ms, message) pairs to a stream (created if needed), as Lambda would."""
    try:
        client.create_log_stream(logGroupName=group, logStreamName=stream)
    except client.exceptions.ResourceAlreadyExistsException:
        pass
    client.put_log_events(
        logGroupName=group,
        logStreamName=stream,
        logEvents=[{"timestamp": ts, "message": msg + "\n"} for ts, msg in sorted(events)],
    )


def load_session(client, group: str = GROUP, end_ms: int | None = None) -> list[dict]:
    """Put the fixture session into ``group``, its last event at ``end_ms`` (default: 1 min ago).

    Returns the events as written (with absolute "ts"), in time order.
    """
    rows = [json.loads(line) for line in SESSION.read_text(encoding="utf-8").splitlines() if line]
    end_ms = end_ms if end_ms is not None else now_ms() - 60_000
    last = max(r["t"] for r in rows)
    for r in rows:
        r["ts"] = end_ms - round((last - r["t"]) * 1000)
    for stream in sorted({r["stream"] for r in rows}):
        put_events(client, group, stream, [(r["ts"], r["message"]) for r in rows if r["stream"] == stream])
    return sorted(rows, key=lambda r: r["ts"])


def short_messages(output: str) -> list[str]:
    """The messages of `--format short` output (after the timestamp)."""
    return [line.split(" ", 1)[1] for line in output.splitlines() if line]

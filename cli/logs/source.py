"""Where `imgproc logs` and `imgproc stats` get their lines: the log group, a time
window, one full fetch, and a follower that polls without losing or repeating lines.

CloudWatch Logs' ``FilterLogEvents`` is the only read API used, so the same code runs
against AWS, LocalStack and moto's server. Following is polling with a moving start
time: each poll re-reads an overlap window before the newest event seen (to catch
events that arrive late), drops event ids it already printed, and forgets ids that
have fallen out of that window so memory stays bounded.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from cli.errors import LogsUnavailable, LogTargetNotFound, Throttled, TransientLogsError
from core.errors import ConfigError

DEFAULT_STACK = "imgproc"
LOG_GROUP_OUTPUT = "LogGroupName"

#: How far before the newest event already seen each follow poll starts again (ms).
OVERLAP_MS = 30_000
#: Follow poll delays in seconds: the first, the idle ceiling, the throttled ceiling.
POLL_MIN_S = 1.0
POLL_IDLE_MAX_S = 5.0
POLL_THROTTLED_MAX_S = 30.0

THROTTLING_CODES = frozenset(
    {"ThrottlingException", "Throttling", "TooManyRequestsException", "RequestLimitExceeded"}
)


# --- time window ---------------------------------------------------------------

_RELATIVE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*$", re.IGNORECASE)
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_time(text: str, now: datetime) -> datetime:
    """``10m``/``2h``/``1d``/``30s``/``1w`` (that long before ``now``) or ISO 8601.

    An ISO time without a zone is taken as UTC, the zone CloudWatch and our log
    lines use. Raises ConfigError naming the text on anything else.
    """
    m = _RELATIVE.match(text)
    if m:
        return now - timedelta(seconds=float(m.group(1)) * _UNIT_SECONDS[m.group(2).lower()])
    raw = text.strip()
    if raw.endswith(("Z", "z")):
        raw = raw[:-1] + "+00:00"
    try:
        when = datetime.fromisoformat(raw)
    except ValueError:
        raise ConfigError(
            f"cannot read time {text!r}: use a duration like 30s, 10m, 2h, 1d or ISO 8601 "
            "like 2026-11-26T14:00:00Z"
        ) from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return when


def to_ms(when: datetime) -> int:
    return int(when.timestamp() * 1000)


def from_ms(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, tz=UTC)


@dataclass(frozen=True)
class Window:
    """A time range in epoch milliseconds; ``end_ms`` None means open-ended."""

    start_ms: int
    end_ms: int | None = None

    @classmethod
    def parse(cls, since: str, until: str | None, now: datetime) -> Window:
        start = parse_time(since, now)
        end = parse_time(until, now) if until else None
        if end is not None and end <= start:
            raise ConfigError(f"--until ({until}) must be later than --since ({since})")
        return cls(to_ms(start), to_ms(end) if end else None)


# --- events ----------------------------------------------------------------------


@dataclass(frozen=True)
class LogEvent:
    """One CloudWatch Logs event as the renderers and stats see it."""

    event_id: str
    timestamp: int  # ms since the epoch, the time the line was written
    stream: str
    message: str
    ingestion_time: int | None = None

    @classmethod
    def from_api(cls, raw: dict[str, Any]) -> LogEvent:
        return cls(
            event_id=str(raw.get("eventId") or f"{raw.get('logStreamName')}/{raw['timestamp']}"),
            timestamp=int(raw["timestamp"]),
            stream=raw.get("logStreamName", ""),
            message=raw.get("message", "").rstrip("\r\n"),
            ingestion_time=raw.get("ingestionTime"),
        )

    @property
    def sort_key(self) -> tuple[int, int, str]:
        return (self.timestamp, self.ingestion_time or 0, self.event_id)


def _error_code(exc: Exception) -> str:
    response = getattr(exc, "response", None) or {}
    return str(response.get("Error", {}).get("Code", ""))


# --- finding the log group -------------------------------------------------------


def log_group_from_stack(cloudformation, stack: str, region: str | None) -> str:
    """The stack's LogGroupName output, or LogTargetNotFound naming what was looked for."""
    from botocore.exceptions import ClientError

    where = f" in {region}" if region else ""
    try:
        stacks = cloudformation.describe_stacks(StackName=stack)["Stacks"]
    except ClientError as exc:
        if _error_code(exc) == "ValidationError" and "does not exist" in str(exc):
            raise LogTargetNotFound(
                f"stack {stack!r} not found{where}: deploy it with `imgproc deploy`, "
                "or pass --stack NAME or --log-group GROUP"
            ) from None
        raise LogsUnavailable(f"cannot describe stack {stack!r}{where}: {_one_line(exc)}") from None
    outputs = {o["OutputKey"]: o["OutputValue"] for o in (stacks[0].get("Outputs") or [])} if stacks else {}
    group = outputs.get(LOG_GROUP_OUTPUT)
    if not group:
        raise LogTargetNotFound(
            f"stack {stack!r}{where} has no {LOG_GROUP_OUTPUT} output: "
            "was it created by `imgproc deploy`? Pass --log-group GROUP instead"
        )
    return group


def _one_line(exc: Exception) -> str:
    return " ".join(str(exc).split())


# --- fetching --------------------------------------------------------------------


@dataclass
class Fetcher:
    """Reads every page of FilterLogEvents for one log group and window."""

    client: Any
    log_group: str
    filter_pattern: str | None = None
    origin: str = ""  # e.g. "from stack 'imgproc'", used in the not-found message
    region: str | None = None
    page_size: int | None = None  # FilterLogEvents `limit`; None = the service maximum

    def fetch(self, start_ms: int, end_ms: int | None = None) -> list[LogEvent]:
        """All events in [start_ms, end_ms], every page, sorted by time."""
        kwargs: dict[str, Any] = {"logGroupName": self.log_group, "startTime": start_ms}
        if end_ms is not None:
            kwargs["endTime"] = end_ms
        if self.filter_pattern:
            kwargs["filterPattern"] = self.filter_pattern
        if self.page_size:
            kwargs["limit"] = self.page_size
        events: list[LogEvent] = []
        token: str | None = None
        while True:
            page = self._call(dict(kwargs, nextToken=token) if token else kwargs)
            events.extend(LogEvent.from_api(e) for e in page.get("events", []))
            new_token = page.get("nextToken")
            # AWS may return empty pages with a token; a repeated token would loop forever.
            if not new_token or new_token == token:
                break
            token = new_token
        events.sort(key=lambda e: e.sort_key)
        return events

    def _call(self, kwargs: dict[str, Any]) -> dict[str, Any]:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            return self.client.filter_log_events(**kwargs)
        except ClientError as exc:
            code = _error_code(exc)
            if code == "ResourceNotFoundException":
                where = f" in {self.region}" if self.region else ""
                origin = f" ({self.origin})" if self.origin else ""
                raise LogTargetNotFound(
                    f"log group {self.log_group!r}{origin} not found{where}"
                ) from None
            if code in THROTTLING_CODES:
                raise Throttled(f"CloudWatch Logs is throttling reads: {_one_line(exc)}") from None
            status = (getattr(exc, "response", None) or {}).get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
            error = TransientLogsError if status >= 500 else LogsUnavailable
            raise error(f"cannot read {self.log_group!r}: {_one_line(exc)}") from None
        except BotoCoreError as exc:
            error = TransientLogsError if isinstance(exc, _connection_errors()) else LogsUnavailable
            raise error(f"cannot read {self.log_group!r}: {_one_line(exc)}") from None


def _connection_errors() -> tuple[type[Exception], ...]:
    from botocore.exceptions import ConnectionClosedError, EndpointConnectionError, ReadTimeoutError

    return (EndpointConnectionError, ConnectionClosedError, ReadTimeoutError)


# --- following -------------------------------------------------------------------


@dataclass
class Backoff:
    """Poll delay: starts at POLL_MIN_S, doubles while idle up to the idle ceiling,
    doubles up to the throttled ceiling while throttled, and resets on new events."""

    minimum: float = POLL_MIN_S
    idle_max: float = POLL_IDLE_MAX_S
    throttled_max: float = POLL_THROTTLED_MAX_S
    delay: float = POLL_MIN_S

    def busy(self) -> float:
        self.delay = self.minimum
        return self.delay

    def idle(self) -> float:
        self.delay = min(max(self.delay * 2, self.minimum), max(self.idle_max, self.minimum))
        return self.delay

    def throttled(self) -> float:
        self.delay = min(max(self.delay * 2, self.minimum * 2), self.throttled_max)
        return self.delay


@dataclass
class Follower:
    """Polls a Fetcher with a moving start time and yields each event exactly once.

    ``sleep`` is injected so tests run without waiting (and can append events
    between polls). After the first successful poll, throttling, 5xx answers and
    dropped connections back off (``on_retry`` is told the delay and the error)
    instead of ending the tail; a failing first poll raises, since the target is
    then most likely wrong.
    """

    fetcher: Fetcher
    start_ms: int
    overlap_ms: int = OVERLAP_MS
    sleep: Callable[[float], None] = time.sleep
    backoff: Backoff = field(default_factory=Backoff)
    on_retry: Callable[[float, Exception], None] | None = None
    clock: Callable[[], float] = time.time  # seconds since the epoch
    seen: dict[str, int] = field(default_factory=dict)  # event id -> timestamp
    newest_ms: int | None = None
    polls: int = 0

    def poll(self) -> list[LogEvent]:
        """One fetch from the moving start; only events not yielded before, in time order."""
        start = self.query_start()
        events = self.fetcher.fetch(start)
        self.polls += 1
        fresh = [e for e in events if e.event_id not in self.seen]
        for e in fresh:
            self.seen[e.event_id] = e.timestamp
            if self.newest_ms is None or e.timestamp > self.newest_ms:
                self.newest_ms = e.timestamp
        self._forget_before(self.query_start())
        return fresh

    def query_start(self) -> int:
        """Overlap before the newest event seen, but never anchored in the future: one
        line stamped ahead of our clock must not hide the lines that follow it."""
        if self.newest_ms is None:
            return self.start_ms
        anchor = min(self.newest_ms, int(self.clock() * 1000))
        return max(self.start_ms, anchor - self.overlap_ms)

    def _forget_before(self, start: int) -> None:
        """Ids older than the next query's start can never come back: drop them."""
        old = [k for k, ts in self.seen.items() if ts < start]
        for k in old:
            del self.seen[k]

    def batches(self) -> Iterator[list[LogEvent]]:
        """One list of new events per poll (possibly empty), forever: the first
        batch is the backlog since ``start_ms``; sleeps between polls."""
        while True:
            try:
                fresh = self.poll()
            except TransientLogsError as exc:
                if self.polls == 0 and not isinstance(exc, Throttled):
                    raise
                delay = self.backoff.throttled()
                if self.on_retry:
                    self.on_retry(delay, exc)
                self.sleep(delay)
                continue
            yield fresh
            self.sleep(self.backoff.busy() if fresh else self.backoff.idle())

    def __iter__(self) -> Iterator[LogEvent]:
        for batch in self.batches():
            yield from batch

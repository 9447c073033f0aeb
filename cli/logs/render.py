"""Reading and showing log lines: what each CloudWatch message is (imgproc's JSON
line, an EMF metric, Lambda's START/END/REPORT, plain text), which lines the user
asked for (--key, --errors), and the three output formats (pretty, short, json).
"""

from __future__ import annotations

import json
import re
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

from cli.console import human_bytes
from cli.logs.source import LogEvent

FORMATS = ("pretty", "short", "json")

# --- what a line is ----------------------------------------------------------------

IMAGE, REQUEST, IMGPROC, EMF, JSON, START, END, REPORT, PLATFORM, TEXT = (
    "image", "request", "imgproc", "emf", "json", "start", "end", "report", "platform", "text"
)

_REQUEST_ID = re.compile(r"RequestId:\s*([0-9A-Za-z-]+)")
_REPORT_FIELDS = {
    "duration_ms": re.compile(r"(?<!Billed )(?<!Init )(?<!Restore )Duration:\s*([\d.]+)\s*ms"),
    "billed_ms": re.compile(r"Billed Duration:\s*([\d.]+)\s*ms"),
    "memory_mb": re.compile(r"Memory Size:\s*(\d+)\s*MB"),
    "max_memory_mb": re.compile(r"Max Memory Used:\s*(\d+)\s*MB"),
    "init_ms": re.compile(r"Init Duration:\s*([\d.]+)\s*ms"),
}
_REPORT_STATUS = re.compile(r"Status:\s*(\w+)")
_RUNTIME_LINE = re.compile(r"^\[(\w+)\]\t[^\t]+\t([0-9a-f-]{36})\t")  # Python runtime logging


@dataclass(frozen=True)
class Report:
    """The figures of one Lambda REPORT line."""

    request_id: str
    duration_ms: float | None = None
    billed_ms: float | None = None
    memory_mb: int | None = None
    max_memory_mb: int | None = None
    init_ms: float | None = None  # present only on a cold start
    status: str | None = None  # "timeout", "error" ... when the invocation did not finish


def parse_report(message: str) -> Report | None:
    """A Report from a text ``REPORT RequestId: ...`` line, else None."""
    if not message.startswith("REPORT"):
        return None
    rid = _REQUEST_ID.search(message)
    values: dict[str, Any] = {}
    for name, pattern in _REPORT_FIELDS.items():
        m = pattern.search(message)
        if m:
            values[name] = int(m.group(1)) if name.endswith("_mb") else float(m.group(1))
    status = _REPORT_STATUS.search(message)
    return Report(request_id=rid.group(1) if rid else "", status=status.group(1) if status else None, **values)


def _report_from_platform(data: dict[str, Any]) -> Report:
    """Lambda's JSON log format: {"type": "platform.report", "record": {...}}."""
    record = data.get("record") or {}
    metrics = record.get("metrics") or {}
    status = record.get("status")
    return Report(
        request_id=record.get("requestId", ""),
        duration_ms=metrics.get("durationMs"),
        billed_ms=metrics.get("billedDurationMs"),
        memory_mb=metrics.get("memorySizeMB"),
        max_memory_mb=metrics.get("maxMemoryUsedMB"),
        init_ms=metrics.get("initDurationMs"),
        status=None if status in (None, "success") else status,
    )


@dataclass(frozen=True)
class Line:
    """One log event, classified once."""

    event: LogEvent
    kind: str
    data: dict[str, Any] | None = None  # the parsed JSON object, for JSON kinds
    report: Report | None = None
    request_id: str | None = None

    @property
    def is_imgproc(self) -> bool:
        return self.kind in (IMAGE, REQUEST, IMGPROC)

    @property
    def is_error(self) -> bool:
        """Outcome failed, level ERROR, a runtime [ERROR] line, or a failed invocation."""
        if self.kind == EMF:
            return False  # a metric record; the imgproc line beside it carries the failure
        if self.report is not None:
            return self.report.status is not None
        if self.data is not None:
            level = str(self.data.get("level", "")).upper()
            return self.data.get("outcome") == "failed" or level in ("ERROR", "CRITICAL", "FATAL")
        msg = self.event.message
        if self.kind == PLATFORM:  # e.g. "INIT_REPORT Init Duration: 9999 ms Phase: init Status: timeout"
            return bool(_REPORT_STATUS.search(msg))
        return msg.startswith(("[ERROR]", "[CRITICAL]", "Traceback")) or "Task timed out" in msg


def classify(event: LogEvent) -> Line:
    """Decide what a CloudWatch message is: imgproc, EMF, Lambda platform, or text."""
    msg = event.message
    if msg.startswith("{"):
        try:
            data = json.loads(msg)
        except ValueError:
            data = None
        if isinstance(data, dict):
            rid = data.get("request_id") or data.get("requestId")
            if "_aws" in data:
                return Line(event, EMF, data)
            if data.get("event") == "image" or (data.get("service") == "imgproc" and "key" in data):
                return Line(event, IMAGE, data, request_id=rid)
            if data.get("event") == "request":
                return Line(event, REQUEST, data, request_id=rid)
            if data.get("service") == "imgproc":  # e.g. {"event": "ignored", "reason": "s3:TestEvent"}
                return Line(event, IMGPROC, data, request_id=rid)
            kind = str(data.get("type", ""))
            if kind.startswith("platform."):
                if kind == "platform.report":
                    report = _report_from_platform(data)
                    return Line(event, REPORT, data, report, report.request_id)
                rid = (data.get("record") or {}).get("requestId")
                return Line(event, PLATFORM, data, request_id=rid)
            return Line(event, JSON, data, request_id=rid)
    if msg.startswith("REPORT RequestId"):
        text_report = parse_report(msg)
        return Line(event, REPORT, report=text_report, request_id=text_report.request_id if text_report else None)
    if msg.startswith(("START RequestId", "END RequestId")):
        rid = _REQUEST_ID.search(msg)
        return Line(event, START if msg.startswith("START") else END, request_id=rid.group(1) if rid else None)
    if msg.startswith(("INIT_START", "INIT_REPORT", "EXTENSION", "TELEMETRY")):
        return Line(event, PLATFORM)
    m = _RUNTIME_LINE.match(msg)
    return Line(event, TEXT, request_id=m.group(2) if m else None)


# --- which lines the user asked for -------------------------------------------------


class Selector:
    """--key and --errors, applied in time order.

    A Lambda REPORT line is kept when an earlier kept line had the same request
    id, so `--key cat` also shows how long the invocations that handled cat took.
    """

    def __init__(self, key: str | None = None, errors: bool = False, remember: int = 2000):
        self.key = key
        self.errors = errors
        self._matched: OrderedDict[str, None] = OrderedDict()
        self._remember = remember

    @property
    def active(self) -> bool:
        return bool(self.key) or self.errors

    def __call__(self, line: Line) -> bool:
        if not self.active:
            return True
        if line.kind == REPORT and line.request_id and line.request_id in self._matched:
            return True
        if self.key and not (line.is_imgproc and self.key in _line_key(line)):
            return False
        if self.errors and not line.is_error:
            return False
        if line.request_id:
            self._matched[line.request_id] = None
            while len(self._matched) > self._remember:
                self._matched.popitem(last=False)
        return True


def _line_key(line: Line) -> str:
    data = line.data or {}
    return str(data.get("key") or data.get("path") or "")


# --- formatting helpers -------------------------------------------------------------


def iso(ms: int) -> str:
    """2026-11-26T14:00:00.123Z"""
    return datetime.fromtimestamp(ms / 1000, tz=UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def human_ms(ms: Any) -> str:
    if not isinstance(ms, (int, float)):
        return "?"
    return f"{ms:.0f} ms" if ms >= 10 else f"{ms:.1f} ms"


def rendition_label(r: dict[str, Any]) -> str:
    """``web.webp``: a preset's JPEG and WebP renditions share a name, not a label."""
    from core.recipe import EXTENSIONS

    name, fmt = str(r.get("name", "?")), r.get("format")
    return f"{name}.{EXTENSIONS.get(str(fmt), fmt)}" if fmt else name


def short_id(request_id: str | None) -> str:
    return (request_id or "")[:8]


# --- renderers ----------------------------------------------------------------------


class JsonRenderer:
    """One JSON object per line: imgproc lines parsed plus @timestamp/@logStream/@eventId;
    everything else as {"timestamp", "stream", "message"} (REPORT lines add "report")."""

    def __init__(self, write: Callable[[str], None]):
        self.write = write

    def shows(self, line: Line) -> bool:
        return True

    def render(self, line: Line) -> None:
        e = line.event
        if line.is_imgproc and line.data is not None:
            obj = dict(line.data)
            obj.update({"@timestamp": iso(e.timestamp), "@logStream": e.stream, "@eventId": e.event_id})
        else:
            obj = {"timestamp": iso(e.timestamp), "stream": e.stream, "message": e.message}
            if line.report is not None:
                obj["report"] = asdict(line.report)
        self.write(json.dumps(obj, ensure_ascii=False, separators=(",", ":")))


class ShortRenderer:
    """Plain text for grep: the ISO timestamp and the message as logged, every line."""

    def __init__(self, write: Callable[[str], None]):
        self.write = write

    def shows(self, line: Line) -> bool:
        return True

    def render(self, line: Line) -> None:
        self.write(f"{iso(line.event.timestamp)} {line.event.message}")


class PrettyRenderer:
    """Readable rows with rich: one row per image or API request, one compact line per
    invocation (START/END folded into REPORT), EMF lines hidden, other text as is."""

    HIDDEN = (EMF, START, END, PLATFORM)

    def __init__(self, console):
        self.console = console
        self._day: str | None = None

    def shows(self, line: Line) -> bool:
        return line.kind not in self.HIDDEN or (line.kind == PLATFORM and line.is_error)

    def render(self, line: Line) -> None:
        from rich.text import Text

        if not self.shows(line):
            return
        when = datetime.fromtimestamp(line.event.timestamp / 1000, tz=UTC)
        day = when.strftime("%Y-%m-%d")
        if day != self._day:
            self._day = day
            self.console.print(Text(f"── {day} (UTC) ──", style="dim"))
        row = Text()
        row.append(when.strftime("%H:%M:%S.%f")[:-3] + "  ", style="dim")
        if line.kind == IMAGE:
            row.append_text(self._image(line.data or {}))
        elif line.kind == REQUEST:
            row.append_text(self._request(line.data or {}))
        elif line.kind == IMGPROC:
            row.append_text(self._other(line.data or {}, line.is_error))
        elif line.kind == REPORT and line.report is not None:
            row.append_text(self._report(line.report))
        else:
            style = "red" if line.is_error else ""
            row.append(line.event.message, style=style)
        self.console.print(row, soft_wrap=True, highlight=False)

    @staticmethod
    def _image(d: dict[str, Any]):
        from rich.text import Text

        outcome = str(d.get("outcome", "?"))
        failed = outcome == "failed" or str(d.get("level", "")).upper() == "ERROR"
        t = Text()
        t.append(str(d.get("key", "?")), style="red bold" if failed else "bold")
        rends = [r for r in d.get("renditions") or [] if isinstance(r, dict)]
        if rends:
            t.append("  ")
            for i, r in enumerate(rends):
                if i:
                    t.append(",")
                t.append(rendition_label(r), style="dim" if r.get("outcome") == "unchanged" else "cyan")
        total = (d.get("ms") or {}).get("total") if isinstance(d.get("ms"), dict) else d.get("ms")
        if outcome != "skipped":
            t.append(f"  {human_bytes(d.get('bytes_in'))} → {human_bytes(d.get('bytes_out'))}")
            t.append(f"  {human_ms(total)}")
        style = {"ok": "green", "failed": "red bold", "skipped": "yellow"}.get(outcome, "")
        t.append(f"  {outcome}", style=style)
        err = d.get("error")
        if isinstance(err, dict):
            t.append(f"  {err.get('type', 'Error')}: {err.get('message', '')}", style="red")
        if d.get("reason"):
            t.append(f"  ({d['reason']})", style="yellow")
        return t

    @staticmethod
    def _request(d: dict[str, Any]):
        from rich.text import Text

        outcome = str(d.get("outcome", "?"))
        status = d.get("status")
        failed = outcome == "failed" or (isinstance(status, int) and status >= 500)
        t = Text()
        t.append(str(d.get("method", "GET")) + " ", style="dim")
        t.append(str(d.get("path", "?")), style="red bold" if failed else "bold")
        if d.get("preset"):
            t.append(f"  {d['preset']}", style="cyan")
        t.append(f"  {status if status is not None else '?'}", style="red" if failed else "")
        t.append(f"  {human_ms(d.get('ms'))}")
        if d.get("cache"):
            t.append(f"  cache {d['cache']}", style="dim")
        t.append(f"  {outcome}", style="red bold" if failed else "green")
        return t

    @staticmethod
    def _other(d: dict[str, Any], failed: bool):
        from rich.text import Text

        t = Text(str(d.get("event", "?")), style="red bold" if failed else "bold")
        for name in ("bucket", "outcome", "reason", "message"):
            if d.get(name):
                t.append(f"  {d[name]}", style="red" if failed else "")
        return t

    @staticmethod
    def _report(r: Report):
        from rich.text import Text

        bad = r.status is not None
        t = Text(style="red" if bad else "blue")
        t.append(f"λ {short_id(r.request_id)}  {human_ms(r.duration_ms)}")
        if r.billed_ms is not None:
            t.append(f" (billed {r.billed_ms:.0f} ms)")
        if r.max_memory_mb is not None:
            t.append(f"  mem {r.max_memory_mb}/{r.memory_mb if r.memory_mb is not None else '?'} MB")
        if r.init_ms is not None:
            t.append(f"  cold start: init {human_ms(r.init_ms)}", style="yellow")
        if bad:
            t.append(f"  {r.status}", style="red bold")
        return t


def make_renderer(fmt: str, console, write: Callable[[str], None]):
    if fmt == "json":
        return JsonRenderer(write)
    if fmt == "short":
        return ShortRenderer(write)
    return PrettyRenderer(console)

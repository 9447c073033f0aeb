"""`imgproc stats`: figures from the same lines `imgproc logs` shows, so a user can
size the function (memory, timeout) and spot slow renditions.

Percentiles are nearest-rank over the values in the window (no interpolation), so
every figure shown is a value that actually occurred.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from cli.logs.render import IMAGE, REPORT, Line, Report, human_ms, rendition_label

#: The CPU-bound steps of the handler's ms breakdown (cli/logs/cost.py scales them with memory).
CPU_STEPS = ("decode", "transform", "encode")


def percentile(values: list[float], p: float) -> float | None:
    """Nearest-rank percentile (p in 0..100) of ``values``; None when empty."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(p / 100 * len(ordered)))
    return ordered[rank - 1]


@dataclass(frozen=True)
class Summary:
    count: int
    p50: float | None
    p95: float | None
    max: float | None

    @classmethod
    def of(cls, values: list[float]) -> Summary:
        return cls(len(values), percentile(values, 50), percentile(values, 95), max(values) if values else None)


@dataclass
class Stats:
    """Everything `imgproc stats` reports for one window."""

    invocations: int = 0
    failed_invocations: int = 0  # REPORT lines with a Status (timeout, error)
    images: Counter = field(default_factory=Counter)  # outcome -> count
    errors: Counter = field(default_factory=Counter)  # error type -> count
    bytes_in: int = 0
    bytes_out: int = 0
    rendition_ms: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    total_ms: list[float] = field(default_factory=list)
    durations: list[float] = field(default_factory=list)
    billed_ms: float = 0.0
    init_ms: list[float] = field(default_factory=list)
    max_memory_mb: int | None = None
    memory_mb: int | None = None  # configured (Memory Size), the latest seen
    reports: list[Report] = field(default_factory=list)  # every REPORT line, for the cost
    cpu_ms: dict[str, float] = field(default_factory=lambda: defaultdict(float))  # request id -> CPU-bound ms

    def add(self, line: Line) -> None:
        if line.kind == IMAGE and line.data is not None:
            self._image(line.data)
        elif line.kind == REPORT and line.report is not None:
            r = line.report
            self.reports.append(r)
            self.invocations += 1
            if r.status is not None:
                self.failed_invocations += 1
            if r.duration_ms is not None:
                self.durations.append(r.duration_ms)
            self.billed_ms += r.billed_ms or 0
            if r.init_ms is not None:
                self.init_ms.append(r.init_ms)
            if r.max_memory_mb is not None:
                self.max_memory_mb = max(self.max_memory_mb or 0, r.max_memory_mb)
            if r.memory_mb is not None:
                self.memory_mb = r.memory_mb

    def _image(self, d: dict[str, Any]) -> None:
        ms = d.get("ms")
        if isinstance(ms, dict) and d.get("request_id"):
            self.cpu_ms[str(d["request_id"])] += sum(
                max(0.0, float(ms[step])) for step in CPU_STEPS if isinstance(ms.get(step), (int, float)))
        outcome = str(d.get("outcome", "unknown"))
        self.images[outcome] += 1
        err = d.get("error")
        if outcome == "failed":
            self.errors[str(err.get("type", "Error")) if isinstance(err, dict) else "Error"] += 1
        if outcome != "ok":
            return  # bytes and timings of partial work would skew the figures
        for name in ("bytes_in", "bytes_out"):
            if isinstance(d.get(name), (int, float)):
                setattr(self, name, getattr(self, name) + int(d[name]))
        for r in d.get("renditions") or []:
            if isinstance(r, dict) and isinstance(r.get("ms"), (int, float)) and r.get("name"):
                self.rendition_ms[rendition_label(r)].append(float(r["ms"]))
        if isinstance(ms, dict) and isinstance(ms.get("total"), (int, float)):
            self.total_ms.append(float(ms["total"]))

    @classmethod
    def from_lines(cls, lines: Iterable[Line]) -> Stats:
        stats = cls()
        for line in lines:
            stats.add(line)
        return stats

    @property
    def cold_starts(self) -> int:
        return len(self.init_ms)

    def per_rendition(self) -> dict[str, Summary]:
        rows = {name: Summary.of(values) for name, values in self.rendition_ms.items()}  # first-seen order
        if self.total_ms:
            rows["(total per image)"] = Summary.of(self.total_ms)
        return rows

    def memory_hint(self) -> str | None:
        """One sentence to help size the function's memory, or None without data."""
        if self.max_memory_mb is None or not self.memory_mb:
            return None
        share = self.max_memory_mb / self.memory_mb
        if share >= 0.9:
            return "peak memory is within 10% of the configured size: raise MemorySize to avoid out-of-memory failures"
        if share < 0.4:
            return (
                "peak memory is under 40% of the configured size; Lambda also scales CPU with memory, "
                "so see the memory sizes compared below before lowering it"
            )
        return None

    def to_json(self) -> dict[str, Any]:
        def summary(s: Summary) -> dict[str, Any]:
            return {"count": s.count, "p50": s.p50, "p95": s.p95, "max": s.max}

        return {
            "invocations": self.invocations,
            "failed_invocations": self.failed_invocations,
            "images": {
                "processed": self.images.get("ok", 0),
                "failed": self.images.get("failed", 0),
                "skipped": self.images.get("skipped", 0),
            },
            "errors": dict(self.errors),
            "bytes_in": self.bytes_in,
            "bytes_out": self.bytes_out,
            "processing_ms": {name: summary(s) for name, s in self.per_rendition().items()},
            "duration_ms": summary(Summary.of(self.durations)),
            "billed_ms": self.billed_ms,
            "cold_starts": {"count": self.cold_starts, "init_ms": summary(Summary.of(self.init_ms))},
            "memory_mb": {"max_used": self.max_memory_mb, "configured": self.memory_mb},
        }


def render_stats(stats: Stats, console, title: str) -> None:
    """Rich tables: invocations and images, processing ms per rendition, memory."""
    from rich.markup import escape
    from rich.table import Table

    from cli.console import human_bytes

    console.print(f"[bold]{escape(title)}[/bold]")
    overview = Table(show_header=False)
    overview.add_column(style="bold")
    overview.add_column(justify="right")
    failed_inv = f" ({stats.failed_invocations} failed)" if stats.failed_invocations else ""
    overview.add_row("invocations", f"{stats.invocations}{failed_inv}")
    overview.add_row("images processed", str(stats.images.get("ok", 0)))
    failed = stats.images.get("failed", 0)
    overview.add_row("images failed", f"[red]{failed}[/red]" if failed else "0")
    if stats.images.get("skipped"):
        overview.add_row("images skipped", str(stats.images["skipped"]))
    for kind, n in stats.errors.most_common():
        overview.add_row(f"  {escape(kind)}", f"[red]{n}[/red]")
    overview.add_row("bytes in → out", f"{human_bytes(stats.bytes_in)} → {human_bytes(stats.bytes_out)}")
    d = Summary.of(stats.durations)
    if d.count:
        overview.add_row("duration p50 / p95 / max", f"{_ms(d.p50)} / {_ms(d.p95)} / {_ms(d.max)}")
    cold = Summary.of(stats.init_ms)
    cold_text = str(cold.count)
    if cold.count:
        cold_text += f" (init p50 {_ms(cold.p50)}, max {_ms(cold.max)})"
    overview.add_row("cold starts", cold_text)
    if stats.max_memory_mb is not None:
        mem = f"{stats.max_memory_mb} MB of {stats.memory_mb if stats.memory_mb else '?'} MB"
        if stats.memory_mb:
            mem += f" ({100 * stats.max_memory_mb / stats.memory_mb:.0f}%)"
        overview.add_row("max memory used", mem)
    console.print(overview)

    rows = stats.per_rendition()
    if rows:
        table = Table(title="processing ms per rendition", title_justify="left")
        table.add_column("rendition")
        for name in ("count", "p50", "p95", "max"):
            table.add_column(name, justify="right")
        for name, s in rows.items():
            table.add_row(escape(name), str(s.count), _ms(s.p50), _ms(s.p95), _ms(s.max))
        console.print(table)
    hint = stats.memory_hint()
    if hint:
        console.print(f"[dim]{hint}[/dim]")


def _ms(value: float | None) -> str:
    return "-" if value is None else human_ms(value)

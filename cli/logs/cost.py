"""What the function costs per 1,000 images, and whether another memory size would cost less.

Cost is Lambda's bill for the invocations in the window: billed duration x memory (GB-seconds)
at the architecture's price, plus the request fee. Free tier, tiered discounts beyond
6 billion GB-s a month, and S3/SQS charges are left out.

The memory model, for the "what if" sizes: Lambda gives a function CPU in proportion to its
memory, one full vCPU at 1,769 MB. The CPU-bound part of an invocation (the handler's decode,
transform and encode ms, from its image lines) is taken to scale inversely with memory below
1,769 MB and not at all above (the work is single-threaded); downloading, uploading and the rest
of the billed time (runtime, waiting on S3) do not scale. Invocations that failed or timed out
keep their billed time at every size.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from cli.logs.render import Report
from cli.logs.stats import Stats, percentile

# Lambda prices as of 2026-11-30, us-east-1 (aws.amazon.com/lambda/pricing, first pricing tier).
PRICES_AS_OF = "2026-11-30, us-east-1"
PRICE_PER_GB_S = {"x86_64": 0.0000166667, "arm64": 0.0000133334}
PRICE_PER_REQUEST = 0.0000002  # $0.20 per 1M requests
ONE_VCPU_MB = 1769
MIN_MB, MAX_MB = 128, 10240
#: Memory sizes compared (MB); the smallest one that leaves headroom above the peak is added.
LADDER = (128, 256, 512, 768, 1024, 1536, ONE_VCPU_MB, 2048, 3008)
#: Never suggest less than the peak used plus this share of it (and at least HEADROOM_MIN_MB).
HEADROOM_SHARE, HEADROOM_MIN_MB = 0.25, 64
#: A size is suggested only when it saves at least this share of the cost; among sizes within
#: NEARLY_AS_CHEAP of the cheapest, the largest (fastest) is suggested.
MEANINGFUL_SAVING, NEARLY_AS_CHEAP = 0.10, 0.02
#: Nor a size at which the slowest invocation would use more than this share of the timeout.
TIMEOUT_SHARE = 0.8
MODEL = ("decode/transform/encode time scales inversely with memory below 1769 MB (1 vCPU) and not above "
         "(single-threaded); download, upload and the rest of the billed time do not scale")


@dataclass(frozen=True)
class Invocation:
    """One REPORT line, with the CPU-bound ms the handler logged for the same request."""

    billed_ms: float
    memory_mb: int
    failed: bool
    cpu_ms: float = 0.0

    def billed_at(self, memory_mb: int) -> float:
        """Modelled billed ms at another memory size (whole ms, as Lambda bills)."""
        cpu = min(self.cpu_ms, self.billed_ms)
        scale = min(self.memory_mb, ONE_VCPU_MB) / min(memory_mb, ONE_VCPU_MB)
        return float(math.ceil(self.billed_ms - cpu + cpu * scale))


def of_stats(stats: Stats, architecture: str, architecture_from: str, timeout_s: float | None = None) -> Cost | None:
    """The cost of the invocations `imgproc stats` read, per 1,000 images processed."""
    return estimate(invocations(stats.reports, stats.cpu_ms), stats.images.get("ok", 0), stats.max_memory_mb,
                    architecture, architecture_from, timeout_s)


def invocations(reports: Iterable[Report], cpu_ms: dict[str, float]) -> list[Invocation]:
    """Invocations with a billed duration and memory size; CPU ms joined by request id."""
    return [Invocation(r.billed_ms, r.memory_mb, r.status is not None, cpu_ms.get(r.request_id or "", 0.0))
            for r in reports if r.billed_ms is not None and r.memory_mb]


def dollars(billed_ms: float, memory_mb: int, architecture: str) -> float:
    """Lambda's charge for one invocation: GB-seconds at the architecture's price plus the request fee."""
    return billed_ms / 1000 * memory_mb / 1024 * PRICE_PER_GB_S[architecture] + PRICE_PER_REQUEST


@dataclass(frozen=True)
class Option:
    """The window's successful invocations as if run at ``memory_mb``."""

    memory_mb: int
    total_usd: float
    p50_ms: float | None  # modelled billed duration
    p95_ms: float | None
    change: float  # vs what they cost: -0.25 is 25% cheaper
    near_timeout: bool = False  # the slowest invocation would use TIMEOUT_SHARE of the timeout

    def to_json(self) -> dict[str, Any]:
        return {"memory_mb": self.memory_mb, "total_usd": self.total_usd, "billed_ms_p50": self.p50_ms,
                "billed_ms_p95": self.p95_ms, "change": round(self.change, 4), "near_timeout": self.near_timeout}


@dataclass(frozen=True)
class Cost:
    architecture: str
    architecture_from: str  # where the architecture came from, for the reader
    invocations: int
    gb_seconds: float
    total_usd: float
    per_1000_usd: float | None  # None when no image was processed
    memory_mb: int  # the latest configured size
    floor_mb: int  # no smaller size is suggested
    options: tuple[Option, ...]
    suggestion: Option | None

    def to_json(self) -> dict[str, Any]:
        return {
            "architecture": self.architecture, "architecture_from": self.architecture_from,
            "prices_as_of": PRICES_AS_OF, "price_per_gb_second_usd": PRICE_PER_GB_S[self.architecture],
            "price_per_request_usd": PRICE_PER_REQUEST, "invocations": self.invocations,
            "gb_seconds": round(self.gb_seconds, 3), "total_usd": self.total_usd,
            "per_1000_images_usd": self.per_1000_usd, "memory_mb": self.memory_mb,
            "memory_floor_mb": self.floor_mb, "model": MODEL,
            "memory_options": [o.to_json() for o in self.options],
            "suggestion": self.suggestion.to_json() if self.suggestion else None,
        }


def memory_floor(max_used_mb: int) -> int:
    """The smallest size worth suggesting: the peak used plus headroom, rounded up to 64 MB."""
    wanted = max_used_mb + max(HEADROOM_MIN_MB, max_used_mb * HEADROOM_SHARE)
    return min(MAX_MB, max(MIN_MB, 64 * math.ceil(wanted / 64)))


def estimate(calls: list[Invocation], images: int, max_used_mb: int | None, architecture: str,
             architecture_from: str, timeout_s: float | None = None) -> Cost | None:
    """The window's cost and the memory sizes compared; None without REPORT lines.

    The sizes are compared on the successful invocations only: a timeout's billed time says
    nothing about how long the work would take at another size.
    """
    if not calls:
        return None
    total = sum(dollars(c.billed_ms, c.memory_mb, architecture) for c in calls)
    now_mb = calls[-1].memory_mb
    floor = memory_floor(max_used_mb or 0)
    sizes = sorted({floor, now_mb, *(m for m in LADDER if m >= floor)})
    done = [c for c in calls if not c.failed]
    spent = sum(dollars(c.billed_ms, c.memory_mb, architecture) for c in done)

    def at(memory_mb: int) -> Option:
        billed = [c.billed_at(memory_mb) for c in done]
        cost = sum(dollars(b, memory_mb, architecture) for b in billed)
        slow = timeout_s is not None and max(billed) > TIMEOUT_SHARE * timeout_s * 1000
        return Option(memory_mb, cost, percentile(billed, 50), percentile(billed, 95),
                      cost / spent - 1 if spent else 0.0, slow)

    options = tuple(at(m) for m in sizes) if done else ()
    return Cost(architecture, architecture_from, len(calls),
                sum(c.billed_ms / 1000 * c.memory_mb / 1024 for c in calls), total,
                1000 * total / images if images else None, now_mb, floor, options, suggest(options, now_mb))


def suggest(options: tuple[Option, ...], now_mb: int) -> Option | None:
    """The size to suggest: meaningfully cheaper than now, clear of the timeout, the fastest of the cheapest."""
    safe = [o for o in options if not o.near_timeout]
    if not safe:
        return None
    cheapest = min(o.total_usd for o in safe)
    best = max((o for o in safe if o.total_usd <= cheapest * (1 + NEARLY_AS_CHEAP)), key=lambda o: o.memory_mb)
    return best if best.memory_mb != now_mb and best.change <= -MEANINGFUL_SAVING else None


def usd(value: float | None) -> str:
    """Dollars with four significant digits (costs per 1,000 images are fractions of a cent)."""
    if value is None:
        return "-"
    return f"${value:.4g}" if value < 1 else f"${value:,.2f}"


def render_cost(cost: Cost, console: Any) -> None:
    """The cost lines and the memory sizes compared, after `render_stats`."""
    from rich.markup import escape
    from rich.table import Table

    from cli.logs.render import human_ms

    per_image = (f"{usd(cost.per_1000_usd)} per 1,000 images processed" if cost.per_1000_usd is not None
                 else "no image processed")
    console.print(f"[bold]cost[/bold] {per_image} ({usd(cost.total_usd)} for {cost.invocations} invocations, "
                  f"{cost.gb_seconds:.2f} GB-s, {cost.architecture} from {escape(cost.architecture_from)})")
    console.print(f"[dim]prices as of {PRICES_AS_OF}: ${PRICE_PER_GB_S[cost.architecture]:.10f} per GB-second "
                  f"({cost.architecture}), $0.20 per 1M requests; free tier not deducted[/dim]")
    if not cost.options:
        return
    table = Table(title="memory sizes compared (successful invocations, modelled)", title_justify="left")
    for name in ("memory", "billed p50", "billed p95", "cost vs now"):
        table.add_column(name, justify="right")
    for o in cost.options:
        now = " (now)" if o.memory_mb == cost.memory_mb else ""
        change = f"{o.change:+.0%}" + (" near timeout" if o.near_timeout else "")
        table.add_row(f"{o.memory_mb} MB{now}", human_ms(o.p50_ms or 0), human_ms(o.p95_ms or 0), change)
    console.print(table)
    if cost.suggestion:
        s = cost.suggestion
        console.print(f"[yellow]memory = {s.memory_mb} in \\[deploy] would cost {-s.change:.0%} less "
                      f"(billed p95 {human_ms(s.p95_ms or 0)})[/yellow]")
    else:
        console.print(f"no memory size from {cost.floor_mb} MB (peak used + headroom) up would cost "
                      f"{MEANINGFUL_SAVING:.0%} less than {cost.memory_mb} MB, clear of the timeout")
    console.print(f"[dim]model: {MODEL}[/dim]")

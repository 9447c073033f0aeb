"""`imgproc stats`: figures computed from the known session in
tests/fixtures/logs/session.jsonl (six invocations over two streams: two cold starts,
three images ok, one corrupt, one skipped, one timeout).

Expected values, worked out by hand (nearest-rank percentiles):
  thumb.jpg  ms 12, 20, 8      -> p50 12,  p95 20,  max 20
  web.webp   ms 35, 60, 30     -> p50 35,  p95 60,  max 60
  hero.avif  ms 140, 300, 120  -> p50 140, p95 300, max 300
  total ms 230, 450, 190  -> p50 230, p95 450 (failed/skipped images are not timed)
  durations 240.1, 470, 195.5, 30, 5, 30000 -> p50 195.5, p95 30000
  init 412.5 and 398.0; max memory 320 MB of 1024 MB
"""

from __future__ import annotations

import json

import pytest

from cli.logs.stats import Stats, percentile

from logsdata import GROUP, load_session, make_app, now_ms, put_events, runner


def stats(*args: str):
    return runner.invoke(make_app(), ["stats", *args])


def test_stats_json_figures_from_a_known_session(logs_client):
    load_session(logs_client)

    result = stats("--log-group", GROUP, "--json")

    assert result.exit_code == 0, result.output
    s = json.loads(result.stdout)
    assert s["invocations"] == 6
    assert s["failed_invocations"] == 1
    assert s["images"] == {"processed": 3, "failed": 1, "skipped": 1}
    assert s["errors"] == {"CorruptImage": 1}
    ms = s["processing_ms"]
    assert {k: (v["count"], v["p50"], v["p95"], v["max"]) for k, v in ms.items()} == {
        "thumb.jpg": (3, 12.0, 20.0, 20.0),
        "web.webp": (3, 35.0, 60.0, 60.0),
        "hero.avif": (3, 140.0, 300.0, 300.0),
        "(total per image)": (3, 230.0, 450.0, 450.0),
    }
    assert (s["duration_ms"]["p50"], s["duration_ms"]["p95"], s["duration_ms"]["max"]) == (195.5, 30000.0, 30000.0)
    assert s["cold_starts"]["count"] == 2
    assert (s["cold_starts"]["init_ms"]["p50"], s["cold_starts"]["init_ms"]["max"]) == (398.0, 412.5)
    assert s["memory_mb"] == {"max_used": 320, "configured": 1024}
    assert (s["bytes_in"], s["bytes_out"]) == (12_400_000, 747_000)
    assert s["log_group"] == GROUP


def test_stats_tables_show_the_same_figures(logs_client):
    load_session(logs_client)

    result = stats("--log-group", GROUP)

    out = result.stdout
    assert result.exit_code == 0, result.output
    row = lambda name: next(line for line in out.splitlines() if f" {name} " in line)  # noqa: E731
    assert "6 (1 failed)" in row("invocations")
    assert row("images processed").rstrip(" │").endswith("3")
    assert row("images failed").rstrip(" │").endswith("1")
    assert "2 (init p50 398 ms, max 412 ms)" in row("cold starts")
    assert "320 MB of 1024 MB (31%)" in row("max memory used")
    assert [c.strip() for c in row("hero.avif").strip("│ ").split("│")] == ["hero.avif", "3", "140 ms", "300 ms", "300 ms"]
    assert "CPU" in out  # the sizing hint: under 40% of configured memory


def test_stats_default_window_is_one_hour(logs_client):
    now = now_ms()
    report = "REPORT RequestId: {}\tDuration: 10.00 ms\tBilled Duration: 10 ms\tMemory Size: 128 MB\tMax Memory Used: 60 MB\t"
    put_events(logs_client, GROUP, "s", [(now - 2 * 3600_000, report.format("old")), (now - 30 * 60_000, report.format("new"))])

    one_hour = json.loads(stats("--log-group", GROUP, "--json").stdout)
    three_hours = json.loads(stats("--log-group", GROUP, "--json", "--since", "3h").stdout)

    assert one_hour["invocations"] == 1
    assert three_hours["invocations"] == 2


def test_stats_on_an_empty_window_shows_zeros(logs_client):
    result = stats("--log-group", GROUP, "--json")

    s = json.loads(result.stdout)
    assert s["invocations"] == 0 and s["processing_ms"] == {} and s["memory_mb"]["max_used"] is None


def test_stats_missing_group_is_a_one_line_error(logs_client):
    result = stats("--log-group", "/aws/lambda/missing")

    assert result.exit_code == 2
    assert "'/aws/lambda/missing'" in result.stderr and len(result.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize("values,p,expected", [
    ([5.0], 50, 5.0), ([5.0], 95, 5.0),
    ([3.0, 1.0, 2.0], 50, 2.0), ([3.0, 1.0, 2.0], 95, 3.0),
    ([float(i) for i in range(1, 101)], 95, 95.0), ([float(i) for i in range(1, 21)], 50, 10.0),
    ([], 50, None),
])
def test_percentiles_are_nearest_rank(values, p, expected):
    assert percentile(values, p) == expected


def test_memory_hint_warns_when_close_to_the_limit():
    s = Stats(max_memory_mb=1000, memory_mb=1024)
    assert "raise MemorySize" in s.memory_hint()
    assert Stats(max_memory_mb=600, memory_mb=1024).memory_hint() is None

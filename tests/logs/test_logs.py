"""`imgproc logs`: finding the log group, the time window, every line once in time
order, --filter-pattern/--key/--errors/--limit, and the three formats (moto in-process).

Also holds the helpers the follow and stats tests import: `put_events` and
`load_session` (tests/fixtures/logs/session.jsonl, a captured-style session of six
invocations over two log streams, shifted to end a minute ago).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from cli.logs.render import IMAGE, REPORT, TEXT, Selector, classify, parse_report
from cli.logs.source import LogEvent, parse_time

from logsdata import GROUP, STREAM_A, STREAM_B, load_session, make_app, now_ms, put_events, runner, short_messages


def run(*args: str):
    return runner.invoke(make_app(), ["logs", *args])


def image_line(key: str, outcome: str = "ok", **extra) -> str:
    d = {"timestamp": "2026-11-26T14:00:00.123Z", "level": "ERROR" if outcome == "failed" else "INFO",
         "service": "imgproc", "event": "image", "request_id": extra.pop("request_id", "r-" + key),
         "bucket": "in", "key": key, "outcome": outcome, "renditions": [], "bytes_in": 1000, "bytes_out": 100,
         "ms": {"total": 10.0}}
    d.update(extra)
    return json.dumps(d)


# --- every line once, in time order ---------------------------------------------------


def test_events_across_streams_are_shown_once_each_in_time_order(logs_client):
    written = load_session(logs_client)

    result = run("--log-group", GROUP, "--format", "short")

    assert result.exit_code == 0, result.output
    assert short_messages(result.stdout) == [r["message"] for r in written]
    streams_in_order = [r["stream"] for r in written]
    assert streams_in_order.index(STREAM_B) < len(streams_in_order) - streams_in_order[::-1].index(STREAM_A) - 1, \
        "fixture should interleave the two streams"


def test_pagination_is_followed_to_the_last_page(logs_client):
    from cli.logs.source import Fetcher

    base = now_ms() - 60_000
    put_events(logs_client, GROUP, "s1", [(base + i, f"line {i}") for i in range(0, 20, 2)])
    put_events(logs_client, GROUP, "s2", [(base + i, f"line {i}") for i in range(1, 20, 2)])

    events = Fetcher(logs_client, GROUP, page_size=3).fetch(base - 1000)

    assert [e.message for e in events] == [f"line {i}" for i in range(20)]


# --- the window ---------------------------------------------------------------------


def test_default_window_is_the_last_ten_minutes_and_since_widens_it(logs_client):
    now = now_ms()
    put_events(logs_client, GROUP, "s", [(now - 20 * 60_000, "twenty minutes ago"), (now - 60_000, "a minute ago")])

    default = run("--log-group", GROUP, "--format", "short")
    wider = run("--log-group", GROUP, "--format", "short", "--since", "30m")

    assert short_messages(default.stdout) == ["a minute ago"]
    assert short_messages(wider.stdout) == ["twenty minutes ago", "a minute ago"]


def test_since_and_until_accept_iso_times(logs_client):
    base = now_ms() - 30 * 60_000
    put_events(logs_client, GROUP, "s", [(base + i * 60_000, f"minute {i}") for i in range(5)])
    iso = lambda ms: datetime.fromtimestamp(ms / 1000, tz=UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")  # noqa: E731

    result = run("--log-group", GROUP, "--format", "short",
                 "--since", iso(base + 60_000), "--until", iso(base + 3 * 60_000))

    assert short_messages(result.stdout) == ["minute 1", "minute 2", "minute 3"]


def test_an_empty_window_says_so_on_stderr(logs_client):
    put_events(logs_client, GROUP, "s", [(now_ms() - 3 * 3600_000, "old")])

    result = run("--log-group", GROUP)

    assert result.exit_code == 0
    assert result.stdout == ""
    assert "No matching log events" in result.stderr and "--since" in result.stderr


@pytest.mark.parametrize("text,expected", [
    ("30s", timedelta(seconds=30)), ("10m", timedelta(minutes=10)),
    ("2h", timedelta(hours=2)), ("1d", timedelta(days=1)), ("1w", timedelta(days=7)),
])
def test_relative_times(text, expected):
    now = datetime(2026, 11, 26, 14, 0, tzinfo=UTC)
    assert parse_time(text, now) == now - expected


def test_iso_times_without_a_zone_are_utc():
    now = datetime(2026, 11, 26, 14, 0, tzinfo=UTC)
    assert parse_time("2026-11-26T13:00:00", now) == datetime(2026, 11, 26, 13, 0, tzinfo=UTC)
    assert parse_time("2026-11-26T15:00:00+02:00", now) == datetime(2026, 11, 26, 13, 0, tzinfo=UTC)


@pytest.mark.parametrize("args,needle", [
    (["--since", "yesterday"], "'yesterday'"),
    (["--since", "1h", "--until", "2h"], "--until"),
    (["--follow", "--until", "1m"], "--follow"),
    (["--stack", "imgproc", "--log-group", GROUP], "either"),
])
def test_bad_options_are_one_line_usage_errors(logs_client, args, needle):
    result = run("--log-group", GROUP, *args) if "--log-group" not in args else run(*args)

    assert result.exit_code == 2
    assert needle in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert "Traceback" not in result.output


# --- finding the log group ------------------------------------------------------------


def _create_stack(name: str, with_output: bool = True) -> None:
    import boto3

    template = {
        "Resources": {"Logs": {"Type": "AWS::Logs::LogGroup",
                               "Properties": {"LogGroupName": "/aws/lambda/from-stack", "RetentionInDays": 14}}},
    }
    if with_output:
        template["Outputs"] = {"LogGroupName": {"Value": {"Ref": "Logs"}}}
    boto3.client("cloudformation").create_stack(StackName=name, TemplateBody=json.dumps(template))


def test_the_log_group_comes_from_the_stack_output(logs_client):
    _create_stack("imgproc")
    put_events(logs_client, "/aws/lambda/from-stack", "s", [(now_ms() - 1000, "hello from the stack's group")])

    default_stack = run("--format", "short")
    named = run("--stack", "imgproc", "--format", "short")

    assert default_stack.exit_code == 0, default_stack.output
    assert short_messages(default_stack.stdout) == ["hello from the stack's group"]
    assert short_messages(named.stdout) == ["hello from the stack's group"]


def test_the_default_stack_is_the_one_imgproc_toml_deploys(logs_client, tmp_path):
    _create_stack("photos")
    (tmp_path / "imgproc.toml").write_text('[deploy]\nstack_name = "photos"\n', encoding="utf-8")
    put_events(logs_client, "/aws/lambda/from-stack", "s", [(now_ms() - 1000, "from the photos stack")])

    result = run("--format", "short")

    assert result.exit_code == 0, result.output
    assert short_messages(result.stdout) == ["from the photos stack"]


@pytest.mark.parametrize("args,needles", [
    (["--log-group", "/aws/lambda/nope"], ["log group '/aws/lambda/nope'", "not found", "us-east-1"]),
    ([], ["stack 'imgproc'", "not found", "--log-group"]),
    (["--stack", "other"], ["stack 'other'", "not found"]),
])
def test_a_missing_group_or_stack_is_a_one_line_error_naming_it(logs_client, args, needles):
    result = run(*args)

    assert result.exit_code == 2
    assert len(result.stderr.strip().splitlines()) == 1
    for needle in needles:
        assert needle in result.stderr
    assert "Traceback" not in result.output


def test_a_stack_without_the_output_is_named(logs_client):
    _create_stack("bare", with_output=False)

    result = run("--stack", "bare")

    assert result.exit_code == 2
    assert "stack 'bare'" in result.stderr and "LogGroupName" in result.stderr


def test_a_stack_whose_log_group_is_gone_says_where_the_name_came_from(logs_client):
    _create_stack("imgproc")
    import boto3

    boto3.client("logs").delete_log_group(logGroupName="/aws/lambda/from-stack")

    result = run()

    assert result.exit_code == 2
    assert "'/aws/lambda/from-stack'" in result.stderr and "stack 'imgproc'" in result.stderr


# --- choosing lines ------------------------------------------------------------------


def test_filter_pattern_is_applied_by_cloudwatch(logs_client):
    load_session(logs_client)

    result = run("--log-group", GROUP, "--format", "short", "--filter-pattern", '"Task timed out"')

    assert result.exit_code == 0
    messages = short_messages(result.stdout)
    assert len(messages) == 1 and "Task timed out after 30.00 seconds" in messages[0]


def test_errors_shows_failures_and_the_reports_of_their_invocations(logs_client):
    load_session(logs_client)

    result = run("--log-group", GROUP, "--format", "json", "--errors")

    objects = [json.loads(line) for line in result.stdout.splitlines()]
    failed_images = [o["key"] for o in objects if o.get("event") == "image"]
    assert failed_images == ["uploads/bad.jpg"]
    texts = [o.get("message", "") for o in objects]
    assert any("Task timed out" in t for t in texts)
    reports = [o["report"]["request_id"] for o in objects if "report" in o]
    # the failed image's invocation and the timed-out one; not the four good ones
    assert reports == ["c91e5f02-7a6b-4d3c-b1e8-2d4f6a8c0e93", "81f6d3b2-5e0a-4c7d-9a4b-3c8e2f1d0a58"]
    assert not any("_aws" in t for t in texts), "metric lines are not errors"
    assert len(objects) == 4  # the failed image, its REPORT, the timeout line, its REPORT


def test_key_selects_images_by_substring(logs_client):
    load_session(logs_client)

    result = run("--log-group", GROUP, "--format", "json", "--key", "dog")

    objects = [json.loads(line) for line in result.stdout.splitlines()]
    assert [o["key"] for o in objects if o.get("event") == "image"] == ["uploads/dog.jpg"]
    assert [o["report"]["duration_ms"] for o in objects if "report" in o] == [195.5]


def test_key_and_errors_combine(logs_client):
    load_session(logs_client)

    none = run("--log-group", GROUP, "--format", "short", "--key", "dog", "--errors")
    bad = run("--log-group", GROUP, "--format", "short", "--key", "bad", "--errors")

    assert none.stdout == ""
    assert [m for m in short_messages(bad.stdout) if m.startswith("{")] != []


def test_limit_keeps_the_newest_lines(logs_client):
    base = now_ms() - 60_000
    put_events(logs_client, GROUP, "s", [(base + i, f"line {i}") for i in range(10)])

    result = run("--log-group", GROUP, "--format", "short", "--limit", "3")

    assert short_messages(result.stdout) == ["line 7", "line 8", "line 9"]


# --- formats ----------------------------------------------------------------------------


def test_pretty_shows_one_row_per_image_and_one_line_per_invocation(logs_client):
    load_session(logs_client)

    result = run("--log-group", GROUP)

    out = result.stdout
    assert result.exit_code == 0, result.output
    lines = out.splitlines()
    cat = next(line for line in lines if "uploads/cat 1.jpg" in line)
    for part in ("thumb.jpg,web.webp,hero.avif", "2.3 MiB → 243.2 KiB", "230 ms", "ok"):
        assert part in cat
    bad = next(line for line in lines if "uploads/bad.jpg" in line)
    assert "failed" in bad and "CorruptImage" in bad and "truncated JPEG" in bad
    skipped = next(line for line in lines if "uploads/notes.txt" in line)
    assert "skipped" in skipped and "not an image extension" in skipped
    # START/END/INIT_START folded away, EMF hidden, REPORT as one compact line
    assert "START RequestId" not in out and "END RequestId" not in out and "INIT_START" not in out
    assert "_aws" not in out and "CloudWatchMetrics" not in out
    invocations = [line for line in lines if "λ" in line]
    assert len(invocations) == 6
    assert "λ 3f2a9c1e" in invocations[0] and "240 ms (billed 241 ms)" in invocations[0]
    assert "mem 180/1024 MB" in invocations[0] and "cold start: init 412 ms" in invocations[0]
    assert "cold start" not in invocations[2]
    assert "timeout" in invocations[-1]
    # plain text passes through
    assert any("Task timed out after 30.00 seconds" in line for line in lines)
    # rows come in time order: the image row before its invocation line
    assert lines.index(cat) < lines.index(invocations[0])


def test_pretty_colours_failures_red(logs_client):
    from rich.console import Console

    from cli.logs.render import PrettyRenderer

    console = Console(record=True, force_terminal=True, color_system="standard", width=200)
    event = LogEvent("1", now_ms(), "s", image_line("uploads/bad.jpg", "failed",
                                                    error={"type": "CorruptImage", "message": "bad"}))
    PrettyRenderer(console).render(classify(event))

    ansi = console.export_text(styles=True)
    assert "\x1b[1;31muploads/bad.jpg" in ansi  # bold red key


def test_json_emits_one_object_per_line_with_log_metadata(logs_client):
    written = load_session(logs_client)

    result = run("--log-group", GROUP, "--format", "json")

    objects = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(objects) == len(written)
    images = [o for o in objects if o.get("event") == "image"]
    assert [o["key"] for o in images] == ["uploads/cat 1.jpg", "uploads/big.jpg", "uploads/dog.jpg",
                                          "uploads/bad.jpg", "uploads/notes.txt"]
    assert images[0]["renditions"][0]["name"] == "thumb"
    assert images[0]["@logStream"] == STREAM_A and images[1]["@logStream"] == STREAM_B
    assert images[0]["@timestamp"].endswith("Z") and images[0]["@eventId"]
    others = [o for o in objects if o.get("event") != "image"]
    assert all({"timestamp", "stream", "message"} <= set(o) for o in others)
    assert any(o["message"].startswith("START RequestId") for o in others)


# --- parsing -------------------------------------------------------------------------------


def test_report_lines_are_parsed():
    cold = parse_report("REPORT RequestId: 6f1c1e7e-0000-4000-8000-000000000001\tDuration: 12.34 ms\t"
                        "Billed Duration: 13 ms\tMemory Size: 1024 MB\tMax Memory Used: 80 MB\t"
                        "Init Duration: 250.00 ms\t")
    warm = parse_report("REPORT RequestId: abc\tDuration: 3.10 ms\tBilled Duration: 4 ms\t"
                        "Memory Size: 512 MB\tMax Memory Used: 99 MB\t")
    timeout = parse_report("REPORT RequestId: abc\tDuration: 30000.00 ms\tBilled Duration: 30000 ms\t"
                           "Memory Size: 512 MB\tMax Memory Used: 99 MB\tStatus: timeout")

    assert (cold.request_id, cold.duration_ms, cold.billed_ms, cold.memory_mb, cold.max_memory_mb, cold.init_ms) == \
        ("6f1c1e7e-0000-4000-8000-000000000001", 12.34, 13, 1024, 80, 250.0)
    assert cold.status is None
    assert (warm.duration_ms, warm.init_ms, warm.memory_mb) == (3.10, None, 512)
    assert timeout.status == "timeout"


def test_lambda_json_log_format_reports_are_understood():
    msg = json.dumps({"time": "2026-11-26T14:00:00.000Z", "type": "platform.report", "record": {
        "requestId": "r1", "status": "success",
        "metrics": {"durationMs": 12.5, "billedDurationMs": 13, "memorySizeMB": 256, "maxMemoryUsedMB": 70,
                    "initDurationMs": 300.1}}})

    line = classify(LogEvent("1", 0, "s", msg))

    assert line.kind == REPORT
    assert (line.report.duration_ms, line.report.memory_mb, line.report.init_ms, line.report.status) == \
        (12.5, 256, 300.1, None)


def test_lines_are_classified():
    kinds = {msg: classify(LogEvent("1", 0, "s", msg)).kind for msg in (
        image_line("a.jpg"), "REPORT RequestId: x\tDuration: 1 ms", "not json {", "{broken json",
    )}
    assert list(kinds.values()) == [IMAGE, REPORT, TEXT, TEXT]


def test_selector_remembers_a_bounded_number_of_request_ids():
    selector = Selector(key="x", remember=3)
    for i in range(10):
        selector(classify(LogEvent(str(i), i, "s", image_line(f"x{i}.jpg", request_id=f"r{i}"))))

    first = classify(LogEvent("a", 99, "s", "REPORT RequestId: r0\tDuration: 1 ms"))
    last = classify(LogEvent("b", 99, "s", "REPORT RequestId: r9\tDuration: 1 ms"))
    assert not selector(first)
    assert selector(last)


def test_pretty_prints_text_literally_and_shows_other_imgproc_events(logs_client):
    now = now_ms()
    ignored = json.dumps({"timestamp": "2026-11-26T14:00:00.000Z", "level": "INFO", "service": "imgproc",
                          "event": "ignored", "request_id": "r1", "bucket": "in", "outcome": "skipped",
                          "reason": "s3:TestEvent"})
    put_events(logs_client, GROUP, "s", [(now - 2000, "[bold]not markup[/bold] {not json"), (now - 1000, ignored)])

    result = run("--log-group", GROUP)

    lines = result.stdout.splitlines()
    assert any("[bold]not markup[/bold] {not json" in line for line in lines)
    assert any("ignored" in line and "s3:TestEvent" in line and "{" not in line for line in lines)


def test_no_region_is_a_usage_error_with_a_hint(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for var in ("AWS_REGION", "AWS_DEFAULT_REGION"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-config"))

    result = run("--log-group", GROUP)

    assert result.exit_code == 2
    assert "--region" in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_failed_init_and_json_format_timeouts_count_as_errors():
    init_timeout = classify(LogEvent("1", 0, "s", "INIT_REPORT Init Duration: 9999.95 ms\tPhase: init\tStatus: timeout"))
    init_start = classify(LogEvent("2", 0, "s", "INIT_START Runtime Version: python:3.12.v38"))
    platform_timeout = classify(LogEvent("3", 0, "s", json.dumps(
        {"type": "platform.report", "record": {"requestId": "r", "status": "timeout", "metrics": {}}})))

    assert init_timeout.is_error and not init_start.is_error
    assert platform_timeout.is_error and platform_timeout.report.status == "timeout"
    from rich.console import Console

    from cli.logs.render import PrettyRenderer

    pretty = PrettyRenderer(Console())
    assert pretty.shows(init_timeout) and not pretty.shows(init_start)

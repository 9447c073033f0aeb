"""`imgproc logs --follow`: new events seen once over several polls (including late
arrivals inside the overlap window), bounded memory, backoff when idle and throttled,
and Ctrl-C -> exit 130 without a traceback (in-process and a real subprocess + SIGINT).

The poller's sleep is injected: it appends the next batch of events to moto instead
of waiting, so these tests are fast and deterministic.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from botocore.exceptions import ClientError, EndpointConnectionError

from cli.commands import logs as logs_cmd
from cli.logs.source import Backoff, Fetcher, Follower, TransientLogsError

from logsdata import GROUP, make_app, now_ms, put_events, runner, short_messages
from testdata import subprocess_env

IMGPROC = Path(sys.executable).parent / "imgproc"


class Script:
    """An injected sleep: records each delay, then writes the next batch of events;
    raises KeyboardInterrupt (as Ctrl-C would) once the batches run out."""

    def __init__(self, client, batches: list[list[tuple[str, int, str]]]):
        self.client = client
        self.batches = list(batches)
        self.delays: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.delays.append(seconds)
        if not self.batches:
            raise KeyboardInterrupt
        by_stream: dict[str, list[tuple[int, str]]] = {}
        for stream, ts, msg in self.batches.pop(0):
            by_stream.setdefault(stream, []).append((ts, msg))
        for stream, events in by_stream.items():
            put_events(self.client, GROUP, stream, events)


def follow(follower: Follower) -> list[str]:
    seen: list[str] = []
    with pytest.raises(KeyboardInterrupt):
        for event in follower:
            seen.append(event.message)
    return seen


def test_following_sees_appended_events_once_each_over_several_polls(logs_client):
    base = now_ms() - 20_000
    put_events(logs_client, GROUP, "a", [(base, "backlog a"), (base + 10, "backlog a2")])
    put_events(logs_client, GROUP, "b", [(base + 5, "backlog b")])
    script = Script(logs_client, [
        [("a", base + 100, "new a1"), ("b", base + 120, "new b1")],
        [],
        # arrives late: its timestamp is older than the newest event already shown
        [("b", base + 90, "late b2"), ("a", base + 200, "new a2")],
        [],
        [],
        [("c", base + 300, "new c1 from a fresh stream")],
    ])
    follower = Follower(Fetcher(logs_client, GROUP), start_ms=base - 60_000, sleep=script)

    seen = follow(follower)

    assert seen == ["backlog a", "backlog b", "backlog a2", "new a1", "new b1", "late b2", "new a2",
                    "new c1 from a fresh stream"]
    assert follower.polls == 7


def test_following_forgets_ids_outside_the_overlap_window(logs_client):
    base = now_ms() - 60_000
    batches = [[("a", base + i * 1000, f"second {i}")] for i in range(1, 20)]
    put_events(logs_client, GROUP, "a", [(base, "second 0")])
    script = Script(logs_client, batches)
    follower = Follower(Fetcher(logs_client, GROUP), start_ms=base - 1000, overlap_ms=3000, sleep=script)

    seen = follow(follower)

    assert seen == [f"second {i}" for i in range(20)]
    # only events within 3 s of the newest are remembered, not all 20
    assert sorted(follower.seen.values()) == [base + i * 1000 for i in (16, 17, 18, 19)]


def test_a_line_stamped_in_the_future_does_not_hide_later_lines(logs_client):
    now = now_ms()
    put_events(logs_client, GROUP, "skewed", [(now + 3600_000, "from a clock an hour fast")])
    script = Script(logs_client, [[("a", now + 1, "on time")], []])
    follower = Follower(Fetcher(logs_client, GROUP), start_ms=now - 1000, sleep=script)

    assert follow(follower) == ["from a clock an hour fast", "on time"]


def test_polls_back_off_when_idle_and_reset_when_lines_arrive(logs_client):
    base = now_ms() - 10_000
    put_events(logs_client, GROUP, "a", [(base, "first")])
    script = Script(logs_client, [[], [], [], [], [("a", base + 1, "second")], []])
    follower = Follower(Fetcher(logs_client, GROUP), start_ms=base - 1000, sleep=script)

    follow(follower)

    assert script.delays == [1.0, 2.0, 4.0, 5.0, 5.0, 1.0, 2.0]


def test_backoff_policy():
    b = Backoff()
    assert [b.idle() for _ in range(4)] == [2.0, 4.0, 5.0, 5.0]
    assert b.busy() == 1.0
    assert [b.throttled() for _ in range(6)] == [2.0, 4.0, 8.0, 16.0, 30.0, 30.0]
    assert b.busy() == 1.0


def _throttling():
    return ClientError({"Error": {"Code": "ThrottlingException", "Message": "Rate exceeded"}}, "FilterLogEvents")


def _server_error():
    return ClientError({"Error": {"Code": "ServiceUnavailableException", "Message": "try later"},
                        "ResponseMetadata": {"HTTPStatusCode": 503}}, "FilterLogEvents")


def _dropped_connection():
    return EndpointConnectionError(endpoint_url="https://logs.us-east-1.amazonaws.com/")


def _fail_calls(client, numbers: set[int], make_error) -> None:
    """Make the given FilterLogEvents calls (1-based) of a real moto client fail."""
    calls = {"n": 0}

    def maybe_fail(**_):
        calls["n"] += 1
        if calls["n"] in numbers:
            raise make_error()

    client.meta.events.register("before-call.logs.FilterLogEvents", maybe_fail)


@pytest.mark.parametrize("make_error", [_throttling, _server_error, _dropped_connection])
def test_a_failed_poll_while_following_backs_off_and_loses_nothing(logs_client, make_error):
    base = now_ms() - 10_000
    put_events(logs_client, GROUP, "a", [(base, "before")])
    _fail_calls(logs_client, {2, 3}, make_error)
    script = Script(logs_client, [[("a", base + 1, "during")], [], [], []])
    retries: list[float] = []
    follower = Follower(Fetcher(logs_client, GROUP), start_ms=base - 1000, sleep=script,
                        on_retry=lambda delay, exc: retries.append(delay))

    seen = follow(follower)

    assert seen == ["before", "during"]
    assert retries == [2.0, 4.0]
    assert script.delays[:4] == [1.0, 2.0, 4.0, 1.0]


def test_a_first_poll_that_cannot_connect_ends_the_follow(logs_client):
    _fail_calls(logs_client, {1}, _dropped_connection)
    follower = Follower(Fetcher(logs_client, GROUP), start_ms=now_ms(), sleep=Script(logs_client, []))

    with pytest.raises(TransientLogsError, match="cannot read"):
        next(iter(follower))


# --- the command -------------------------------------------------------------------


def test_follow_command_prints_backlog_then_new_lines_and_exits_130_on_ctrl_c(logs_client, monkeypatch):
    base = now_ms() - 20_000
    put_events(logs_client, GROUP, "a", [(base + i, f"backlog {i}") for i in range(5)])
    script = Script(logs_client, [[("a", base + 100, "new 1")], [], [("b", base + 200, "new 2")]])
    monkeypatch.setattr(logs_cmd, "SLEEP", script)

    result = runner.invoke(make_app(), ["logs", "--log-group", GROUP, "--follow", "--format", "short",
                                        "--limit", "2"])

    assert result.exit_code == 130
    assert short_messages(result.stdout) == ["backlog 3", "backlog 4", "new 1", "new 2"]
    assert "Following" in result.stderr and GROUP in result.stderr
    assert "Traceback" not in result.output and "Aborted" not in result.output


def test_follow_with_nothing_yet_says_it_is_waiting(logs_client, monkeypatch):
    script = Script(logs_client, [[("a", now_ms() - 1000, "finally")]])
    monkeypatch.setattr(logs_cmd, "SLEEP", script)

    result = runner.invoke(make_app(), ["logs", "--log-group", GROUP, "-f", "--format", "json"])

    assert result.exit_code == 130
    assert "waiting for new ones" in result.stderr
    assert [json.loads(line)["message"] for line in result.stdout.splitlines()] == ["finally"]


@pytest.mark.slow
def test_ctrl_c_stops_a_following_subprocess_with_exit_130_and_no_traceback(moto_server, tmp_path):
    import boto3

    client = boto3.client("logs", endpoint_url=moto_server)
    client.create_log_group(logGroupName=GROUP)
    put_events(client, GROUP, "a", [(now_ms() - 2000, "already there")])
    proc = subprocess.Popen(
        [str(IMGPROC), "logs", "--log-group", GROUP, "--follow", "--format", "short"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=tmp_path,
        env=subprocess_env(AWS_ENDPOINT_URL=moto_server),
    )
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(iter(proc.stdout.readline, "")), daemon=True)
    reader.start()
    try:
        _wait_for(lambda: any("already there" in line for line in lines), proc)
        put_events(client, GROUP, "b", [(now_ms(), "appended while following")])
        _wait_for(lambda: any("appended while following" in line for line in lines), proc)

        proc.send_signal(signal.SIGINT)
        code = proc.wait(timeout=15)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    reader.join(timeout=5)
    stderr = proc.stderr.read()

    assert code == 130
    assert "Traceback" not in stderr
    assert [line.split(" ", 1)[1].strip() for line in lines] == ["already there", "appended while following"]


def _wait_for(condition, proc: subprocess.Popen, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if proc.poll() is not None:
            raise AssertionError(f"imgproc exited early ({proc.returncode}): {proc.stderr.read()}")
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting for imgproc logs --follow output")
        time.sleep(0.05)

"""`imgproc stats`: cost per 1,000 images and the memory size that would cost less.

The session fixture (tests/fixtures/logs/session.jsonl), worked out by hand:
  billed 241 + 471 + 196 + 30 + 5 + 30000 ms at 1024 MB = 30.943 GB-s; 6 requests; 3 images processed
  -> x86_64: 30.943 * 0.0000166667 + 6 * 0.0000002 = $0.000516918 -> $0.172306 per 1,000 images.
  Peak 320 MB -> floor 320 + 80 -> 448 MB (rounded up to 64). The timeout is left out of the sizing.
  CPU-bound ms (decode + transform + encode) per request: 202, 422, 162, 30 (70 capped at billed 30), 0;
  at 512 MB they double: billed 39 + 404 = 443, 893, 358, 60, 5 -> p50 358, p95 893.
"""

from __future__ import annotations

import json

import pytest

from cli.logs.cost import memory_floor

from logsdata import GROUP, load_session, make_app, now_ms, put_events, runner

X86, ARM, REQUEST = 0.0000166667, 0.0000133334, 0.0000002


def stats(*args: str):
    return runner.invoke(make_app(), ["stats", "--log-group", GROUP, *args])


def cost_json(*args: str) -> dict:
    result = stats("--json", *args)
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)["cost"]


def cpu_bound_session(client, memory_mb: int, calls: int = 3) -> None:
    """``calls`` invocations each billed 1000 ms, 900 of them decode/transform/encode, peak 200 MB."""
    now, events = now_ms(), []
    for i in range(calls):
        rid = f"req-{i}"
        image = {"timestamp": "2026-11-26T14:00:00.000Z", "level": "INFO", "service": "imgproc", "event": "image",
                 "request_id": rid, "key": f"uploads/{i}.jpg", "outcome": "ok",
                 "ms": {"download": 50.0, "decode": 300.0, "transform": 200.0, "encode": 400.0, "upload": 50.0,
                        "total": 1000.0}}
        report = (f"REPORT RequestId: {rid}\tDuration: 999.50 ms\tBilled Duration: 1000 ms\t"
                  f"Memory Size: {memory_mb} MB\tMax Memory Used: 200 MB\t")
        events += [(now - 60_000 + 10 * i, json.dumps(image)), (now - 60_000 + 10 * i + 5, report)]
    put_events(client, GROUP, "s", events)


def test_cost_per_thousand_images_from_the_session(logs_client):
    load_session(logs_client)

    cost = cost_json()

    assert (cost["architecture"], cost["architecture_from"]) == ("x86_64", "[deploy] architecture")
    assert cost["prices_as_of"].endswith("us-east-1")
    assert cost["gb_seconds"] == 30.943
    assert cost["total_usd"] == pytest.approx(30.943 * X86 + 6 * REQUEST)
    assert cost["per_1000_images_usd"] == pytest.approx((30.943 * X86 + 6 * REQUEST) / 3 * 1000)
    assert cost["memory_floor_mb"] == 448
    sizes = {o["memory_mb"]: o for o in cost["memory_options"]}
    assert min(sizes) == 448 and 1024 in sizes and sizes[1024]["change"] == 0
    assert (sizes[512]["billed_ms_p50"], sizes[512]["billed_ms_p95"]) == (358, 893)
    # Below 1 vCPU the modelled cost barely moves (the CPU-bound part costs the same GB-s at any size):
    # nothing is 10% cheaper, so nothing is suggested.
    assert cost["suggestion"] is None
    assert "1769 MB" in cost["model"]


def test_an_over_provisioned_cpu_bound_function_is_told_the_cheaper_size(logs_client):
    cpu_bound_session(logs_client, memory_mb=3008)

    cost = cost_json()

    # Per call at m MB: (100 + 900 * 1769 / min(m, 1769)) ms * m. 320 MB (floor: 200 + 64 -> 320) is the cheapest;
    # 512 MB is within 2% of it and faster, so it is the one suggested: 3210 ms instead of 1000 ms, 45% less.
    assert cost["memory_floor_mb"] == 320
    expected = 3 * (3210 / 1000 * 512 / 1024 * X86 + REQUEST)
    spent = 3 * (1.0 * 3008 / 1024 * X86 + REQUEST)
    assert cost["suggestion"]["memory_mb"] == 512
    assert cost["suggestion"]["billed_ms_p95"] == 3210
    assert cost["suggestion"]["change"] == pytest.approx(expected / spent - 1, abs=1e-4)
    assert cost["suggestion"]["change"] < -0.4

    text = stats().stdout
    assert "memory = 512 in [deploy] would cost 45% less" in text
    assert "prices as of 2026-11-30, us-east-1" in text
    assert "scales inversely with memory below 1769 MB" in text


def test_no_size_is_suggested_that_would_come_close_to_the_timeout_and_arm_has_its_price(logs_client, tmp_path):
    (tmp_path / "imgproc.toml").write_text('[deploy]\ntimeout = 3\narchitecture = "arm64"\n', encoding="utf-8")
    cpu_bound_session(logs_client, memory_mb=3008)

    cost = cost_json()

    assert cost["architecture"] == "arm64"
    assert cost["total_usd"] == pytest.approx(3 * (3008 / 1024 * ARM + REQUEST))
    sizes = {o["memory_mb"]: o for o in cost["memory_options"]}
    # 320 and 512 MB would take 5.1 s and 3.2 s: more than 80% of the 3 s timeout.
    assert sizes[320]["near_timeout"] and sizes[512]["near_timeout"] and not sizes[768]["near_timeout"]
    # 768 MB is the cheapest clear of the timeout and 1024 MB is within 2% of it.
    assert cost["suggestion"]["memory_mb"] == 1024


def test_memory_is_never_suggested_below_the_peak_plus_headroom(logs_client):
    # Mostly waiting on S3 (no CPU-bound ms): smaller is always cheaper, down to the floor and no further.
    now = now_ms()
    report = "REPORT RequestId: r{}\tDuration: 400.00 ms\tBilled Duration: 400 ms\tMemory Size: 2048 MB\tMax Memory Used: {} MB\t"
    put_events(logs_client, GROUP, "s", [(now - 60_000, report.format(1, 900)), (now - 50_000, report.format(2, 1000))])

    cost = cost_json()

    assert cost["memory_floor_mb"] == 1280  # 1000 + 250, rounded up to 64
    assert min(o["memory_mb"] for o in cost["memory_options"]) == 1280
    assert cost["suggestion"]["memory_mb"] == 1280
    assert cost["per_1000_images_usd"] is None  # no image line: nothing to divide by


@pytest.mark.parametrize("peak,floor", [(0, 128), (50, 128), (200, 320), (320, 448), (1000, 1280), (10000, 10240)])
def test_memory_floor(peak, floor):
    assert memory_floor(peak) == floor

"""`imgproc reprocess` end to end against `imgproc local up`, through the real CLI, no Docker:
uploads made while the trigger was broken are all rendered by one run, a second run sends
nothing, a preset change re-renders exactly that preset's renditions, and the S3 Batch
Operations path ends with a completion report where every task succeeded.
(The 500-image run is measured by tests/support/measure_reprocess.py.)"""

from __future__ import annotations

import json
import time

import pytest
from PIL import Image
from reprocess_scenario import LocalUp, deploy, output_heads, report_rows, upload_without_trigger, wait_until_current

from cli.emulator.runner import find_runtime_python

from imaging import encode, photo

pytestmark = pytest.mark.slow
COUNT = 24


@pytest.fixture
def local(tmp_path):
    _python, warning = find_runtime_python("python3.12")
    assert warning is None, f"the e2e test needs Lambda's Python: {warning}"
    with LocalUp(tmp_path) as running:
        yield running


def test_reprocess_renders_what_the_broken_trigger_missed_then_only_what_a_preset_change_affects(local):
    deploy(local, thumb=100)
    keys = upload_without_trigger(local, COUNT, "trip/")

    plan = local.json("reprocess", "--dry-run")["plan"]
    assert plan["counts"] == {"current": 0, "missing": COUNT, "stale": 0, "failed": 0}
    assert plan["renditions_to_render"] == {"missing": 3 * COUNT}

    sent = local.json("reprocess", "--yes")
    assert sent["sent"]["how"] == "invoke" and sent["sent"]["sent"] == COUNT and not sent["sent"]["failed"]
    plan, _ = wait_until_current(local, COUNT, timeout=180)
    assert plan["counts"]["current"] == COUNT

    again = local.json("reprocess", "--yes")
    assert again["plan"]["to_send"] == 0 and "sent" not in again  # a second run sends nothing

    # A preset change: only the thumb renditions are stale, and only they are rewritten.
    before = output_heads(local, keys)
    deploy(local, thumb=120)
    plan = local.json("reprocess", "--dry-run", "--preset", "thumb")["plan"]
    assert plan["counts"]["stale"] == COUNT and plan["renditions_to_render"] == {"stale-recipe": COUNT}
    assert local.json("reprocess", "--yes")["sent"]["sent"] == COUNT
    wait_until_current(local, COUNT, timeout=180)
    after = output_heads(local, keys)
    changed = {k for k in before if after[k]["ETag"] != before[k]["ETag"]}
    assert changed == {k for k in before if k.startswith("thumb/")}
    body = local.client("s3").get_object(Bucket=local.outputs()["OutputBucketName"], Key=sorted(changed)[0])["Body"]
    assert Image.open(body).size == (120, 90)
    assert local.json("reprocess", "--yes")["plan"]["to_send"] == 0


def test_batch_operations_job_renders_every_task_and_reports_success(local):
    deploy(local, thumb=100)
    keys = upload_without_trigger(local, 12, "big/")

    result = local.json("reprocess", "--yes", "--batch-operations", "--wait", "--timeout", "240", timeout=300)

    job = result["job"]
    assert job["status"] == "Complete" and job["total"] == 12 and job["succeeded"] == 12 and job["failed"] == 0
    rows = report_rows(local, job["report"])
    assert len(rows) == 12 and {r[3] for r in rows} == {"succeeded"}
    assert {r[6] for r in rows} == {"3 rendition(s) written"}
    assert local.json("reprocess", "--dry-run")["plan"]["counts"]["current"] == len(keys)
    status = local.run("reprocess", "--status", job["job_id"]).stdout
    assert "Complete, 12/12 tasks done (12 succeeded, 0 failed)" in status


def test_in_queue_mode_reprocess_sends_through_the_stacks_queue(local):
    deploy(local, thumb=100, deploy_table='trigger = "queue"\nbatch_window = 0')
    upload_without_trigger(local, 6, "q/")

    sent = local.json("reprocess", "--yes")

    assert sent["sent"]["how"] == "queue" and sent["sent"]["sent"] == 6 and not sent["sent"]["failed"]
    plan, _ = wait_until_current(local, 6, timeout=120)
    assert plan["counts"]["current"] == 6
    assert local.json("reprocess", "--yes")["plan"]["to_send"] == 0


def made_from(s3, bucket: str, stem: str) -> dict[str, str]:
    """{output key: the source key its metadata names} for a stem's three renditions that exist."""
    found = {}
    for key in (f"thumb/{stem}.jpg", f"web/{stem}.jpg", f"web/{stem}.webp"):
        try:
            found[key] = s3.head_object(Bucket=bucket, Key=key)["Metadata"]["imgproc-source-key"]
        except s3.exceptions.ClientError:
            pass
    return found


def wait_for(condition, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"not within {timeout} s: {what}"
        time.sleep(0.5)


def test_with_on_delete_remove_deleting_a_source_removes_its_renditions_and_never_anothers(local):
    deploy(local, thumb=100, deploy_table='on_delete = "remove"')
    local.run("status", timeout=60)  # the wiring (ObjectCreated and ObjectRemoved) is as the template says
    out = local.outputs()
    s3, src, dst = local.client("s3"), out["InputBucketName"], out["OutputBucketName"]
    logs = local.client("logs")

    def lines(word: str, event: str) -> dict[str, dict]:
        found = logs.filter_log_events(logGroupName=out["LogGroupName"], filterPattern=f'"{word}"')["events"]
        parsed = [json.loads(e["message"]) for e in found if e["message"].startswith("{")]
        return {line["key"]: line for line in parsed if line.get("event") == event}

    # d/a.jpg and d/a.png map to the same three output keys: the first keeps them, the second is refused.
    for key, fmt in (("d/a.jpg", "JPEG"), ("d/b.jpg", "JPEG")):
        s3.put_object(Bucket=src, Key=key, Body=encode(photo(480, 360, seed=len(key) + len(fmt)), fmt))
        stem = key.rpartition(".")[0]
        expected = dict.fromkeys((f"thumb/{stem}.jpg", f"web/{stem}.jpg", f"web/{stem}.webp"), key)
        wait_for(lambda stem=stem, expected=expected: made_from(s3, dst, stem) == expected, 90, f"renditions of {key}")
    s3.put_object(Bucket=src, Key="d/a.png", Body=encode(photo(480, 360, seed=9), "PNG"))
    wait_for(lambda: "d/a.png" in lines("failed", "image"), 90, "d/a.png refused")
    assert lines("failed", "image")["d/a.png"]["error"]["type"] == "OutputCollision"

    s3.delete_object(Bucket=src, Key="d/b.jpg")
    s3.delete_object(Bucket=src, Key="d/a.png")  # the outputs it maps to are d/a.jpg's

    wait_for(lambda: made_from(s3, dst, "d/b") == {}, 60, "d/b.jpg's renditions removed")
    wait_for(lambda: "d/a.png" in lines("removed", "removed"), 60, "the d/a.png delete event handled")
    line = lines("removed", "removed")["d/a.png"]
    assert line["outcome"] == "skipped" and {r["outcome"] for r in line["renditions"]} == {"kept"}
    assert made_from(s3, dst, "d/a") == dict.fromkeys(("thumb/d/a.jpg", "web/d/a.jpg", "web/d/a.webp"), "d/a.jpg")

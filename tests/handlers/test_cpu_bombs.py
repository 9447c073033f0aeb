"""CPU bombs in the handler (issue 13 item 6): refused from the JPEG markers, and a time limit per image."""

from __future__ import annotations

import json

import pytest

import lambda_entry
from core.events import put_event

from bombs import many_scan_jpeg
from imaging import encode, photo
from testdata import LambdaContext

IN, OUT = "cpu-in", "cpu-out"


@pytest.fixture
def s3(handler_s3):
    """moto buckets and a fresh handler cold start, configured like a deployed function."""
    return handler_s3


def use_config(monkeypatch, tmp_path, text: str) -> None:
    path = tmp_path / "imgproc.toml"
    path.write_text(text)
    monkeypatch.setenv("IMGPROC_CONFIG", str(path))
    lambda_entry.reset()


class ShortContext(LambdaContext):
    """A function invoked with ``seconds`` left before its timeout."""

    def __init__(self, seconds: float):
        self.deadline = lambda_entry.time.monotonic() + seconds

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self.deadline - lambda_entry.time.monotonic()) * 1000))


def image_lines(capsys) -> list[dict]:
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.strip()]
    return [x for x in lines if x.get("event") == "image"]


def test_a_many_scan_jpeg_is_refused_from_its_markers(s3, lambda_context, capsys):
    s3.put_object(Bucket=IN, Key="uploads/scans.jpg", Body=many_scan_jpeg(20_000))  # ~30 s of decoding
    s3.put_object(Bucket=IN, Key="uploads/fine.jpg", Body=encode(photo(900, 600), "JPEG", progressive=True))

    summary = lambda_entry.handler(put_event(IN, ["uploads/scans.jpg", "uploads/fine.jpg"]), lambda_context)

    bomb, fine = image_lines(capsys)
    assert summary == {"ok": 1, "failed": 1, "skipped": 0}
    assert bomb["error"]["type"] == "TooManyScans"
    assert bomb["error"]["message"] == "uploads/scans.jpg: 20,010 JPEG scans exceeds the 100-scan limit"
    assert fine["outcome"] == "ok"


def test_an_image_over_its_time_limit_is_logged_as_failed_and_the_next_one_renders(
        s3, lambda_context, capsys, monkeypatch, tmp_path):
    use_config(monkeypatch, tmp_path, "[limits]\nmax_scans = 100000\nmax_seconds = 1\n")
    s3.put_object(Bucket=IN, Key="slow.jpg", Body=many_scan_jpeg(20_000))
    s3.put_object(Bucket=IN, Key="fine.jpg", Body=encode(photo(900, 600), "JPEG"))

    summary = lambda_entry.handler(put_event(IN, ["slow.jpg", "fine.jpg"]), lambda_context)

    slow, fine = image_lines(capsys)
    assert summary == {"ok": 1, "failed": 1, "skipped": 0}
    assert slow["error"] == {"type": "ImageTimeout", "message": "slow.jpg: stopped after 1.0 s (limits.max_seconds)",
                             "transient": False}
    assert fine["outcome"] == "ok"
    assert sorted(o["Key"] for o in s3.list_objects_v2(Bucket=OUT)["Contents"]) == [
        "thumb/fine.jpg", "web/fine.jpg", "web/fine.webp"]


def test_the_handler_stops_before_the_functions_deadline(s3, capsys, monkeypatch, tmp_path):
    use_config(monkeypatch, tmp_path, "[limits]\nmax_scans = 100000\n")
    s3.put_object(Bucket=IN, Key="slow.jpg", Body=many_scan_jpeg(20_000))
    s3.put_object(Bucket=IN, Key="later.jpg", Body=encode(photo(900, 600), "JPEG"))
    context = ShortContext(lambda_entry.DEADLINE_MARGIN_S + 1)  # one second for the image, then the margin

    with pytest.raises(lambda_entry.RetryableFailure, match=r"later.jpg: not started"):
        lambda_entry.handler(put_event(IN, ["slow.jpg", "later.jpg"]), context)

    slow, later = image_lines(capsys)
    assert slow["error"]["type"] == "ImageTimeout"
    assert "the function's deadline is near" in slow["error"]["message"]
    assert later["error"]["type"] == "ImageTimeout" and later["error"]["transient"] is True
    assert context.get_remaining_time_in_millis() > 0  # returned before Lambda would have killed it

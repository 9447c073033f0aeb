"""`imgproc push`: concurrent uploads with content types, unchanged files skipped, `--wait` for renditions."""

from __future__ import annotations

import hashlib
import json
import threading
import time

import pytest

from helpers_deploy import IN_BUCKET, OUT_BUCKET, client, deploy, imgproc, ok, write_config
from imaging import encode, photo

pytestmark = pytest.mark.slow


@pytest.fixture
def photos(tmp_path):
    src = tmp_path / "photos"
    (src / "trip").mkdir(parents=True)
    (src / "a.jpg").write_bytes(encode(photo(64, 48, seed=1), "JPEG"))
    (src / "trip" / "b c.png").write_bytes(encode(photo(64, 48, seed=2), "PNG"))
    (src / "notes.txt").write_text("not an image")
    (src / ".hidden.jpg").write_bytes(b"skip me")
    return src


def test_push_uploads_images_with_content_types_and_skips_unchanged(moto_server, tmp_path, photos):
    write_config(tmp_path, 'input_prefix = "uploads/"\nsuffixes = [".jpg"]\n')
    deploy(tmp_path)
    first = ok(imgproc("push", str(photos), "--prefix", "2026/", cwd=tmp_path))
    assert "uploaded 2" in first.stdout and "unchanged 0" in first.stdout
    assert "1 file(s) do not end with .jpg and will not be processed, e.g. uploads/2026/trip/b c.png" in first.stdout
    s3 = client("s3")
    keys = sorted(o["Key"] for o in s3.list_objects_v2(Bucket=IN_BUCKET)["Contents"])
    assert keys == ["uploads/2026/a.jpg", "uploads/2026/trip/b c.png"]
    head = s3.head_object(Bucket=IN_BUCKET, Key="uploads/2026/trip/b c.png")
    assert head["ContentType"] == "image/png"
    assert head["ETag"].strip('"') == hashlib.md5((photos / "trip" / "b c.png").read_bytes()).hexdigest()
    modified = s3.head_object(Bucket=IN_BUCKET, Key="uploads/2026/a.jpg")["LastModified"]

    (photos / "trip" / "b c.png").write_bytes(encode(photo(64, 48, seed=3), "PNG"))
    second = ok(imgproc("push", str(photos), "--prefix", "2026/", cwd=tmp_path))
    assert "uploaded 1" in second.stdout and "unchanged 1" in second.stdout
    assert s3.head_object(Bucket=IN_BUCKET, Key="uploads/2026/a.jpg")["LastModified"] == modified


def test_push_wait_times_out_on_stale_renditions_and_reports_latency_when_they_appear(moto_server, tmp_path,
                                                                                      photos):
    write_config(tmp_path, 'presets = ["web"]\n')
    deploy(tmp_path)
    s3 = client("s3")
    expected = ["web/a.jpg", "web/a.webp"]  # core.naming.s3_output_key for the deployed presets
    # A rendition made from another version of the source does not count.
    s3.put_object(Bucket=OUT_BUCKET, Key="web/a.jpg", Body=b"old", Metadata={"imgproc-source-etag": "0" * 32})
    timeout = imgproc("push", str(photos / "a.jpg"), "--wait", "--timeout", "1", cwd=tmp_path)
    assert timeout.returncode == 1
    assert "timeout after 1 s: 2 renditions missing" in timeout.stdout

    etag = s3.head_object(Bucket=IN_BUCKET, Key="a.jpg")["ETag"].strip('"')
    s3.delete_object(Bucket=IN_BUCKET, Key="a.jpg")  # so the next push uploads (and waits) again

    def function_stand_in():
        """moto cannot run the function without Docker: write what it would, once the upload is there."""
        deadline = time.time() + 30
        while time.time() < deadline:
            try:
                s3.head_object(Bucket=IN_BUCKET, Key="a.jpg")
                break
            except Exception:
                time.sleep(0.1)
        time.sleep(0.5)
        for key in expected:
            s3.put_object(Bucket=OUT_BUCKET, Key=key, Body=b"rendition", Metadata={"imgproc-source-etag": etag})

    writer = threading.Thread(target=function_stand_in, daemon=True)
    writer.start()
    proc = ok(imgproc("push", str(photos / "a.jpg"), "--wait", "--timeout", "30", cwd=tmp_path))
    writer.join(5)
    assert "uploaded 1" in proc.stdout
    assert "renditions ready for 1/1 images: latency median" in proc.stdout


def test_push_without_a_stack_exits_1(moto_server, tmp_path, photos):
    proc = imgproc("push", str(photos), cwd=tmp_path)
    assert proc.returncode == 1 and "no stack named imgproc" in proc.stderr


def test_push_wait_reports_an_image_the_function_failed_instead_of_waiting_out_the_timeout(
        moto_server, tmp_path, photos):
    write_config(tmp_path, 'presets = ["thumb"]\n')
    deploy(tmp_path)
    logs = client("logs")
    group = "/aws/lambda/imgproc-process"

    def failing_function_stand_in():
        """What the deployed handler logs for a corrupt upload (moto cannot run it without Docker)."""
        s3 = client("s3")
        deadline = time.time() + 30
        while time.time() < deadline:
            try:
                s3.head_object(Bucket=IN_BUCKET, Key="a.jpg")
                break
            except Exception:
                time.sleep(0.1)
        line = {"event": "image", "key": "a.jpg", "outcome": "failed", "level": "ERROR",
                "error": {"type": "CorruptImage", "message": "a.jpg: cannot decode image", "transient": False}}
        try:
            logs.create_log_stream(logGroupName=group, logStreamName="s1")
        except logs.exceptions.ResourceAlreadyExistsException:
            pass
        logs.put_log_events(logGroupName=group, logStreamName="s1",
                            logEvents=[{"timestamp": int(time.time() * 1000), "message": json.dumps(line)}])

    writer = threading.Thread(target=failing_function_stand_in, daemon=True)
    writer.start()
    proc = imgproc("push", str(photos / "a.jpg"), "--wait", "--timeout", "60", cwd=tmp_path)
    writer.join(5)
    assert proc.returncode == 1
    assert "failed a.jpg: CorruptImage: a.jpg: cannot decode image" in proc.stdout
    assert "timeout" not in proc.stdout  # it stopped on the log line, not at the 60 s timeout


def test_push_wait_on_files_already_uploaded_without_renditions_suggests_reprocess(moto_server, tmp_path, photos):
    write_config(tmp_path, 'presets = ["web"]\n')
    deploy(tmp_path)
    ok(imgproc("push", str(photos / "a.jpg"), "--prefix", "trip/", cwd=tmp_path))  # uploaded; nothing rendered it

    again = imgproc("push", str(photos / "a.jpg"), "--prefix", "trip/", "--wait", "--timeout", "5", cwd=tmp_path)

    assert again.returncode == 1
    assert "uploaded 0" in again.stdout and "nothing to wait for" not in again.stdout
    assert "1 file(s) were already uploaded but have no renditions, e.g. trip/a.jpg" in again.stdout
    assert "imgproc reprocess --prefix trip/" in again.stdout

    etag = client("s3").head_object(Bucket=IN_BUCKET, Key="trip/a.jpg")["ETag"].strip('"')
    for key in ("web/trip/a.jpg", "web/trip/a.webp"):  # what the function writes once reprocessed
        client("s3").put_object(Bucket=OUT_BUCKET, Key=key, Body=b"r", Metadata={"imgproc-source-etag": etag})
    done = ok(imgproc("push", str(photos / "a.jpg"), "--prefix", "trip/", "--wait", cwd=tmp_path))
    assert "nothing to wait for" in done.stdout and "reprocess" not in done.stdout

"""`imgproc process` as a user runs it: exit codes, JSON summary, incremental reruns."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
from PIL import Image
from typer.testing import CliRunner

from cli.app import app

from imaging import decode, encode, jpeg_with_orientation, photo, psnr, reference_resize

runner = CliRunner()


def run(*args: str, cwd: Path | None = None):
    return runner.invoke(app, ["process", *args], catch_exceptions=False)


@pytest.fixture
def photos(tmp_path: Path) -> Path:
    src = tmp_path / "photos"
    (src / "trip" / "day1").mkdir(parents=True)
    (src / "beach.jpg").write_bytes(encode(photo(1200, 900, seed=1), "JPEG", quality=90))
    (src / "trip" / "day1" / "Sunset Pier (1).JPG").write_bytes(
        jpeg_with_orientation(photo(800, 600, seed=2), 6, gps=True)
    )
    (src / "trip" / "logo.png").write_bytes(encode(photo(300, 300, seed=3).convert("RGBA"), "PNG"))
    (src / "trip" / "notes.txt").write_text("not an image")
    return src


def digest(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def summary(result) -> dict:
    return json.loads(result.stdout)


def test_processes_every_image_into_the_default_output_folder(photos: Path):
    before = digest(photos)
    result = run(str(photos), "--json", "--jobs", "2")
    assert result.exit_code == 0, result.output
    data = summary(result)
    assert data["processed"] == 3 and data["skipped"] == 1 and data["failed"] == []
    out = photos.parent / "photos-processed"
    written = {Path(o["path"]).relative_to(out).as_posix() for o in data["outputs"]}
    assert written == {
        "beach-thumb.jpg", "beach-web.jpg", "beach-web.webp",
        "trip/logo-thumb.jpg", "trip/logo-web.jpg", "trip/logo-web.webp",
        "trip/day1/Sunset Pier (1)-thumb.jpg", "trip/day1/Sunset Pier (1)-web.jpg",
        "trip/day1/Sunset Pier (1)-web.webp",
    }
    for o in data["outputs"]:
        img = Image.open(o["path"])
        assert img.size == (o["width"], o["height"]) and o["bytes"] == Path(o["path"]).stat().st_size
        assert o["format"] == img.format.lower()
    assert digest(photos) == before  # inputs untouched
    assert not list(out.rglob("*.part"))


def test_outputs_are_upright_sized_and_faithful(photos: Path):
    out = photos.parent / "out"
    assert run(str(photos), "-o", str(out), "--preset", "thumb").exit_code == 0
    rotated = decode((out / "trip/day1/Sunset Pier (1)-thumb.jpg").read_bytes())
    assert rotated.size == (150, 200)  # 800x600 stored, Orientation 6 -> portrait
    assert not rotated.getexif()  # GPS and the rest stripped
    beach = decode((out / "beach-thumb.jpg").read_bytes())
    reference = reference_resize(decode((photos / "beach.jpg").read_bytes()), (200, 150))
    assert psnr(beach, reference) > 30


def test_rerun_skips_up_to_date_sources_and_force_redoes_them(photos: Path):
    assert run(str(photos)).exit_code == 0
    again = summary(run(str(photos), "--json"))
    assert again["processed"] == 0 and again["unchanged"] == 3
    (photos / "beach.jpg").write_bytes(encode(photo(1000, 800, seed=7), "JPEG"))
    changed = summary(run(str(photos), "--json"))
    assert changed["processed"] == 1 and changed["outputs"][0]["source"].endswith("beach.jpg")
    forced = summary(run(str(photos), "--json", "--force"))
    assert forced["processed"] == 3


def test_a_different_preset_is_not_considered_up_to_date(photos: Path):
    assert run(str(photos), "--preset", "thumb").exit_code == 0
    data = summary(run(str(photos), "--preset", "web", "--json"))
    assert data["processed"] == 3


def test_deleted_output_is_rebuilt(photos: Path):
    assert run(str(photos)).exit_code == 0
    (photos.parent / "photos-processed" / "beach-web.webp").unlink()
    data = summary(run(str(photos), "--json"))
    assert data["processed"] == 1


def test_dry_run_lists_outputs_and_writes_nothing(photos: Path):
    result = run(str(photos), "--dry-run", "--preset", "thumb")
    assert result.exit_code == 0
    assert "beach-thumb.jpg" in result.stdout and "nothing written" in result.stdout
    assert not (photos.parent / "photos-processed").exists()


def test_a_corrupt_file_fails_alone_and_sets_exit_code_1(photos: Path):
    good = (photos / "beach.jpg").read_bytes()
    (photos / "broken.jpg").write_bytes(good[: len(good) // 3])
    (photos / "fake.png").write_bytes(b"definitely not a png")
    result = run(str(photos), "--json")
    assert result.exit_code == 1
    data = summary(result)
    assert data["processed"] == 3
    failed = {Path(f["path"]).name: f for f in data["failed"]}
    assert set(failed) == {"broken.jpg", "fake.png"}
    assert failed["broken.jpg"]["type"] == "CorruptImage" and "\n" not in failed["broken.jpg"]["error"]
    assert failed["fake.png"]["type"] == "NotAnImage"
    assert (photos / "broken.jpg").read_bytes() == good[: len(good) // 3]
    assert not (photos.parent / "photos-processed" / "broken-thumb.jpg").exists()


def test_two_sources_writing_the_same_output_is_a_reported_failure(photos: Path):
    (photos / "beach.png").write_bytes(encode(photo(100, 100), "PNG"))
    data = summary(run(str(photos), "--json", "--preset", "thumb"))
    [failure] = data["failed"]
    assert failure["type"] == "OutputCollision" and "beach-thumb.jpg" in failure["error"]


def test_output_inside_source_is_not_reprocessed(photos: Path):
    inner = photos / "renditions"
    assert run(str(photos), "-o", str(inner), "--preset", "thumb").exit_code == 0
    data = summary(run(str(photos), "-o", str(inner), "--preset", "thumb", "--json", "--force"))
    assert data["processed"] == 3


@pytest.mark.parametrize(
    "args, message",
    [
        (["/no/such/folder"], "no such folder"),
        (["{src}", "--preset", "huge"], "unknown preset 'huge'"),
        (["{src}", "--config", "{bad}"], "widht: unknown key"),
        (["{src}", "-o", "{src}"], "cannot be the source folder"),
    ],
)
def test_usage_errors_exit_2_with_one_line(photos: Path, tmp_path: Path, args, message):
    bad = tmp_path / "bad.toml"
    bad.write_text("[presets.a]\n[[presets.a.renditions]]\nname='a'\nwidht=1\n")
    args = [a.format(src=photos, bad=bad) for a in args]
    result = run(*args)
    assert result.exit_code == 2
    assert message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_bad_option_is_a_usage_error(photos: Path):
    assert run(str(photos), "--jobs", "0").exit_code == 2


def test_config_in_the_working_directory_is_used(photos: Path, tmp_path: Path, monkeypatch):
    (tmp_path / "imgproc.toml").write_text(
        "[presets.square]\n[[presets.square.renditions]]\nname='sq'\nwidth=64\nheight=64\nfit='cover'\nformat='png'\n"
    )
    monkeypatch.chdir(tmp_path)
    data = summary(run(str(photos), "--json"))
    assert {(o["width"], o["height"], o["format"]) for o in data["outputs"]} == {(64, 64, "png")}


def test_summary_table_is_shown_without_json(photos: Path):
    result = run(str(photos))
    assert "processed" in result.stdout and "images/s" in result.stdout


def test_ctrl_c_stops_cleanly_and_leaves_only_whole_files(tmp_path: Path):
    import signal
    import subprocess
    import sys
    import time

    src = tmp_path / "many"
    src.mkdir()
    data = encode(photo(1600, 1200, seed=5), "JPEG", quality=90)
    for i in range(60):
        (src / f"p{i:02}.jpg").write_bytes(data)
    out = tmp_path / "out"
    proc = subprocess.Popen(
        [sys.executable, "-c", "from cli.app import main; main()", "process", str(src), "-o", str(out), "-j", "2"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    deadline = time.monotonic() + 60
    while not list(out.rglob("*-web.webp")) and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130, stderr
    assert "Traceback" not in stderr and "interrupted" in stderr
    finished = [p for p in out.rglob("*") if p.is_file() and not p.name.startswith(".")]
    assert 0 < len(finished) < 180
    for path in finished:
        Image.open(path).load()  # every visible output is complete

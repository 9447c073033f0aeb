"""`imgproc process` as a careful Unix tool: modes, special files, checkpoints, layouts, odd names."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cli.app import app

from imaging import encode, photo

runner = CliRunner()


def run(*args: str):
    return runner.invoke(app, ["process", *args], catch_exceptions=False)


def summary(result) -> dict:
    return json.loads(result.stdout)


@pytest.fixture
def src(tmp_path: Path) -> Path:
    folder = tmp_path / "photos"
    folder.mkdir()
    (folder / "beach.jpg").write_bytes(encode(photo(640, 480, seed=1), "JPEG"))
    (folder / "logo.png").write_bytes(encode(photo(300, 200, seed=2), "PNG"))
    return folder


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


# --- item 7: outputs honour the umask like cp -----------------------------------------


@pytest.mark.parametrize("umask, expected", [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_outputs_and_manifest_get_0666_minus_the_umask(src: Path, tmp_path: Path, umask: int, expected: int):
    out = tmp_path / "web"
    previous = os.umask(umask)
    try:
        result = run(str(src), "-o", str(out), "--preset", "thumb", "--jobs", "1")
    finally:
        os.umask(previous)
    assert result.exit_code == 0, result.output
    files = sorted(p for p in out.rglob("*") if p.is_file())
    assert {p.name for p in files} == {"beach-thumb.jpg", "logo-thumb.jpg", ".imgproc-manifest.json"}
    assert {p.name: oct(mode(p)) for p in files} == {p.name: oct(expected) for p in files}
    assert not list(out.glob("*.part"))  # no temporary file left behind


# --- item 8: only regular files are read, never past the byte limit -----------------------


def test_a_fifo_and_a_dev_zero_symlink_fail_alone_with_one_line_each(src: Path, tmp_path: Path):
    os.mkfifo(src / "pipe.jpg")  # a reader would wait forever for a writer
    (src / "zero.jpg").symlink_to("/dev/zero")  # endless bytes
    (src / "dangling.jpg").symlink_to(src / "gone.jpg")
    (src / "alias.jpg").symlink_to("beach.jpg")  # inside SRC: followed
    elsewhere = tmp_path / "private"
    elsewhere.mkdir()
    (elsewhere / "secret.jpg").write_bytes(encode(photo(100, 100, seed=9), "JPEG"))
    (src / "leak.jpg").symlink_to(elsewhere / "secret.jpg")  # outside SRC: not followed
    out = tmp_path / "web"
    result = run(str(src), "-o", str(out), "--preset", "thumb", "--json")
    assert result.exit_code == 1
    data = summary(result)
    failed = {Path(f["path"]).name: f for f in data["failed"]}
    assert {name: f["type"] for name, f in failed.items()} == {
        "pipe.jpg": "NotRegularFile", "zero.jpg": "NotRegularFile",
        "dangling.jpg": "StorageError", "leak.jpg": "OutsideSource",
    }
    assert "FIFO" in failed["pipe.jpg"]["error"]
    assert "character device" in failed["zero.jpg"]["error"] and "/dev/zero" in failed["zero.jpg"]["error"]
    assert all("\n" not in f["error"] for f in failed.values())
    assert data["processed"] == 3  # beach, logo and the symlink to beach
    assert sorted(p.name for p in out.glob("*.jpg")) == ["alias-thumb.jpg", "beach-thumb.jpg", "logo-thumb.jpg"]
    assert stat.S_ISFIFO((src / "pipe.jpg").lstat().st_mode)  # left as it was


def test_a_source_is_never_read_past_the_byte_limit(src: Path, tmp_path: Path):
    from core.batch import read_source
    from core.errors import SourceTooLarge
    from core.recipe import Limits

    limits = Limits(max_source_bytes=1000)
    with pytest.raises(SourceTooLarge, match=r"beach\.jpg"):
        read_source(src, "beach.jpg", limits)
    (src / "small.bin").write_bytes(b"x" * 1000)
    data, (size, _mtime) = read_source(src, "small.bin", limits)
    assert len(data) == size == 1000


# --- item 2: same-stem sources never overwrite each other's renditions ----------------------


def shows(rendition: Path, source: Path) -> bool:
    from imaging import decode, psnr

    out, original = decode(rendition.read_bytes()), decode(source.read_bytes())
    return psnr(out, original.convert("RGB").resize(out.size)) > 30


@pytest.fixture
def assets(tmp_path: Path) -> Path:
    """A web asset folder: hero.jpg beside hero.webp, different pictures."""
    folder = tmp_path / "assets"
    folder.mkdir()
    (folder / "hero.jpg").write_bytes(encode(photo(400, 300, seed=1), "JPEG", quality=95))
    (folder / "hero.webp").write_bytes(encode(photo(400, 300, seed=7), "WEBP", quality=95))
    return folder


def test_same_stem_pair_fails_once_then_is_a_warned_skip_while_unchanged(assets: Path, tmp_path: Path):
    out = tmp_path / "web"
    first = run(str(assets), "-o", str(out), "--preset", "thumb", "--json")
    assert first.exit_code == 1
    [failure] = summary(first)["failed"]
    assert failure["type"] == "OutputCollision" and Path(failure["path"]).name == "hero.webp"
    assert "hero.jpg" in failure["error"] and "hero.webp" in failure["error"] and 'naming = "extension"' in failure["error"]
    assert shows(out / "hero-thumb.jpg", assets / "hero.jpg")

    again = run(str(assets), "-o", str(out), "--preset", "thumb", "--json")
    assert again.exit_code == 0, again.output
    data = summary(again)
    assert data["failed"] == [] and data["collisions_skipped"] == 1
    assert any("hero.webp" in w and "reported before" in w for w in data["warnings"])
    assert shows(out / "hero-thumb.jpg", assets / "hero.jpg")

    (assets / "hero.webp").write_bytes(encode(photo(400, 300, seed=8), "WEBP"))  # changed: reported again
    assert run(str(assets), "-o", str(out), "--preset", "thumb").exit_code == 1
    assert shows(out / "hero-thumb.jpg", assets / "hero.jpg")


def test_a_same_stem_file_added_later_never_takes_the_existing_rendition(assets: Path, tmp_path: Path):
    out = tmp_path / "web"
    (assets / "hero.webp").unlink()
    assert run(str(assets), "-o", str(out), "--preset", "thumb").exit_code == 0
    (assets / "hero.gif").write_bytes(encode(photo(400, 300, seed=3), "GIF"))  # sorts before hero.jpg
    result = run(str(assets), "-o", str(out), "--preset", "thumb", "--json")
    [failure] = summary(result)["failed"]
    assert Path(failure["path"]).name == "hero.gif" and "hero.jpg" in failure["error"]
    assert shows(out / "hero-thumb.jpg", assets / "hero.jpg")


def test_naming_by_extension_renders_both(assets: Path, tmp_path: Path):
    config = tmp_path / "imgproc.toml"
    config.write_text('[output]\nnaming = "extension"\n')
    out = tmp_path / "web"
    result = run(str(assets), "-o", str(out), "--preset", "thumb", "--config", str(config), "--json")
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in out.glob("*.jpg")) == ["hero.jpg-thumb.jpg", "hero.webp-thumb.jpg"]
    assert shows(out / "hero.jpg-thumb.jpg", assets / "hero.jpg")
    assert shows(out / "hero.webp-thumb.jpg", assets / "hero.webp")


def test_an_unknown_naming_is_a_config_error_naming_the_key(assets: Path, tmp_path: Path):
    config = tmp_path / "imgproc.toml"
    config.write_text('[output]\nnaming = "suffix"\n')
    result = run(str(assets), "--config", str(config))
    assert result.exit_code == 2 and "output.naming" in result.output


# --- item 10: the manifest is checkpointed as the run goes -------------------------------


def test_a_run_killed_with_sigkill_is_resumed_not_redone(tmp_path: Path):
    import signal
    import subprocess
    import sys
    import time

    src, out = tmp_path / "many", tmp_path / "web"
    src.mkdir()
    for i in range(50):
        (src / f"img{i:02d}.jpg").write_bytes(encode(photo(1200, 900, seed=i), "JPEG"))
    cmd = [sys.executable, "-c", "from cli.app import main; main()", "process", str(src), "-o", str(out), "--jobs", "1"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    manifest = out / ".imgproc-manifest.json"
    try:
        deadline = time.monotonic() + 120
        while not manifest.exists() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.02)
        assert proc.poll() is None, "the run ended before its first checkpoint"
        os.killpg(proc.pid, signal.SIGKILL)  # the CLI and its workers, mid-run
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    checkpointed = set(json.loads(manifest.read_text())["entries"])  # a whole document, never half-written
    assert 0 < len(checkpointed) < 50

    rerun = run(str(src), "-o", str(out), "--json", "--jobs", "2")
    assert rerun.exit_code == 0, rerun.output
    data = summary(rerun)
    redone = {Path(o["source"]).name for o in data["outputs"]}
    assert data["unchanged"] == len(checkpointed)
    assert redone == {f"img{i:02d}.jpg" for i in range(50)} - checkpointed


# --- item 11: read-only output, SRC inside OUT, names with brackets ----------------------------


def _not_world_readable(path: Path) -> Path | None:
    """The first folder on the way to ``path`` that other users cannot enter, if any."""
    for folder in (path, *path.parents):
        if not folder.stat().st_mode & 0o001:
            return folder
    return None


def test_a_read_only_output_folder_is_one_error_line_not_a_traceback(tmp_path: Path):
    import subprocess
    import sys
    import tempfile

    base = Path(tempfile.mkdtemp(prefix="imgproc-ro-"))  # outside root's private pytest folder
    try:
        base.chmod(0o755)
        src, out = base / "photos", base / "web"
        src.mkdir()
        out.mkdir()
        (src / "beach.jpg").write_bytes(encode(photo(320, 240), "JPEG"))
        out.chmod(0o555)
        cmd = [sys.executable, "-c", "from cli.app import main; main()", "process", str(src), "-o", str(out)]
        if os.geteuid() == 0:  # root writes anywhere: run as nobody
            private = _not_world_readable(Path(__file__).resolve().parents[2])
            if private:
                pytest.skip(f"running as root in a checkout only root can read ({private}): nobody could not import imgproc")
            cmd = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", *cmd]
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=120, env={**os.environ, "COLUMNS": "200"})
        assert done.returncode == 1, done.stderr
        assert "Traceback" not in done.stderr + done.stdout
        assert f"{out}: cannot write to the output folder (Permission denied)" in done.stderr
        assert list(out.iterdir()) == []
    finally:
        (base / "web").chmod(0o755)
        import shutil

        shutil.rmtree(base)


def test_src_inside_out_never_overwrites_an_input(tmp_path: Path):
    """OUT=/x, SRC=/x/photos and SRC holds photos/cat.jpg: its output OUT/photos/cat-thumb.jpg is SRC/cat-thumb.jpg."""
    src = tmp_path / "photos"
    (src / "photos").mkdir(parents=True)
    (src / "photos" / "cat.jpg").write_bytes(encode(photo(320, 240, seed=1), "JPEG"))
    precious = encode(photo(320, 240, seed=2), "JPEG")
    (src / "cat-thumb.jpg").write_bytes(precious)  # an input that happens to have that name
    result = run(str(src), "-o", str(tmp_path), "--preset", "thumb", "--json")
    assert result.exit_code == 1
    data = summary(result)
    [failure] = data["failed"]
    assert failure["type"] == "UnsafeOutput" and Path(failure["path"]).name == "cat.jpg"
    assert "inside the source folder" in failure["error"] and "\n" not in failure["error"]
    assert (src / "cat-thumb.jpg").read_bytes() == precious
    assert sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*-thumb.jpg")) == [
        "cat-thumb-thumb.jpg", "photos/cat-thumb.jpg"]  # the input's own rendition, in OUT; the input itself


def test_a_symlinked_folder_in_out_cannot_lead_outputs_into_src(src: Path, tmp_path: Path):
    out = tmp_path / "web"
    out.mkdir()
    (src / "trip").mkdir()
    (src / "trip" / "a.jpg").write_bytes(encode(photo(320, 240), "JPEG"))
    (out / "trip").symlink_to(src / "trip")  # OUT/trip is SRC/trip
    data = summary(run(str(src), "-o", str(out), "--preset", "thumb", "--json"))
    [failure] = data["failed"]
    assert failure["type"] == "UnsafeOutput" and "trip/a.jpg" in failure["path"]
    assert sorted(p.name for p in (src / "trip").iterdir()) == ["a.jpg"]


BRACKETED = "x[/]y [b]bold [red].jpg"  # folder "x[", file "]y ...": "[/]" alone made rich raise MarkupError


def test_names_with_brackets_are_printed_literally_by_process_and_dry_run(tmp_path: Path, monkeypatch):
    monkeypatch.setenv("COLUMNS", "400")  # the summary table keeps the output path on one line
    src = tmp_path / "in[" / "]photos"
    (src / "x[").mkdir(parents=True)
    (src / BRACKETED).write_bytes(b"not an image at all")
    (src / "ok [b].jpg").write_bytes(encode(photo(320, 240), "JPEG"))
    out = tmp_path / "out[" / "]"
    dry = run(str(src), "-o", str(out), "--preset", "thumb", "--dry-run")
    assert dry.exit_code == 0, dry.output
    assert f"{src / BRACKETED} → {out / 'x[/]y [b]bold [red]-thumb.jpg'}" in dry.stdout
    result = run(str(src), "-o", str(out), "--preset", "thumb")
    assert result.exit_code == 1
    text = " ".join(result.output.split())
    assert f"failed {BRACKETED}: " in text and str(out) in text
    assert (out / "ok [b]-thumb.jpg").is_file()


def test_invoke_prints_bracketed_keys_literally(aws, monkeypatch, tmp_path):
    import boto3

    for var in ("IMGPROC_OUTPUT_BUCKET", "IMGPROC_INPUT_BUCKET", "IMGPROC_PRESETS", "IMGPROC_CONFIG",
                "IMGPROC_OUTPUT_PREFIX", "IMGPROC_INPUT_PREFIX", "IMGPROC_REKOGNITION"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("COLUMNS", "250")
    s3 = boto3.client("s3")
    for bucket in ("brk-in", "brk-out"):
        s3.create_bucket(Bucket=bucket)
    good, bad = "up/[/]ok [b]x[/b].jpg", "up/[red]bad[/].jpg"
    s3.put_object(Bucket="brk-in", Key=good, Body=encode(photo(320, 240), "JPEG"))
    s3.put_object(Bucket="brk-in", Key=bad, Body=b"not an image")
    result = runner.invoke(app, ["invoke", "-b", "brk-in", "-k", good, "-k", bad, "--output-bucket", "brk-out",
                                 "--preset", "thumb"])
    assert result.exit_code == 1, result.output
    assert good in result.stdout and bad in result.stdout and "thumb/up/[/]ok [b]x[/b].jpg" in result.stdout
    assert f"NotAnImage: {bad}" in " ".join(result.stdout.split())

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
    with pytest.raises(SourceTooLarge, match="beach.jpg"):
        read_source(src, "beach.jpg", limits)
    (src / "small.bin").write_bytes(b"x" * 1000)
    data, (size, _mtime) = read_source(src, "small.bin", limits)
    assert len(data) == size == 1000

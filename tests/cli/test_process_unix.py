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

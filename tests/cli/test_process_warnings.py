"""`imgproc process` on awkward files: codec warnings once per file with its name, partial failures kept."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from cli.app import app

from imaging import encode, photo

BROKEN_EXIF = b"Exif\x00\x00II*\x00\x08\x00\x00\x00\x05\x00" + b"\x00" * 30
CONFIG = """
[presets.web]
[[presets.web.renditions]]
name = "tiny"
format = "jpeg"
max_bytes = 100
min_quality = 90
[[presets.web.renditions]]
name = "small"
width = 64
format = "webp"
"""


def _folder(tmp_path: Path) -> tuple[Path, Path]:
    src = tmp_path / "trip [2024]"  # rich markup characters in the path must print as they are
    src.mkdir()
    for name in ("a.jpg", "b.jpg"):
        (src / name).write_bytes(encode(photo(160, 120), "JPEG", exif=BROKEN_EXIF))
    config = tmp_path / "imgproc.toml"
    config.write_text(CONFIG, encoding="utf-8")
    return src, config


def test_warnings_are_printed_once_per_file_and_the_other_renditions_are_written(tmp_path):
    src, config = _folder(tmp_path)
    result = CliRunner().invoke(app, ["process", str(src), "-o", str(tmp_path / "out"), "-c", str(config), "-j", "1"],
                                catch_exceptions=False)
    assert result.exit_code == 1  # tiny.jpg cannot fit 100 bytes
    lines = result.output.splitlines()
    warned = [line for line in lines if line.startswith("warning ")]
    assert warned == [f"warning {n}: Corrupt EXIF data. Expecting to read 12 bytes but only got 6." for n in
                      ("a.jpg", "b.jpg")]
    assert "UserWarning" not in result.output
    assert sum("a.jpg: rendition tiny.jpg: even quality 90 is over max_bytes 100" in line for line in lines) == 1
    assert sorted(p.name for p in (tmp_path / "out").iterdir() if not p.name.startswith(".")) == [
        "a-small.webp", "b-small.webp"]


def test_json_lists_the_warnings_and_every_written_output(tmp_path):
    src, config = _folder(tmp_path)
    result = CliRunner().invoke(app, ["process", str(src), "-o", str(tmp_path / "out"), "-c", str(config), "-j", "1",
                                      "--json"], catch_exceptions=False)
    doc = json.loads(result.stdout)
    assert doc["warnings"] == [f"{n}: Corrupt EXIF data. Expecting to read 12 bytes but only got 6." for n in
                               ("a.jpg", "b.jpg")]
    assert sorted(Path(o["path"]).name for o in doc["outputs"]) == ["a-small.webp", "b-small.webp"]
    assert [f["type"] for f in doc["failed"]] == ["ByteBudgetExceeded", "ByteBudgetExceeded"]

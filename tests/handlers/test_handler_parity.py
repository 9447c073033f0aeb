"""Parity: for the same input bytes and presets, the Lambda handler writes exactly the bytes
`imgproc process` writes (and both equal core.pipeline.render)."""

from __future__ import annotations

import boto3
import pytest
from PIL import Image
from typer.testing import CliRunner

import lambda_entry
from cli.app import app
from core.events import put_event
from core.naming import local_output_path, s3_output_key
from core.pipeline import render
from core.recipe import builtin_config, load_config

from imaging import encode, jpeg_with_orientation, photo

IN, OUT = "imgproc-in", "imgproc-out"
CONFIG = """
[presets.card]
[[presets.card.renditions]]
name = "card"
width = 300
height = 300
fit = "cover"
format = ["jpeg", "webp", "png", "avif"]
quality = { jpeg = 85, webp = 75, avif = 50 }
sharpen = 0.5

[presets.thumb]
[[presets.thumb.renditions]]
name = "thumb"
width = 200
height = 200
format = "jpeg"
quality = 80
"""


def sources() -> dict[str, bytes]:
    rgba = photo(500, 400, seed=3).convert("RGBA")
    rgba.putalpha(Image.linear_gradient("L").resize((500, 400)))
    return {
        "trip/day 1/beach (2).jpg": jpeg_with_orientation(photo(900, 600, seed=2), 6, gps=True),
        "logo.png": encode(rgba, "PNG"),
        "grey.webp": encode(photo(640, 480, seed=5, mode="L"), "WEBP", quality=90),
    }


@pytest.fixture
def run_handler(aws, monkeypatch, tmp_path):
    """Upload the sources, run the handler with the given presets file, return {s3 key: bytes}."""

    def run(config_path, presets: str = ""):
        monkeypatch.setenv("IMGPROC_OUTPUT_BUCKET", OUT)
        if config_path is None:
            monkeypatch.delenv("IMGPROC_CONFIG", raising=False)  # default imgproc.toml beside lambda_entry.py
        else:
            monkeypatch.setenv("IMGPROC_CONFIG", str(config_path))
        monkeypatch.setenv("IMGPROC_PRESETS", presets)
        s3 = boto3.client("s3")
        s3.create_bucket(Bucket=IN)
        s3.create_bucket(Bucket=OUT)
        for key, data in sources().items():
            s3.put_object(Bucket=IN, Key=key, Body=data)
        lambda_entry.reset()
        try:
            assert lambda_entry.handler(put_event(IN, list(sources())), None)["failed"] == 0
        finally:
            lambda_entry.reset()
        return {o["Key"]: s3.get_object(Bucket=OUT, Key=o["Key"])["Body"].read()
                for o in s3.list_objects_v2(Bucket=OUT)["Contents"]}

    return run


@pytest.fixture
def config_file(tmp_path):
    path = tmp_path / "imgproc.toml"
    path.write_text(CONFIG)
    return path


def test_handler_bytes_equal_imgproc_process_bytes(run_handler, config_file, tmp_path, capsys):
    src = tmp_path / "photos"
    for rel, data in sources().items():
        (src / rel).parent.mkdir(parents=True, exist_ok=True)
        (src / rel).write_bytes(data)
    out = tmp_path / "out"
    result = CliRunner().invoke(app, ["process", str(src), "-o", str(out), "--config", str(config_file), "--jobs", "1"])
    assert result.exit_code == 0, result.output

    stored = run_handler(config_file)

    renditions = load_config(config_file).select()
    assert len(stored) == len(sources()) * len(renditions) == 15
    for rel in sources():
        for r in renditions:
            local = (out / local_output_path(rel, r)).read_bytes()
            assert stored[s3_output_key("", rel, r)] == local, f"{rel} {r.label} differs"


def test_handler_bytes_equal_render_with_builtin_presets_subset(run_handler, tmp_path, monkeypatch):
    monkeypatch.setattr(lambda_entry, "PACKAGE_ROOT", tmp_path)  # a package without imgproc.toml
    stored = run_handler(None, presets="web")  # -> the built-in presets
    config = builtin_config()
    renditions = config.select(["web"])
    for rel, data in sources().items():
        for out in render(data, renditions, config.limits, name=rel).outputs:
            assert stored[s3_output_key("", rel, out.rendition)] == out.data
    assert len(stored) == len(sources()) * len(renditions)

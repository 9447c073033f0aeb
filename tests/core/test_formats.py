"""Formats people have: HEIC/HEIF from phones and MPO from cameras.

Both render like any photo (orientation: tests/core/test_orientation.py),
lose their EXIF/GPS/XMP unless asked, are found by ``process``, and the HEIF
decoder is loaded only when a HEIF source arrives.
"""

from __future__ import annotations

import functools
import io
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from core import batch, errors, plugins
from core.pipeline import render
from core.recipe import Limits, Rendition, builtin_config

from imaging import decode, encode, photo, psnr, reference_resize

pillow_heif = pytest.importorskip("pillow_heif")

LIMITS = Limits()
ROOT = Path(__file__).resolve().parents[2]


def _exif_with_gps() -> Image.Exif:
    exif = Image.Exif()
    exif[0x010F] = "imgproc-test-phone"
    exif[0x8825] = {1: "N", 2: (51.0, 30.0, 0.0), 3: "W", 4: (0.0, 7.0, 0.0)}
    return exif


def heic(img: Image.Image, **params) -> bytes:
    buf = io.BytesIO()
    pillow_heif.from_pillow(img).save(buf, quality=95, **params)
    return buf.getvalue()


PICTURE = photo(320, 240, seed=31)


@functools.cache
def plain_heic() -> bytes:
    """Encoded once: x265 takes seconds even for a small picture."""
    return heic(PICTURE)


def test_heic_renders_like_the_photo_it_holds():
    out = render(plain_heic(), (Rendition(name="w", width=160, format="png"),), LIMITS, "IMG_0001.HEIC")
    assert out.source.format == "heif"
    img = decode(out.outputs[0].data)
    assert img.size == (160, 120)
    assert psnr(img, reference_resize(PICTURE, (160, 120))) > 30


def test_heic_metadata_is_stripped_like_any_photo():
    data = heic(PICTURE, exif=_exif_with_gps().tobytes(), xmp=b"<x:xmpmeta>secret place</x:xmpmeta>")
    for fmt in ("jpeg", "webp", "png", "avif"):
        out = render(data, (Rendition(name="t", width=100, format=fmt),), LIMITS, "gps.heic").outputs[0]
        assert not decode(out.data).getexif(), f"{fmt} kept EXIF"
        assert b"secret place" not in out.data and b"imgproc-test-phone" not in out.data


def test_mpo_gives_its_first_picture_even_when_animated_is_asked():
    second = Image.new("RGB", PICTURE.size, (0, 255, 0))
    data = encode(PICTURE, "MPO", quality=95, save_all=True, append_images=[second])
    for r in (Rendition(name="s", format="png"), Rendition(name="a", format="webp", animated=True, lossless=True)):
        out = render(data, (r,), LIMITS, "DSCF0001.MPO").outputs[0]
        img = Image.open(io.BytesIO(out.data))
        assert getattr(img, "n_frames", 1) == 1
        assert psnr(img.convert("RGB"), PICTURE) > 30


def test_process_finds_heic_and_mpo(tmp_path):
    src = tmp_path / "phone"
    src.mkdir()
    (src / "IMG_0001.HEIC").write_bytes(plain_heic())
    (src / "DSCF0001.MPO").write_bytes(encode(PICTURE, "MPO", save_all=True, append_images=[PICTURE]))
    (src / "notes.txt").write_text("not an image")
    renditions = builtin_config().select(["thumb"])
    plan = batch.plan(src, tmp_path / "out", renditions, {}, force=False)
    assert [j.relative for j in plan.jobs] == ["DSCF0001.MPO", "IMG_0001.HEIC"]
    assert plan.not_images == ("notes.txt",)
    for job in plan.jobs:
        result = batch.run_job(src, tmp_path / "out", job, renditions, LIMITS)
        assert result.ok, result.error
        assert decode((tmp_path / "out" / job.outputs[0]).read_bytes()).size[0] <= 200


def test_heif_can_be_left_out_of_the_allowed_inputs():
    with pytest.raises(errors.UnsupportedFormat, match="HEIF input is not allowed"):
        render(plain_heic(), (Rendition(name="t"),), Limits(input_formats=("jpeg",)), "a.heic")


def test_heif_without_the_plugin_says_what_to_install(monkeypatch):
    monkeypatch.setattr(plugins, "_register_heif", lambda: False)
    with pytest.raises(errors.UnsupportedFormat, match=r"a\.heic: HEIF/HEIC input needs the pillow-heif package"):
        render(plain_heic(), (Rendition(name="t"),), LIMITS, "a.heic")


def test_avif_is_not_mistaken_for_heif():
    assert not plugins.looks_like_heif(encode(PICTURE, "AVIF"))
    assert plugins.looks_like_heif(plain_heic())


def test_the_heif_decoder_is_loaded_only_for_heif_sources(tmp_path):
    (tmp_path / "a.jpg").write_bytes(encode(PICTURE, "JPEG"))
    (tmp_path / "b.heic").write_bytes(plain_heic())
    code = (
        "import sys, lambda_entry, lambda_api\n"
        "from core.pipeline import render\n"
        "from core.recipe import Limits, Rendition\n"
        "r = (Rendition(name='t', width=64),)\n"
        f"render(open({str(tmp_path / 'a.jpg')!r}, 'rb').read(), r, Limits(), 'a.jpg')\n"
        "print('pillow_heif' in sys.modules)\n"
        f"render(open({str(tmp_path / 'b.heic')!r}, 'rb').read(), r, Limits(), 'b.heic')\n"
        "print('pillow_heif' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "True"]

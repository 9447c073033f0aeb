"""Animated sources (GIF, APNG, animated WebP and AVIF) into every output format.

With ``animated = true`` a format that can animate (PNG, WebP, AVIF) keeps
every frame and its timing; JPEG gets the first frame. No combination may lose
the source, and the still renditions of the same source show the first frame.
"""

from __future__ import annotations

import io

import pytest
from PIL import Image, ImageSequence, features

from core import errors
from core.pipeline import render
from core.recipe import ANIMATED_FORMATS, OUTPUT_FORMATS, Limits, Rendition

from imaging import psnr

LIMITS = Limits()
SIZE = (48, 32)
FRAMES = 4
DURATION = 80


def _frame(i: int) -> Image.Image:
    """White canvas with a red block that moves right one step per frame."""
    img = Image.new("RGBA", SIZE, (255, 255, 255, 255))
    img.paste((220, 20, 20, 255), (i * 12, 0, i * 12 + 12, 16))
    return img


EXPECTED = [_frame(i) for i in range(FRAMES)]


def _animation(pil_format: str, **params) -> bytes:
    frames = [f.convert("RGB") for f in EXPECTED] if pil_format == "GIF" else EXPECTED
    buf = io.BytesIO()
    frames[0].save(buf, pil_format, save_all=True, append_images=frames[1:], duration=DURATION, loop=0, **params)
    return buf.getvalue()


SOURCES = {
    "gif": lambda: _animation("GIF"),
    "apng": lambda: _animation("PNG"),
    "webp": lambda: _animation("WEBP", lossless=True),
    "avif": lambda: _animation("AVIF", quality=90),
}


def _need_avif(*formats: str) -> None:
    if "avif" in formats and not features.check("avif"):
        pytest.skip("this Pillow has no AVIF codec")


def _frames(data: bytes) -> list[tuple[Image.Image, int | float]]:
    img = Image.open(io.BytesIO(data))
    return [(f.convert("RGB"), f.info.get("duration")) for f in ImageSequence.Iterator(img)]


@pytest.mark.parametrize("out_format", OUTPUT_FORMATS)
@pytest.mark.parametrize("source", sorted(SOURCES))
def test_every_animated_source_renders_into_every_format(source, out_format):
    _need_avif(source, out_format)
    r = Rendition(name="a", format=out_format, animated=True, quality=95)
    out = render(SOURCES[source](), (r,), LIMITS, f"anim.{source}").outputs[0]
    assert (out.width, out.height) == SIZE
    frames = _frames(out.data)
    if out_format in ANIMATED_FORMATS:
        assert len(frames) == FRAMES, f"{source} -> {out_format}: {len(frames)} frames"
        for i, (frame, duration) in enumerate(frames):
            assert psnr(frame, EXPECTED[i]) > 25, f"{source} -> {out_format}: frame {i} differs"
            assert duration == DURATION
    else:
        assert len(frames) == 1, f"{out_format} cannot animate: it gets the first frame"
        assert psnr(frames[0][0], EXPECTED[0]) > 25


@pytest.mark.parametrize("source", sorted(SOURCES))
def test_still_renditions_beside_an_animated_one_show_the_first_frame(source):
    _need_avif(source)
    # Rendered largest first: the animated rendition walks every frame before
    # the small still ones are made, and must not leave them the last frame.
    rs = (Rendition(name="big", format="webp", animated=True, lossless=True),
          Rendition(name="small", format="png", width=24),
          Rendition(name="photo", format="jpeg", animated=True, width=40, quality=95))
    small, photo = render(SOURCES[source](), rs, LIMITS, f"anim.{source}").outputs[1:]
    first = EXPECTED[0].convert("RGB")
    assert psnr(_frames(small.data)[0][0], first.resize((24, 16), Image.Resampling.LANCZOS)) > 25
    assert psnr(_frames(photo.data)[0][0], first.resize((40, 27), Image.Resampling.LANCZOS)) > 25


def test_without_animated_every_format_gets_the_first_frame():
    out = render(SOURCES["apng"](), (Rendition(name="a", format="webp"),), LIMITS, "a.png").outputs[0]
    assert len(_frames(out.data)) == 1


def test_frame_limit_applies_only_when_frames_are_kept():
    data = SOURCES["gif"]()
    tight = Limits(max_frames=3)
    with pytest.raises(errors.TooManyFrames):
        render(data, (Rendition(name="a", format="webp", animated=True),), tight, "a.gif")
    # JPEG keeps one frame whatever `animated` says, so the frame count does not matter.
    out = render(data, (Rendition(name="a", format="jpeg", animated=True),), tight, "a.gif").outputs[0]
    assert len(_frames(out.data)) == 1


def test_fractional_apng_frame_times_are_kept_to_the_millisecond():
    buf = io.BytesIO()
    EXPECTED[0].save(buf, "PNG", save_all=True, append_images=EXPECTED[1:], duration=[33.4, 66.6, 50, 50])
    r = Rendition(name="a", format="webp", animated=True, lossless=True)
    out = render(buf.getvalue(), (r,), LIMITS, "a.png").outputs[0]
    assert [d for _, d in _frames(out.data)] == [33, 67, 50, 50]

"""The engine, end to end on bytes: fit modes, orientation, modes, metadata, filters, limits."""

from __future__ import annotations

import dataclasses
import io
import struct
import tracemalloc
import zlib

import pytest
from PIL import Image, ImageCms, features

from core import errors, memory
from core.pipeline import render
from core.recipe import Limits, Rendition, Watermark

from imaging import (
    decode,
    encode,
    jpeg_with_orientation,
    photo,
    psnr,
    reference_resize,
    stored_for_orientation,
)

LIMITS = Limits()


def one(data: bytes, **settings) -> tuple[Image.Image, bytes]:
    r = Rendition(name="t", **settings)
    out = render(data, (r,), LIMITS, "test.jpg").outputs[0]
    return decode(out.data), out.data


# --- fit modes -----------------------------------------------------------------

SRC = photo(1200, 800, seed=3)
SRC_JPEG = encode(SRC, "JPEG", quality=95)


@pytest.mark.parametrize(
    "fit, box, expected",
    [
        ("inside", (300, 300), (300, 200)),
        ("inside", (300, None), (300, 200)),
        ("inside", (None, 100), (150, 100)),
        ("contain", (300, 300), (300, 300)),
        ("cover", (300, 300), (300, 300)),
        ("fill", (300, 100), (300, 100)),
        ("inside", (5000, 5000), (1200, 800)),  # never enlarges by default
    ],
)
def test_fit_modes_give_the_expected_dimensions(fit, box, expected):
    img, _ = one(SRC_JPEG, width=box[0], height=box[1], fit=fit, quality=95)
    assert img.size == expected


def test_inside_resize_matches_a_full_resolution_reference():
    img, _ = one(SRC_JPEG, width=600, height=600, quality=95)
    reference = reference_resize(decode(SRC_JPEG), (600, 400))
    assert psnr(img, reference) > 33


def test_cover_crops_at_the_gravity_side():
    # Left half black, right half white: a north-west cover crop of a square keeps black.
    src = Image.new("RGB", (400, 200), "white")
    src.paste((0, 0, 0), (0, 0, 200, 200))
    data = encode(src, "PNG")
    west, _ = one(data, width=100, height=100, fit="cover", gravity="west", format="png")
    east, _ = one(data, width=100, height=100, fit="cover", gravity="east", format="png")
    assert west.getpixel((50, 50)) == (0, 0, 0)
    assert east.getpixel((50, 50)) == (255, 255, 255)


def test_contain_pads_with_the_background_colour():
    img, _ = one(SRC_JPEG, width=300, height=300, fit="contain", background="#ff0000", format="png")
    assert img.size == (300, 300)
    assert img.getpixel((150, 5)) == (255, 0, 0)  # letterbox band above the 300x200 image
    assert img.getpixel((150, 150)) != (255, 0, 0)


def test_enlarge_scales_up_when_asked():
    img, _ = one(encode(photo(100, 50), "PNG"), width=400, height=400, enlarge=True)
    assert img.size == (400, 200)


def test_cascade_of_renditions_matches_rendering_each_alone():
    big = encode(photo(2400, 1600, seed=4), "JPEG", quality=95)
    rs = tuple(Rendition(name=n, width=w, height=w, quality=90) for n, w in (("l", 1200), ("m", 600), ("s", 150)))
    together = render(big, rs, LIMITS, "big.jpg").outputs
    for r, out in zip(rs, together, strict=False):
        alone = render(big, (r,), LIMITS, "big.jpg").outputs[0]
        assert (out.width, out.height) == (alone.width, alone.height)
        assert psnr(decode(out.data), decode(alone.data)) > 35


def test_every_step_of_the_cascade_stays_close_to_a_full_resolution_lanczos_resize():
    # 2400 px JPEG -> 1000 (DCT 1/2 draft, then a 1.2x BICUBIC step), 500 (a 2x LANCZOS step
    # from the 1000) and 125 (4x: box 2x, then LANCZOS 2x). Lossless outputs, so only resampling
    # counts. Box-reducing the exact 2x step (Pillow's reduce(2)) scores 49 dB at 500 px and 44 dB
    # at 125 px here: the speed it buys blurs and aliases every smaller rendition.
    data = encode(photo(2400, 1800, seed=5), "JPEG", quality=95)
    rs = tuple(Rendition(name=str(w), width=w, height=w, format="png") for w in (1000, 500, 125))
    outputs = render(data, rs, LIMITS, "big.jpg").outputs
    scores = {o.width: psnr(decode(o.data), reference_resize(decode(data), (o.width, o.height))) for o in outputs}
    assert scores[1000] > 46
    assert scores[500] > 51
    assert scores[125] > 50


def test_same_input_gives_identical_bytes():
    rs = (Rendition(name="a", width=300), Rendition(name="b", width=300, format="webp"))
    first = [o.data for o in render(SRC_JPEG, rs, LIMITS, "x").outputs]
    second = [o.data for o in render(SRC_JPEG, rs, LIMITS, "x").outputs]
    assert first == second


def test_process_workers_block_cache_gives_the_same_bytes_as_the_handler():
    # `imgproc process` workers keep Pillow's freed 1 MiB blocks (core.memory.keep_freed_blocks);
    # the Lambda handler keeps Pillow's default 16 MiB blocks, none kept. Laptop and Lambda must
    # still write identical renditions, across a cascade, a rotation and an alpha source.
    sources = [encode(photo(2400, 1600, seed=6), "JPEG", quality=92),
               jpeg_with_orientation(photo(1200, 900, seed=7), 6),
               encode(photo(900, 700, seed=8, mode="RGBA"), "PNG")]
    rs = tuple(Rendition(name=str(w), width=w, height=w, format=fmt)
               for w, fmt in ((1000, "jpeg"), (500, "webp"), (120, "png")))

    def all_bytes() -> list[bytes]:
        return [o.data for data in sources for o in render(data, rs, LIMITS, "x").outputs]

    size, kept = Image.core.get_block_size(), Image.core.get_blocks_max()
    default = all_bytes()
    try:
        memory.keep_freed_blocks()
        assert Image.core.get_block_size() == memory.BATCH_BLOCK_BYTES
        assert all_bytes() == all_bytes() == default  # the second pass reuses kept blocks
    finally:
        Image.core.set_blocks_max(kept)
        Image.core.set_block_size(size)


# --- orientation -------------------------------------------------------------

UPRIGHT = Image.new("RGB", (60, 40), (0, 0, 255))
UPRIGHT.paste((255, 0, 0), (0, 0, 20, 20))  # a red block marks the top-left corner


@pytest.mark.parametrize("orientation", range(1, 9))
def test_every_exif_orientation_is_applied_before_resizing(orientation):
    data = jpeg_with_orientation(stored_for_orientation(UPRIGHT, orientation), orientation)
    img, _ = one(data, format="png")
    assert img.size == (60, 40)
    r, g, b = img.getpixel((5, 5))
    assert r > 200 and b < 60, f"orientation {orientation}: top-left is {(r, g, b)}, expected red"
    r, g, b = img.getpixel((50, 30))
    assert b > 200 and r < 60, f"orientation {orientation}: bottom-right is {(r, g, b)}, expected blue"


@pytest.mark.parametrize("orientation", range(2, 9))
@pytest.mark.parametrize("fit, gravity", [("cover", "northwest"), ("cover", "south"), ("fill", "center"),
                                          ("contain", "east")])
def test_crops_and_fits_of_rotated_photos_match_the_upright_photo(orientation, fit, gravity):
    # The engine resizes the stored pixels and turns only the result upright:
    # every fit mode and crop position must land on the same part of the picture.
    upright = photo(480, 320, seed=21)
    r = Rendition(name="t", width=150, height=120, fit=fit, gravity=gravity, format="png", background="#102030")
    expected = render(jpeg_with_orientation(upright, 1), (r,), LIMITS, "up.jpg").outputs[0]
    rotated = jpeg_with_orientation(stored_for_orientation(upright, orientation), orientation)
    got = render(rotated, (r,), LIMITS, "rot.jpg").outputs[0]
    assert (got.width, got.height) == (expected.width, expected.height)
    assert psnr(decode(got.data), decode(expected.data)) > 30


def test_cascade_from_a_rotated_source_keeps_every_rendition_upright():
    upright = photo(1200, 800, seed=22)
    data = jpeg_with_orientation(stored_for_orientation(upright, 6), 6)
    rs = tuple(Rendition(name=n, width=w, height=w, format="png") for n, w in (("l", 600), ("m", 300), ("s", 75)))
    for r, out in zip(rs, render(data, rs, LIMITS, "r.jpg").outputs, strict=False):
        assert (out.width, out.height) == (r.width, r.width * 2 // 3)
        assert psnr(decode(out.data), reference_resize(upright, (out.width, out.height))) > 28


def test_rotated_source_reports_display_dimensions():
    data = jpeg_with_orientation(stored_for_orientation(photo(300, 400), 6), 6)
    result = render(data, (Rendition(name="t", width=150, height=150),), LIMITS, "r.jpg")
    assert (result.source.width, result.source.height) == (300, 400)
    assert (result.outputs[0].width, result.outputs[0].height) == (113, 150)


# --- modes and alpha ---------------------------------------------------------


def test_alpha_is_flattened_onto_the_background_for_jpeg():
    src = Image.new("RGBA", (100, 100), (0, 0, 0, 0))
    src.paste((0, 128, 0, 255), (50, 0, 100, 100))
    img, _ = one(encode(src, "PNG"), background="#ff00ff")
    assert img.mode == "RGB"
    assert max(abs(a - b) for a, b in zip(img.getpixel((10, 50)), (255, 0, 255), strict=False)) < 8
    assert max(abs(a - b) for a, b in zip(img.getpixel((90, 50)), (0, 128, 0), strict=False)) < 8


def test_alpha_survives_into_png_and_webp():
    src = Image.new("RGBA", (80, 80), (10, 20, 30, 0))
    for fmt in ("png", "webp"):
        img, _ = one(encode(src, "PNG"), format=fmt)
        assert img.mode == "RGBA" and img.getpixel((40, 40))[3] == 0


def test_cmyk_jpeg_becomes_rgb():
    data = encode(photo(200, 100).convert("CMYK"), "JPEG", quality=95)
    img, _ = one(data, format="png")
    assert img.mode == "RGB"
    assert psnr(img, photo(200, 100)) > 25


def test_sixteen_bit_greyscale_is_scaled_not_clipped():
    src = Image.new("I;16", (64, 64), 40000)  # 40000/65535 of full scale -> about 155
    img, _ = one(encode(src, "PNG"), format="png")
    assert img.mode == "L"
    assert abs(img.getpixel((10, 10)) - 155) <= 1


def test_palette_and_la_sources_are_converted():
    palette = photo(100, 100).convert("P", palette=Image.Palette.ADAPTIVE)
    la = Image.new("LA", (50, 50), (128, 200))
    assert one(encode(palette, "PNG"), format="jpeg")[0].mode == "RGB"
    la_out, _ = one(encode(la, "PNG"), format="png")
    assert la_out.mode == "RGBA" and la_out.getpixel((1, 1))[3] == 200


# --- metadata ------------------------------------------------------------------


def test_exif_and_gps_are_stripped_by_default():
    data = jpeg_with_orientation(photo(120, 80), 1, gps=True)
    assert Image.open(io.BytesIO(data)).getexif().get_ifd(0x8825)  # the source does carry GPS
    for fmt in ("jpeg", "webp", "png", "avif"):
        img, raw = one(data, format=fmt)
        assert not img.getexif(), fmt
        assert b"imgproc-test-camera" not in raw
        assert b"Exif" not in raw[:4096] or fmt == "png"


def test_xmp_is_stripped():
    xmp = b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><secret>gps-here</secret></x:xmpmeta>'
    data = encode(photo(100, 100), "JPEG", xmp=xmp)
    assert b"gps-here" in data
    _, raw = one(data)
    assert b"gps-here" not in raw


def test_icc_profile_is_kept_unless_asked_not_to():
    icc = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    data = encode(photo(100, 100), "JPEG", icc_profile=icc)
    kept, _ = one(data)
    dropped, _ = one(data, keep_icc=False)
    assert kept.info.get("icc_profile") == icc
    assert not dropped.info.get("icc_profile")


def test_exif_can_be_kept_with_orientation_reset():
    data = jpeg_with_orientation(stored_for_orientation(photo(80, 60), 6), 6)
    img, _ = one(data, strip=False)
    assert img.getexif().get(0x010F) == "imgproc-test-camera"
    assert img.getexif().get(0x0112) == 1


# --- filters, watermark, budget, codecs ---------------------------------------


def test_grayscale_blur_and_sharpen_change_pixels_as_expected():
    base, _ = one(SRC_JPEG, width=300, format="png")
    grey, _ = one(SRC_JPEG, width=300, format="png", grayscale=True)
    blurred, _ = one(SRC_JPEG, width=300, format="png", blur=3)
    sharp, _ = one(SRC_JPEG, width=300, format="png", sharpen=2)
    assert grey.mode == "L"
    assert 20 < psnr(base, blurred) < 35
    assert 20 < psnr(base, sharp) < 40


def test_text_watermark_marks_only_its_corner():
    src = encode(Image.new("RGB", (400, 300), (0, 0, 0)), "PNG")
    plain, _ = one(src, format="png")
    marked, _ = one(src, format="png", watermark=Watermark(text="(c) imgproc", opacity=1.0, size=0.3))
    changed = [marked.getpixel((x, y)) != plain.getpixel((x, y)) for x in range(0, 400, 4) for y in range(0, 300, 4)]
    assert any(changed)
    assert marked.crop((0, 0, 200, 150)).getextrema() == ((0, 0), (0, 0), (0, 0))  # north-west untouched


def test_image_watermark_is_scaled_to_its_size_fraction():
    stamp = encode(Image.new("RGBA", (50, 50), (255, 255, 255, 255)), "PNG")
    src = encode(Image.new("RGB", (400, 400), (0, 0, 0)), "PNG")
    img, _ = one(src, format="png", watermark=Watermark(image=stamp, opacity=1.0, size=0.25, margin=0, position="center"))
    assert img.getpixel((200, 200)) == (255, 255, 255)
    assert img.getpixel((200, 140)) == (0, 0, 0)  # a 100 px stamp centred spans 150..250


def test_max_bytes_picks_a_quality_that_fits():
    _, unconstrained = one(SRC_JPEG, quality=95)
    budget = len(unconstrained) // 3
    _, fitted = one(SRC_JPEG, quality=95, max_bytes=budget)
    assert len(fitted) <= budget
    assert len(fitted) > budget * 0.6  # the largest quality that fits, not the smallest


def test_max_bytes_that_cannot_be_met_is_a_named_error():
    result = render(SRC_JPEG, (Rendition(name="t", max_bytes=100, min_quality=90),), LIMITS, "test.jpg")
    assert result.outputs == ()
    [failure] = result.failures
    assert isinstance(failure.error, errors.ByteBudgetExceeded)
    assert str(failure.error).startswith("test.jpg: rendition t.jpg:") and "max_bytes" in str(failure.error)


@pytest.mark.skipif(not features.check("avif"), reason="this Pillow has no AVIF codec")
def test_avif_output_decodes_to_the_same_picture():
    img, raw = one(SRC_JPEG, width=400, format="avif", quality=70)
    assert raw[4:12] == b"ftypavif"
    assert psnr(img, reference_resize(decode(SRC_JPEG), (400, 267))) > 28


def test_missing_codec_is_reported_clearly(monkeypatch):
    monkeypatch.setattr(features, "check", lambda name: name != "avif")
    with pytest.raises(errors.CodecUnavailable, match=r"cannot write AVIF"):
        one(SRC_JPEG, format="avif")


# --- limits ----------------------------------------------------------------------


def png_header_only(width: int, height: int) -> bytes:
    """A valid PNG declaring huge dimensions in its header, with a few bytes of pixel data."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")


def test_decompression_bomb_is_refused_from_the_header_without_allocating():
    bomb = png_header_only(100_000, 100_000)
    tracemalloc.start()
    with pytest.raises(errors.TooManyPixels, match=r"MP limit|decompression-bomb"):
        one(bomb)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert peak < 5 * 1024 * 1024


def test_pixel_limit_is_configurable():
    with pytest.raises(errors.TooManyPixels, match=r"0.9 MP limit"):
        render(SRC_JPEG, (Rendition(name="t"),), Limits(max_pixels=900_000), "big.jpg")


def test_source_byte_limit():
    with pytest.raises(errors.SourceTooLarge, match=r"big.jpg: .* bytes exceeds the 1,000-byte limit"):
        render(SRC_JPEG, (Rendition(name="t"),), Limits(max_source_bytes=1000), "big.jpg")


def test_input_format_allow_list():
    with pytest.raises(errors.UnsupportedFormat, match=r"PNG input is not allowed"):
        render(encode(SRC, "PNG"), (Rendition(name="t"),), Limits(input_formats=("jpeg",)), "a.png")


def test_not_an_image_and_corrupt_image_are_told_apart():
    with pytest.raises(errors.NotAnImage):
        one(b"hello, I am a text file")
    with pytest.raises(errors.CorruptImage, match=r"cannot decode"):
        one(SRC_JPEG[: len(SRC_JPEG) // 2])


def test_output_dimension_limit():
    with pytest.raises(errors.OutputTooLarge, match=r"over the 1000px output limit"):
        render(SRC_JPEG, (Rendition(name="t", width=2000, enlarge=True),), Limits(max_output_dimension=1000), "a.jpg")


def _gif(frames: int) -> bytes:
    images = [Image.new("RGB", (40, 40), (i * 40 % 256, 0, 0)) for i in range(frames)]
    return encode(images[0], "GIF", save_all=True, append_images=images[1:], duration=50, loop=0)


def test_animation_keeps_the_first_frame_unless_asked():
    still, _ = one(_gif(4), format="webp")
    assert getattr(still, "n_frames", 1) == 1
    moving, _ = one(_gif(4), format="webp", animated=True)
    assert moving.n_frames == 4


def test_animation_frame_limit():
    with pytest.raises(errors.TooManyFrames, match=r"5 frames exceeds the 3-frame limit"):
        render(_gif(5), (Rendition(name="t", format="webp", animated=True),), Limits(max_frames=3), "a.gif")


def test_jpeg_draft_decodes_large_sources_at_reduced_scale_with_good_quality():
    big = photo(4000, 3000, seed=9)
    data = encode(big, "JPEG", quality=92)
    result = render(data, (Rendition(name="w", width=800, height=800, quality=95),), LIMITS, "big.jpg")
    out = decode(result.outputs[0].data)
    assert out.size == (800, 600)
    assert psnr(out, reference_resize(decode(data), (800, 600))) > 32


def test_renditions_are_independent_values():
    r = Rendition(name="t", width=100)
    assert dataclasses.replace(r, width=50).width == 50 and r.width == 100


def test_the_decoded_source_is_released_once_no_rendition_needs_it():
    import gc
    import weakref

    from core import geometry, steps

    stored = Image.new("RGB", (400, 300))  # shown rotated: 300 x 400 upright
    alive = weakref.ref(stored)
    copies = steps.ScaledCopies(stored, 300, 400, orientation=6)
    del stored
    big, small = Rendition(name="b", width=200, height=200), Rendition(name="s", width=50, height=50)
    steps.resize(steps.Context(big, geometry.plan(300, 400, big), copies))
    copies.release_unused([geometry.plan(300, 400, small)])  # the small one cascades from the 150x200 copy
    gc.collect()
    assert alive() is None
    assert [c.size for c in copies.copies] == [(150, 200)]

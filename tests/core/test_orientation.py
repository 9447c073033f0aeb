"""EXIF orientation in every accepted input format: each photo is turned upright exactly once.

Some decoders orient on their own (Pillow 13 transposes a TIFF while loading
it); the engine must then not turn it again. Every fixture stores the pixels a
camera would store for an asymmetric, non-square picture, tags them with one
of the 8 orientations, and the rendition must look like the upright picture.
"""

from __future__ import annotations

import io

import pytest
from PIL import Image, features

from core.pipeline import render
from core.recipe import Limits, Rendition

from imaging import decode, encode, psnr, stored_for_orientation

LIMITS = Limits()


def _upright() -> Image.Image:
    """Four differently coloured quadrants on a 3:2 canvas: any flip, turn or swap shows."""
    img = Image.new("RGB", (96, 64), (255, 255, 255))
    img.paste((230, 20, 20), (0, 0, 48, 32))  # red: top-left
    img.paste((20, 200, 20), (48, 0, 96, 32))  # green: top-right
    img.paste((20, 20, 230), (0, 32, 48, 64))  # blue: bottom-left
    img.paste((240, 200, 0), (0, 32, 16, 64))  # a yellow bar breaks the left/right mirror symmetry
    return img


UPRIGHT = _upright()


def _exif(orientation: int) -> Image.Exif:
    exif = Image.Exif()
    exif[0x0112] = orientation
    return exif


def _jpeg(img, o):
    return encode(img, "JPEG", quality=95, exif=_exif(o))


def _png(img, o):
    return encode(img, "PNG", exif=_exif(o))


def _webp(img, o):
    return encode(img, "WEBP", lossless=True, exif=_exif(o))


def _tiff_raw(img, o):
    return encode(img, "TIFF", exif=_exif(o))


def _tiff_deflate(img, o):
    # Compressed TIFFs go through libtiff, a separate load path in Pillow.
    return encode(img, "TIFF", compression="tiff_adobe_deflate", exif=_exif(o))


def _avif(img, o):
    # Pillow writes the orientation as the container's irot/imir boxes.
    return encode(img, "AVIF", quality=95, exif=_exif(o))


def _heic(img, o):
    # pillow-heif writes the orientation as irot/imir and libheif applies them on decode.
    pillow_heif = pytest.importorskip("pillow_heif")
    heif = pillow_heif.from_pillow(img)
    buf = io.BytesIO()
    heif.save(buf, quality=95, exif=_exif(o).tobytes())
    return buf.getvalue()


def _mpo(img, o):
    # A camera's multi-picture JPEG: the EXIF of the first picture orients it.
    second = img.transpose(Image.Transpose.ROTATE_180)
    return encode(img, "MPO", quality=95, exif=_exif(o), save_all=True, append_images=[second])


WRITERS = {
    "jpeg": _jpeg, "png": _png, "webp": _webp, "tiff": _tiff_raw, "tiff-deflate": _tiff_deflate,
    "avif": _avif, "heic": _heic, "mpo": _mpo,
}


@pytest.mark.parametrize("orientation", range(1, 9))
@pytest.mark.parametrize("fmt", sorted(WRITERS))
def test_every_orientation_in_every_format_comes_out_upright(fmt, orientation):
    if fmt == "avif" and not features.check("avif"):
        pytest.skip("this Pillow has no AVIF codec")
    data = WRITERS[fmt](stored_for_orientation(UPRIGHT, orientation), orientation)
    result = render(data, (Rendition(name="t", format="png"),), LIMITS, f"o{orientation}.{fmt}")
    assert (result.source.width, result.source.height) == UPRIGHT.size
    out = decode(result.outputs[0].data)
    assert out.size == UPRIGHT.size, f"{fmt} orientation {orientation}: {out.size}"
    # A wrong turn or mirror scores about 4 dB; lossy chroma at the colour edges about 29.
    assert psnr(out, UPRIGHT) > 20, f"{fmt} orientation {orientation} is not upright"


@pytest.mark.parametrize("orientation", (3, 6, 8))
@pytest.mark.parametrize("fmt", ("tiff", "tiff-deflate", "png"))
def test_a_resized_rendition_of_a_rotated_source_is_upright_too(fmt, orientation):
    # The first resize reads the stored pixels and turns only its small result.
    data = WRITERS[fmt](stored_for_orientation(UPRIGHT.resize((960, 640)), orientation), orientation)
    out = render(data, (Rendition(name="t", width=48, format="png"),), LIMITS, "r").outputs[0]
    assert (out.width, out.height) == (48, 32)
    assert psnr(decode(out.data), UPRIGHT.resize((48, 32), Image.Resampling.LANCZOS)) > 20


@pytest.mark.parametrize("fmt", ("gif", "bmp"))
def test_formats_without_exif_are_taken_as_stored(fmt):
    out = render(encode(UPRIGHT, fmt.upper()), (Rendition(name="t", format="png"),), LIMITS, f"x.{fmt}").outputs[0]
    assert psnr(decode(out.data), UPRIGHT) > 20  # GIF's palette costs a little

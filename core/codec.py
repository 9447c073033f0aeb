"""Decoding with limits checked first, and encoding per output format.

Everything that can be refused is refused from the header, before pixels are
decoded: byte size, format allow-list, pixel count (decompression bombs) and
frame count.
"""

from __future__ import annotations

import contextlib
import functools
import io
import math
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TypedDict

from PIL import Image, ImageCms, ImageMath, UnidentifiedImageError, features

from core import jpeg_markers, lowmem, plugins
from core.errors import (
    ByteBudgetExceeded,
    CodecUnavailable,
    CorruptImage,
    ImgprocError,
    NotAnImage,
    TooManyFrames,
    TooManyPixels,
    TooManyScans,
    UnsupportedFormat,
)
from core.recipe import Limits, Rendition

# Pillow's format names -> ours. MPO is what many cameras' JPEGs open as.
_FORMATS = {
    "JPEG": "jpeg", "MPO": "jpeg", "PNG": "png", "WEBP": "webp", "GIF": "gif",
    "TIFF": "tiff", "BMP": "bmp", "AVIF": "avif", "HEIF": "heif",
}
# Sources whose frames are an animation (a multi-page TIFF or an MPO's second
# picture is not one: those give their first frame).
_ANIMATED_SOURCES = ("gif", "png", "webp", "avif")
# Only these plugins are ever asked to parse a source; the rest of Pillow's
# format zoo (and its attack surface) stays out of reach.
# HEIF is added per source by core.plugins, which registers pillow-heif on first need.
_PLUGIN_FORMATS = tuple(f for f in _FORMATS if f not in ("MPO", "HEIF"))  # the JPEG plugin opens MPO

_ORIENTATION_TAG = 0x0112
_TRANSPOSE = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}
_CODEC_FEATURE = {"jpeg": "jpg", "png": "zlib", "webp": "webp", "avif": "avif"}


@dataclass(frozen=True)
class SourceInfo:
    """What the header says, with width/height as the viewer sees them (EXIF-rotated)."""

    format: str
    width: int
    height: int
    bytes: int
    frames: int
    orientation: int
    mode: str

    @property
    def animated(self) -> bool:
        return self.frames > 1 and self.format in _ANIMATED_SOURCES


def check_codecs(renditions: tuple[Rendition, ...]) -> None:
    """Fail once, up front, when an output format's encoder is missing from this Pillow."""
    for r in renditions:
        feature = _CODEC_FEATURE[r.format]
        if not features.check(feature):
            raise CodecUnavailable(
                f"cannot write {r.format.upper()} (rendition {r.name!r}): this Pillow "
                f"{features.version('pil')} was built without {feature} support"
            )


def open_source(data: bytes, limits: Limits, name: str) -> tuple[Image.Image, SourceInfo]:
    """Open lazily (header only) and enforce every limit before decoding pixels."""
    limits.check_source_size(len(data), name)
    if not data:
        raise NotAnImage(f"{name}: empty file")
    try:
        with warnings.catch_warnings():
            # We apply our own pixel limit below; Pillow's warning is noise here.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            img = Image.open(io.BytesIO(data), formats=plugins.formats_for(data, _PLUGIN_FORMATS, name))
    except Image.DecompressionBombError:
        raise TooManyPixels(f"{name}: image dimensions exceed the decompression-bomb limit") from None
    except UnidentifiedImageError:
        raise NotAnImage(f"{name}: not a recognised image") from None
    except ImgprocError:
        raise
    except Exception as exc:  # noqa: BLE001 - see reading()
        raise CorruptImage(f"{name}: cannot read image header ({_reason(exc)})") from None

    fmt = _FORMATS.get(img.format or "", (img.format or "unknown").lower())
    if fmt not in limits.input_formats:
        raise UnsupportedFormat(
            f"{name}: {fmt.upper()} input is not allowed (allowed: {', '.join(limits.input_formats)})"
        )
    if fmt == "jpeg":
        _check_scans(data, limits, name)
    width, height = img.size
    if width * height > limits.max_pixels:
        raise TooManyPixels(
            f"{name}: {width}x{height} is {width * height / 1e6:.1f} MP, over the "
            f"{limits.max_pixels / 1e6:g} MP limit"
        )
    with reading(name, "read its frames"):
        frames = getattr(img, "n_frames", 1)  # walks every TIFF page and GIF frame header
    # A decoder that turns the pixels upright itself (Pillow 13's TIFF) already
    # reports the upright size; turning them again would mirror or rotate them.
    orientation = _orientation(img)
    if orientation != 1 and decoder_orients(img.format or ""):
        orientation = 1
    if orientation >= 5:
        width, height = height, width
    info = SourceInfo(fmt, width, height, len(data), frames, orientation, img.mode)
    if fmt == "png":
        _png_key_to_8_bits(img, data)
    return img, info


@contextlib.contextmanager
def reading(name: str, what: str) -> Iterator[None]:
    """Any decoder failure is a CorruptImage naming the file.

    Pillow's plugins raise whatever their parsing hits on a damaged file
    (TypeError "Missing dimensions" from a TIFF page, KeyError, struct.error...):
    none of that is a bug of ours, and none may become an internal error.
    """
    try:
        yield
    except (ImgprocError, MemoryError):
        raise
    except Image.DecompressionBombError:
        raise TooManyPixels(f"{name}: image dimensions exceed the decompression-bomb limit") from None
    except Exception as exc:  # noqa: BLE001 - a damaged file, whatever the plugin raised
        raise CorruptImage(f"{name}: cannot {what} ({_reason(exc)})") from None


def _png_key_to_8_bits(img: Image.Image, data: bytes) -> None:
    """Pillow keeps only the high byte of 16-bit RGB samples but the tRNS key in 16 bits.

    Reduce the key the same way so the transparent colour still matches (a
    colour within 1/256 of the key turns transparent with it, as it would in
    any 8-bit viewer).
    """
    key = img.info.get("transparency")
    bit_depth = data[24] if len(data) > 24 else 8  # IHDR is always the first chunk
    if bit_depth == 16 and img.mode == "RGB" and isinstance(key, tuple):
        img.info["transparency"] = tuple(v >> 8 for v in key)


def open_frames(data: bytes) -> Image.Image:
    """The source again, for walking its frames; ``open_source`` has already checked it."""
    return Image.open(io.BytesIO(data), formats=plugins.formats_for(data, _PLUGIN_FORMATS, "source"))


def _check_scans(data: bytes, limits: Limits, name: str) -> None:
    scans = jpeg_markers.count_scans(data)
    if scans > limits.max_scans:
        raise TooManyScans(f"{name}: {scans:,} JPEG scans exceeds the {limits.max_scans}-scan limit")


def check_frames(info: SourceInfo, limits: Limits, name: str) -> None:
    if info.frames > limits.max_frames:
        raise TooManyFrames(f"{name}: {info.frames} frames exceeds the {limits.max_frames}-frame limit")


def _orientation(img: Image.Image) -> int:
    if img.format == "PNG" and "exif" not in img.info:
        # Pillow finds an eXIf chunk stored after the pixels only by decoding them
        # all: that would happen before the memory budget is checked.
        return 1
    try:
        value = img.getexif().get(_ORIENTATION_TAG, 1)
    except Exception:  # noqa: BLE001 - a broken EXIF block (any parser error) must not sink a good photo
        return 1
    return value if value in _TRANSPOSE else 1


@functools.cache
def decoder_orients(pil_format: str) -> bool:
    """True when this Pillow applies the EXIF Orientation of ``pil_format`` while loading.

    Asked of the installed Pillow, once per format and process, with a 2x1
    image tagged "rotate 90" (Pillow 13's TIFF plugin does; its JPEG, PNG, WebP
    and AVIF plugins leave it to us). A format we cannot write this way is
    taken not to, and tests/core/test_orientation.py checks every format.
    """
    exif = Image.Exif()
    exif[_ORIENTATION_TAG] = 6
    buf = io.BytesIO()
    try:
        Image.new("L" if pil_format != "AVIF" else "RGB", (2, 1)).save(buf, format=pil_format, exif=exif)
        with Image.open(io.BytesIO(buf.getvalue())) as probe:
            probe.load()
            return probe.size == (1, 2)
    except Exception:  # noqa: BLE001 - no encoder for it, or no EXIF support: nothing was turned
        return False


def _reason(exc: BaseException) -> str:
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return text[:120]


def decode(img: Image.Image, info: SourceInfo, need_scale: float, name: str) -> Image.Image:
    """Decode pixels, letting JPEG skip detail we will not use (DCT-domain downscale).

    ``need_scale`` is the largest fraction of the full-size image any rendition
    needs; ``draft`` then decodes at 1/2, 1/4 or 1/8 when that still covers it.
    """
    if info.format == "jpeg" and need_scale < 1:
        stored_w, stored_h = img.size
        want = (max(1, math.ceil(stored_w * need_scale)), max(1, math.ceil(stored_h * need_scale)))
        img.draft(img.mode, want)
    with reading(name, "decode image"):
        img.load()
    return img


def orient(img: Image.Image, orientation: int) -> Image.Image:
    """Apply the EXIF orientation so pixels are stored the way a viewer shows them."""
    method = _TRANSPOSE.get(orientation)
    return img.transpose(method) if method is not None else img


def to_working_mode(img: Image.Image) -> tuple[Image.Image, bytes | None]:
    """Bring any source mode to L, RGB or RGBA; returns the ICC profile still valid for it.

    CMYK goes through its ICC profile to sRGB when it has one (a plain convert
    shifts colours); 16-bit and float greyscale are scaled, not clipped.
    """
    icc = img.info.get("icc_profile") or None
    mode = img.mode
    keyed = "transparency" in img.info  # tRNS: one colour (or grey level) is transparent
    if mode == "RGBA" or (mode in ("L", "RGB") and not keyed):
        return img, icc
    if mode in ("L", "RGB"):
        return img.convert("RGBA"), icc if mode == "RGB" else None
    if mode == "CMYK":
        return _cmyk_to_rgb(img, icc), None
    if mode in ("I;16", "I;16B", "I;16L", "I;16N", "I"):
        # 16-bit samples: divide by 257 to map 0..65535 onto 0..255 (in bands: fewer copies).
        grey = lowmem.high_bit_to_l(img)
        if keyed and isinstance(img.info["transparency"], int):
            return _keyed_grey(img.convert("I"), grey, img.info["transparency"]), None
        return grey, icc
    if mode == "F":
        return lowmem.high_bit_to_l(img), icc
    if mode in ("1",):
        return img.convert("L"), icc
    if mode in ("LA", "La", "PA") or (mode == "P" and "transparency" in img.info):
        return img.convert("RGBA"), icc if mode != "LA" else None
    if mode == "P":
        return img.convert("RGB"), icc
    return img.convert("RGBA" if img.has_transparency_data else "RGB"), None


def _keyed_grey(wide: Image.Image, grey: Image.Image, key: int) -> Image.Image:
    """Grey pixels with exactly the 16-bit ``key`` become transparent (compared before scaling)."""
    alpha = ImageMath.lambda_eval(lambda a: (a["wide"] != key) * 255, wide=wide).convert("L")
    rgba = grey.convert("RGBA")
    rgba.putalpha(alpha)
    return rgba


def _cmyk_to_rgb(img: Image.Image, icc: bytes | None) -> Image.Image:
    if icc:
        try:
            src = ImageCms.ImageCmsProfile(io.BytesIO(icc))
            dst = ImageCms.createProfile("sRGB")
            converted = ImageCms.profileToProfile(img, src, dst, outputMode="RGB")
            if converted is not None:  # None only when converting in place, which this does not ask for
                return converted
        except (ImageCms.PyCMSError, OSError, ValueError):
            pass  # an unusable profile: fall back to the naive conversion below
    return img.convert("RGB")


def icc_matches(icc: bytes | None, mode: str) -> bool:
    """An ICC profile may only travel with pixels of its own colour space."""
    if not icc or len(icc) < 20:
        return False
    space = icc[16:20]
    return (space == b"GRAY" and mode in ("L", "LA")) or (space == b"RGB " and mode in ("RGB", "RGBA"))


# --- encoding ---------------------------------------------------------------


class Timing(TypedDict):
    """An animation's Pillow save options: each frame's milliseconds, and the loop count (0 = forever)."""

    duration: list[int]
    loop: int


def encode(
    frames: list[Image.Image], r: Rendition, icc: bytes | None, exif: bytes | None,
    timing: Timing | None = None,
) -> bytes:
    """Encode at the rendition's quality, or the highest quality that fits ``max_bytes``.

    ``frames`` holds one image, or every frame of an animation (with ``timing``:
    Pillow's ``duration`` and ``loop``).
    """
    data = _encode_once(frames, r, r.quality, icc, exif, timing)
    if r.max_bytes is None or len(data) <= r.max_bytes:
        return data
    if r.format == "png" or r.lossless:
        raise ByteBudgetExceeded(
            f"rendition {r.label}: {len(data):,} bytes is over max_bytes {r.max_bytes:,} "
            f"and {r.format.upper()} {'lossless ' if r.lossless else ''}has no quality to lower"
        )
    return _fit_budget(frames, r, r.max_bytes, icc, exif, timing)


def _fit_budget(
    frames: list[Image.Image], r: Rendition, max_bytes: int, icc: bytes | None, exif: bytes | None,
    timing: Timing | None,
) -> bytes:
    """Binary search for the largest quality whose output fits the byte budget (``r.max_bytes``)."""
    lo, hi, best = r.min_quality, r.quality - 1, None
    while lo <= hi:
        q = (lo + hi) // 2
        data = _encode_once(frames, r, q, icc, exif, timing)
        if len(data) <= max_bytes:
            best, lo = data, q + 1
        else:
            hi = q - 1
    if best is None:
        raise ByteBudgetExceeded(
            f"rendition {r.label}: even quality {r.min_quality} is over max_bytes {r.max_bytes:,}"
        )
    return best


def _encode_once(
    frames: list[Image.Image], r: Rendition, quality: int, icc: bytes | None, exif: bytes | None,
    timing: Timing | None,
) -> bytes:
    # Start from empty info dicts: Pillow otherwise copies EXIF, XMP, comments
    # and profiles from the source into some formats.
    for frame in frames:
        frame.info = {}
    params = _format_params(r, quality)
    if icc:
        params["icc_profile"] = icc
    if exif:
        params["exif"] = exif
    if len(frames) > 1:
        params.update(save_all=True, append_images=frames[1:], **(timing or {}))
    buf = io.BytesIO()
    frames[0].save(buf, format=r.format.upper(), **params)
    return buf.getvalue()


def _format_params(r: Rendition, quality: int) -> dict[str, object]:
    if r.format == "jpeg":
        return {"quality": quality, "optimize": r.optimize, "progressive": r.progressive}
    if r.format == "png":
        return {"optimize": r.optimize, "compress_level": 9 if r.optimize else 6}
    if r.format == "webp":
        return {"quality": quality, "lossless": r.lossless, "method": 6 if r.optimize else 4}
    # AVIF: one thread so the bytes do not depend on the machine's core count
    # (a laptop and a Lambda function must produce identical renditions).
    return {"quality": quality, "speed": 4 if r.optimize else 6, "max_threads": 1}

"""Decoding with limits checked first, and encoding per output format.

Everything that can be refused is refused from the header, before pixels are
decoded: byte size, format allow-list, pixel count (decompression bombs) and
frame count.
"""

from __future__ import annotations

import io
import math
import warnings
from dataclasses import dataclass

from PIL import Image, ImageCms, UnidentifiedImageError, features

from core import jpeg_markers, lowmem
from core.errors import (
    ByteBudgetExceeded,
    CodecUnavailable,
    CorruptImage,
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
    "TIFF": "tiff", "BMP": "bmp", "AVIF": "avif",
}
# Only these plugins are ever asked to parse a source; the rest of Pillow's
# format zoo (and its attack surface) stays out of reach.
_PLUGIN_FORMATS = tuple(f for f in _FORMATS if f != "MPO")  # the JPEG plugin opens MPO

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
            img = Image.open(io.BytesIO(data), formats=_PLUGIN_FORMATS)
    except Image.DecompressionBombError:
        raise TooManyPixels(f"{name}: image dimensions exceed the decompression-bomb limit") from None
    except UnidentifiedImageError:
        raise NotAnImage(f"{name}: not a recognised image") from None
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
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
    frames = getattr(img, "n_frames", 1)
    orientation = _orientation(img)
    if orientation >= 5:
        width, height = height, width
    info = SourceInfo(fmt, width, height, len(data), frames, orientation, img.mode)
    return img, info


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
    except Exception:  # a broken EXIF block must not sink an otherwise good photo
        return 1
    return value if value in _TRANSPOSE else 1


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
    try:
        img.load()
    except (OSError, SyntaxError, ValueError, EOFError, Image.DecompressionBombError) as exc:
        raise CorruptImage(f"{name}: cannot decode image ({_reason(exc)})") from None
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
    if mode in ("L", "RGB", "RGBA"):
        return img, icc
    if mode == "CMYK":
        return _cmyk_to_rgb(img, icc), None
    if mode in ("I;16", "I;16B", "I;16L", "I;16N", "I"):
        # 16-bit samples: divide by 257 to map 0..65535 onto 0..255 (in bands: fewer copies).
        return lowmem.high_bit_to_l(img), icc
    if mode == "F":
        return lowmem.high_bit_to_l(img), icc
    if mode in ("1",):
        return img.convert("L"), icc
    if mode in ("LA", "La", "PA") or (mode == "P" and "transparency" in img.info):
        return img.convert("RGBA"), icc if mode != "LA" else None
    if mode == "P":
        return img.convert("RGB"), icc
    return img.convert("RGBA" if img.has_transparency_data else "RGB"), None


def _cmyk_to_rgb(img: Image.Image, icc: bytes | None) -> Image.Image:
    if icc:
        try:
            src = ImageCms.ImageCmsProfile(io.BytesIO(icc))
            dst = ImageCms.createProfile("sRGB")
            return ImageCms.profileToProfile(img, src, dst, outputMode="RGB")
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


def encode(
    frames: list[Image.Image], r: Rendition, icc: bytes | None, exif: bytes | None,
    timing: dict | None = None,
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
    return _fit_budget(frames, r, icc, exif, timing)


def _fit_budget(frames, r: Rendition, icc, exif, timing) -> bytes:
    """Binary search for the largest quality whose output fits the byte budget."""
    lo, hi, best = r.min_quality, r.quality - 1, None
    while lo <= hi:
        q = (lo + hi) // 2
        data = _encode_once(frames, r, q, icc, exif, timing)
        if len(data) <= r.max_bytes:
            best, lo = data, q + 1
        else:
            hi = q - 1
    if best is None:
        raise ByteBudgetExceeded(
            f"rendition {r.label}: even quality {r.min_quality} is over max_bytes {r.max_bytes:,}"
        )
    return best


def _encode_once(frames, r: Rendition, quality: int, icc, exif, timing) -> bytes:
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


def _format_params(r: Rendition, quality: int) -> dict:
    if r.format == "jpeg":
        return {"quality": quality, "optimize": r.optimize, "progressive": r.progressive}
    if r.format == "png":
        return {"optimize": r.optimize, "compress_level": 9 if r.optimize else 6}
    if r.format == "webp":
        return {"quality": quality, "lossless": r.lossless, "method": 6 if r.optimize else 4}
    # AVIF: one thread so the bytes do not depend on the machine's core count
    # (a laptop and a Lambda function must produce identical renditions).
    return {"quality": quality, "speed": 4 if r.optimize else 6, "max_threads": 1}

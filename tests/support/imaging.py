"""Test images and image comparisons shared by the test suite.

Images are compared by size and similarity (PSNR), never by eye.
"""

from __future__ import annotations

import io
import math
import random

from PIL import Image, ImageChops, ImageDraw, ImageStat


def photo(width: int = 640, height: int = 480, seed: int = 1, mode: str = "RGB") -> Image.Image:
    """A photo-like image: multi-scale texture, shapes and fine grain (deterministic)."""
    rng = random.Random(seed)
    img = Image.new("RGB", (width, height))
    # Octaves of smooth noise give the cloud/foliage texture of a real scene.
    for i, cells in enumerate((4, 16, 64)):
        cw, ch = max(2, cells), max(2, cells * height // max(1, width))
        layer = Image.frombytes("RGB", (cw, ch), rng.randbytes(cw * ch * 3))
        layer = layer.resize((width, height), Image.Resampling.BICUBIC)
        img = layer if i == 0 else Image.blend(img, layer, 0.35)
    draw = ImageDraw.Draw(img)
    for _ in range(6):
        x, y = rng.randrange(width), rng.randrange(height)
        r = rng.randrange(max(2, min(width, height) // 8), max(3, min(width, height) // 3))
        draw.ellipse((x - r, y - r, x + r, y + r), fill=tuple(rng.randrange(256) for _ in range(3)))
    grain = Image.frombytes("L", (width, height), rng.randbytes(width * height)).convert("RGB")
    img = Image.blend(img, grain, 0.06)
    return img.convert(mode) if mode != "RGB" else img


def encode(img: Image.Image, fmt: str = "JPEG", **params) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format=fmt, **params)
    return buf.getvalue()


def jpeg_with_orientation(img: Image.Image, orientation: int, gps: bool = False) -> bytes:
    """A JPEG whose EXIF says to show ``img`` rotated/flipped by ``orientation``."""
    exif = Image.Exif()
    exif[0x0112] = orientation
    exif[0x010F] = "imgproc-test-camera"
    if gps:
        exif[0x8825] = {1: "N", 2: (51.0, 30.0, 0.0), 3: "W", 4: (0.0, 7.0, 0.0)}
    return encode(img, "JPEG", quality=95, exif=exif)


def stored_for_orientation(upright: Image.Image, orientation: int) -> Image.Image:
    """The pixels a camera would store so that ``orientation`` displays ``upright``."""
    inverse = {
        1: None,
        2: Image.Transpose.FLIP_LEFT_RIGHT,
        3: Image.Transpose.ROTATE_180,
        4: Image.Transpose.FLIP_TOP_BOTTOM,
        5: Image.Transpose.TRANSPOSE,
        6: Image.Transpose.ROTATE_90,
        7: Image.Transpose.TRANSVERSE,
        8: Image.Transpose.ROTATE_270,
    }[orientation]
    return upright.transpose(inverse) if inverse is not None else upright.copy()


def decode(data: bytes) -> Image.Image:
    img = Image.open(io.BytesIO(data))
    img.load()
    return img


def psnr(a: Image.Image, b: Image.Image) -> float:
    """Peak signal-to-noise ratio in dB between two same-size images (inf when identical)."""
    assert a.size == b.size, f"sizes differ: {a.size} vs {b.size}"
    a, b = a.convert("RGB"), b.convert("RGB")
    diff = ImageChops.difference(a, b)
    mse = sum(rms * rms for rms in ImageStat.Stat(diff).rms) / 3
    return math.inf if mse == 0 else 10 * math.log10(255 * 255 / mse)


def reference_resize(img: Image.Image, size: tuple[int, int]) -> Image.Image:
    """Full-resolution LANCZOS resize: what a careful, slow tool would produce."""
    return img.convert("RGB").resize(size, Image.Resampling.LANCZOS)

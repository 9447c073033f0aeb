"""Quality check: each tool's 800 px rendition against a float reference resize.

The reference decodes the source at full size (no DCT shortcut), applies the
EXIF orientation, and resizes every channel as 32-bit float ("F" mode) with
Pillow's LANCZOS and no reducing gap, to exactly the size the tool produced
(tools round 533.33 px differently). Nothing is rounded to 8 bits before the
comparison, so a tool that blurs, shifts or skips detail loses dB here.

PSNR is over RGB; SSIM is on luma (BT.601) with a 7x7 box window, which is
cheap in numpy and tracks the Gaussian-window SSIM closely at this size.
"""

from __future__ import annotations

import math
from functools import lru_cache
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps


@lru_cache(maxsize=4)
def _upright_planes(path: str) -> tuple[Image.Image, ...]:
    with Image.open(path) as img:
        img = ImageOps.exif_transpose(img.convert("RGB") if img.mode != "RGB" else img)
        return tuple(band.convert("F") for band in img.split())


@lru_cache(maxsize=16)
def reference(path: Path, size: tuple[int, int]) -> np.ndarray:
    """Float RGB array (H, W, 3) of the source resized to ``size`` without any shortcut."""
    planes = _upright_planes(str(path))
    return np.stack(
        [np.asarray(p.resize(size, Image.Resampling.LANCZOS, reducing_gap=None), dtype=np.float64) for p in planes],
        axis=-1,
    )


def psnr(ref: np.ndarray, out: np.ndarray) -> float:
    mse = float(np.mean((np.clip(ref, 0, 255) - out) ** 2))
    return math.inf if mse == 0 else 10 * math.log10(255.0**2 / mse)


def _box(a: np.ndarray, k: int = 7) -> np.ndarray:
    """Mean over every k x k window (valid region), via 2-D cumulative sums."""
    c = np.cumsum(np.cumsum(np.pad(a, ((1, 0), (1, 0))), axis=0), axis=1)
    return (c[k:, k:] - c[:-k, k:] - c[k:, :-k] + c[:-k, :-k]) / (k * k)


def ssim(ref: np.ndarray, out: np.ndarray) -> float:
    weights = np.array([0.299, 0.587, 0.114])
    x, y = np.clip(ref, 0, 255) @ weights, out @ weights
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    mx, my = _box(x), _box(y)
    vx, vy, cxy = _box(x * x) - mx * mx, _box(y * y) - my * my, _box(x * y) - mx * my
    s = ((2 * mx * my + c1) * (2 * cxy + c2)) / ((mx * mx + my * my + c1) * (vx + vy + c2))
    return float(s.mean())


def compare(source: Path, rendition: Path) -> tuple[float, float]:
    """(PSNR dB, SSIM) of one tool's rendition of ``source`` against the float reference."""
    with Image.open(rendition) as img:
        out = np.asarray(img.convert("RGB"), dtype=np.float64)
    ref = reference(source, (out.shape[1], out.shape[0]))
    return psnr(ref, out), ssim(ref, out)

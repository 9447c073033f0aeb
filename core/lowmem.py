"""Pillow operations redone in bands so that big sources need one full-size copy fewer.

Both give exactly the bytes of the one-shot Pillow call they replace (the
operations are per pixel, or per reduce block with bands aligned to the
block), so outputs do not change; only the transient copies shrink to a band:

- ``high_bit_to_l``: 16/32-bit and float greyscale -> 8-bit L. One shot, Pillow
  holds the source, an int32 copy and its scaled copy (100 MP int32: 1.2 GB);
  in bands, the source and the 1-byte result.
- ``resize``: for RGBA and LA Pillow premultiplies the whole source before
  resizing (100 MP: another 400 MB). When the cascade reduces first, the
  premultiplied copy is only needed band by band.
"""

from __future__ import annotations

import math

from PIL import Image

BAND_BYTES = 32 << 20  # of source pixels per band
# Half-width of each filter's kernel, as Pillow defines it (Image._filters_support).
_SUPPORT = {
    Image.Resampling.BOX: 0.5, Image.Resampling.BILINEAR: 1.0, Image.Resampling.HAMMING: 1.0,
    Image.Resampling.BICUBIC: 2.0, Image.Resampling.LANCZOS: 3.0,
}
_PREMULTIPLIED = {"LA": "La", "RGBA": "RGBa"}


def _band_rows(width: int, bytes_per_pixel: int, multiple: int = 1) -> int:
    rows = max(1, BAND_BYTES // max(1, width * bytes_per_pixel))
    return max(multiple, rows - rows % multiple)


def high_bit_to_l(img: Image.Image) -> Image.Image:
    """I;16*, I and F greyscale -> L: 0..65535 (0.0..1.0 for F) onto 0..255, band by band."""
    out = Image.new("L", img.size)
    rows = _band_rows(img.width, 4)
    for top in range(0, img.height, rows):
        band = img.crop((0, top, img.width, min(img.height, top + rows)))
        if img.mode == "F":
            grey = band.point(lambda v: v * 255).convert("L")
        else:
            grey = band.convert("I").point(lambda v: v / 257).convert("L")
        out.paste(grey, (0, top))
    return out


def resize(img: Image.Image, size: tuple[int, int], resample: Image.Resampling,
           box: tuple[float, float, float, float], reducing_gap: float) -> Image.Image:
    """``img.resize(size, resample, box=box, reducing_gap=reducing_gap)``, premultiplying alpha in bands."""
    factor_x = int((box[2] - box[0]) / size[0] / reducing_gap) or 1
    factor_y = int((box[3] - box[1]) / size[1] / reducing_gap) or 1
    if img.mode not in _PREMULTIPLIED or (factor_x == 1 and factor_y == 1):
        return img.resize(size, resample, box=box, reducing_gap=reducing_gap)
    premultiplied = _PREMULTIPLIED[img.mode]
    left, top, right, bottom = _safe_box(img.size, size, resample, box)
    reduced = Image.new(premultiplied, (math.ceil((right - left) / factor_x), math.ceil((bottom - top) / factor_y)))
    rows = _band_rows(right - left, 4, factor_y)
    for y in range(top, bottom, rows):
        band = img.crop((left, y, right, min(bottom, y + rows))).convert(premultiplied)
        reduced.paste(band.reduce((factor_x, factor_y)), (0, (y - top) // factor_y))
    rest = ((box[0] - left) / factor_x, (box[1] - top) / factor_y,
            (box[2] - left) / factor_x, (box[3] - top) / factor_y)
    return reduced.resize(size, resample, box=rest).convert(img.mode)


def _safe_box(img_size: tuple[int, int], size: tuple[int, int], resample: Image.Resampling,
              box: tuple[float, float, float, float]) -> tuple[int, int, int, int]:
    """The box grown by the filter's reach, as Pillow's reduce-then-resize does (Image._get_safe_box)."""
    support = _SUPPORT[resample] - 0.5
    reach_x = support * (box[2] - box[0]) / size[0]
    reach_y = support * (box[3] - box[1]) / size[1]
    return (max(0, int(box[0] - reach_x)), max(0, int(box[1] - reach_y)),
            min(img_size[0], math.ceil(box[2] + reach_x)), min(img_size[1], math.ceil(box[3] + reach_y)))

"""Where each rendition's pixels come from and where they land: pure arithmetic.

Fit modes follow sharp / imgproxy:

- ``inside``  fit within width x height, keep the aspect ratio (no padding);
- ``contain`` fit within the box, then pad to exactly width x height;
- ``cover``   fill the box, crop the overflow at ``gravity``;
- ``fill``    stretch to exactly width x height.

Unless ``enlarge`` is set, no mode scales a source up.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from core.errors import ConfigError
from core.recipe import Rendition


@dataclass(frozen=True)
class Geometry:
    box: tuple[float, float, float, float]  # region of the source to resample (source pixels)
    size: tuple[int, int]  # that region's size after resampling
    canvas: tuple[int, int] | None = None  # contain: final padded size
    offset: tuple[int, int] = (0, 0)  # where the resampled region sits on the canvas

    @property
    def output_size(self) -> tuple[int, int]:
        return self.canvas or self.size

    @property
    def scale(self) -> float:
        """Largest linear scale factor applied to the source region."""
        bw, bh = self.box[2] - self.box[0], self.box[3] - self.box[1]
        return max(self.size[0] / bw, self.size[1] / bh)


def _round(value: float) -> int:
    """Round half up (112.5 -> 113), as other image tools do; Python's round() is half-even."""
    return math.floor(value + 0.5)


def _align(free: float, gravity: str, low: str, high: str) -> float:
    """Offset within ``free`` spare pixels: 0 toward ``low``, all toward ``high``."""
    if low in gravity:
        return 0.0
    if high in gravity:
        return free
    return free / 2


def gravity_offset(free_w: float, free_h: float, gravity: str) -> tuple[float, float]:
    """Top-left offset of an item with ``free_w`` x ``free_h`` spare pixels around it."""
    return _align(free_w, gravity, "west", "east"), _align(free_h, gravity, "north", "south")


def _box_size(r: Rendition) -> tuple[int, int]:
    """The width x height that ``cover`` and ``contain`` fit into (the recipe parser requires both)."""
    if r.width is None or r.height is None:
        raise ConfigError(f"rendition {r.label}: fit = {r.fit!r} needs both width and height")
    return r.width, r.height


def _fit_scale(w: int, h: int, r: Rendition, cover: bool) -> float:
    ratios = [t / s for t, s in ((r.width, w), (r.height, h)) if t]
    if not ratios:
        return 1.0
    scale = max(ratios) if cover else min(ratios)
    return scale if r.enlarge else min(scale, 1.0)


def plan(w: int, h: int, r: Rendition) -> Geometry:
    """Geometry of rendition ``r`` for a ``w`` x ``h`` (already oriented) source."""
    full = (0.0, 0.0, float(w), float(h))
    if r.fit == "fill":
        tw, th = r.width or w, r.height or h
        if not r.enlarge:
            tw, th = min(tw, w), min(th, h)
        return Geometry(full, (tw, th))
    if r.fit == "cover":
        box_w, box_h = _box_size(r)
        scale = _fit_scale(w, h, r, cover=True)
        out_w = min(box_w, max(1, _round(w * scale)))
        out_h = min(box_h, max(1, _round(h * scale)))
        src_w, src_h = min(w, out_w / scale), min(h, out_h / scale)
        x, y = gravity_offset(w - src_w, h - src_h, r.gravity)
        return Geometry((x, y, x + src_w, y + src_h), (out_w, out_h))
    scale = _fit_scale(w, h, r, cover=False)
    size = (max(1, _round(w * scale)), max(1, _round(h * scale)))
    if r.fit == "contain":
        box_w, box_h = _box_size(r)
        x, y = gravity_offset(box_w - size[0], box_h - size[1], r.gravity)
        return Geometry(full, size, (box_w, box_h), (_round(x), _round(y)))
    return Geometry(full, size)


def to_stored(
    size: tuple[int, int], box: tuple[float, float, float, float], stored_w: int, stored_h: int, orientation: int
) -> tuple[tuple[int, int], tuple[float, float, float, float]]:
    """Map an upright resize (target size, source box) onto pixels still in EXIF-stored orientation.

    Resizing the stored pixels and turning only the small result upright saves
    a full-size transposed copy of the source.
    """
    x0, y0, x1, y1 = box
    w, h = stored_w, stored_h
    stored_box = {
        1: (x0, y0, x1, y1),
        2: (w - x1, y0, w - x0, y1),  # mirrored
        3: (w - x1, h - y1, w - x0, h - y0),  # upside down
        4: (x0, h - y1, x1, h - y0),  # flipped
        5: (y0, x0, y1, x1),  # transposed
        6: (y0, h - x1, y1, h - x0),  # shown rotated 90 degrees clockwise
        7: (w - y1, h - x1, w - y0, h - x0),  # transversed
        8: (w - y1, x0, w - y0, x1),  # shown rotated 90 degrees counter-clockwise
    }[orientation]
    return ((size[1], size[0]) if orientation >= 5 else size), stored_box

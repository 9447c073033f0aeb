"""The per-rendition steps, in order. Each takes the context and replaces ``ctx.image``.

Adding an operation is one small function here and one entry in ``STEPS``.
Steps never modify an image in place: the decoded source and the cached
downscales are shared by every rendition of the same photo.
"""

from __future__ import annotations

import functools
import io
from collections.abc import Callable
from dataclasses import dataclass, field

from PIL import Image, ImageColor, ImageDraw, ImageFilter, ImageFont

from core import lowmem
from core.codec import orient
from core.geometry import Geometry, gravity_offset, to_stored
from core.recipe import Rendition, Watermark

RESAMPLE = Image.Resampling.LANCZOS  # watermark stamps, upscales, and downscales by 2x or more
# Downscales by less than 2x (the first step from a JPEG decoded at a DCT draft
# scale, e.g. 2000 -> 1600 px) use BICUBIC: its support of 2 instead of 3 needs
# 7 taps per pixel there instead of 9. Measured against a float LANCZOS
# reference after a q85 encode (bench/tools/cascade_variants.py): -0.2 dB at the
# 1600 px rendition, -0.02 dB at 800 px, a quarter less time for that step. At
# 2x and beyond BICUBIC costs 0.4 dB (800 px from 1600 px), so LANCZOS stays.
SMALL_STEP_RESAMPLE = Image.Resampling.BICUBIC
SMALL_STEP_BELOW = 2.0
# Pillow first box-reduces by an integer factor until the remaining scale is
# under this gap, then resamples. 2.0 instead of 3.0 makes a 4x step (800 ->
# 200 px) a box 2x then a LANCZOS 2x: half the time, -0.05 dB after q85 (up to
# -0.1 dB at 10x from full size). A pure box reduce (gap 1.0) of an exact 2x
# step costs 0.5-0.8 dB at 800 px: not used.
REDUCING_GAP = 2.0
# A cached downscale serves a smaller rendition when it still holds at least
# this many times the pixels per axis the rendition needs.
CASCADE_GAP = 2.0


class ScaledCopies:
    """The decoded source and its full-frame downscales, from largest to smallest.

    Renditions are rendered largest first; each smaller one resamples from the
    smallest copy that still has ``CASCADE_GAP`` times the detail it needs.
    The decoded source stays in its EXIF-stored orientation: the first resize
    reads it as stored and only turns its (small) result upright, which saves
    a full-size transposed copy. Every later copy is upright.
    """

    def __init__(self, base: Image.Image, full_w: int, full_h: int, orientation: int = 1):
        self.full_w, self.full_h = full_w, full_h  # upright, at full resolution
        self.copies: list[Image.Image] = [base]
        self.orientation = orientation
        self._stored = base if orientation != 1 else None

    def is_stored(self, copy: Image.Image) -> bool:
        """True for the decoded source when it is not upright yet."""
        return copy is self._stored

    def upright_size(self, copy: Image.Image) -> tuple[int, int]:
        if self.is_stored(copy) and self.orientation >= 5:
            return copy.height, copy.width
        return copy.size

    def add(self, img: Image.Image) -> None:
        self.copies.append(img)
        self.copies.sort(key=lambda c: -self.upright_size(c)[0])

    def release_unused(self, remaining: list[Geometry]) -> None:
        """Forget copies none of the remaining renditions resamples from.

        Picks only ever move to smaller copies as copies are added, so a copy
        nobody picks now is never picked later.
        """
        keep = {id(self.pick(g)[0]) for g in remaining}
        self.copies = [c for c in self.copies if id(c) in keep]
        if not any(self.is_stored(c) for c in self.copies):
            self._stored = None  # the last reference to the decoded source

    def is_full_frame(self, g: Geometry) -> bool:
        return g.box == (0.0, 0.0, float(self.full_w), float(self.full_h))

    def pick(self, g: Geometry) -> tuple[Image.Image, tuple[float, float, float, float]]:
        """The copy to resample from, and the geometry's box in that copy's (upright) pixels."""
        if self.is_full_frame(g):
            for copy in self.copies:
                if self.upright_size(copy) == g.size:  # e.g. the JPEG and WebP of one size
                    w, h = g.size
                    return copy, (0.0, 0.0, float(w), float(h))
        need = g.scale
        chosen = self.copies[0]
        for copy in self.copies:
            w, h = self.upright_size(copy)
            if w / self.full_w >= need * CASCADE_GAP and h / self.full_h >= need * CASCADE_GAP:
                chosen = copy
        w, h = self.upright_size(chosen)
        sx, sy = w / self.full_w, h / self.full_h
        x0, y0, x1, y1 = g.box
        return chosen, (x0 * sx, y0 * sy, x1 * sx, y1 * sy)


@dataclass
class Context:
    """One rendition on its way through ``STEPS``; ``resize`` (always first) sets the image."""

    rendition: Rendition
    geometry: Geometry
    copies: ScaledCopies
    notes: dict[str, object] = field(default_factory=dict)
    _image: Image.Image | None = field(default=None, init=False, repr=False)

    @property
    def image(self) -> Image.Image:
        """The rendition so far; reading it before ``resize`` ran is a bug in the step order."""
        if self._image is None:
            raise RuntimeError("no image yet: resize must be the first step")
        return self._image

    @image.setter
    def image(self, img: Image.Image) -> None:
        self._image = img


Step = Callable[[Context], None]


def resample_for(box: tuple[float, float, float, float], size: tuple[int, int]) -> Image.Resampling:
    """The filter for resampling ``box`` to ``size``: BICUBIC for a downscale by under 2x on both axes."""
    fx, fy = (box[2] - box[0]) / size[0], (box[3] - box[1]) / size[1]
    if 1 < fx < SMALL_STEP_BELOW and 1 < fy < SMALL_STEP_BELOW:
        return SMALL_STEP_RESAMPLE
    return RESAMPLE


def _resized(src: Image.Image, size: tuple[int, int], box: tuple[float, float, float, float]) -> Image.Image:
    return lowmem.resize(src, size, resample_for(box, size), box, REDUCING_GAP)


def resize(ctx: Context) -> None:
    g, copies = ctx.geometry, ctx.copies
    src, box = copies.pick(g)
    full_frame = copies.is_full_frame(g)
    if copies.is_stored(src):
        size, box = to_stored(g.size, box, src.width, src.height, copies.orientation)
        same = full_frame and src.size == size
        resized = src if same else _resized(src, size, box)
        ctx.image = orient(resized, copies.orientation)
    elif full_frame and src.size == g.size:
        ctx.image = src  # shared, never modified: every step returns a new image
        return
    else:
        ctx.image = _resized(src, g.size, box)
    if full_frame and not ctx.notes.get("animated"):
        copies.add(ctx.image)


def pad(ctx: Context) -> None:
    """``contain``: centre (or align by gravity) the image on a background canvas."""
    g = ctx.geometry
    if g.canvas is None:
        return
    img = ctx.image
    colour = _bands(ctx.rendition.background, "RGBA")
    mode = "RGBA" if img.mode == "RGBA" or colour[3] < 255 else img.mode
    canvas = Image.new(mode, g.canvas, colour if mode == "RGBA" else _solid(colour, mode))
    canvas.paste(img.convert(mode), g.offset)
    ctx.image = canvas


def grayscale(ctx: Context) -> None:
    if ctx.rendition.grayscale and ctx.image.mode not in ("L", "LA"):
        ctx.image = ctx.image.convert("LA" if ctx.image.mode == "RGBA" else "L")


def blur(ctx: Context) -> None:
    if ctx.rendition.blur > 0:
        ctx.image = ctx.image.filter(ImageFilter.GaussianBlur(ctx.rendition.blur))


def sharpen(ctx: Context) -> None:
    if ctx.rendition.sharpen > 0:
        ctx.image = ctx.image.filter(ImageFilter.UnsharpMask(radius=ctx.rendition.sharpen, percent=120, threshold=2))


def watermark(ctx: Context) -> None:
    wm = ctx.rendition.watermark
    if wm is None:
        return
    base = ctx.image
    stamp = _stamp(wm, base.width)
    free_w, free_h = base.width - stamp.width - 2 * wm.margin, base.height - stamp.height - 2 * wm.margin
    dx, dy = gravity_offset(max(0, free_w), max(0, free_h), wm.position)
    x, y = wm.margin + round(dx), wm.margin + round(dy)
    layer = Image.new("RGBA", base.size, (0, 0, 0, 0))
    layer.paste(stamp, (x, y))
    ctx.image = Image.alpha_composite(base.convert("RGBA"), layer).convert(base.mode)


def output_mode(ctx: Context) -> None:
    """Give the encoder a mode it supports; JPEG has no alpha, so flatten onto the background."""
    img, fmt = ctx.image, ctx.rendition.format
    if fmt == "jpeg" and img.mode in ("RGBA", "LA"):
        colour = _bands(ctx.rendition.background, "RGB")
        flat_mode = "L" if img.mode == "LA" else "RGB"
        canvas = Image.new(flat_mode, img.size, _solid((*colour, 255), flat_mode))
        canvas.paste(img, mask=img.getchannel("A"))
        ctx.image = canvas
    elif fmt in ("webp", "avif") and img.mode in ("L", "LA"):
        ctx.image = img.convert("RGBA" if img.mode == "LA" else "RGB")


STEPS: tuple[Step, ...] = (resize, pad, grayscale, blur, sharpen, watermark, output_mode)


# --- helpers -----------------------------------------------------------------


def _bands(colour: str, mode: str) -> tuple[int, ...]:
    """``colour`` as a tuple of ``mode``'s bands (Pillow returns a bare int for one-band modes only)."""
    value = ImageColor.getcolor(colour, mode)
    return value if isinstance(value, tuple) else (value,)


def _solid(rgba: tuple[int, ...], mode: str) -> int | tuple[int, ...]:
    """The fill for a canvas of ``mode`` from an RGBA colour (grey from the ITU-R 601 weights)."""
    if mode in ("L", "LA"):
        grey = round(0.299 * rgba[0] + 0.587 * rgba[1] + 0.114 * rgba[2])
        return grey if mode == "L" else (grey, rgba[3])
    return rgba[:3] if mode == "RGB" else rgba


def _stamp(wm: Watermark, base_width: int) -> Image.Image:
    """The watermark as an RGBA image scaled to ``wm.size`` of the width, at ``wm.opacity``."""
    target_w = max(1, round(base_width * wm.size))
    stamp = _image_stamp(wm.image, target_w) if wm.image else _text_stamp(wm.text or "", wm.color, target_w)
    alpha = stamp.getchannel("A").point(lambda a: round(a * wm.opacity))
    stamp.putalpha(alpha)
    return stamp


@functools.lru_cache(maxsize=8)
def _decoded_stamp(data: bytes) -> Image.Image:
    img = Image.open(io.BytesIO(data))
    img.load()
    return img.convert("RGBA")


def _image_stamp(data: bytes, target_w: int) -> Image.Image:
    src = _decoded_stamp(data)
    target_h = max(1, round(src.height * target_w / src.width))
    return src.resize((target_w, target_h), RESAMPLE)


def _text_stamp(text: str, colour: str, target_w: int) -> Image.Image:
    probe = ImageFont.load_default(size=100)
    length = max(1.0, ImageDraw.Draw(Image.new("L", (1, 1))).textlength(text, font=probe))
    font = ImageFont.load_default(size=max(6, round(100 * target_w / length)))
    # Whole pixels at runtime (no stroke); Pillow's annotation says float for stroked text.
    left, top, right, bottom = (int(v) for v in font.getbbox(text))
    stamp = Image.new("RGBA", (max(1, right - left), max(1, bottom - top)), (0, 0, 0, 0))
    ImageDraw.Draw(stamp).text((-left, -top), text, font=font, fill=ImageColor.getcolor(colour, "RGBA"))
    return stamp

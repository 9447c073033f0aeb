"""The decoded working set of one source, estimated from its header and checked before decoding.

A few hundred KB of PNG or TIFF can declare 100 MP of 32-bit pixels; the byte
and pixel limits let that through, the memory of a 1024 MB Lambda does not.
``check_budget`` adds up the full-size images the pipeline holds at its worst
moment (Pillow's bytes per pixel for each mode, as ``core.pipeline.render``
makes them) and refuses the source when that is over ``limits.max_memory_mb``.

The model follows the code, stage by stage; each stage's peak is what is alive
at once:

1. decode: the encoded bytes plus the decoded image (JPEG at its DCT draft
   scale); an animation's decoder also keeps the previous frame and the
   composited canvas.
2. working mode: the decoded image plus its conversion to L/RGB/RGBA (converted
   in bands for high-bit-depth sources, so the transient is one band).
3. first resize: the working image plus what Pillow's resize allocates from it
   (the reduced image, the horizontal pass, the result; a premultiplied
   full-size copy only for alpha sources that are not reduced first, see
   ``core.lowmem``), plus every finished rendition frame of an animation.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

from PIL import Image

from core.codec import SourceInfo
from core.errors import MemoryBudgetExceeded
from core.geometry import Geometry
from core.recipe import Limits
from core.steps import REDUCING_GAP

MIB = 1 << 20
# Pillow keeps 1 byte per pixel for these modes, 2 for 16-bit ones, 4 for the rest
# (RGB is padded to 4 bytes, like every multi-band mode).
_ONE_BYTE = ("1", "L", "P")
_TWO_BYTES = ("I;16", "I;16L", "I;16B", "I;16N")
# Sources whose working mode is greyscale (1 byte) after to_working_mode.
_TO_GREY = ("1", "L", "I", "F", *_TWO_BYTES)
# Rows per band when a high-bit-depth source is converted (core.lowmem).
_BAND_BYTES = 64 * MIB
# A GIF/WebP/PNG decoder composing frames holds the canvas and the previous frame.
_ANIMATION_CANVASES = 2


def bytes_per_pixel(mode: str) -> int:
    if mode in _ONE_BYTE:
        return 1
    if mode in _TWO_BYTES:
        return 2
    return 4


def draft_scale(info: SourceInfo, need_scale: float) -> float:
    """The DCT scale libjpeg decodes at (1, 1/2, 1/4 or 1/8): the smallest that covers ``need_scale``."""
    if info.format != "jpeg" or need_scale >= 1:
        return 1.0
    return next(s for s in (0.125, 0.25, 0.5, 1.0) if s >= need_scale)


def _resize_bytes(scale: float, g: Geometry, mode: str) -> int:
    """What one Pillow resize of the decoded image (at ``scale``) allocates besides its source."""
    x0, y0, x1, y1 = g.box  # in full-size pixels
    bw, bh = max(1.0, (x1 - x0) * scale), max(1.0, (y1 - y0) * scale)
    out_w, out_h = g.size
    fx = int(bw / out_w / REDUCING_GAP) or 1
    fy = int(bh / out_h / REDUCING_GAP) or 1
    reduced_w, reduced_h = math.ceil(bw / fx), math.ceil(bh / fy)
    bpp = bytes_per_pixel(mode)
    alpha_copy = bw * bh * 4 if mode in ("RGBA", "LA") and fx == fy == 1 else 0
    reduced = reduced_w * reduced_h * bpp * (2 if mode in ("RGBA", "LA") else 1) if fx > 1 or fy > 1 else 0
    passes = out_w * reduced_h * bpp + out_w * out_h * bpp * 2  # horizontal pass, result (+ its mode conversion)
    return int(alpha_copy + reduced + passes)


def working_mode(mode: str) -> str:
    if mode in _TO_GREY:
        return "L"
    if mode in ("RGB", "CMYK", "YCbCr"):
        return "RGB"
    return "RGBA"


def estimate(info: SourceInfo, plans: Iterable[Geometry], animate: bool, need_scale: float) -> int:
    """Bytes the pipeline holds at its peak for this source (see the module docstring)."""
    plans = list(plans)
    scale = draft_scale(info, need_scale)
    w, h = max(1, math.ceil(info.width * scale)), max(1, math.ceil(info.height * scale))
    pixels = w * h
    if animate:
        # Frames after the first decode as RGBA whatever the header says.
        canvas = pixels * 4
        decoder = canvas * _ANIMATION_CANVASES
        frame_work = canvas + max((_resize_bytes(scale, g, "RGBA") for g in plans), default=0)
        kept = info.frames * sum(g.output_size[0] * g.output_size[1] * 4 for g in plans)
        return info.bytes + decoder + frame_work + kept
    decoded = pixels * bytes_per_pixel(info.mode)
    target = working_mode(info.mode)
    converting = 0
    if info.mode not in ("L", "RGB", "RGBA"):
        band = min(pixels * 4, _BAND_BYTES) * 2 if info.mode in ("I", "F", *_TWO_BYTES) else 0
        converting = pixels * bytes_per_pixel(target) + band
    working = decoded if not converting else pixels * bytes_per_pixel(target)
    largest = max(plans, key=lambda g: g.scale, default=None)
    resizing = working + (_resize_bytes(scale, largest, target) if largest else 0)
    return info.bytes + max(decoded + converting, resizing)


def check_budget(info: SourceInfo, plans: Iterable[Geometry], animate: bool, need_scale: float,
                 limits: Limits, name: str) -> None:
    """Refuse, before decoding, a source whose working set is over ``limits.max_memory_mb``."""
    need = estimate(info, plans, animate, need_scale)
    if need > limits.max_memory_mb * MIB:
        frames = f" x {info.frames} frames" if animate else ""
        raise MemoryBudgetExceeded(
            f"{name}: decoding {info.width}x{info.height} {info.mode}{frames} needs about "
            f"{math.ceil(need / MIB):,} MiB, over the {limits.max_memory_mb:,} MiB memory budget "
            f"(limits.max_memory_mb)"
        )


# Pillow hands image memory back to the allocator as soon as an image is freed
# (it keeps no freed block by default), so every photo of a batch gets its
# multi-MB images as fresh pages from the kernel: a page fault per 4 KiB, about
# 10 ms of system time per 12 MP photo. A process rendering photo after photo
# keeps a few 1 MiB blocks instead and reuses them. The pixels, and so the
# output bytes, are the same whatever the block size.
BATCH_BLOCK_BYTES = 1 << 20
BATCH_BLOCKS_KEPT = 16


def keep_freed_blocks() -> None:
    """For a process that renders many photos in a row (``imgproc process`` workers).

    Measured on 20 x 12 MP photos (bench job): system time 0.27 s -> 0.04 s,
    page faults 130k -> 14k, peak RSS +6 MiB (the kept blocks). Not for the
    Lambda handler, whose one photo per invocation gains little and whose
    peak memory is the budget. Process-wide: Pillow's default allocator.
    """
    Image.core.set_block_size(BATCH_BLOCK_BYTES)
    Image.core.set_blocks_max(BATCH_BLOCKS_KEPT)

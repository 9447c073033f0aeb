"""The engine's public entry point: source bytes + renditions -> encoded renditions.

The same function serves ``imgproc process``, the Lambda handler and the API,
so the same bytes and preset give the same output bytes everywhere.

Example::

    from core.pipeline import render
    from core.recipe import builtin_config

    config = builtin_config()
    result = render(open("cat.jpg", "rb").read(), config.select(["thumb"]), config.limits, name="cat.jpg")
    for out in result.outputs:
        print(out.rendition.label, out.width, out.height, len(out.data))
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from PIL import Image, ImageSequence

from core import codec, diagnostics, geometry, memory, steps
from core.codec import SourceInfo
from core.errors import ByteBudgetExceeded, ImgprocError, OutputTooLarge
from core.recipe import Limits, Rendition


@dataclass(frozen=True)
class Output:
    rendition: Rendition
    data: bytes
    width: int
    height: int
    ms_transform: float
    ms_encode: float

    @property
    def bytes(self) -> int:
        return len(self.data)


@dataclass(frozen=True)
class RenditionFailure:
    """A rendition that could not be made while the source's others were (e.g. its max_bytes)."""

    rendition: Rendition
    error: ImgprocError


@dataclass(frozen=True)
class RenderResult:
    source: SourceInfo
    outputs: tuple[Output, ...]  # the renditions made, in the order they were given
    ms_decode: float
    failures: tuple[RenditionFailure, ...] = ()  # the renditions that could not be made
    warnings: tuple[str, ...] = ()  # codec warnings about this source, "name: text", once each


def _ms(since: float) -> float:
    return round((time.perf_counter() - since) * 1000, 2)


def render(data: bytes, renditions: tuple[Rendition, ...], limits: Limits, name: str = "image") -> RenderResult:
    """Decode ``data`` once and produce every rendition, largest first.

    Raises a subclass of ``core.errors.ImgprocError`` with a one-line message
    naming ``name`` when a limit refuses the source or it cannot be decoded.
    A rendition that fails on its own (its ``max_bytes``) is reported in
    ``failures`` and the others are still made. Codec warnings never reach
    stderr: they come back in ``warnings`` (or the raised error's ``warnings``).
    """
    codec.check_codecs(renditions)
    with diagnostics.Captured(name) as captured:
        started = time.perf_counter()
        img, info = codec.open_source(data, limits, name)
        plans = [geometry.plan(info.width, info.height, r) for r in renditions]
        _check_output_sizes(plans, renditions, limits, name)
        animate = info.animated and any(r.animates for r in renditions)
        if animate:
            codec.check_frames(info, limits, name)
        need = min(1.0, max(g.scale for g in plans)) if plans else 1.0
        memory.check_budget(info, plans, animate, need, limits, name)
        # Memory: from here on each big intermediate is dropped as soon as nothing
        # needs it (the encoded bytes, copies no later rendition resamples from) and
        # a rotated photo is never transposed at full size: a 24 MP photo stays
        # under 100 MiB in Lambda.
        # An animation is walked from its own opening of the source: seeking the
        # decoded first frame would change the pixels the still renditions share.
        animation = data if animate else None
        del data  # decoded below; the caller has let go of its reference too
        base = codec.decode(img, info, need, name)
        del img
        exif = _kept_exif(base) if any(not r.strip for r in renditions) else None
        with codec.reading(name, "convert its pixels"):
            working, icc = codec.to_working_mode(base)
        del base
        copies = steps.ScaledCopies(working, info.width, info.height, info.orientation)
        del working
        ms_decode = _ms(started)

        outputs: list[Output | None] = [None] * len(renditions)
        failures: list[RenditionFailure] = []
        order = sorted(range(len(renditions)), key=lambda i: -plans[i].scale)
        for n, i in enumerate(order):
            r, g = renditions[i], plans[i]
            try:
                if animation is not None and r.animates:
                    with codec.reading(name, "decode its frames"):
                        outputs[i] = _render_animation(codec.open_frames(animation), info, r, g, exif)
                else:
                    outputs[i] = _render_one(r, g, copies, icc, exif)
            except ByteBudgetExceeded as exc:
                failures.append(RenditionFailure(r, ByteBudgetExceeded(f"{name}: {exc.message}")))
            copies.release_unused([plans[j] for j in order[n + 1:]])
        failures.sort(key=lambda f: renditions.index(f.rendition))
    made = tuple(o for o in outputs if o is not None)
    return RenderResult(info, made, ms_decode, tuple(failures), captured.lines)


def _render_one(
    r: Rendition, g: geometry.Geometry, copies: steps.ScaledCopies, icc: bytes | None, exif: bytes | None,
) -> Output:
    t0 = time.perf_counter()
    ctx = steps.Context(r, g, copies)
    for step in steps.STEPS:
        step(ctx)
    ms_transform = _ms(t0)
    t1 = time.perf_counter()
    img = ctx.image
    keep_icc = icc if r.keep_icc and codec.icc_matches(icc, img.mode) else None
    data = codec.encode([img], r, keep_icc, None if r.strip else exif)
    width, height = img.size
    return Output(r, data, width, height, ms_transform, _ms(t1))


def _render_animation(
    img: Image.Image, info: SourceInfo, r: Rendition, g: geometry.Geometry, exif: bytes | None,
) -> Output:
    """Every frame through the same steps (no cascade: frames are small and few).

    Memory: a frame is copied only when no step made a new image of it (the
    next seek overwrites it), and each frame's full-size working copy is let go
    before the decoder composes the next frame.
    """
    t0 = time.perf_counter()
    frames: list[Image.Image] = []
    durations: list[int] = []
    icc: bytes | None = None
    for frame in ImageSequence.Iterator(img):
        frame.load()  # WebP and AVIF set a frame's duration only once it is loaded
        # Whole milliseconds: APNG's fractions make the AVIF encoder raise.
        durations.append(round(frame.info.get("duration", 100)))
        oriented, icc = codec.to_working_mode(codec.orient(frame, info.orientation))
        if oriented.mode != "RGBA":
            oriented = oriented.convert("RGBA")
        ctx = steps.Context(r, g, steps.ScaledCopies(oriented, info.width, info.height), notes={"animated": True})
        del oriented
        for step in steps.STEPS:
            step(ctx)
        frames.append(ctx.image.copy() if ctx.image is frame else ctx.image)
        del ctx
    ms_transform = _ms(t0)
    t1 = time.perf_counter()
    timing: codec.Timing = {"duration": durations, "loop": img.info.get("loop", 0)}
    keep_icc = icc if r.keep_icc and codec.icc_matches(icc, frames[0].mode) else None
    data = codec.encode(frames, r, keep_icc, None if r.strip else exif, timing)
    return Output(r, data, frames[0].width, frames[0].height, ms_transform, _ms(t1))


def _check_output_sizes(
    plans: list[geometry.Geometry], renditions: tuple[Rendition, ...], limits: Limits, name: str,
) -> None:
    for g, r in zip(plans, renditions, strict=True):
        w, h = g.output_size
        if max(w, h) > limits.max_output_dimension:
            raise OutputTooLarge(
                f"{name}: rendition {r.label} would be {w}x{h}, over the "
                f"{limits.max_output_dimension}px output limit"
            )


def _kept_exif(img: Image.Image) -> bytes | None:
    """EXIF for ``strip = false`` renditions, with Orientation reset (pixels are already upright)."""
    try:
        exif = img.getexif()
    except Exception:  # noqa: BLE001 - a broken EXIF block is dropped, not fatal
        return None
    if not exif:
        return None
    exif[0x0112] = 1
    return exif.tobytes()

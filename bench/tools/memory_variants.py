"""Experiment: peak memory of one large photo through the engine, with two candidate changes.

Not the engine: a copy of ``core.pipeline.render``'s still-image path, so the lead
can see the effect of each change before touching core/. A boto3 S3 client is
created first, as in the Lambda handler.

- ``band``: resize the largest full-frame rendition in 128-row bands (``box=``),
  so Pillow's horizontal-pass intermediate is a band, not out_width x in_height.
- ``late``: apply the EXIF orientation to each rendition after resizing instead of
  to the decoded base (plans made in stored orientation; valid here because the
  built-in presets have no crop, pad or watermark), so a rotated photo never holds
  two full-size copies and transposes 1.7 MP instead of 6 MP.
- ``drop``: let go of the decoded base (and any copy no later rendition picks)
  once the largest rendition's copy exists; ``render`` today keeps ``img`` and
  ``base`` alive until it returns, so the WebP encode runs next to the base.

    python bench/tools/memory_variants.py PHOTO.jpg none|band|drop|late|band+drop+late ...

Run each variant in a fresh process from the shell: it prints VmHWM (peak RSS).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import boto3
from PIL import Image

from core import codec, geometry, steps
from core.recipe import builtin_config

BAND = 128


def _hwm() -> float:
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def main() -> int:
    photo, mode = Path(sys.argv[1]), sys.argv[2]
    boto3.client("s3", region_name="us-east-1")

    def resize(ctx):
        g = ctx.geometry
        src, box = ctx.copies.pick(g)
        w, h = g.size
        if "band" not in mode or not ctx.copies.is_full_frame(g) or src.size == g.size or h <= 2 * BAND:
            return steps.resize(ctx)
        x0, y0, x1, y1 = box
        sy = (y1 - y0) / h
        out = Image.new(src.mode, g.size)
        for r0 in range(0, h, BAND):
            r1 = min(h, r0 + BAND)
            band = src.resize((w, r1 - r0), steps.RESAMPLE, box=(x0, y0 + r0 * sy, x1, y0 + r1 * sy),
                              reducing_gap=steps.REDUCING_GAP)
            out.paste(band, (0, r0))
        ctx.image = out
        ctx.copies.add(out)

    chain = (resize, *steps.STEPS[1:])
    cfg = builtin_config()
    renditions = cfg.select()
    data = [photo.read_bytes()]
    started = time.perf_counter()
    img, info = codec.open_source(data[0], cfg.limits, photo.name)
    del data[0]
    late = "late" in mode and info.orientation != 1
    if late:
        # Plan in stored orientation: swap the viewer's width/height and each box.
        import dataclasses

        stored_w, stored_h = (info.height, info.width) if info.orientation >= 5 else (info.width, info.height)
        if info.orientation >= 5:
            renditions = tuple(dataclasses.replace(r, width=r.height, height=r.width) for r in renditions)
        plans = [geometry.plan(stored_w, stored_h, r) for r in renditions]
        info = dataclasses.replace(info, width=stored_w, height=stored_h)
    else:
        plans = [geometry.plan(info.width, info.height, r) for r in renditions]
    base = codec.decode(img, info, min(1.0, max(g.scale for g in plans)), photo.name)
    if not late:
        base = codec.orient(base, info.orientation)
    base, _icc = codec.to_working_mode(base)
    copies = steps.ScaledCopies(base, info.width, info.height)
    if "drop" in mode:
        del img, base
    order = sorted(range(len(renditions)), key=lambda i: -plans[i].scale)
    sizes = []
    for n, i in enumerate(order):
        ctx = steps.Context(renditions[i], plans[i], copies)
        for step in chain:
            step(ctx)
        if "drop" in mode:
            rest = [plans[j] for j in order[n + 1:]]
            # keep the smallest copies that still serve every remaining rendition
            needed = [c for c in copies.copies if any(
                c.size == p.size or (c.width / copies.full_w >= p.scale * steps.CASCADE_GAP
                                     and c.height / copies.full_h >= p.scale * steps.CASCADE_GAP)
                for p in rest)]
            if needed or not rest:
                copies.copies = needed[-1:]
        final = codec.orient(ctx.image, info.orientation) if late else ctx.image
        sizes.append((renditions[i].label, final.size, len(codec.encode([final], renditions[i], None, None))))
        del ctx
    ms = (time.perf_counter() - started) * 1000
    print(f"{mode:10s} peak {_hwm():.1f} MiB  {ms:.0f} ms  {sizes}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

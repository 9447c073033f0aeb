"""Experiment: time and quality of candidate resize cascades for the bench job (1600/800/200).

Each variant turns the same decoded photo (JPEG draft at the scale the 1600 px
rendition allows, as the engine decodes it) into the three renditions, step by
step: ``big`` (decoded -> 1600), ``mid`` (-> 800) and ``small`` (-> 200). Every
step is timed in-process (one thread, the variants interleaved photo by photo
and round by round, so background load hits them alike; per photo the fastest
round counts, as load only ever adds time); quality is PSNR/SSIM of each
rendition's pixels, before and after a JPEG q85 encode, against
``bench/quality.py``'s float LANCZOS reference of the full-size decode.

    python bench/tools/cascade_variants.py SRC [--limit N] [--rounds R] [--variants a,b]

Prints one JSON document (per variant: per step ms per photo (fastest round, mean over photos), per size
mean PSNR dB and SSIM). Not the engine: the engine's choice is in core/steps.py.
"""

from __future__ import annotations

import argparse
import io
import json
import math
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
import quality

L, C, H, BL = (Image.Resampling.LANCZOS, Image.Resampling.BICUBIC, Image.Resampling.HAMMING,
               Image.Resampling.BILINEAR)
SIZES = (1600, 800, 200)

# One step: (source image, target size) -> image. Each variant: (big, mid, small, mid_from, small_from),
# where *_from says which earlier image the step resamples ("decoded", "big" or "mid").
Op = Callable[[Image.Image, tuple[int, int]], Image.Image]


def rs(resample: Image.Resampling, gap: float | None) -> Op:
    return lambda img, size: img.resize(size, resample, reducing_gap=gap)


VARIANTS: dict[str, tuple[Op, Op, Op, str, str]] = {
    # the engine before this change: LANCZOS, reducing_gap 3 everywhere, 800 from 1600, 200 from 800
    "lanczos-gap3": (rs(L, 3.0), rs(L, 3.0), rs(L, 3.0), "big", "mid"),
    "big-bicubic": (rs(C, 3.0), rs(L, 3.0), rs(L, 3.0), "big", "mid"),
    "mid-bicubic": (rs(L, 3.0), rs(C, 3.0), rs(L, 3.0), "big", "mid"),
    "mid-hamming": (rs(L, 3.0), rs(H, 3.0), rs(L, 3.0), "big", "mid"),
    "mid-reduce2": (rs(L, 3.0), rs(L, 1.0), rs(L, 3.0), "big", "mid"),  # box 2x (plus a LANCZOS remainder if not exact)
    "mid-decoded-gap1.25": (rs(L, 3.0), rs(L, 1.25), rs(L, 3.0), "decoded", "mid"),
    "mid-decoded-gap1.25-bicubic": (rs(L, 3.0), rs(C, 1.25), rs(L, 3.0), "decoded", "mid"),
    "small-gap2": (rs(L, 3.0), rs(L, 3.0), rs(L, 2.0), "big", "mid"),
    "small-gap1.5": (rs(L, 3.0), rs(L, 3.0), rs(L, 1.5), "big", "mid"),
    "small-bicubic": (rs(L, 3.0), rs(L, 3.0), rs(C, 3.0), "big", "mid"),
    "small-big-gap2": (rs(L, 3.0), rs(L, 3.0), rs(L, 2.0), "big", "big"),
    "big-hamming": (rs(H, 3.0), rs(L, 3.0), rs(L, 3.0), "big", "mid"),
    "big-bicubic+small-gap2": (rs(C, 3.0), rs(L, 3.0), rs(L, 2.0), "big", "mid"),
    "big-bicubic+mid-bicubic+small-gap2": (rs(C, 3.0), rs(C, 3.0), rs(L, 2.0), "big", "mid"),
    "big-bicubic+mid-decoded-gap1.25+small-gap2": (rs(C, 3.0), rs(L, 1.25), rs(L, 2.0), "decoded", "mid"),
}


def target(width: int, height: int, box: int) -> tuple[int, int]:
    scale = min(1.0, box / max(width, height))
    return max(1, math.floor(width * scale + 0.5)), max(1, math.floor(height * scale + 0.5))


def decoded(path: Path) -> Image.Image:
    """The photo as the engine decodes it for this job (upright here, outside the timing)."""
    img: Image.Image = Image.open(path)
    w, h = img.size
    need = SIZES[0] / max(w, h)
    img.draft(img.mode, (math.ceil(w * need), math.ceil(h * need)))
    img.load()
    orientation = img.getexif().get(0x0112, 1)
    if orientation in (3, 6, 8):
        img = img.transpose({3: Image.Transpose.ROTATE_180, 6: Image.Transpose.ROTATE_270,
                             8: Image.Transpose.ROTATE_90}[orientation])
    return img


def run_variant(ops: tuple[Op, Op, Op, str, str], base: Image.Image, full: tuple[int, int]) -> tuple[dict, dict]:
    big_op, mid_op, small_op, mid_from, small_from = ops
    times, images = {}, {"decoded": base}
    for step, op, size, src in (("big", big_op, SIZES[0], "decoded"), ("mid", mid_op, SIZES[1], mid_from),
                                ("small", small_op, SIZES[2], small_from)):
        t0 = time.perf_counter()
        images[step] = op(images[src], target(*full, size))
        times[step] = (time.perf_counter() - t0) * 1000
    return times, images


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("src", type=Path)
    parser.add_argument("--limit", type=int, default=6)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--variants", help="comma-separated names (default: all)")
    args = parser.parse_args(argv)
    names = args.variants.split(",") if args.variants else list(VARIANTS)
    files = sorted(p for p in args.src.iterdir() if p.suffix.lower() == ".jpg")[: args.limit]
    bases = {}
    for f in files:
        img = decoded(f)
        with Image.open(f) as probe:
            w, h = probe.size
            full = (h, w) if probe.getexif().get(0x0112, 1) >= 5 else (w, h)
        bases[f] = (img, full)
    times: dict[str, dict[str, dict[Path, list[float]]]] = {
        n: {step: {f: [] for f in files} for step in ("big", "mid", "small")} for n in names}
    qual: dict[str, dict[int, list[tuple[float, float, float, float]]]] = {n: {s: [] for s in SIZES} for n in names}
    for r in range(args.rounds):
        for f, (base, full) in bases.items():
            for n in names:
                t, images = run_variant(VARIANTS[n], base, full)
                for step, ms in t.items():
                    times[n][step][f].append(ms)
                if r == 0:
                    for step, size in zip(("big", "mid", "small"), SIZES, strict=True):
                        out = images[step]
                        ref = quality.reference(f, out.size)
                        arr = quality.np.asarray(out.convert("RGB"), dtype=quality.np.float64)
                        buf = io.BytesIO()
                        out.save(buf, format="JPEG", quality=85)
                        enc = quality.np.asarray(Image.open(buf).convert("RGB"), dtype=quality.np.float64)
                        qual[n][size].append((quality.psnr(ref, arr), quality.ssim(ref, arr),
                                              quality.psnr(ref, enc), quality.ssim(ref, enc)))
    doc = {"files": [f.name for f in files], "rounds": args.rounds, "variants": {}}
    for n in names:
        ms = {step: statistics.mean(min(v) for v in per_file.values()) for step, per_file in times[n].items()}
        doc["variants"][n] = {
            "ms": {step: round(v, 2) for step, v in ms.items()},
            "ms_total": round(sum(ms.values()), 2),
            "quality": {str(s): {key: round(statistics.mean(row[i] for row in q), 5 if "ssim" in key else 3)
                                 for i, key in enumerate(("psnr", "ssim", "psnr_q85", "ssim_q85"))}
                        for s, q in qual[n].items()},
        }
    print(json.dumps(doc, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())

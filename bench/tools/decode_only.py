"""Decode-only cost of the corpus JPEGs: full size and reduced DCT scales.

Pillow's ``draft`` asks libjpeg for 1/2, 1/4 or 1/8 scale; the IDCT then skips
detail. imgproc decodes at the smallest scale that still covers its largest
rendition, which for 1600 px from 12-24 MP is 1/2 (the practical limit: 1/4
of a 4000 px photo is 1000 px, too small for 1600). libvips' ``shrink`` on
jpegload is the same libjpeg-turbo feature, shown for reference.

    python bench/tools/decode_only.py SRC [--limit N]   # prints JSON
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import job

os.environ.setdefault("VIPS_CONCURRENCY", "1")
from PIL import Image

SCALES = (1, 2, 4, 8)


def pillow_decode(data: bytes, scale: int) -> float:
    import io

    t0 = time.perf_counter()
    img = Image.open(io.BytesIO(data))
    if scale > 1:
        img.draft("RGB", (img.width // scale, img.height // scale))
    img.load()
    return (time.perf_counter() - t0) * 1000


def vips_decode(data: bytes, scale: int) -> float | None:
    try:
        import pyvips
    except (ImportError, OSError):
        return None
    t0 = time.perf_counter()
    img = pyvips.Image.jpegload_buffer(data, shrink=scale, access="sequential")
    img.copy_memory()
    return (time.perf_counter() - t0) * 1000


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("src", type=Path)
    parser.add_argument("--limit", type=int, default=0, help="at most N files per megapixel class")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args(argv)
    by_class: dict[str, list[bytes]] = {}
    for path in job.sources(args.src):
        with Image.open(path) as img:
            mp = round(img.width * img.height / 1e6)
        by_class.setdefault(f"{mp} MP", []).append(path.read_bytes())
    out = {}
    for cls, blobs in sorted(by_class.items(), key=lambda kv: int(kv[0].split()[0])):
        if args.limit:
            blobs = blobs[: args.limit]
        row = {"files": len(blobs)}
        for scale in SCALES:
            pillow_decode(blobs[0], scale)  # warm
            row[f"pillow_1/{scale}"] = statistics.median(
                pillow_decode(b, scale) for b in blobs for _ in range(args.repeat)
            )
            if vips_decode(blobs[0], scale) is not None:
                row[f"vips_1/{scale}"] = statistics.median(
                    vips_decode(b, scale) for b in blobs for _ in range(args.repeat)
                )
        out[cls] = row
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())

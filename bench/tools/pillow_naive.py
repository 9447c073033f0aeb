"""The naive Pillow loop users write first: open, exif_transpose, resize from full size, save.

Each rendition is resized from the full-size decode with LANCZOS (no draft, no
cascade, Pillow's default ``reducing_gap``); a process pool uses every core.

    python bench/tools/pillow_naive.py SRC OUT [--jobs N]
"""

from __future__ import annotations

import argparse
import sys
from multiprocessing import Pool
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import job
from PIL import Image, ImageOps

_OUT: Path | None = None


def _init(out: Path) -> None:
    global _OUT
    _OUT = out


def one(path: Path) -> int:
    with Image.open(path) as img:
        img = ImageOps.exif_transpose(img)
        if img.mode != "RGB":  # (every corpus photo is RGB: no extra copy)
            img = img.convert("RGB")
        for size in job.SIZES:
            resized = img.resize(job.inside(img.width, img.height, size), Image.Resampling.LANCZOS)
            # Pillow writes no EXIF unless asked: saving without exif= strips it.
            resized.save(job.output_path(_OUT, path, size), "JPEG", quality=job.QUALITY)
    return 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("src", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("--jobs", type=int, default=job.JOBS)
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    files = job.sources(args.src)
    with Pool(args.jobs, initializer=_init, initargs=(args.out,)) as pool:
        done = sum(pool.imap_unordered(one, files))
        pool.close()
        pool.join()
    print(f"{done} images")
    return 0


if __name__ == "__main__":
    sys.exit(main())

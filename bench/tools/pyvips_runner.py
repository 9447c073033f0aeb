"""pyvips (libvips from pyvips-binary) doing the job, one libvips thread per process.

``--mode cascade``: ``thumbnail`` the 1600 px rendition from the file (shrink-on-load,
auto-rotate), keep it in memory, and make 800 and 200 from it.
``--mode each``: every rendition ``thumbnail``-ed from the file (each with its own
shrink-on-load, which for 200 px decodes at 1/8 scale).

    python bench/tools/pyvips_runner.py SRC OUT [--mode cascade|each] [--jobs N]
"""

from __future__ import annotations

import argparse
import os
import sys
from multiprocessing import Pool
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import job

_STATE: dict = {}


def _init(out: Path, mode: str) -> None:
    # Parallelism comes from the process pool: one libvips worker thread each.
    os.environ["VIPS_CONCURRENCY"] = "1"
    import pyvips

    pyvips.cache_set_max(0)
    _STATE.update(out=out, mode=mode, vips=pyvips)


def _save(image, path: Path) -> None:
    image.jpegsave(str(path), Q=job.QUALITY, keep="none")


def one(path: Path) -> int:
    pyvips, out = _STATE["vips"], _STATE["out"]
    big = job.SIZES[0]
    if _STATE["mode"] == "each":
        for size in job.SIZES:
            _save(pyvips.Image.thumbnail(str(path), size, height=size, size="down"), job.output_path(out, path, size))
        return 1
    largest = pyvips.Image.thumbnail(str(path), big, height=big, size="down").copy_memory()
    _save(largest, job.output_path(out, path, big))
    for size in job.SIZES[1:]:
        _save(largest.thumbnail_image(size, height=size, size="down"), job.output_path(out, path, size))
    return 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("src", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("--mode", choices=("cascade", "each"), default="cascade")
    parser.add_argument("--jobs", type=int, default=job.JOBS)
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    files = job.sources(args.src)
    with Pool(args.jobs, initializer=_init, initargs=(args.out, args.mode)) as pool:
        done = sum(pool.imap_unordered(one, files))
        pool.close()
        pool.join()
    print(f"{done} images")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""imgproc's engine (core.pipeline.render) over a folder, without the CLI.

Two uses: ``--profile`` renders serially in one process and prints a JSON stage
profile (read / decode / resize / encode / write); without it, a process pool
does the job like ``imgproc process``, so the same engine can be timed under
another Pillow build (pillow-simd) that lacks the CLI's dependencies.

    python bench/tools/engine.py SRC OUT [--jobs N] [--profile]

Needs the repository root on PYTHONPATH (run.py sets it).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from multiprocessing import Pool
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import job

from core import memory
from core.pipeline import render
from core.recipe import load_config

CONFIG = Path(__file__).resolve().parent.parent / "imgproc.toml"
_STATE: dict = {}


def _init(out: Path) -> None:
    memory.keep_freed_blocks()  # as `imgproc process` workers do
    cfg = load_config(CONFIG)
    _STATE.update(out=out, renditions=cfg.select(["bench"]), limits=cfg.limits)


def one(path: Path) -> dict:
    """Render one file; return its stage times in ms."""
    t0 = time.perf_counter()
    data = path.read_bytes()
    t1 = time.perf_counter()
    result = render(data, _STATE["renditions"], _STATE["limits"], name=path.name)
    t2 = time.perf_counter()
    for o in result.outputs:
        job.output_path(_STATE["out"], path, int(o.rendition.name)).write_bytes(o.data)
    t3 = time.perf_counter()
    stages = {
        "read": (t1 - t0) * 1000,
        "decode": result.ms_decode,  # open + limits + draft + load + orient + mode
        "write": (t3 - t2) * 1000,
        "total": (t3 - t0) * 1000,
        "megapixels": result.source.width * result.source.height / 1e6,
    }
    for o in result.outputs:
        stages[f"resize_{o.rendition.name}"] = o.ms_transform
        stages[f"encode_{o.rendition.name}"] = o.ms_encode
    stages["render_other"] = (t2 - t1) * 1000 - result.ms_decode - sum(
        o.ms_transform + o.ms_encode for o in result.outputs
    )
    return stages


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("src", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("--jobs", type=int, default=job.JOBS)
    parser.add_argument("--profile", action="store_true", help="serial, print per-stage ms as JSON")
    parser.add_argument("--resample", choices=("lanczos", "bicubic", "hamming", "bilinear"),
                        help="experiment: override core.steps.RESAMPLE, the filter of steps of 2x and more (bench only)")
    args = parser.parse_args(argv)
    if args.resample:
        from PIL import Image

        from core import steps

        steps.RESAMPLE = Image.Resampling[args.resample.upper()]
    args.out.mkdir(parents=True, exist_ok=True)
    files = job.sources(args.src)
    if args.profile:
        _init(args.out)
        one(files[0])  # warm caches (codec tables, imports)
        rows = [one(f) for f in files]
        import PIL

        print(json.dumps({"pillow": PIL.__version__, "rows": rows}))
        return 0
    with Pool(args.jobs, initializer=_init, initargs=(args.out,)) as pool:
        done = len(list(pool.imap_unordered(one, files)))
        pool.close()
        pool.join()
    print(f"{done} images")
    return 0


if __name__ == "__main__":
    sys.exit(main())

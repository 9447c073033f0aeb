"""Seeded, deterministic corpus of photo-like JPEGs for the benchmark.

The images have what makes real photos expensive to decode, resize and encode:
smooth gradients (sky), mid-frequency texture (foliage, ground), sharp object
edges, and per-pixel sensor grain. Flat colour would flatter every tool.
Some photos carry an EXIF Orientation of 3, 6 or 8 so auto-orient is exercised.

The same seed gives the same bytes, so runs on different days compare.

Usage::

    python bench/corpus.py                 # 40 x 12 MP + 4 x 24 MP into bench/corpus/full
    python bench/corpus.py --quick         # the small corpus used by `run.py --quick`
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

HERE = Path(__file__).resolve().parent
CORPUS_DIR = HERE / "corpus"
VERSION = 1  # bump when the generator changes its output

SIZES = {12: (4000, 3000), 24: (6000, 4000)}
# Every fifth photo is rotated by its EXIF tag, cycling through 6, 3, 8.
ORIENTATIONS = (6, 3, 8)


@dataclass(frozen=True)
class Spec:
    """What to generate: counts per megapixel size."""

    name: str
    count_12mp: int
    count_24mp: int
    seed: int = 2026

    def items(self) -> list[tuple[str, int, int, int]]:
        """(file name, width, height, orientation) for every photo, in a fixed order."""
        out = []
        for mp, count in ((12, self.count_12mp), (24, self.count_24mp)):
            w, h = SIZES[mp]
            for i in range(count):
                orientation = ORIENTATIONS[(i // 5) % 3] if i % 5 == 2 else 1
                out.append((f"p{mp}mp-{i:03d}.jpg", w, h, orientation))
        return out


FULL = Spec("full", 40, 4)
QUICK = Spec("quick", 4, 1)


def _upsampled_noise(rng: np.random.Generator, grid: tuple[int, int], size: tuple[int, int], channels: int = 3) -> np.ndarray:
    """Random values on a coarse grid, smoothly interpolated to ``size``: one octave of value noise."""
    gw, gh = grid
    small = rng.integers(0, 256, (gh, gw, channels), dtype=np.uint8)
    mode = "RGB" if channels == 3 else "L"
    img = Image.fromarray(small if channels == 3 else small[:, :, 0], mode).resize(size, Image.Resampling.BICUBIC)
    arr = np.asarray(img, dtype=np.float32) - 128.0
    return arr if channels == 3 else arr[:, :, None]


def photo(width: int, height: int, seed: int) -> Image.Image:
    """A photo-like RGB image: sky gradient, textured ground, hard-edged objects, grain."""
    rng = np.random.default_rng(seed)
    size = (width, height)
    y = np.linspace(0.0, 1.0, height, dtype=np.float32)[:, None, None]

    # Sky: a vertical gradient between two random blue-ish colours, softly clouded.
    top = np.array([rng.uniform(40, 120), rng.uniform(90, 160), rng.uniform(170, 250)], np.float32)
    bottom = np.array([rng.uniform(150, 230), rng.uniform(170, 230), rng.uniform(190, 250)], np.float32)
    img = top * (1 - y) + bottom * y + 0.25 * _upsampled_noise(rng, (12, 9), size)
    img = np.broadcast_to(img, (height, width, 3)).copy()

    # Ground: the lower part, fractal texture (several octaves) over an earthy base colour.
    horizon = int(height * rng.uniform(0.35, 0.6))
    base = np.array([rng.uniform(60, 130), rng.uniform(70, 140), rng.uniform(30, 90)], np.float32)
    ground = np.zeros((height - horizon, width, 3), np.float32) + base
    gsize = (width, height - horizon)
    # Mostly luminance texture (as in foliage, gravel), with a little colour variation.
    for grid, amp in (((16, 8), 0.5), ((80, 40), 0.4), ((400, 200), 0.35), ((width // 6, (height - horizon) // 6), 0.3)):
        ground += amp * _upsampled_noise(rng, grid, gsize, channels=1)
    ground += 0.2 * _upsampled_noise(rng, (60, 30), gsize)
    img[horizon:] = ground

    canvas = Image.fromarray(np.clip(img, 0, 255).astype(np.uint8), "RGB")
    draw = ImageDraw.Draw(canvas)
    # Objects with sharp edges: buildings/rocks (polygons) and trees/balls (ellipses).
    for _ in range(int(rng.integers(6, 12))):
        colour = tuple(int(c) for c in rng.integers(0, 256, 3))
        cx, cy = int(rng.integers(0, width)), int(rng.integers(horizon // 2, height))
        r = int(rng.integers(min(size) // 30, min(size) // 6))
        if rng.random() < 0.5:
            pts = [(cx + int(r * np.cos(a)), cy + int(r * np.sin(a)))
                   for a in np.sort(rng.uniform(0, 2 * np.pi, int(rng.integers(3, 7))))]
            draw.polygon(pts, fill=colour)
        else:
            draw.ellipse((cx - r, cy - r, cx + r, cy + int(r * rng.uniform(0.5, 1.5))), fill=colour)
    # Thin lines (wires, branches): the detail a blurry resize loses first.
    for _ in range(int(rng.integers(10, 25))):
        x0, y0 = int(rng.integers(0, width)), int(rng.integers(0, height))
        x1, y1 = x0 + int(rng.integers(-width // 3, width // 3)), y0 + int(rng.integers(-height // 4, height // 4))
        draw.line((x0, y0, x1, y1), fill=tuple(int(c) for c in rng.integers(0, 256, 3)), width=int(rng.integers(1, 6)))
    # A lens is never perfectly sharp: slight blur before the sensor noise.
    canvas = canvas.filter(ImageFilter.GaussianBlur(0.7))

    # Sensor grain: per-pixel Gaussian noise, slightly stronger in the dark.
    arr = np.asarray(canvas, dtype=np.float32)
    sigma = float(rng.uniform(3.0, 6.0))
    luma = rng.standard_normal((height, width, 1), dtype=np.float32) * sigma
    arr += luma + rng.standard_normal(arr.shape, dtype=np.float32) * (sigma / 3)
    return Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8), "RGB")


def _stored_for(upright: Image.Image, orientation: int) -> Image.Image:
    """The pixels a camera stores so that ``orientation`` shows ``upright``."""
    inverse = {3: Image.Transpose.ROTATE_180, 6: Image.Transpose.ROTATE_90, 8: Image.Transpose.ROTATE_270}
    return upright.transpose(inverse[orientation]) if orientation in inverse else upright


def jpeg_bytes(width: int, height: int, orientation: int, seed: int) -> bytes:
    """One camera-like JPEG: q90, 4:2:0, EXIF with make/model/date/GPS and the orientation tag."""
    upright = photo(width, height, seed)
    stored = _stored_for(upright, orientation)
    exif = Image.Exif()
    exif[0x010F] = "imgproc-bench"  # Make
    exif[0x0110] = "Synthetic 1"  # Model
    exif[0x0132] = "2026:11:26 12:00:00"  # DateTime
    exif[0x0112] = orientation
    exif[0x8825] = {1: "N", 2: (48.0, 51.0, 24.0), 3: "E", 4: (2.0, 21.0, 3.0)}  # GPS: must be stripped
    buf = io.BytesIO()
    stored.save(buf, "JPEG", quality=90, subsampling="4:2:0", exif=exif)
    return buf.getvalue()


def _write_one(args: tuple[Path, str, int, int, int, int]) -> str:
    folder, name, w, h, orientation, seed = args
    data = jpeg_bytes(w, h, orientation, seed)
    tmp = folder / f".{name}.tmp"
    tmp.write_bytes(data)
    tmp.replace(folder / name)
    return name


def _seed_for(spec: Spec, name: str) -> int:
    return int.from_bytes(hashlib.sha256(f"{spec.seed}:{VERSION}:{name}".encode()).digest()[:4], "big")


def ensure(spec: Spec, root: Path = CORPUS_DIR, jobs: int = 2, log=print) -> Path:
    """Generate the corpus unless an identical one (same spec and generator version) exists."""
    folder = root / spec.name
    stamp = folder / "corpus.json"
    meta = {"version": VERSION, **asdict(spec)}
    items = spec.items()
    if stamp.is_file() and json.loads(stamp.read_text()) == meta and all((folder / n).is_file() for n, *_ in items):
        return folder
    folder.mkdir(parents=True, exist_ok=True)
    for old in folder.glob("*.jpg"):
        old.unlink()
    stamp.unlink(missing_ok=True)
    started = time.perf_counter()
    work = [(folder, name, w, h, o, _seed_for(spec, name)) for name, w, h, o in items]
    with ProcessPoolExecutor(max_workers=jobs) as pool:
        for i, name in enumerate(pool.map(_write_one, work), 1):
            log(f"  corpus {spec.name}: {i}/{len(work)} {name}")
    stamp.write_text(json.dumps(meta, indent=2))
    log(f"  corpus {spec.name}: {len(work)} photos in {time.perf_counter() - started:.1f} s -> {folder}")
    return folder


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="the small corpus (4 x 12 MP + 1 x 24 MP)")
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--root", type=Path, default=CORPUS_DIR)
    args = parser.parse_args(argv)
    ensure(QUICK if args.quick else FULL, args.root, args.jobs)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Resource bombs of issue 13 (items 5 and 6): generate each, render it, report peak RSS and time.

Each bomb is small on disk and inside every byte/pixel/frame limit, but asks the
decoder for gigabytes or minutes. Every render runs in a fresh child process
(so its peak is its own) that reports its ``VmHWM`` from /proc; the parent
kills it after ``--timeout`` seconds.

    .venv/bin/python bench/tools/bombs.py                      # every bomb against this checkout
    .venv/bin/python bench/tools/bombs.py --root /tmp/before   # ... against another checkout (before/after)
    .venv/bin/python bench/tools/bombs.py --only tiff32,gif40 --json
    .venv/bin/python bench/tools/bombs.py --edge               # the largest source each budget accepts

Bombs (written once to bench/.cache/bombs/, seeded, so every machine gets the same bytes):

- ``tiff32``: 10000x10000 int32 ("I") greyscale TIFF, deflate
- ``png16``:  10000x10000 16-bit greyscale PNG
- ``rgba``:   10000x10000 RGBA PNG
- ``gif40``:  40 frames on a 10000x10000 canvas, rendered with ``animated = true``
- ``scans``:  a progressive JPEG whose last scan is repeated thousands of times
"""

from __future__ import annotations

import argparse
import json
import os
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from PIL import Image

HERE = Path(__file__).resolve()
ROOT = HERE.parents[2]
CACHE = ROOT / "bench" / ".cache" / "bombs"
SIDE = 10_000
GIF_FRAMES = 40
SCAN_REPEATS = 30_000

# The job every bomb goes through: the built-in presets (web 1600 JPEG + WebP,
# thumb 200 JPEG), animated where the source is.
CONFIG = """
[presets.web]
[[presets.web.renditions]]
name = "web"
width = 1600
height = 1600
format = ["jpeg", "webp"]
animated = false
[presets.thumb]
[[presets.thumb.renditions]]
name = "thumb"
width = 200
height = 200
format = "jpeg"
"""
# Animated: WebP only, the output format that animates (JPEG with animated = true
# is issue 13 item 3, fixed elsewhere).
ANIMATED_CONFIG = """
[presets.web]
[[presets.web.renditions]]
name = "web"
width = 1600
height = 1600
format = "webp"
animated = true
[presets.thumb]
[[presets.thumb.renditions]]
name = "thumb"
width = 200
height = 200
format = "webp"
animated = true
"""

# Runs in the child: render once, print peak RSS, time and outcome as JSON.
CHILD = r"""
import json, sys, time
sys.path.insert(0, sys.argv[1])
from pathlib import Path
from core.errors import ImgprocError
from core.pipeline import render
from core.recipe import parse_toml
config = parse_toml(Path(sys.argv[3]).read_text(), "bombs")
data = [Path(sys.argv[2]).read_bytes()]
estimate = None
try:  # the engine's own estimate, where the checkout has one
    from core import codec, geometry, memory
    img, info = codec.open_source(data[0], config.limits, "probe")
    plans = [geometry.plan(info.width, info.height, r) for r in config.select()]
    animate = info.frames > 1 and any(r.animated for r in config.select())
    need = min(1.0, max(g.scale for g in plans))
    estimate = round(memory.estimate(info, plans, animate, need) / 2**20)
    del img
except Exception:
    pass
started = time.perf_counter()
try:
    result = render(data.pop(), config.select(), config.limits, name=Path(sys.argv[2]).name)
    outcome = "ok: " + ", ".join(f"{o.rendition.label} {o.width}x{o.height}" for o in result.outputs)
except ImgprocError as exc:
    outcome = f"refused: {exc.kind}: {exc}"
seconds = time.perf_counter() - started
hwm = next(int(l.split()[1]) for l in open("/proc/self/status") if l.startswith("VmHWM:"))
print(json.dumps({"peak_mib": round(hwm / 1024, 1), "estimate_mib": estimate, "seconds": round(seconds, 2),
                  "outcome": outcome}))
"""


# --- the bombs ----------------------------------------------------------------


def _gradient(side: int, mode: str) -> Image.Image:
    """A smooth, highly compressible picture: a few KB per megapixel once encoded."""
    grad = Image.linear_gradient("L").resize((side, side), Image.Resampling.BILINEAR)
    return grad if mode == "L" else grad.convert(mode)


def make_tiff32(path: Path, side: int = SIDE) -> None:
    img = _gradient(side, "I").point(lambda v: v * 65793)  # 0..255 -> 0..16.7M: real 32-bit values
    img.save(path, format="TIFF", compression="tiff_adobe_deflate")


def make_png16(path: Path, side: int = SIDE) -> None:
    img = _gradient(side, "I").point(lambda v: v * 257).convert("I;16")
    img.save(path, format="PNG")


def make_rgba(path: Path, side: int = SIDE) -> None:
    grad = _gradient(side, "L")
    img = Image.merge("RGBA", (grad, grad.transpose(Image.Transpose.ROTATE_90), grad, grad))
    img.save(path, format="PNG", compress_level=9)


def make_gif40(path: Path, side: int = SIDE, frames: int = GIF_FRAMES) -> None:
    """A small animation whose logical screen is patched to ``side`` x ``side``.

    The decoder allocates the whole screen for every frame, whatever the frame
    rectangles hold: this is how a few KB ask for gigabytes.
    """
    small = [Image.new("P", (64, 64), i % 16) for i in range(frames)]
    for i, frame in enumerate(small):
        frame.putpalette([v for c in range(16) for v in (c * 16, 255 - c * 16, (c * 40) % 256)])
        frame.paste(15 - i % 16, (i, i, i + 8, i + 8))
    tmp = path.with_suffix(".tmp")
    small[0].save(tmp, format="GIF", save_all=True, append_images=small[1:], duration=80, loop=0)
    data = bytearray(tmp.read_bytes())
    tmp.unlink()
    data[6:10] = struct.pack("<HH", side, side)  # logical screen width, height
    path.write_bytes(bytes(data))


def jpeg_segments(data: bytes) -> list[tuple[int, int, int]]:
    """(marker, start, end) of every segment up to EOI; an SOS segment includes its entropy-coded data."""
    out, pos = [], 2
    while pos < len(data) - 1:
        if data[pos] != 0xFF:
            raise ValueError(f"no marker at {pos}")
        marker = data[pos + 1]
        if marker == 0xD9:
            out.append((marker, pos, pos + 2))
            break
        length = struct.unpack(">H", data[pos + 2:pos + 4])[0]
        end = pos + 2 + length
        if marker == 0xDA:  # entropy-coded data runs to the next marker that is not a stuffed 0xFF00 or RST
            while not (data[end] == 0xFF and data[end + 1] not in (0x00, *range(0xD0, 0xD8))):
                end += 1
        out.append((marker, pos, end))
        pos = end
    return out


def sos_fields(data: bytes, start: int) -> tuple[int, int, int, int]:
    """(Ss, Se, Ah, Al) of the SOS segment at ``start``: which coefficients and bits the scan codes."""
    ns = data[start + 4]
    ss, se, ahal = data[start + 5 + 2 * ns:start + 8 + 2 * ns]
    return ss, se, ahal >> 4, ahal & 15


def make_scans(path: Path, repeats: int = SCAN_REPEATS) -> None:
    """A 12 MP progressive JPEG whose smallest AC refinement scan is repeated ``repeats`` times.

    That scan is a few bytes (a smooth picture has no refinement bits) but
    libjpeg walks every block of the image for each repeat; only a warning says
    the progression is odd.
    """
    grad = _gradient(4096, "L").resize((4000, 3000))
    img = Image.merge("RGB", (grad, grad.transpose(Image.Transpose.FLIP_LEFT_RIGHT), grad))
    tmp = tempfile.SpooledTemporaryFile()
    img.save(tmp, format="JPEG", quality=90, progressive=True)
    tmp.seek(0)
    data = tmp.read()
    refinements = [(s, e) for m, s, e in jpeg_segments(data) if m == 0xDA
                   and sos_fields(data, s)[0] > 0 and sos_fields(data, s)[2] > 0]
    start, end = min(refinements, key=lambda se: se[1] - se[0])
    path.write_bytes(data[:end] + data[start:end] * repeats + data[end:])


BOMBS = {
    "tiff32": ("tiff32.tif", make_tiff32, False),
    "png16": ("png16.png", make_png16, False),
    "rgba": ("rgba.png", make_rgba, False),
    "gif40": ("gif40.gif", make_gif40, True),
    "scans": ("scans.jpg", make_scans, False),
}


def bomb_path(kind: str) -> Path:
    name, maker, _ = BOMBS[kind]
    path = CACHE / name
    if not path.exists():
        CACHE.mkdir(parents=True, exist_ok=True)
        maker(path)
    return path


# --- measuring ------------------------------------------------------------------


def measure(root: Path, path: Path, animated: bool, timeout: float, budget_mb: int | None = None,
            no_pixel_limit: bool = False, python: str = sys.executable) -> dict:
    """Render ``path`` in a fresh child importing core from ``root``; its own peak RSS and time."""
    with tempfile.NamedTemporaryFile("w", suffix=".toml", delete=False) as cfg:
        cfg.write(ANIMATED_CONFIG if animated else CONFIG)
        cfg.write("[limits]\n")
        if budget_mb is not None:
            cfg.write(f"max_memory_mb = {budget_mb}\n")
        if no_pixel_limit:
            cfg.write(f"max_pixels = {1 << 31}\n")
    started = time.perf_counter()
    try:
        proc = subprocess.run([python, "-c", CHILD, str(root), str(path), cfg.name],
                              capture_output=True, text=True, timeout=timeout, env={**os.environ, "PYTHONWARNINGS": "ignore"})
    except subprocess.TimeoutExpired:
        return {"peak_mib": None, "seconds": round(time.perf_counter() - started, 1),
                "outcome": f"killed after {timeout:g} s"}
    finally:
        os.unlink(cfg.name)
    lines = proc.stdout.strip().splitlines()
    if proc.returncode != 0 or not lines:
        tail = (proc.stderr.strip().splitlines() or [f"exit {proc.returncode}"])[-1]
        return {"peak_mib": None, "seconds": round(time.perf_counter() - started, 1), "outcome": f"crashed: {tail}"}
    return json.loads(lines[-1])


def edge_side(kind: str, budget_mb: int) -> int:
    """The largest square side of ``kind`` whose estimated working set fits ``budget_mb`` (this checkout)."""
    sys.path.insert(0, str(ROOT))
    from core import geometry, memory
    from core.codec import SourceInfo
    from core.recipe import parse_toml

    animated = BOMBS[kind][2]
    renditions = parse_toml(ANIMATED_CONFIG if animated else CONFIG, "bombs").select()
    mode = {"tiff32": "I", "png16": "I;16", "rgba": "RGBA", "gif40": "P"}[kind]
    lo, hi = 16, int((2 * Image.MAX_IMAGE_PIXELS) ** 0.5)  # Pillow's own bomb limit
    while lo < hi:
        side = (lo + hi + 1) // 2
        info = SourceInfo("png", side, side, 0, GIF_FRAMES if animated else 1, 1, mode)
        plans = [geometry.plan(side, side, r) for r in renditions]
        need = min(1.0, max(g.scale for g in plans))
        fits = memory.estimate(info, plans, animated, need) <= (budget_mb - 2) * memory.MIB  # 2 MiB: the file
        lo, hi = (side, hi) if fits else (lo, side - 1)
    return lo


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--root", type=Path, default=ROOT, help="checkout whose core/ renders (default: this one)")
    ap.add_argument("--only", default=",".join(BOMBS), help="comma-separated bombs")
    ap.add_argument("--timeout", type=float, default=300.0, help="kill a render after this many seconds")
    ap.add_argument("--budget", type=int, help="limits.max_memory_mb for the render (default: the engine's)")
    ap.add_argument("--edge", action="store_true",
                    help="make each bomb as large as the budget accepts (max_pixels lifted) and measure that")
    ap.add_argument("--json", action="store_true", help="one JSON document instead of the table")
    args = ap.parse_args()
    rows = {}
    for kind in args.only.split(","):
        if args.edge:
            side = edge_side(kind, args.budget or 768)
            path = CACHE / f"edge-{side}-{BOMBS[kind][0]}"
            if not path.exists():
                BOMBS[kind][1](path, side)
        else:
            path = bomb_path(kind)
        row = measure(args.root.resolve(), path, BOMBS[kind][2], args.timeout, args.budget, args.edge)
        rows[kind] = {"file_bytes": path.stat().st_size, **row}
        if not args.json:
            peak = "-" if row["peak_mib"] is None else f"{row['peak_mib']:.0f} MiB"
            est = "" if row.get("estimate_mib") is None else f"(est. {row['estimate_mib']} MiB)"
            print(f"{kind:7s} {path.stat().st_size / 1024:8.0f} KB  peak {peak:>9s} {est:16s} {row['seconds']:7.2f} s  "
                  f"{row['outcome'][:150]}", flush=True)
    if args.json:
        print(json.dumps({"root": str(args.root), "bombs": rows}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())

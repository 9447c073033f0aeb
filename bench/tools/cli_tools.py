"""ImageMagick and Debian's vipsthumbnail doing the job, two commands at a time.

Each external command is pinned to one thread (MAGICK_THREAD_LIMIT=1,
VIPS_CONCURRENCY=1) and ``--jobs`` of them run at once, like the other tools'
process pools.

    python bench/tools/cli_tools.py magick SRC OUT [--jobs N]
    python bench/tools/cli_tools.py vipsthumbnail SRC OUT [--jobs N]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import job


def _is_binary(path: str) -> bool:
    """Skip shell-script stand-ins on PATH: only a real executable is measured."""
    try:
        with open(path, "rb") as fh:
            return fh.read(4) == b"\x7fELF"
    except OSError:
        return False


def find_imagemagick() -> list[str] | None:
    """``magick`` (IM7) or IM6's ``convert``; None when ImageMagick is not installed."""
    for name, prefix in (("magick", []), ("convert", [])):
        for folder in [*os.environ.get("PATH", "").split(os.pathsep), "/usr/bin"]:
            candidate = os.path.join(folder, name)
            if os.access(candidate, os.X_OK) and _is_binary(candidate):
                try:
                    version = subprocess.run([candidate, "-version"], capture_output=True, text=True, timeout=10).stdout
                except (OSError, subprocess.TimeoutExpired):
                    continue
                if "ImageMagick" in version:
                    return [candidate, *prefix]
    return None


def find_vipsthumbnail() -> list[str] | None:
    path = shutil.which("vipsthumbnail")
    return [path] if path and _is_binary(path) else None


def version(tool: str) -> str:
    """A one-line version string, or '' when the tool is absent."""
    cmd = find_imagemagick() if tool == "magick" else find_vipsthumbnail()
    if not cmd:
        return ""
    flag = "-version" if tool == "magick" else "--vips-version"
    out = subprocess.run([*cmd, flag], capture_output=True, text=True).stdout.splitlines()
    return out[0].replace("Version: ", "").split(" https")[0] if out else "?"


def _stored_size(path: Path) -> tuple[int, int]:
    """Width and height from the JPEG's SOF header (as stored, before orientation)."""
    from PIL import Image

    with Image.open(path) as img:
        return img.size


def magick_command(exe: list[str], src: Path, out: Path) -> list[str]:
    """One command, one decode: each rendition resized from the oriented full image.

    ``-define jpeg:size=WxH`` (twice the largest rendition, in the stored
    orientation) lets libjpeg decode at a reduced DCT scale, as ImageMagick's
    docs advise for thumbnails; without it IM decodes every pixel.
    """
    w, h = _stored_size(src)
    hint_w, hint_h = job.inside(w, h, 2 * job.SIZES[0])
    cmd = [*exe, "-define", f"jpeg:size={hint_w}x{hint_h}", str(src), "-auto-orient", "-strip"]
    for size in job.SIZES[:-1]:
        cmd += ["(", "+clone", "-resize", f"{size}x{size}>", "-quality", str(job.QUALITY),
                "-write", str(job.output_path(out, src, size)), "+delete", ")"]
    last = job.SIZES[-1]
    cmd += ["-resize", f"{last}x{last}>", "-quality", str(job.QUALITY), str(job.output_path(out, src, last))]
    return cmd


def vipsthumbnail_commands(exe: list[str], files: list[Path], out: Path) -> list[list[str]]:
    """One vipsthumbnail call per rendition over a chunk of files (each call shrinks on load)."""
    return [
        [*exe, *map(str, files), "--size", f"{size}x{size}>", "-o", f"{out}/%s-{size}.jpg[Q={job.QUALITY},strip]"]
        for size in job.SIZES
    ]


def _run_all(commands: list[list[str]], jobs: int, env: dict) -> None:
    def run(cmd: list[str]) -> None:
        subprocess.run(cmd, check=True, env=env, stdout=subprocess.DEVNULL)

    with ThreadPoolExecutor(jobs) as pool:
        list(pool.map(run, commands))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("tool", choices=("magick", "vipsthumbnail"))
    parser.add_argument("src", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("--jobs", type=int, default=job.JOBS)
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    files = job.sources(args.src)
    env = dict(os.environ, MAGICK_THREAD_LIMIT="1", OMP_NUM_THREADS="1", VIPS_CONCURRENCY="1")
    if args.tool == "magick":
        exe = find_imagemagick()
        if not exe:
            print("ImageMagick is not installed", file=sys.stderr)
            return 2
        commands = [magick_command(exe, f, args.out) for f in files]
    else:
        exe = find_vipsthumbnail()
        if not exe:
            print("vipsthumbnail is not installed", file=sys.stderr)
            return 2
        # Larger files first in separate chunks so the two workers finish together.
        chunks = job.split(sorted(files, key=lambda p: -p.stat().st_size), args.jobs)
        commands = [cmd for chunk in chunks for cmd in vipsthumbnail_commands(exe, chunk, args.out)]
    _run_all(commands, args.jobs, env)
    print(f"{len(files)} images")
    return 0


if __name__ == "__main__":
    sys.exit(main())

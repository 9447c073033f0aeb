"""The benchmark job every runner performs, declared once.

Auto-orient, three renditions at 1600 / 800 / 200 px on the long edge (never
enlarged), JPEG quality 85, metadata stripped, on every core. Outputs are
written as ``OUT/<stem>-<size>.jpg`` by every tool so quality can be compared.
"""

from __future__ import annotations

import os
from pathlib import Path

SIZES = (1600, 800, 200)
QUALITY = 85
JOBS = os.cpu_count() or 1


def sources(src: Path) -> list[Path]:
    """The JPEGs of a corpus folder, in a stable order."""
    return sorted(p for p in src.iterdir() if p.suffix.lower() in (".jpg", ".jpeg"))


def output_path(out: Path, source: Path, size: int) -> Path:
    return out / f"{source.stem}-{size}.jpg"


def inside(width: int, height: int, box: int) -> tuple[int, int]:
    """Fit ``width`` x ``height`` inside ``box`` x ``box`` keeping aspect, never enlarging."""
    scale = min(1.0, box / max(width, height))
    return max(1, round(width * scale)), max(1, round(height * scale))


def split(items: list, parts: int) -> list[list]:
    """Round-robin ``items`` into ``parts`` non-empty chunks (so big files spread evenly)."""
    chunks = [items[i::parts] for i in range(parts)]
    return [c for c in chunks if c]

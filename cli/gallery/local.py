"""The gallery of a local output folder, as `imgproc process --report` writes it (OUT/index.html).

Every source the manifest lists is shown, not only this run's: a rerun that
skips up-to-date files still writes the whole page. This run's results give
sizes for free; the others are read from the image headers (no decoding).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path, PurePosixPath
from urllib.parse import quote

from PIL import Image, UnidentifiedImageError

from cli.gallery.model import Failure, Gallery, Rendition, Source
from cli.gallery.page import render
from core import batch
from core.storage import atomic_write

REPORT_NAME = "index.html"
_SIDEWAYS = {5, 6, 7, 8}  # EXIF orientations that swap width and height


def _header(path: Path) -> tuple[str, int, int] | None:
    """(format, width, height) from the file's header, upright; None when unreadable."""
    try:
        with Image.open(path) as img:
            width, height = img.size
            if img.getexif().get(0x0112) in _SIDEWAYS:
                width, height = height, width
            return (img.format or "?").lower(), width, height
    except (OSError, UnidentifiedImageError, ValueError):
        return None


def _rendition_name(source: str, output: str) -> str:
    """``a/cat.JPG`` + ``a/cat-thumb.jpg`` -> ``thumb`` (outputs are named <stem>-<rendition>.<ext>)."""
    stem, out_stem = PurePosixPath(source).stem, PurePosixPath(output).stem
    return out_stem[len(stem) + 1:] if out_stem.startswith(stem + "-") else out_stem


def _url(relative: str) -> str:
    # Percent-encoded so '#', '?', '%' and ':' in file names stay part of the path.
    return quote(relative, safe="/")


def _from_record(o: batch.OutputRecord) -> Rendition:
    return Rendition(o.rendition, o.format, o.width, o.height, o.bytes, _url(o.path))


def _from_file(source: str, out: Path, rel: str) -> Rendition | None:
    path = out / rel
    header = _header(path)
    if header is None:
        return None
    fmt, width, height = header
    return Rendition(_rendition_name(source, rel), fmt, width, height, path.stat().st_size, _url(rel))


def _source(src: Path, out: Path, rel: str, entry: Mapping, fresh: batch.FileResult | None) -> Source | None:
    if fresh is not None:
        renditions = [_from_record(o) for o in fresh.outputs]
    else:
        found = (_from_file(rel, out, p) for p in entry.get("outputs", []) if isinstance(p, str))
        renditions = [r for r in found if r is not None]
    if not renditions:
        return None
    path = src / rel
    exists = path.is_file()
    header = _header(path) if exists else None
    size = path.stat().st_size if exists else None
    fmt, width, height = header or (None, None, None)
    return Source(rel, size, tuple(renditions), width, height, fmt)


def from_output_folder(src: Path, out: Path, results: Iterable[batch.FileResult],
                       failures: Iterable[tuple[str, str]], title: str | None = None) -> Gallery:
    """Every source in OUT's manifest with its renditions, plus this run's failures (name, message)."""
    fresh = {r.relative: r for r in results if r.ok}
    sources = []
    for rel, entry in sorted(batch.load_manifest(out).items()):
        if isinstance(entry, Mapping):
            source = _source(src, out, rel, entry, fresh.get(rel))
            if source is not None:
                sources.append(source)
    return Gallery(
        title=title or f"imgproc: {src.name}",
        sources=tuple(sources),
        failures=tuple(Failure(name, message) for name, message in failures),
    )


def write_report(out: Path, gallery: Gallery) -> Path:
    """Write OUT/index.html atomically; returns its path."""
    path = out / REPORT_NAME
    atomic_write(path, render(gallery).encode("utf-8"))
    return path

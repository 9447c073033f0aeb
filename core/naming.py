"""Where renditions are written: one rule for local folders, one for buckets."""

from __future__ import annotations

from pathlib import PurePosixPath

from core.recipe import Rendition


def local_output_path(relative_source: str, r: Rendition) -> str:
    """``photos/a/cat.JPG`` + thumb -> ``photos/a/cat-thumb.jpg`` (relative to OUT)."""
    src = PurePosixPath(relative_source)
    return str(src.with_name(f"{src.stem}-{r.name}.{r.ext}"))


def s3_output_key(prefix: str, source_key: str, r: Rendition) -> str:
    """``uploads/My Photo (1).JPG`` + thumb -> ``<prefix>thumb/uploads/My Photo (1).jpg``."""
    stem, dot, ext = source_key.rpartition(".")
    base = stem if dot and "/" not in ext else source_key
    return f"{prefix}{r.name}/{base}.{r.ext}"

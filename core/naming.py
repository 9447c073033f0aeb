"""Where renditions are written: one rule for local folders, one for buckets.

``[output] naming`` in imgproc.toml chooses how a source's name becomes an output's:

* ``"stem"`` (default): the extension is dropped. ``cat.jpg`` -> ``cat-thumb.jpg`` /
  ``thumb/uploads/cat.jpg``. ``cat.jpg`` and ``cat.png`` then want the same output: the
  first keeps it and the other fails with OutputCollision.
* ``"extension"``: the whole file name is kept and the rendition's extension added, so
  same-stem sources stay apart: ``cat.png`` -> ``cat.png-thumb.jpg`` /
  ``thumb/uploads/cat.png.jpg`` (the ``photo.jpg.webp`` convention of web servers).
"""

from __future__ import annotations

from pathlib import PurePosixPath

from core.recipe import NAMINGS, Rendition

__all__ = ["NAMINGS", "local_output_path", "s3_output_key"]


def local_output_path(relative_source: str, r: Rendition, naming: str = "stem") -> str:
    """``photos/a/cat.JPG`` + thumb -> ``photos/a/cat-thumb.jpg`` (``cat.JPG-thumb.jpg`` by extension)."""
    src = PurePosixPath(relative_source)
    base = src.name if naming == "extension" else src.stem
    return str(src.with_name(f"{base}-{r.name}.{r.ext}"))


def s3_output_key(prefix: str, source_key: str, r: Rendition, naming: str = "stem") -> str:
    """``uploads/My Photo (1).JPG`` + thumb -> ``<prefix>thumb/uploads/My Photo (1).jpg``
    (``.../My Photo (1).JPG.jpg`` by extension)."""
    if naming == "extension":
        return f"{prefix}{r.name}/{source_key}.{r.ext}"
    stem, dot, ext = source_key.rpartition(".")
    base = stem if dot and "/" not in ext else source_key
    return f"{prefix}{r.name}/{base}.{r.ext}"

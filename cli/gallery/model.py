"""What a gallery page shows, independent of where the images live (a folder or a bucket)."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit


@dataclass(frozen=True)
class Rendition:
    name: str  # the rendition's name in the presets file: thumb, web, ...
    format: str  # jpeg, webp, avif, png
    width: int
    height: int
    bytes: int
    url: str  # relative to the page, or an absolute http(s) URL (presigned)

    def __post_init__(self) -> None:
        # The page puts this in src/href: a javascript: or data: URL would run or smuggle content.
        scheme = urlsplit(self.url).scheme.lower()
        if scheme not in ("", "http", "https"):
            raise ValueError(f"gallery image URL must be relative or http(s), not {scheme}:")


@dataclass(frozen=True)
class Source:
    name: str  # path relative to the source folder, or the object key
    bytes: int | None  # None when the source is no longer there to measure
    renditions: tuple[Rendition, ...]
    width: int | None = None
    height: int | None = None
    format: str | None = None


@dataclass(frozen=True)
class Failure:
    name: str
    error: str  # the one-line message the CLI printed


@dataclass(frozen=True)
class Gallery:
    title: str
    sources: tuple[Source, ...] = ()
    failures: tuple[Failure, ...] = ()
    note: str = ""  # e.g. "links expire 2026-11-27 10:00 UTC"

    @property
    def bytes_in(self) -> int:
        return sum(s.bytes or 0 for s in self.sources)

    @property
    def bytes_out(self) -> int:
        return sum(r.bytes for s in self.sources for r in s.renditions)

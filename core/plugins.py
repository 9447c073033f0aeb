"""Decoders from outside Pillow, registered the first time a source needs one.

HEIF/HEIC (every iPhone photo) is decoded by pillow-heif (libheif + libde265).
Importing it loads those libraries (tens of milliseconds), so it happens only
when a source's first bytes say HEIF: the cold import of the handlers, and
every JPEG-only run, stays as light as Pillow alone.
"""

from __future__ import annotations

import functools

from core.errors import UnsupportedFormat

# ISO-BMFF major brands of HEIF stills and sequences (AVIF's "avif"/"avis" are Pillow's own).
_HEIF_BRANDS = {b"heic", b"heix", b"heim", b"heis", b"hevc", b"hevx", b"mif1", b"msf1", b"mif2"}
_AVIF_BRANDS = (b"avif", b"avis")


def looks_like_heif(data: bytes) -> bool:
    """True for an ISO-BMFF file whose ``ftyp`` box names a HEIF brand and no AVIF one."""
    if len(data) < 16 or data[4:8] != b"ftyp":
        return False
    size = int.from_bytes(data[:4], "big")
    box = data[8:min(max(size, 16), 256)]  # major brand, minor version, compatible brands
    brands = {box[i:i + 4] for i in range(0, len(box) - 3, 4) if i != 4}
    return data[8:12] in _HEIF_BRANDS and not any(b in brands for b in _AVIF_BRANDS)


def formats_for(data: bytes, formats: tuple[str, ...], name: str) -> tuple[str, ...]:
    """The Pillow formats to try on ``data``: ``formats``, plus HEIF when it looks like one."""
    if not looks_like_heif(data):
        return formats
    if not _register_heif():
        raise UnsupportedFormat(f"{name}: HEIF/HEIC input needs the pillow-heif package (pip install pillow-heif)")
    return (*formats, "HEIF")


@functools.cache
def _register_heif() -> bool:
    try:
        import pillow_heif
    except ImportError:
        return False
    # Only the primary picture: thumbnails, depth maps and auxiliary images
    # would cost memory and are never rendered.
    pillow_heif.register_heif_opener(thumbnails=False, depth_images=False, aux_images=False)
    return True

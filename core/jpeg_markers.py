"""Reading a JPEG's marker structure without decoding it (for limits checked before decoding)."""

from __future__ import annotations

import re
import struct

SOS, EOI = 0xDA, 0xD9
# Markers without a length field: SOI, EOI, RST0-7, TEM.
_STANDALONE = frozenset({0xD8, 0xD9, 0x01, *range(0xD0, 0xD8)})
# In entropy-coded data a 0xFF byte is followed by 0x00 (stuffing) or a restart
# marker; anything else is the next real marker.
_NEXT_MARKER = re.compile(rb"\xff[^\x00\xd0-\xd7\xff]")


def count_scans(data: bytes) -> int:
    """How many SOS segments (scans) the first image of a JPEG has.

    Walks segment lengths and skips entropy-coded data with one regex search per
    scan, so APPn payloads (EXIF thumbnails, ICC profiles) are never mistaken
    for scans and a 50 MB file is walked in milliseconds. Stops at the first
    EOI (an MPO's later images are not decoded) or where the structure ends.
    """
    scans, pos, end = 0, 2, len(data)
    while pos + 4 <= end:
        if data[pos] != 0xFF:
            break  # garbage where a marker should be: the decoder will complain
        marker = data[pos + 1]
        if marker == 0xFF:  # fill byte before a marker
            pos += 1
            continue
        if marker == EOI:
            break
        if marker in _STANDALONE:
            pos += 2
            continue
        (length,) = struct.unpack_from(">H", data, pos + 2)
        pos += 2 + length
        if marker == SOS:
            scans += 1
            found = _NEXT_MARKER.search(data, pos)
            if found is None:
                break
            pos = found.start()
    return scans

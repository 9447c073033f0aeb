"""Crafted hostile images for the resource-bomb tests (issue 13 items 5, 6)."""

from __future__ import annotations

import io
import re
import struct

from PIL import Image

_SOS = re.compile(rb"\xff\xda")
_NEXT_MARKER = re.compile(rb"\xff[^\x00\xd0-\xd7\xff]")


def many_scan_jpeg(repeats: int, size: tuple[int, int] = (2000, 1500)) -> bytes:
    """A progressive JPEG whose smallest AC refinement scan is repeated ``repeats`` times.

    Each repeat is a few bytes but another pass of libjpeg over every block:
    2000x1500 with 20000 repeats decodes for about half a minute.
    """
    grad = Image.linear_gradient("L").resize(size)
    img = Image.merge("RGB", (grad, grad.transpose(Image.Transpose.FLIP_LEFT_RIGHT), grad))
    buf = io.BytesIO()
    img.save(buf, format="JPEG", quality=90, progressive=True)
    data = buf.getvalue()
    scans = []
    for found in _SOS.finditer(data):
        start = found.start()
        (length,) = struct.unpack_from(">H", data, start + 2)
        ns = data[start + 4]
        ss, _se, ahal = data[start + 5 + 2 * ns:start + 8 + 2 * ns]
        end = _NEXT_MARKER.search(data, start + 2 + length).start()
        if ss > 0 and ahal >> 4 > 0:  # an AC refinement scan
            scans.append((end - start, start, end))
    _, start, end = min(scans)
    return data[:end] + data[start:end] * repeats + data[end:]

"""The scan-count limit (issue 13 item 6): a progressive JPEG that repeats one scan is refused before decoding."""

from __future__ import annotations

import pytest
from PIL import Image

from core.errors import TooManyScans
from core.jpeg_markers import count_scans
from core.pipeline import render
from core.recipe import Limits, builtin_config

from bombs import many_scan_jpeg
from imaging import encode, photo


def test_normal_jpegs_have_few_scans_and_embedded_thumbnails_do_not_count():
    thumb = encode(photo(160, 120), "JPEG", progressive=True)  # 10 scans of its own inside APP1
    exif = Image.Exif()
    exif[0x0112] = 1
    with_thumb = encode(photo(800, 600), "JPEG", exif=exif.tobytes() + thumb)

    assert count_scans(encode(photo(800, 600), "JPEG")) == 1
    assert count_scans(encode(photo(800, 600), "JPEG", progressive=True)) == 10
    assert count_scans(with_thumb) == 1


def test_a_repeated_scan_bomb_is_refused_before_decoding():
    data = many_scan_jpeg(5_000)

    with pytest.raises(TooManyScans, match=r"^uploads/scans\.jpg: 5,010 JPEG scans exceeds the 100-scan limit$"):
        render(data, builtin_config().select(), Limits(), name="uploads/scans.jpg")
    outputs = render(encode(photo(800, 600), "JPEG", progressive=True),
                     builtin_config().select(), Limits(max_scans=10), name="ok.jpg").outputs
    assert all(o.width <= 800 for o in outputs)

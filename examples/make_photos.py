"""Regenerate the bundled sample photos (deterministic). Run from the repo root:

    python examples/make_photos.py
"""

from __future__ import annotations

import sys
from pathlib import Path

from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from imaging import jpeg_with_orientation, photo, stored_for_orientation  # noqa: E402

OUT = ROOT / "examples" / "photos"


def main() -> None:
    (OUT / "nested").mkdir(parents=True, exist_ok=True)
    photo(1600, 1067, seed=11).save(OUT / "harbour.jpg", quality=88)
    # Stored sideways with EXIF Orientation 6 and a GPS block, as phones do.
    upright = photo(900, 1200, seed=12)
    (OUT / "portrait-rotated.jpg").write_bytes(jpeg_with_orientation(stored_for_orientation(upright, 6), 6, gps=True))
    logo = photo(800, 600, seed=13).convert("RGBA")
    mask = Image.new("L", logo.size, 0)
    mask.paste(255, (100, 75, 700, 525))
    logo.putalpha(mask)
    logo.save(OUT / "logo-transparent.png")
    photo(1200, 800, seed=14).save(OUT / "nested" / "forest.jpg", quality=85)
    photo(640, 480, seed=15, mode="L").save(OUT / "nested" / "grey.png")
    (OUT / "nested" / "notes.txt").write_text("Not an image: imgproc skips and counts it.\n")


if __name__ == "__main__":
    main()

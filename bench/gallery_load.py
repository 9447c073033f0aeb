"""How fast the gallery page loads with many sources, in headless chromium.

Builds a page of N sources (default 1,000) x 4 renditions (thumb JPEG, web JPEG/WebP/AVIF) with
the real page builder (cli/gallery/page.py), the rendition files hard-linked from a few real
renditions so the folder stays small (the browser still fetches and decodes every URL it shows).
Opens it from file:// in Debian's chromium through Playwright, 5 times on a fresh profile, and
reports the median of: DOMContentLoaded, the load event, and the time until every image in the
first screen has decoded; plus the page's size and its number of <img> elements.

Usage::

    python bench/gallery_load.py               # 1,000 sources
    python bench/gallery_load.py --sources 5000 --runs 3
"""

from __future__ import annotations

import argparse
import io
import json
import statistics
import sys
import tempfile
from pathlib import Path

from PIL import Image, ImageDraw

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests" / "support"))

from browser import CHROMIUM_FLAGS, chromium_path

from cli.gallery.model import Gallery, Rendition, Source
from cli.gallery.page import render

FORMATS = (("thumb", "jpeg", "jpg", 200), ("web", "jpeg", "jpg", 1600), ("web", "webp", "webp", 1600),
           ("web", "avif", "avif", 1600))
VARIANTS = 8  # distinct pictures behind the hard links


def picture(seed: int, width: int) -> Image.Image:
    img = Image.effect_noise((width, width * 3 // 4), 30).convert("RGB")
    draw = ImageDraw.Draw(img)
    for i in range(5):
        r = width // (4 + i)
        x, y = (seed * 97 + i * 211) % width, (seed * 53 + i * 137) % (width * 3 // 4)
        draw.ellipse((x - r, y - r, x + r, y + r), fill=((seed * 40 + i * 60) % 256, (i * 90) % 256, 120))
    return img


def build(folder: Path, sources: int) -> Path:
    made: dict[tuple[int, str, str], tuple[Path, int, int, int]] = {}
    for v in range(VARIANTS):
        for name, fmt, ext, width in FORMATS:
            buf = io.BytesIO()
            img = picture(v, width)
            img.save(buf, format=fmt.upper(), quality=75)
            path = folder / "base" / f"{v}-{name}.{ext}"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(buf.getvalue())
            made[(v, name, fmt)] = (path, img.width, img.height, len(buf.getvalue()))
    entries = []
    for i in range(sources):
        renditions = []
        for name, fmt, ext, _w in FORMATS:
            base, width, height, size = made[(i % VARIANTS, name, fmt)]
            rel = f"album{i // 100:02d}/photo {i:05d}-{name}.{ext}"
            (folder / rel).parent.mkdir(parents=True, exist_ok=True)
            (folder / rel).hardlink_to(base)
            renditions.append(Rendition(name, fmt, width, height, size, rel.replace(" ", "%20")))
        entries.append(Source(f"album{i // 100:02d}/photo {i:05d}.jpg", 2_500_000, tuple(renditions), 4000, 3000, "jpeg"))
    page = folder / "index.html"
    page.write_text(render(Gallery(f"{sources} sources", tuple(entries))), encoding="utf-8")
    return page


TIMING = """async () => {
  const first = Array.from(document.images).filter((img) => img.getBoundingClientRect().top < innerHeight);
  const done = () => first.every((img) => img.complete);
  while (!done()) await new Promise((resolve) => setTimeout(resolve, 5));
  const nav = performance.getEntriesByType("navigation")[0];
  return {dcl: nav.domContentLoadedEventEnd, load: nav.loadEventEnd, firstScreen: performance.now(),
          images: document.images.length, firstImages: first.length,
          loaded: first.filter((img) => img.naturalWidth > 0).length};
}"""


def measure(page: Path, runs: int) -> dict:
    from playwright.sync_api import sync_playwright

    results = []
    with sync_playwright() as pw:
        for _ in range(runs):
            with tempfile.TemporaryDirectory() as profile:
                ctx = pw.chromium.launch_persistent_context(
                    profile, executable_path=chromium_path(), headless=True, args=list(CHROMIUM_FLAGS),
                    viewport={"width": 1280, "height": 900})
                tab = ctx.new_page()
                tab.goto(page.as_uri(), wait_until="load")
                results.append(tab.evaluate(TIMING))
                ctx.close()
    return {
        "runs": runs,
        "dom_content_loaded_ms": round(statistics.median(r["dcl"] for r in results)),
        "load_event_ms": round(statistics.median(r["load"] for r in results)),
        "first_screen_decoded_ms": round(statistics.median(r["firstScreen"] for r in results)),
        "img_elements": results[0]["images"],
        "first_screen_images": f'{results[0]["loaded"]}/{results[0]["firstImages"]}',
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sources", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    if not chromium_path():
        print("chromium not found (apt-get install chromium)", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory() as tmp:
        page = build(Path(tmp), args.sources)
        size = page.stat().st_size
        result = {"sources": args.sources, "html_bytes": size, **measure(page, args.runs)}
    print(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""A photo folder for gallery tests: hostile file names, a broken file, JPEG/WebP/AVIF presets."""

from __future__ import annotations

from html.parser import HTMLParser
from pathlib import Path

from imaging import encode, photo

# Names a page must show as text: markup, entities, quotes, brackets, URL syntax.
HOSTILE_NAME = 'x<img src=x onerror=alert(1)> & "q" \'s [1].png'
URL_NAME = "trip/#1 ?a=b&c %20 100%.jpg"

PRESETS = """
[presets.thumb]
[[presets.thumb.renditions]]
name = "thumb"
width = 160
height = 160
format = "jpeg"

[presets.web]
[[presets.web.renditions]]
name = "web"
width = 480
height = 480
format = ["jpeg", "webp", "avif"]
"""


def gallery_photos(root: Path) -> tuple[Path, Path]:
    """(source folder, presets file): three good photos and one broken file."""
    src = root / "photos"
    (src / "trip").mkdir(parents=True)
    (src / "beach.jpg").write_bytes(encode(photo(900, 600, seed=1), "JPEG", quality=90))
    (src / HOSTILE_NAME).write_bytes(encode(photo(500, 500, seed=2), "PNG"))
    (src / URL_NAME).write_bytes(encode(photo(600, 800, seed=3), "JPEG", quality=90))
    (src / "broken.jpg").write_bytes(b"this is not a jpeg")
    presets = root / "imgproc.toml"
    presets.write_text(PRESETS)
    return src, presets


class Elements(HTMLParser):
    """Every start tag with its attributes, and the page's text, as a browser's parser sees them."""

    def __init__(self, page: str) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.text: list[str] = []
        self.feed(page)

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data):
        self.text.append(data)

    def all(self, tag: str) -> list[dict[str, str | None]]:
        return [attrs for t, attrs in self.tags if t == tag]

    def with_class(self, tag: str, cls: str) -> list[dict[str, str | None]]:
        return [attrs for attrs in self.all(tag) if attrs.get("class") == cls]

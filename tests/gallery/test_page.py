"""The gallery page builder (data in, HTML out) and `imgproc process --report`."""

from __future__ import annotations

import json
from pathlib import Path
from urllib.parse import unquote

import pytest
from gallerydata import HOSTILE_NAME, URL_NAME, Elements, gallery_photos
from typer.testing import CliRunner

from cli.app import app
from cli.gallery.model import Failure, Gallery, Rendition, Source
from cli.gallery.page import render, saving

runner = CliRunner()


def one_source(name: str, url: str = "a-thumb.jpg") -> Gallery:
    return Gallery("t", (Source(name, 1000, (Rendition("thumb", "jpeg", 200, 100, 250, url),), 400, 200, "png"),),
                   (Failure(name, f"{name}: not a recognised image"),))


def test_hostile_file_names_stay_text_and_inject_nothing():
    page = Elements(render(one_source(HOSTILE_NAME)))
    assert [t for t, _ in page.tags].count("img") == 1  # the name's <img ...> did not become an element
    assert all("onerror" not in attrs for _, attrs in page.tags)
    assert HOSTILE_NAME in page.text  # shown exactly, in the card title
    assert page.with_class("li", "card")[0]["data-name"] == HOSTILE_NAME.lower()
    (img,) = page.all("img")
    assert img["alt"] == f"{HOSTILE_NAME} — thumb (JPEG)"


def test_only_the_pages_own_script_and_style_may_run():
    html = render(one_source("</script><script>alert(1)</script>"))
    page = Elements(html)
    assert len(page.all("script")) == 1 and len(page.all("style")) == 1
    (csp,) = [m["content"] for m in page.all("meta") if m.get("http-equiv") == "Content-Security-Policy"]
    assert "default-src 'none'" in csp and "script-src 'sha256-" in csp and "unsafe-inline" not in csp


@pytest.mark.parametrize("url", ["javascript:alert(1)", "JAVASCRIPT:alert(1)", "data:text/html,<b>x</b>"])
def test_a_script_or_data_url_is_refused(url: str):
    with pytest.raises(ValueError, match="relative or http"):
        Rendition("thumb", "jpeg", 1, 1, 1, url)


def test_page_is_self_contained_and_lazy():
    html = render(one_source("a.png"))
    page = Elements(html)
    assert not page.all("link") or all(link["href"].startswith("data:") for link in page.all("link"))
    assert "http://" not in html.replace("http: https:", "") and "https://" not in html  # no CDN
    (img,) = page.all("img")
    assert (img["loading"], img["decoding"], img["width"], img["height"]) == ("lazy", "async", "128", "64")
    assert any(m.get("name") == "viewport" for m in page.all("meta"))


def test_saving_against_the_source():
    assert (saving(250, 1000), saving(1200, 1000), saving(5, None)) == ("−75%", "+20%", "")


def test_failure_shows_its_one_line_error_once():
    page = Elements(render(one_source("bad.jpg")))
    assert "".join(page.text).count("bad.jpg: not a recognised image") == 1


# --- imgproc process --report ---------------------------------------------------------------


def process(src: Path, presets: Path, *args: str):
    return runner.invoke(app, ["process", str(src), "-c", str(presets), "--json", *args], catch_exceptions=False)


def test_report_lists_every_source_with_its_renditions_and_the_failures(tmp_path: Path):
    src, presets = gallery_photos(tmp_path)
    out = tmp_path / "web"
    result = process(src, presets, "-o", str(out), "--report", "--jobs", "1")
    assert result.exit_code == 1  # broken.jpg failed, and the report is still written
    assert json.loads(result.stdout)["report"] == str(out / "index.html")
    page = Elements((out / "index.html").read_text(encoding="utf-8"))
    cards = {attrs["data-name"] for attrs in page.with_class("li", "card")}
    assert cards == {"beach.jpg", HOSTILE_NAME.lower(), URL_NAME.lower()}
    links = page.with_class("a", "rend")
    assert len(links) == 3 * 4  # thumb + web as JPEG, WebP, AVIF
    for link in links:  # every link leads to the rendition it describes, relative to the page
        target = out / unquote(link["href"])
        assert target.is_file(), link["href"]
        assert f'{link["data-w"]}×{link["data-h"]}' in link["data-label"]
    labels = " ".join(a["data-label"] for a in links)
    assert "AVIF" in labels and "WEBP" in labels and "JPEG" in labels
    assert "broken.jpg" in "".join(page.text)
    assert not list(out.rglob("*.part"))


def test_a_rerun_that_skips_everything_still_reports_every_source(tmp_path: Path):
    src, presets = gallery_photos(tmp_path)
    (src / "broken.jpg").unlink()
    out = tmp_path / "web"
    assert process(src, presets, "-o", str(out)).exit_code == 0
    assert not (out / "index.html").exists()  # only with --report
    again = process(src, presets, "-o", str(out), "--report")
    assert again.exit_code == 0 and json.loads(again.stdout)["processed"] == 0
    page = Elements((out / "index.html").read_text(encoding="utf-8"))
    assert len(page.with_class("a", "rend")) == 12
    assert "3 sources · 12 renditions" in "".join(page.text)

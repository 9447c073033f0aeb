"""The page `imgproc process --report` writes, opened from file:// in headless chromium."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from browser import chromium, load_every_image, wait_until, watch
from gallerydata import HOSTILE_NAME, gallery_photos
from typer.testing import CliRunner

from cli.app import app

pytestmark = pytest.mark.slow
DOCS_SCREENSHOT = Path(__file__).resolve().parents[2] / "docs" / "gallery.png"


@pytest.fixture(scope="module")
def report(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("gallery")
    src, presets = gallery_photos(root)
    result = CliRunner().invoke(app, ["process", str(src), "-c", str(presets), "-o", str(root / "web"),
                                      "--report", "--jobs", "1"], catch_exceptions=False)
    assert result.exit_code == 1, result.output  # the broken file
    return root / "web" / "index.html"


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    with chromium(tmp_path_factory.mktemp("profile")) as context:
        yield context


@pytest.fixture
def page(browser, report):
    page = browser.new_page()
    log = watch(page)
    page.goto(report.as_uri())
    yield page, log
    page.close()
    assert log.errors == []  # no console errors, no uncaught exceptions, no CSP violations
    assert log.dialogs == []  # nothing a file name smuggled in ran


def compare_state(page) -> dict:
    return page.evaluate("""() => {
        const dialog = document.getElementById("compare");
        return {open: dialog.open, title: document.getElementById("cmp-title").textContent,
                position: document.getElementById("cmp-pos").textContent,
                focus: document.activeElement.className};
    }""")


def compare_images(page) -> list[dict]:
    wait_until(page, "() => Array.from(document.querySelectorAll('#cmp-grid img')).every((i) => i.complete)")
    return page.evaluate("""Array.from(document.querySelectorAll('#cmp-grid img'),
        (img) => ({natural: img.naturalWidth, shown: img.getBoundingClientRect().width}))""")


def test_every_image_loads_and_names_show_as_text(page, tmp_path_factory):
    page, _log = page
    images = load_every_image(page)
    assert len(images) == 12  # 3 sources x (thumb + web JPEG/WebP/AVIF)
    assert [i["src"] for i in images if i["natural"] == 0] == []
    titles = page.locator(".card h2").all_text_contents()
    assert HOSTILE_NAME in titles
    assert "broken.jpg" in page.locator("#failures").inner_text()
    page.evaluate("window.scrollTo(0, 0)")
    artifacts = Path(os.environ.get("IMGPROC_TEST_ARTIFACTS") or tmp_path_factory.mktemp("artifacts"))
    artifacts.mkdir(parents=True, exist_ok=True)
    shot = artifacts / "gallery.png"
    page.screenshot(path=str(shot), full_page=True)
    assert shot.stat().st_size > 10_000
    print(f"screenshot: {shot}")
    if os.environ.get("IMGPROC_UPDATE_DOCS"):  # refresh the README's screenshot on purpose, never by default
        shutil.copyfile(shot, DOCS_SCREENSHOT)


def test_compare_view_is_driven_by_the_keyboard(page):
    page, _log = page
    titles = page.locator(".card h2").all_text_contents()
    for _ in range(40):  # Tab to the first card's compare button, as a keyboard user would
        page.keyboard.press("Tab")
        if page.evaluate("document.activeElement.matches('button.compare')"):
            break
    page.keyboard.press("Enter")
    state = compare_state(page)
    assert state["open"] and state["title"] == titles[0] and state["position"] == "1 / 3"
    first = compare_images(page)
    assert len(first) == 4 and all(i["natural"] > 0 for i in first)
    assert len({round(i["shown"]) for i in first}) == 1  # every rendition at the same display width
    page.keyboard.press("ArrowRight")
    assert compare_state(page)["title"] == titles[1]
    assert all(i["natural"] > 0 for i in compare_images(page))
    page.keyboard.press("ArrowLeft")
    page.keyboard.press("ArrowLeft")  # wraps around to the last image
    assert compare_state(page)["title"] == titles[2] and compare_state(page)["position"] == "3 / 3"
    page.keyboard.press("Escape")
    assert not compare_state(page)["open"]
    # Focus goes back to the grid, on the last card shown (set by the dialog's close event, a task later).
    wait_until(page, "(title) => document.activeElement.matches('button.compare') && "
               "document.activeElement.closest('.card').querySelector('h2').textContent === title",
               arg=titles[2], timeout=5)


def test_arrow_keys_move_between_cards_in_the_grid(page):
    page, _log = page
    page.locator("button.compare").first.focus()
    page.keyboard.press("ArrowDown")
    page.keyboard.press("ArrowDown")
    focused = page.evaluate("document.activeElement.closest('.card').querySelector('h2').textContent")
    assert focused == page.locator(".card h2").all_text_contents()[2]


def test_filter_hides_cards_that_do_not_match(page):
    page, _log = page
    page.locator("#filter").fill("BEACH")
    assert page.locator(".card:visible h2").all_text_contents() == ["beach.jpg"]


def test_readable_on_a_phone(page):
    page, _log = page
    page.set_viewport_size({"width": 390, "height": 844})
    overflow = page.evaluate("document.scrollingElement.scrollWidth - window.innerWidth")
    assert overflow <= 0  # no sideways scrolling
    font = page.evaluate("parseFloat(getComputedStyle(document.querySelector('.card h2')).fontSize)")
    assert font >= 13

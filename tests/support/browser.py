"""Headless Debian chromium for tests, driven through Playwright's Python package.

Playwright talks to the system's /usr/bin/chromium (`executable_path`), so no
browser is downloaded: CI installs the `chromium` apt package and the
`playwright` wheel (the dev extra). Each session gets a new, empty profile.
Where chromium cannot run, tests skip saying why; under CI (CI=true) they fail
instead, so a missing install step cannot hide behind a green run.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest

CHROMIUM_FLAGS = (
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
)


def chromium_path() -> str | None:
    return os.environ.get("IMGPROC_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")


def cannot_run(reason: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(f"{reason} (CI must install it: apt-get install -y chromium; pip install -e '.[dev]')")
    pytest.skip(reason)


@dataclass
class PageLog:
    """What the page said: console errors, uncaught exceptions, alert()/confirm() dialogs."""

    errors: list[str] = field(default_factory=list)
    dialogs: list[str] = field(default_factory=list)


@contextmanager
def chromium(profile: Path) -> Iterator[object]:
    """A persistent browser context on a new, empty --user-data-dir (``profile``)."""
    try:
        from playwright.sync_api import Error, sync_playwright
    except ImportError:
        cannot_run("the playwright package is not installed (pip install -e '.[dev]')")
    executable = chromium_path()
    if not executable:
        cannot_run("chromium is not installed (Debian: apt-get install chromium)")
    with sync_playwright() as pw:
        try:
            context = pw.chromium.launch_persistent_context(
                str(profile), executable_path=executable, headless=True, args=list(CHROMIUM_FLAGS),
                viewport={"width": 1280, "height": 900},
            )
        except Error as exc:
            cannot_run(f"chromium at {executable} cannot start here: {str(exc).splitlines()[0]}")
        try:
            yield context
        finally:
            context.close()


def watch(page) -> PageLog:
    """Record the page's console errors, uncaught errors and dialogs (dismissed)."""
    log = PageLog()

    def console(msg) -> None:
        # The browser's own /favicon.ico request (an image or API URL opened directly) is not the page's.
        if msg.type == "error" and not str((msg.location or {}).get("url", "")).endswith("/favicon.ico"):
            log.errors.append(f"console: {msg.text} ({(msg.location or {}).get('url', '')})")

    page.on("console", console)
    page.on("pageerror", lambda exc: log.errors.append(f"uncaught: {exc}"))

    def dialog(d) -> None:
        log.dialogs.append(d.message)
        d.dismiss()

    page.on("dialog", dialog)
    return log


def wait_until(page, expression: str, arg=None, timeout: float = 10.0) -> None:
    """Poll ``expression`` from here until it is true.

    Playwright's wait_for_function polls inside the page by compiling the expression there, which
    the gallery's Content-Security-Policy (no 'unsafe-eval') refuses once it has to poll;
    page.evaluate runs through the DevTools protocol, which the policy does not govern.
    """
    import time

    deadline = time.monotonic() + timeout
    while not page.evaluate(expression, arg):
        assert time.monotonic() < deadline, f"not true within {timeout} s: {expression}"
        time.sleep(0.05)


def load_every_image(page) -> list[dict]:
    """Scroll each <img> into view (they load lazily), wait for all to finish; their sizes and src."""
    for img in page.locator("img").all():
        img.scroll_into_view_if_needed()
    wait_until(page, "() => Array.from(document.images).every((img) => img.complete)", timeout=30)
    return page.evaluate(
        "Array.from(document.images, (img) => ({src: img.getAttribute('src'), natural: img.naturalWidth}))"
    )

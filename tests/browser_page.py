"""The test page in a real browser, for the page tests: Debian's Chromium driven by Playwright, and a page
opened as a person opens it, with every request it sends kept. The `browser` and `page` fixtures are
registered in conftest.py. The tests that use them skip, naming the tool, without chromium (.ci/run
installs it) or playwright."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
         "--disable-sync", "--no-first-run"]
needs_chromium = pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (.ci/run installs it)")


@pytest.fixture(scope="module")
def browser():
    playwright = pytest.importorskip("playwright.sync_api")
    with playwright.sync_playwright() as driver:
        launched = driver.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        yield launched
        launched.close()


@pytest.fixture
def page(browser, server):
    """The test page of the module's `server`, its models listed."""
    opened = open_page(browser, server)
    opened.wait_for_selector("#models li.state-AVAILABLE")
    yield opened
    opened.close()


def open_page(browser, server, path="/", width=1280, height=900, routes=()):
    """A page as a person opens it; every request it sends is kept in page.sent as
    (method, path, JSON body or None, headers)."""
    opened = browser.new_page(viewport={"width": width, "height": height})
    opened.sent = []

    def record(request):
        try:
            body = json.loads(request.post_data) if request.post_data else None
        except (ValueError, UnicodeDecodeError):
            body = None  # a multipart upload
        opened.sent.append((request.method, request.url.removeprefix(server.url), body, request.headers))

    opened.on("request", record)
    for pattern, handler in routes:
        opened.route(pattern, handler)
    opened.goto(server.url + path)
    return opened


def choose(page, path: Path) -> None:
    """Choose a file and wait until the page shows it: its own src (a new blob: URL each time), not the
    previous image's, which stays until the new one is taken (stored on the server, or decoded here)."""
    before = page.evaluate("document.querySelector('#image').getAttribute('src')")
    page.set_input_files("#file", str(path))
    page.wait_for_function("(before) => { const src = document.querySelector('#image').getAttribute('src');"
                           " return src !== null && src !== before; }", arg=before, timeout=60_000)


def click_at(page, fraction_x: float, fraction_y: float) -> None:
    page.locator("#image").scroll_into_view_if_needed()  # as a person scrolls back up from the forms
    box = page.locator("#image").bounding_box()
    page.mouse.click(box["x"] + box["width"] * fraction_x, box["y"] + box["height"] * fraction_y)

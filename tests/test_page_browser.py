"""The test page in a real browser (Debian's Chromium driven by Playwright), against the real server:
what a person gets when they choose an image, click on it, and try a server-side path."""

from __future__ import annotations

import re
import shutil

import pytest

from fixtures import split_image

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
playwright = pytest.importorskip("playwright.sync_api")
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (.ci/run installs it)")


@pytest.fixture(scope="module")
def browser():
    with playwright.sync_playwright() as driver:
        launched = driver.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield launched
        launched.close()


@pytest.fixture
def page(browser, server):
    opened = browser.new_page(viewport={"width": 1280, "height": 900})
    requests = []
    opened.on("request", lambda request: requests.append((request.method, request.url.removeprefix(server.url))))
    opened.goto(server.url + "/")
    opened.requests = requests
    yield opened
    opened.close()


def click_at(page, fraction_x: float, fraction_y: float) -> None:
    box = page.locator("#image").bounding_box()
    page.mouse.click(box["x"] + box["width"] * fraction_x, box["y"] + box["height"] * fraction_y)


def shown_point(page) -> tuple[int, int]:
    x, y = re.match(r"Point \((\d+), (\d+)\) of 400×200", page.locator("#point").inner_text()).groups()
    return int(x), int(y)


def card(page, model: str):
    return page.locator("#results article.model", has=page.locator("h3", has_text=model))


def top_label(page, model: str) -> str:
    return card(page, model).locator(".score .label").first.inner_text()


def test_choosing_an_image_and_clicking_shows_each_models_labels_with_bars(page, tmp_path):
    photo = tmp_path / "split.png"
    photo.write_bytes(split_image(size=(400, 200)))  # left half red, right half blue
    page.wait_for_selector("#models li.state-AVAILABLE")
    page.set_input_files("#file", str(photo))
    page.wait_for_selector("#image[src]")

    click_at(page, 0.2, 0.5)
    page.wait_for_selector("#results article.model")
    assert page.locator("#marker").is_visible()
    x, y = shown_point(page)  # in the image's own pixels, whatever size it is shown at
    assert abs(x - 80) <= 2 and abs(y - 100) <= 2
    assert top_label(page, "tint") == "red"
    assert card(page, "tint").locator(".bar").count() == 3  # a bar for each of tint's 3 labels
    assert page.locator("#results article.model").count() == 3  # and a card for each served model

    click_at(page, 0.8, 0.5)
    x, y = shown_point(page)
    page.wait_for_function(f"document.querySelector('#meta').textContent.includes('({x}, {y})')")
    assert top_label(page, "tint") == "blue"
    # The image went up once; each click sent only its id and the point.
    posts = [url for method, url in page.requests if method == "POST"]
    assert posts == ["/v1/images", "/v1/classify", "/v1/classify"]


def test_an_image_the_server_refuses_is_reported_when_chosen(page, tmp_path):
    not_an_image = tmp_path / "notes.png"
    not_an_image.write_bytes(b"these are not pixels")
    page.set_input_files("#file", str(not_an_image))
    page.wait_for_selector("#status.error")
    assert "invalid_image" in page.locator("#status").inner_text()


def test_a_server_side_path_is_classified_and_an_escape_is_explained(page):
    page.fill("#path", "split.png")
    page.fill("#path-x", "10")
    page.fill("#path-y", "50")
    page.click("#path-form button")
    page.wait_for_selector("#results article.model")
    assert top_label(page, "tint") == "red"

    page.fill("#path", "../outside/secret.png")
    page.click("#path-form button")
    page.wait_for_selector("#status.error")
    status = page.locator("#status").inner_text()
    assert "path_forbidden" in status and "--image-root" in status


def test_the_page_fits_a_phone_screen(browser, server):
    narrow = browser.new_page(viewport={"width": 400, "height": 800})
    narrow.goto(server.url + "/")
    narrow.wait_for_selector("#models li")
    assert narrow.evaluate("document.documentElement.scrollWidth") <= 400
    narrow.close()


def test_a_stored_image_that_expired_is_stored_again_on_the_next_click(page, server, tmp_path):
    photo = tmp_path / "split.png"
    photo.write_bytes(split_image(size=(400, 200)))
    page.set_input_files("#file", str(photo))
    page.wait_for_selector("#image[src]")
    click_at(page, 0.2, 0.5)
    page.wait_for_selector("#results article.model")
    first_id = page.evaluate("state.stored")
    assert server.delete(f"/v1/images/{first_id}").status_code == 200  # as retention would

    click_at(page, 0.8, 0.5)
    x, y = shown_point(page)
    page.wait_for_function(f"document.querySelector('#meta').textContent.includes('({x}, {y})')")
    assert page.evaluate("state.stored") != first_id
    assert top_label(page, "tint") == "blue"
    posts = [url for method, url in page.requests if method == "POST"]
    assert posts == ["/v1/images", "/v1/classify", "/v1/classify", "/v1/images", "/v1/classify"]

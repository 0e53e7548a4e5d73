"""The test page in a real browser (Debian's Chromium driven by Playwright), against the real server:
what a person gets when they open it, choose an image, click on it or use the keyboard, pick models
and top_k, look back at earlier points, try a server-side path, and give an API key.

Screenshots at 1280 and 400 px go to $PAGE_SCREENSHOTS (a directory) when it is set."""

from __future__ import annotations

import hashlib
import json
import os
import re
from pathlib import Path

import pytest

import graphs
from browser_page import choose, click_at, needs_chromium, open_page
from fixtures import decompression_bomb, split_image, start_server, stop_server
from service.classify.imaging import CropSpec, crop_box

playwright = pytest.importorskip("playwright.sync_api")
pytestmark = needs_chromium


@pytest.fixture(scope="module")
def server(process_server):
    """A browser meets the server as a user's does: `pinpoint serve`, a process of its own."""
    return process_server


@pytest.fixture
def photo(tmp_path) -> Path:
    path = tmp_path / "split.png"
    path.write_bytes(split_image(size=(400, 200)))  # left half red, right half blue
    return path


def posts(page, path="/v1/classify"):
    return [body for method, url, body, _ in page.sent if method == "POST" and url == path]


def classify_at(page, fraction_x: float, fraction_y: float) -> tuple[int, int]:
    """Click and wait for that point's answer; returns the point in image pixels."""
    click_at(page, fraction_x, fraction_y)
    x, y = shown_point(page)
    page.wait_for_function(f"document.querySelector('#meta').textContent.includes('({x}, {y})')")
    return x, y


def shown_point(page, size="400×200") -> tuple[int, int]:
    x, y = re.match(rf"Point \((\d+), (\d+)\) of {size}", page.locator("#point").inner_text()).groups()
    return int(x), int(y)


def card(page, model: str):
    return page.locator("#results article.model", has=page.locator("h3", has_text=model))


def top_label(page, model: str) -> str:
    return card(page, model).locator(".score .label").first.inner_text()


def status(page) -> str:
    return page.locator("#status").inner_text()


def shot(page, name: str) -> None:
    directory = os.environ.get("PAGE_SCREENSHOTS")
    if directory:
        Path(directory).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(Path(directory) / name), full_page=True)


# ---- an image and a point ----
def test_the_empty_page_shows_no_broken_image_only_where_to_put_one(page):
    assert page.locator("#picture").is_hidden()
    assert page.locator("#image").is_hidden()  # no broken-image icon, no alt text drawn in its place
    assert page.evaluate("getComputedStyle(document.querySelector('#picture')).display") == "none"
    assert page.locator("label[for=file]").is_visible()
    assert page.locator("#drop-hint").is_visible()


def test_choosing_an_image_and_clicking_shows_each_models_labels_with_bars(page, photo):
    choose(page, photo)
    x, y = classify_at(page, 0.2, 0.5)
    assert abs(x - 80) <= 2 and abs(y - 100) <= 2  # in the image's own pixels, whatever size it is shown at
    assert page.locator("#marker").is_visible()
    assert top_label(page, "tint") == "red"
    assert card(page, "tint").locator(".bar").count() == 3  # a bar for each of tint's 3 labels
    assert page.locator("#results article.model").count() == 3  # and a card for each served model

    classify_at(page, 0.8, 0.5)
    assert top_label(page, "tint") == "blue"
    # The image went up once; each click sent only its id and the point.
    posted = [url for method, url, _, _ in page.sent if method == "POST"]
    assert posted == ["/v1/images", "/v1/classify", "/v1/classify"]
    assert page.locator("label[for=file]").is_visible()  # another image is one click away


def test_a_file_the_server_refuses_is_explained_and_the_chooser_stays(page, photo, tmp_path):
    text = tmp_path / "notes.txt"
    text.write_text("these are not pixels")
    page.set_input_files("#file", str(text))
    page.wait_for_selector("#status.error")
    assert "notes.txt is not an image" in status(page)
    assert not posts(page, "/v1/images")  # refused without asking the server

    disguised = tmp_path / "notes.png"
    disguised.write_bytes(b"these are not pixels")
    page.set_input_files("#file", str(disguised))
    page.wait_for_function("document.querySelector('#status').textContent.includes('invalid_image')")
    assert page.locator("#picture").is_hidden() and page.locator("label[for=file]").is_visible()

    bomb = tmp_path / "bomb.png"
    bomb.write_bytes(decompression_bomb())
    page.set_input_files("#file", str(bomb))
    page.wait_for_function("document.querySelector('#status').textContent.includes('image_too_large')")
    assert page.locator("#picture").is_hidden() and page.locator("label[for=file]").is_visible()

    choose(page, photo)  # after a good image, a bad one leaves the good one in place
    classify_at(page, 0.2, 0.5)
    page.set_input_files("#file", str(disguised))
    page.wait_for_function("document.querySelector('#status').textContent.includes('invalid_image')")
    assert page.locator("#image").is_visible() and page.locator("label[for=file]").is_visible()
    classify_at(page, 0.8, 0.5)
    assert top_label(page, "tint") == "blue"


def test_a_stored_image_that_expired_is_stored_again_on_the_next_click(page, server, photo):
    choose(page, photo)
    classify_at(page, 0.2, 0.5)
    first_id = page.evaluate("state.source.imageId")
    assert server.delete(f"/v1/images/{first_id}").status_code == 200  # as retention would

    classify_at(page, 0.8, 0.5)
    assert page.evaluate("state.source.imageId") != first_id
    assert top_label(page, "tint") == "blue"
    assert [url for method, url, _, _ in page.sent if method == "POST"] == [
        "/v1/images", "/v1/classify", "/v1/classify", "/v1/images", "/v1/classify"]


def test_the_image_can_be_classified_from_the_keyboard(page, photo):
    choose(page, photo)
    page.focus("#file")
    page.keyboard.press("Tab")  # the image is the next stop
    assert page.evaluate("document.activeElement.id") == "picture"
    assert page.locator("#cursor").is_visible() is False  # until a key moves it

    # The cursor starts at the centre; a step is 1% of the longer side (4 px here), Shift makes it 10%.
    for key in ("ArrowRight", "ArrowRight", "ArrowRight", "Shift+ArrowLeft", "ArrowDown"):
        page.keyboard.press(key)
    assert page.locator("#cursor").is_visible()
    assert "Cursor at (172, 104) of 400×200" in page.locator("#point").inner_text()
    page.keyboard.press("Enter")
    page.wait_for_function("document.querySelector('#meta').textContent.includes('(172, 104)')")
    assert posts(page)[-1]["x"] == 172 and posts(page)[-1]["y"] == 104
    assert top_label(page, "tint") == "red"

    page.keyboard.press("Shift+ArrowRight")
    page.keyboard.press("Shift+ArrowRight")
    page.keyboard.press("Enter")
    page.wait_for_function("document.querySelector('#meta').textContent.includes('(252, 104)')")
    assert top_label(page, "tint") == "blue"


# ---- what to ask ----
def test_with_every_model_unticked_the_page_asks_for_one_and_sends_nothing(page, photo):
    choose(page, photo)
    for box in page.locator("#model-boxes input").all():
        box.uncheck()
    click_at(page, 0.2, 0.5)
    page.wait_for_selector("#status.error")
    assert "Choose at least one model" in status(page)
    assert posts(page) == []

    page.locator("#model-boxes input[value=tint]").check()  # asks again for the same point
    page.wait_for_selector("#results article.model")
    assert posts(page)[-1]["models"] == ["tint"]
    assert page.locator("#results article.model").count() == 1 and top_label(page, "tint") == "red"


def test_top_k_sets_how_many_labels_each_model_shows(page, photo):
    choose(page, photo)
    page.fill("#top-k", "2")
    classify_at(page, 0.2, 0.5)
    assert posts(page)[-1]["top_k"] == 2
    for model in ("tint", "bright", "jpeg"):
        assert card(page, model).locator(".score").count() == 2

    page.fill("#top-k", "25")
    page.locator("#top-k").dispatch_event("change")
    page.wait_for_selector("#status.error")
    assert "from 1 to 20" in status(page) and len(posts(page)) == 1


def test_earlier_points_can_be_shown_again_without_a_new_request(page, photo):
    choose(page, photo)
    first = classify_at(page, 0.2, 0.5)
    classify_at(page, 0.8, 0.5)
    history = page.locator("#history button")
    assert history.count() == 2
    assert history.nth(0).inner_text() == f"({first[0]}, {first[1]}) · bright dark, jpeg red, tint red"
    assert history.nth(1).get_attribute("aria-current") == "true"

    sent = len(page.sent)
    history.nth(0).click()
    assert top_label(page, "tint") == "red" and shown_point(page) == first
    assert f"at ({first[0]}, {first[1]})" in page.locator("#meta").inner_text()
    marker_left = page.evaluate("document.querySelector('#marker').style.left")
    assert float(marker_left.rstrip("%")) == pytest.approx(100 * first[0] / 400)
    assert history.nth(0).get_attribute("aria-current") == "true"
    assert len(page.sent) == sent  # answered from memory

    choose(page, photo)  # a new image starts a new history, once the server has accepted it
    page.wait_for_selector("#history-card", state="hidden", timeout=10_000)


def test_each_models_window_is_drawn_where_the_server_cuts_it(page, server, photo):
    config = server.get("/v1/config").json()
    specs = {name: CropSpec(**{**model["crop"], "box": tuple(model["crop"]["box"]) if model["crop"]["box"] else None})
             for name, model in config["models"].items()}
    choose(page, photo)
    for fraction in ((0.2, 0.5), (0.01, 0.02), (0.999, 0.999)):  # the middle, and corners (windows shifted in)
        x, y = classify_at(page, *fraction)
        windows = page.locator("#windows .window")
        drawn = {tuple(w.get_attribute("data-models").split(",")): w for w in windows.all()}
        # jpeg and tint cut the same window (one outline, both names); bright its fixed 16x16 box.
        assert set(drawn) == {("jpeg", "tint"), ("bright",)}
        image = page.locator("#image").bounding_box()
        for models, window in drawn.items():
            left, top, right, bottom = crop_box(specs[models[0]], 400, 200, x, y)
            assert [float(window.get_attribute(f"data-{side}")) for side in ("left", "top", "right", "bottom")] == \
                pytest.approx([left, top, right, bottom], abs=1e-9)
            assert left >= 0 and top >= 0 and right <= 400 and bottom <= 200
            on_screen = window.bounding_box()
            scale = image["width"] / 400
            assert on_screen["x"] == pytest.approx(image["x"] + left * scale, abs=1.5)
            assert on_screen["y"] == pytest.approx(image["y"] + top * scale, abs=1.5)
            assert on_screen["width"] == pytest.approx((right - left) * scale, abs=1.5)
    assert page.locator("#legend").inner_text().split("\n") == [
        "The window each model sees:", "bright 16×16 px", "jpeg, tint 20×20 px"]

    page.locator("#show-windows").uncheck()
    assert page.locator("#windows .window").count() == 0 and page.locator("#legend").is_hidden()


def test_a_path_point_in_percent_and_its_windows_read_in_whole_pixels(page):
    """51.2% of 200 is 102.4 px: the server cuts there, the page says (102, 50), windows in whole px."""
    page.fill("#path", "split.png")
    page.fill("#path-x", "51.2")
    page.fill("#path-y", "50")
    page.click("#path-form button")
    page.wait_for_selector("#legend:not([hidden])")
    assert page.locator("#point").inner_text() == "Point (102, 50) of 200×100"
    assert page.locator("#history button").first.inner_text().startswith("(102, 50) · ")
    assert all(re.fullmatch(r"[a-z, ]+ \d+×\d+ px", key.inner_text())
               for key in page.locator("#legend .window-key").all())


def test_asking_again_for_a_point_replaces_its_history_entry_and_asks_for_the_point_on_screen(page, photo):
    choose(page, photo)
    first = classify_at(page, 0.2, 0.5)
    classify_at(page, 0.8, 0.5)
    page.locator("#history button").nth(0).click()          # the first point on screen again
    assert shown_point(page) == first

    sent = len(posts(page))
    page.locator("#model-boxes input[value=bright]").uncheck()   # asks again: for the point shown
    page.wait_for_function("document.querySelectorAll('#results article.model').length === 2")
    assert len(posts(page)) == sent + 1 and (posts(page)[-1]["x"], posts(page)[-1]["y"]) == first
    page.fill("#top-k", "3")
    page.locator("#top-k").dispatch_event("change")
    page.wait_for_function("document.querySelectorAll('#results article.model .score').length === 6")
    history = page.locator("#history button")
    assert history.count() == 2                              # still one entry per point
    assert history.nth(0).inner_text() == f"({first[0]}, {first[1]}) · jpeg red, tint red"
    assert history.nth(0).get_attribute("aria-current") == "true"


def test_at_1280_by_900_the_settings_stay_in_view_however_many_points(page, photo):
    choose(page, photo)
    for step in range(6):
        classify_at(page, 0.1 + 0.15 * step, 0.5)
    options = page.locator("#options").bounding_box()
    assert options["y"] >= 0 and options["y"] + options["height"] <= 900
    assert page.locator("#results").bounding_box()["y"] > options["y"]
    shot(page, "page-1280-six-points.png")


def test_the_pages_window_arithmetic_is_the_servers(page):
    """The page's cropBox against service.classify.imaging.crop_box: fractions, minimums, fixed boxes larger than
    the image, aspect kept or not, points in the middle, at the edges and between pixels."""
    specs = [CropSpec(width=32, height=48, fraction=0.15, min_px=24),
             CropSpec(width=16, height=16, fraction=None, box=(300, 100)),
             CropSpec(width=8, height=8, fraction=None, box=(30, 10), keep_aspect=False),
             CropSpec(width=96, height=96, fraction=0.25, min_px=24, keep_aspect=True),
             CropSpec(width=10, height=30, fraction=1.0),
             CropSpec(width=50, height=20, fraction=0.05, min_px=50, keep_aspect=False)]
    cases = []
    for spec in specs:
        crop = {"width": spec.width, "height": spec.height, "fraction": spec.fraction, "min_px": spec.min_px,
                "box": list(spec.box) if spec.box else None, "keep_aspect": spec.keep_aspect}
        for width, height in ((200, 100), (37, 211), (4000, 3000)):
            for x, y in ((0, 0), (width - 1, height - 1), (width / 2, height / 2), (3.5, height - 2.25),
                         (width * 0.9, 1)):
                cases.append(((crop, width, height, x, y), crop_box(spec, width, height, x, y)))
    computed = page.evaluate("cases => cases.map(([crop, w, h, x, y]) => cropBox(crop, w, h, x, y))",
                             [list(args) for args, _ in cases])
    for (args, expected), got in zip(cases, computed):
        assert got == pytest.approx(list(expected), rel=1e-12, abs=1e-9), args


# ---- a server-side path ----
def test_the_server_path_form_is_shown_because_this_server_has_an_image_root(page):
    assert page.locator("#path-form").is_visible()


def test_a_server_path_is_drawn_on_a_stand_in_of_that_image_not_on_the_upload(page, photo):
    choose(page, photo)
    classify_at(page, 0.2, 0.5)

    page.fill("#path", "split.png")  # 200x100 in the image root: red left, blue right
    page.fill("#path-x", "10")
    page.fill("#path-y", "50")
    page.select_option("#path-units", "px")
    page.click("#path-form button")
    page.wait_for_function("document.querySelector('#meta').textContent.includes('200×100 PNG at (10, 50)')")
    assert top_label(page, "tint") == "red"
    # The uploaded photo and its marker are gone: a stand-in of the server image's size takes their place.
    assert page.evaluate("document.querySelector('#image').src").startswith("data:image/svg+xml")
    assert page.evaluate("document.querySelector('#image').naturalWidth") == 200
    assert "Server image split.png · 200×100" in page.locator("#source").inner_text()
    assert page.evaluate("document.querySelector('#marker').style.left") == "5%"
    assert page.locator("#history button").count() == 1  # a history of this image, not the photo's
    shot(page, "page-1280-server-path.png")

    click_at(page, 0.8, 0.5)  # a click on the stand-in classifies that point of the server image
    x, y = shown_point(page, "200×100")
    page.wait_for_function(f"document.querySelector('#meta').textContent.includes('({x}, {y})')")
    assert abs(x - 160) <= 2 and posts(page)[-1] == {"path": "split.png", "x": x, "y": y, "top_k": 5}
    assert top_label(page, "tint") == "blue"


def test_an_error_clears_the_previous_answer_marker_and_meta(page, photo):
    choose(page, photo)
    classify_at(page, 0.2, 0.5)
    assert page.locator("#marker").is_visible() and page.locator("#windows .window").count() == 2

    page.fill("#path", "../outside/secret.png")
    page.click("#path-form button")
    page.wait_for_selector("#status.error")
    assert "path_forbidden" in status(page) and "--image-root" in status(page)
    assert page.locator("#marker").is_hidden()
    assert page.locator("#meta").inner_text() == ""
    assert page.locator("#results article").count() == 0 and page.locator("#windows .window").count() == 0
    page.locator("#history button").first.click()  # the earlier answer is still one click away
    assert top_label(page, "tint") == "red" and page.locator("#marker").is_visible()


# ---- a server still loading its models ----
def test_a_page_opened_while_models_load_waits_for_them_and_retries_the_first_click(browser, server, photo):
    """The server's answers while its models load: /readyz 503 with Retry-After, /v1/models listing
    them LOADING, and a classify refused with 503 model_unavailable and Retry-After."""
    loading = {"readyz": 2, "models": 2, "classify": 1}

    def readyz(route):
        if loading["readyz"] <= 0:
            return route.continue_()
        loading["readyz"] -= 1
        route.fulfill(status=503, headers={"Retry-After": "1"}, json={
            "ready": False, "models": {"tint": "LOADING", "bright": "LOADING", "jpeg": "LOADING"},
            "code": "model_unavailable", "error": "not ready: tint, bright, jpeg"})

    def models(route):
        listing = route.fetch().json()
        if loading["models"] > 0:
            loading["models"] -= 1
            for model in listing["models"]:
                model["state"] = "LOADING"
        route.fulfill(json=listing)

    def classify(route):
        if loading["classify"] <= 0:
            return route.continue_()
        loading["classify"] -= 1
        route.fulfill(status=503, headers={"Retry-After": "1"},
                      json={"error": "the models are still loading", "code": "model_unavailable"})

    page = open_page(browser, server, routes=[("**/readyz", readyz), ("**/v1/models", models),
                                              ("**/v1/classify", classify)])
    page.wait_for_selector("#models li.state-LOADING")
    assert "tint v1 · loading" in page.locator("#models").inner_text()
    page.wait_for_selector("#models li.state-AVAILABLE", timeout=10_000)  # polled until ready, no reload
    assert page.locator("#models li.state-LOADING").count() == 0

    choose(page, photo)
    click_at(page, 0.2, 0.5)
    page.wait_for_function("document.querySelector('#status').textContent.includes('trying again in 1 s')")
    page.wait_for_selector("#results article.model", timeout=10_000)
    assert top_label(page, "tint") == "red"
    assert len(posts(page)) == 2  # the refused request, and the retry that was answered
    page.close()


# ---- API keys ----
@pytest.fixture(scope="module")
def keyed(tmp_path_factory):
    """A server with API keys and no image root."""
    tmp = tmp_path_factory.mktemp("keyed")
    models, labels = graphs.write_repository(tmp, names=("tint",))
    running = start_server(tmp, models, labels, env={
        "PINPOINT_API_KEYS": json.dumps({"tester": hashlib.sha256(b"s3cret").hexdigest()}),
        "PINPOINT_RATE_LIMIT_PER_S": "0"})
    yield running
    stop_server(running)


def test_with_api_keys_the_page_asks_for_a_key_and_sends_it(browser, keyed, photo):
    page = open_page(browser, keyed)
    page.wait_for_selector("#key-form.wanted")
    assert "needs an API key" in page.locator("#key-why").inner_text()
    assert "unauthorized" in status(page)
    shot(page, "page-1280-key.png")

    page.fill("#api-key", "wrong")
    page.click("#key-form button[type=submit]")
    page.wait_for_function("document.querySelector('#key-why').textContent.includes('refused this key')")

    page.set_input_files("#file", str(photo))  # an image chosen without a key waits for one
    page.wait_for_function("document.querySelector('#status').textContent.includes('unauthorized')")
    assert page.locator("#picture").is_hidden()

    page.fill("#api-key", "s3cret")
    page.click("#key-form button[type=submit]")
    page.wait_for_selector("#models li.state-AVAILABLE")
    page.wait_for_selector("#image[src]")  # the upload the 401 stopped went through with the key
    assert page.evaluate("sessionStorage.getItem('pinpoint.apiKey')") == "s3cret"
    classify_at(page, 0.2, 0.5)
    assert top_label(page, "tint") == "red"
    assert page.locator("#key-form").is_hidden()             # accepted: the card is out of the way...
    page.click("#key-change")                                # ...and back when asked for
    assert page.locator("#key-form").is_visible() and page.locator("#key-forget").is_visible()
    answered = [(url, headers) for method, url, _, headers in page.sent if url.startswith("/v1/")]
    assert answered[-1][0] == "/v1/classify" and answered[-1][1]["x-api-key"] == "s3cret"
    # No image root on this server: no form for server paths.
    assert page.locator("#path-form").is_hidden()
    page.close()


# ---- layout ----
def test_on_a_phone_the_answer_comes_before_the_forms(browser, server, photo):
    page = open_page(browser, server, width=400, height=800)
    page.wait_for_selector("#models li.state-AVAILABLE")
    shot(page, "page-400-empty.png")
    choose(page, photo)
    classify_at(page, 0.2, 0.5)
    assert page.evaluate("document.documentElement.scrollWidth") <= 400
    answer = page.locator("#results").bounding_box()
    for form in ("#options", "#path-form"):
        assert answer["y"] + answer["height"] <= page.locator(form).bounding_box()["y"], form
    assert page.locator("#image").bounding_box()["y"] < answer["y"]
    assert page.locator("label[for=file]").is_visible()
    shot(page, "page-400.png")
    page.close()


def test_screenshot_at_1280_with_windows_and_history(page, photo):
    choose(page, photo)
    classify_at(page, 0.2, 0.5)
    classify_at(page, 0.7, 0.3)
    assert page.evaluate("document.documentElement.scrollWidth") <= 1280
    shot(page, "page-1280.png")
    page.focus("#picture")
    page.keyboard.press("ArrowDown")
    shot(page, "page-1280-keyboard.png")

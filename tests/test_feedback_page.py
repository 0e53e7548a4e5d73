"""The feedback loop in a real browser (Debian's Chromium driven by Playwright): the test page's controls
for saying which label was right, and the /report page, on an empty database and on a populated one.

Screenshots at 1280 and 400 px go to $PAGE_SCREENSHOTS (a directory) when it is set."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from browser_page import needs_chromium, open_page
from feedback_client import LEFT, RIGHT, classify, give
from fixtures import split_image, start_server, stop_server

playwright = pytest.importorskip("playwright.sync_api")
pytestmark = needs_chromium


@pytest.fixture(scope="module")
def server(tmp_path_factory, repository):
    """A server of its own, so its feedback database starts empty."""
    models, labels = repository
    running = start_server(tmp_path_factory.mktemp("feedback-page"), models, labels,
                           env={"PINPOINT_RATE_LIMIT_PER_S": "0"})
    yield running
    stop_server(running)


@pytest.fixture
def photo(tmp_path) -> Path:
    path = tmp_path / "split.png"
    path.write_bytes(split_image(size=(400, 200)))  # left half red, right half blue
    return path


def classify_at(page, fraction_x: float, fraction_y: float) -> None:
    page.locator("#image").scroll_into_view_if_needed()
    box = page.locator("#image").bounding_box()
    before = page.evaluate("state.history.length")
    page.mouse.click(box["x"] + box["width"] * fraction_x, box["y"] + box["height"] * fraction_y)
    page.wait_for_function(f"state.history.length > {before} && document.querySelector('#results .feedback')")


def card(page, model: str):
    return page.locator("#results article.model", has=page.locator("h3", has_text=model))


def feedback_posts(page) -> list[dict]:
    return [body for method, url, body, _ in page.sent if method == "POST" and url == "/v1/feedback"]


def wait_for_posts(page, count: int) -> None:
    page.wait_for_function("document.querySelectorAll('.feedback-note').length && "
                           "![...document.querySelectorAll('.feedback-note')].some(n => n.textContent === 'Saving…')")
    assert len(feedback_posts(page)) == count


def shot(page, name: str) -> None:
    directory = os.environ.get("PAGE_SCREENSHOTS")
    if directory:
        Path(directory).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(Path(directory) / name), full_page=True)


def no_sideways_scroll(page) -> bool:
    return page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")


# ---- the report page, before anyone has said anything ----
def test_the_report_page_of_an_empty_database_says_how_to_fill_it(browser, server):
    assert server.get("/v1/report").json()["totals"]["logged"] == 0, "runs first: the module's database is empty"
    for width in (1280, 400):
        report = open_page(browser, server, "/report", width=width)
        report.wait_for_function("!document.querySelector('#status').textContent.startsWith('Loading')")
        assert "Nothing is logged yet" in report.locator("#status").inner_text()
        assert report.locator("#plot-card").is_hidden() and report.locator("#summary article").count() == 0
        assert report.locator("header a[href='/']").is_visible() and no_sideways_scroll(report)
        shot(report, f"report-empty-{width}.png")
        report.close()


# ---- the test page asks ----
def test_marking_the_right_label_posts_it_and_choosing_again_replaces_it(page, server, photo):
    assert page.locator("a[href='/report']").is_visible()
    page.set_input_files("#file", str(photo))
    page.wait_for_selector("#image[src]")
    classify_at(page, 0.2, 0.5)
    tint = card(page, "tint")
    buttons = tint.locator(".feedback .choice")
    assert [buttons.nth(i).inner_text() for i in range(buttons.count())] == ["red", "green", "blue", "none of these"]
    request_id = page.evaluate("state.history[0].answer.request_id")

    tint.locator(".choice[data-label=green]").click()
    wait_for_posts(page, 1)
    assert feedback_posts(page)[-1] == {"request_id": request_id, "point": 0, "model": "tint", "label": "green"}
    assert tint.locator(".choice[data-label=green]").get_attribute("aria-pressed") == "true"
    assert tint.locator(".feedback-note").inner_text() == "Saved: green."

    tint.locator(".choice[data-label=none]").click()  # changed their mind: the choice is replaced
    wait_for_posts(page, 2)
    assert tint.locator(".choice[data-label=green]").get_attribute("aria-pressed") == "false"
    assert tint.locator(".feedback-note").inner_text() == "Saved: none of these."

    assert tint.locator(".feedback-other").is_hidden()
    tint.locator(".feedback .other-toggle").click()  # another label: typed, or chosen from tint's
    other = tint.locator(".feedback-other input")
    assert other.is_visible()
    other.fill("purple")  # not a label of tint: said on the page, nothing sent
    tint.locator(".feedback-other button").click()
    assert "has no label “purple”" in tint.locator(".feedback-note").inner_text()
    assert len(feedback_posts(page)) == 2
    assert tint.locator("datalist option").count() == 3  # every label of tint v1 to choose from
    other.fill("red")
    other.press("Enter")
    wait_for_posts(page, 3)
    assert feedback_posts(page)[-1]["label"] == "red"
    assert tint.locator(".choice[data-label=red]").get_attribute("aria-pressed") == "true"
    assert tint.locator(".feedback-other").is_hidden()

    report = server.get("/v1/report", params={"model": "tint"}).json()
    assert report["versions"][0]["feedback"] == 1 and report["versions"][0]["top1"]["hits"] == 1  # the last choice
    shot(page, "feedback-1280.png")


def test_each_answer_in_the_history_keeps_its_choice(page, photo):
    page.set_input_files("#file", str(photo))
    page.wait_for_selector("#image[src]")
    classify_at(page, 0.2, 0.5)
    card(page, "tint").locator(".choice[data-label=red]").click()
    wait_for_posts(page, 1)
    classify_at(page, 0.8, 0.5)
    assert card(page, "tint").locator(".choice[aria-pressed=true]").count() == 0  # a new answer asks afresh
    card(page, "bright").locator(".choice[data-label=dark]").click()
    wait_for_posts(page, 2)
    page.locator("#history button").first.click()  # shown again, without a request
    assert card(page, "tint").locator(".choice[data-label=red]").get_attribute("aria-pressed") == "true"
    assert card(page, "tint").locator(".feedback-note").inner_text() == "Saved: red."
    assert len(feedback_posts(page)) == 2


def test_the_controls_fit_a_phone(browser, server, photo):
    phone = open_page(browser, server, width=400, height=860)
    phone.wait_for_selector("#models li.state-AVAILABLE")
    phone.set_input_files("#file", str(photo))
    phone.wait_for_selector("#image[src]")
    classify_at(phone, 0.8, 0.5)
    card(phone, "tint").locator(".choice[data-label=blue]").click()
    wait_for_posts(phone, 1)
    assert no_sideways_scroll(phone)
    box = card(phone, "tint").locator(".feedback").bounding_box()
    assert box["x"] >= 0 and box["x"] + box["width"] <= 400
    shot(phone, "feedback-400.png")
    phone.close()


# ---- the report page, with feedback ----
def test_the_report_page_shows_hit_rates_the_plot_per_label_and_confusions(browser, server):
    for point, label in ((LEFT, "red"), (RIGHT, "blue"), (LEFT, "green"), (RIGHT, "none"), (LEFT, "blue")):
        answer = classify(server, [point], models="tint,jpeg")
        assert give(server, answer["request_id"], "jpeg", label).status_code == 201
    expected = next(entry for entry in server.get("/v1/report").json()["versions"] if entry["model"] == "jpeg")
    assert expected["feedback"] == 5 and expected["top1"]["hits"] == 2

    for width in (1280, 400):
        report = open_page(browser, server, "/report", width=width, height=1000)
        report.wait_for_selector("#summary article.version")
        jpeg = report.locator("#summary article[data-model=jpeg]")
        assert jpeg.locator("[data-rate='top-1'] .value").inner_text() == "40.0%"
        assert jpeg.locator("[data-rate='top-5'] .value").inner_text() == "80.0%"
        assert f"5 feedback of {expected['logged']} answers" in jpeg.locator(".counts").inner_text()
        assert "none of these: 1 (20.0%)" in jpeg.locator(".counts").inner_text()
        report.wait_for_function("document.querySelector('#plot').naturalWidth > 0")
        assert report.locator("#plot-card").is_visible()
        natural = report.evaluate("document.querySelector('#plot').naturalWidth")
        assert natural <= width  # drawn for the page's width, not scaled down from a wide picture
        details = report.locator("#details section[data-model=jpeg]")
        rows = {details.locator("tbody tr").nth(i).locator("th").inner_text()
                for i in range(details.locator("tbody tr").count())}
        assert rows == {"red", "blue", "green"}
        pairs = [details.locator(".confusions li .pair").nth(i).inner_text()
                 for i in range(details.locator(".confusions li").count())]
        assert pairs and set(pairs) <= {"red → green", "red → blue", "blue → red"}
        assert no_sideways_scroll(report)
        shot(report, f"report-{width}.png")

        report.select_option("#model", "jpeg")  # one model: the others' cards go
        report.wait_for_function("document.querySelectorAll('#summary article').length === 1")
        assert re.search(r"\d", report.locator("#generated").inner_text())
        report.close()

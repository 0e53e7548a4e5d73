"""The API reference page (static/openapi.html) in a real browser (Debian's Chromium driven by Playwright), as a
person reads it instead of docs/api.md: the classify operation with its `x` parameter and field, their types and
limits, its answers and its 400 `bad_request`; a filter that narrows the list; a link that opens at one
operation; a phone's width. Everything comes from the server's /openapi.json, nothing from elsewhere.

Screenshots at 1280 and 400 px go to $PAGE_SCREENSHOTS (a directory) when it is set."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from browser_page import needs_chromium, open_page

playwright = pytest.importorskip("playwright.sync_api")
pytestmark = needs_chromium
PAGE = "/static/openapi.html"


def reference(browser, server, path=PAGE, width=1280):
    opened = open_page(browser, server, path, width=width)
    opened.wait_for_selector("#operations .operation")
    return opened


def shot(page, name: str) -> None:
    directory = os.environ.get("PAGE_SCREENSHOTS")
    if directory:
        Path(directory).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(Path(directory) / name), full_page=True)


def shown(page) -> list[str]:
    """The operations listed, as their ids (#operationId), in the page and in its table of contents alike."""
    listed = page.eval_on_selector_all("#operations .operation:not([hidden])", "nodes => nodes.map(n => n.id)")
    linked = page.eval_on_selector_all("#toc li:not([hidden]) a", "links => links.map(a => a.hash.slice(1))")
    assert sorted(listed) == sorted(linked)
    return listed


def test_the_classify_operation_shows_its_x_parameter_and_field_and_its_400_bad_request(browser, server):
    page = reference(browser, server)
    try:
        classify = page.locator("#post_v1_classify")
        assert "POST" in classify.locator("h2").inner_text() and "/v1/classify" in classify.locator("h2").inner_text()
        parameter = classify.locator("table.of-parameters tr[data-field=x]")
        assert parameter.is_visible()
        assert [cell.strip() for cell in parameter.locator("td").all_inner_texts()][:3] == ["x", "query", "number"]
        assert "the point's x" in parameter.inner_text()
        field = classify.locator("table.of-body tr[data-field=x]").first  # in the JSON body
        assert field.is_visible() and "number" in field.inner_text() and "the point's x" in field.inner_text()
        top_k = classify.locator("table.of-body tr[data-field=top_k]").first
        assert "1 to 20" in top_k.inner_text() and "default 5" in top_k.inner_text()
        assert "Give exactly one of: x and y · points" in classify.inner_text()
        file = classify.locator("table.of-body tr[data-field=image]", has_text="binary")  # the form's file
        assert "required" in file.inner_text()
        # The answer's fields, nested: a prediction's point has an x too.
        assert classify.locator("h4", has_text="200").first.is_visible()
        assert classify.locator("table.of-body tr[data-field=predictions]").is_visible()

        bad = classify.locator("table.errors-of tr", has_text="400")
        assert "Bad Request" in bad.inner_text() and bad.locator("a.code", has_text="bad_request").is_visible()
        bad.locator("a.code", has_text="bad_request").click()  # to the Errors table: its status, how many answer it
        page.wait_for_function("location.hash === '#error-bad_request'")
        row = page.locator("#error-bad_request")
        assert row.is_visible() and "400" in row.inner_text()
        shot(page, "openapi-1280.png")
        # Read from the server alone: the page, its script and style, and /openapi.json.
        sent = {url for _, url, _, _ in page.sent}
        assert sent == {PAGE, "/static/openapi.css", "/static/openapi.js", "/openapi.json"}
    finally:
        page.close()


def test_the_filter_narrows_the_list_to_what_it_names(browser, server):
    page = reference(browser, server)
    try:
        every = shown(page)
        assert len(every) == len(page.eval_on_selector_all("#toc li", "items => items")) > 20
        assert page.locator("#count").inner_text() == f"{len(every)} operations"

        page.fill("#filter", "classify")
        found = shown(page)
        assert "post_v1_classify" in found and len(found) < len(every)
        assert all("classify" in name for name in found), found
        assert page.locator("#count").inner_text() == f"{len(found)} of {len(every)} operations"
        assert page.locator("#post_v1_feedback").is_hidden()

        page.fill("#filter", "top_k")  # a field's name finds the operations that have it
        found = shown(page)
        assert "post_v1_classify" in found and len(found) < len(every)
        assert all(page.locator(f"#{name} [data-field*=top_k]").count() for name in found), found  # max_top_k too
        page.fill("#filter", "post /v2 infer")  # every word must match
        assert sorted(shown(page)) == ["post_v2_models_name_infer", "post_v2_models_name_versions_version_infer"]
        assert page.locator("#toc h2", has_text="TensorFlow Serving").is_hidden()  # a group with none left

        page.fill("#filter", "no such thing")
        assert shown(page) == [] and "No operation matches" in page.locator("#status").inner_text()
        page.fill("#filter", "")
        assert shown(page) == every

        # An error code's "N operations" lists the operations that can answer it.
        page.locator("#error-insufficient_storage a[data-code]").click()
        assert page.input_value("#filter") == "insufficient_storage" and shown(page) == ["post_v1_images"]
    finally:
        page.close()


def test_a_link_to_an_operation_opens_the_page_at_it(browser, server):
    page = reference(browser, server, PAGE + "#post_v2_models_name_infer")
    try:
        page.wait_for_function("window.scrollY > 0")
        infer = page.locator("#post_v2_models_name_infer")
        assert 0 <= infer.bounding_box()["y"] < 100 and "target" in infer.get_attribute("class")
        assert page.locator("#toc a[aria-current]").get_attribute("href") == "#post_v2_models_name_infer"
        page.locator("#toc a[href='#get_v1_models']").click()
        page.wait_for_function("location.hash === '#get_v1_models'")
        assert 0 <= page.locator("#get_v1_models").bounding_box()["y"] < 100
        assert page.locator("#toc a[aria-current]").get_attribute("href") == "#get_v1_models"
        assert "target" not in infer.get_attribute("class")
    finally:
        page.close()


def test_on_a_phone_the_reference_fits_the_width(browser, server):
    page = reference(browser, server, width=400)
    try:
        assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
        assert page.locator("#post_v1_classify table.of-parameters tr[data-field=x]").is_visible()
        shot(page, "openapi-400.png")
    finally:
        page.close()


def test_the_main_page_links_to_the_reference(server):
    assert f'href="{PAGE}"' in server.get("/").text

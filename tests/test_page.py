"""The HTML test page at / and its assets, as HTTP resources. What the page does is tested in a real
browser (tests/test_page_browser.py), not by looking for strings in its source."""

from __future__ import annotations

import pytest


@pytest.mark.parametrize("path", ["/", "/index.html"])
def test_the_page_is_served_as_html(server, path):
    page = server.get(path)
    assert page.status_code == 200 and page.headers["Content-Type"].startswith("text/html")


def test_assets_are_served_with_their_types(server):
    script = server.get("/static/app.js")
    assert script.status_code == 200 and "javascript" in script.headers["Content-Type"]
    style = server.get("/static/style.css")
    assert style.status_code == 200 and style.headers["Content-Type"].startswith("text/css")


def test_a_missing_asset_is_a_json_404(server):
    missing = server.get("/static/nope.js")
    assert missing.status_code == 404 and missing.json()["code"] == "not_found"

"""The HTML test page at / and its assets: what a person opening the service in a browser gets."""

from __future__ import annotations


def test_the_page_offers_a_drop_zone_a_file_chooser_and_a_path_form(server):
    page = server.get("/")
    assert page.status_code == 200 and page.headers["Content-Type"].startswith("text/html")
    html = page.text
    for piece in ('id="drop"', 'type="file"', 'id="path-form"', 'id="results"', 'id="marker"',
                  '/static/app.js', '/static/style.css', '<label for="file"', '<label for="path"'):
        assert piece in html, piece


def test_assets_are_served_with_their_types(server):
    script = server.get("/static/app.js")
    assert script.status_code == 200 and "javascript" in script.headers["Content-Type"]
    style = server.get("/static/style.css")
    assert style.status_code == 200 and style.headers["Content-Type"].startswith("text/css")


def test_the_script_speaks_the_api(server):
    script = server.get("/static/app.js").text
    for piece in ('fetch("/v1/classify"', 'fetch("/v1/models")', 'fetch("/v1/images"', 'form.append("image"',
                  "image_id", "predictions[0]", ".results", "naturalWidth", "path_forbidden", "answer.errors"):
        assert piece in script, piece


def test_a_missing_asset_is_a_json_404(server):
    missing = server.get("/static/nope.js")
    assert missing.status_code == 404 and missing.json()["code"] == "not_found"

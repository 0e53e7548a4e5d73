"""Each cause of a 500 found by hostile clients (issue 21) is a JSON 4xx: the one bounded JSON reader
(depth, size, number length, finite floats, valid Unicode), numbers checked as numbers in range, report
filters bounded, and routes without sub-paths refusing one. None of these answers carries a traceback
or a server path."""

from __future__ import annotations

import base64
import json
import math
import time

import pytest

from fixtures import assert_error, split_image

IMAGE_B64 = base64.b64encode(split_image()).decode()


def no_leak(response):
    text = response.text
    assert "Traceback" not in text and "/site-packages/" not in text and ".py" not in text, text[:300]


def post_json(server, path, text, headers=None):
    return server.post(path, data=text.encode("utf-8", "surrogatepass") if isinstance(text, str) else text,
                       headers={"Content-Type": "application/json", **(headers or {})})


@pytest.mark.parametrize("path", ["/v1/classify", "/v1/feedback", "/v1/models/tint:predict"])
def test_deeply_nested_json_is_a_400(server, path):
    response = post_json(server, path, '{"x": ' + "[" * 100_000 + "]" * 100_000 + "}")
    assert response.status_code == 400, response.text
    assert response.json()["code"] == "bad_request"
    no_leak(response)


@pytest.mark.parametrize("document", [
    '{"image_b64": "%s", "x": 1%s, "y": 1}' % (IMAGE_B64, "0" * 400),
    '{"image_b64": "%s", "points": [[1%s, 1]]}' % (IMAGE_B64, "0" * 400),
    '{"image_b64": "%s", "x": 1e999, "y": 1}' % IMAGE_B64,
    '{"image_b64": "%s", "x": NaN, "y": 1}' % IMAGE_B64,
    '{"image_b64": "%s", "x": 1, "y": 1, "top_k": 1%s}' % (IMAGE_B64, "0" * 5000),
])
def test_numbers_too_long_or_not_finite_are_a_400(server, document):
    response = post_json(server, "/v1/classify", document)
    assert_error(response, 400, "bad_request")
    no_leak(response)


def test_a_huge_integer_in_json_or_query_is_refused_as_out_of_range(server):
    response = post_json(server, "/v1/classify", json.dumps({"image_b64": IMAGE_B64, "x": 10 ** 90, "y": 1}))
    assert_error(response, 400, "point_out_of_bounds")  # a number, far outside the image
    response = post_json(server, "/v1/classify", json.dumps({"image_b64": IMAGE_B64, "x": 10 ** 300, "y": 1}))
    assert "number" in assert_error(response, 400, "bad_request")["error"]
    response = server.post(f"/v1/classify?x=1{'0' * 400}&y=1", data=split_image(),
                           headers={"Content-Type": "image/png"})
    assert_error(response, 400, "bad_request")
    response = server.post(f"/v1/classify?x=1&y=1&top_k=1{'0' * 5000}", data=split_image(),
                           headers={"Content-Type": "image/png"})
    assert_error(response, 400, "bad_request")


@pytest.mark.parametrize("query", ["x=1_0&y=1", "x=1&y=%D9%A1%D9%A2", "x=1&y=1&top_k=1_0", "x=1&y=1&top_k=%D9%A3"])
def test_numbers_in_a_query_are_plain_digits_not_underscored_or_another_scripts(server, query):
    # Python's float() and int() read "1_0" as 10 and Arabic-Indic digits as ours; no client means them.
    response = server.post(f"/v1/classify?{query}", data=split_image(), headers={"Content-Type": "image/png"})
    assert_error(response, 400, "bad_request")


def test_a_5000_digit_number_to_predict_is_a_400(server):
    response = post_json(server, "/v1/models/tint:predict", '{"instances": [1%s]}' % ("0" * 5000))
    assert response.status_code == 400, response.text
    assert response.json()["code"] == "bad_request"
    no_leak(response)


@pytest.mark.parametrize("document", [
    '{"path": "\\ud800", "x": 1, "y": 1}',
    '{"image_id": "\\udfff", "x": 1, "y": 1}',
    '{"image_b64": "%s", "x": 1, "y": 1, "models": "\\ud800"}' % IMAGE_B64,
    '{"\\ud800": 1}',
])
def test_lone_surrogates_in_json_text_are_a_400(server, document):
    response = post_json(server, "/v1/classify", document)
    assert_error(response, 400, "bad_request")
    no_leak(response)


def test_lone_surrogates_in_feedback_and_predict_are_a_400(server):
    response = post_json(server, "/v1/feedback", '{"request_id": "\\ud800", "model": "tint", "label": "red"}')
    assert_error(response, 400, "bad_request")
    response = post_json(server, "/v1/models/tint:classify", '{"examples": [{"image": "\\ud800"}]}')
    assert response.status_code == 400, response.text
    no_leak(response)


def test_feedback_point_beyond_any_request_is_a_400_at_once(server):
    response = post_json(server, "/v1/feedback", json.dumps(
        {"request_id": "a" * 32, "point": 2 ** 70, "model": "tint", "label": "red"}))
    assert_error(response, 400, "bad_request")
    assert response.elapsed.total_seconds() < 1


@pytest.mark.parametrize("route", ["/v1/report", "/v1/report/plot.png"])
@pytest.mark.parametrize("query", ["since=99999999999d", "until=99999999999w", "since=1e400d",
                                   "version=99999999999999999999", "version=%C2%B2", "model=tint&version=1" + "0" * 30,
                                   "since=9999-12-31T23:59:59-23:59", "width=%C2%B2"])
def test_report_filters_out_of_range_are_a_400(server, route, query):
    response = server.get(f"{route}?{query}")
    assert_error(response, 400, "bad_request")
    no_leak(response)


@pytest.mark.parametrize("value", ["0", "bytes=0", "bytes=a-b", "bytes=0-1,", "bytes=" + "9" * 30 + "-"])
@pytest.mark.parametrize("path", ["/", "/report", "/static/app.js"])
def test_a_malformed_range_header_is_ignored_not_a_500(server, path, value):
    """Found by the fuzz suite (FUZZ_SCALE=4): CherryPy's file serving raised ValueError on `Range: 0`."""
    response = server.get(path, headers={"Range": value})
    assert response.status_code in (200, 404), (response.status_code, response.text[:200])
    if path == "/":
        assert response.status_code == 200 and "<html" in response.text.lower()
    assert server.get("/", headers={"Range": "bytes=0-9"}).status_code == 206


def test_a_query_string_that_is_not_utf8_is_a_400_not_a_404(server):
    for path in ("/v1/classify?x=%ED%A0%80&y=1", "/v1/report?model=%FF"):
        body = assert_error(server.post(path, data=b"x", headers={"Content-Type": "image/png"}) if "classify" in path
                            else server.get(path), 400, "bad_request")
        assert "UTF-8" in body["error"]


@pytest.mark.parametrize("path", ["/readyz/x", "/healthz/x", "/v1/config/x", "/readyz/x/y", "/metrics/x"])
def test_routes_without_sub_paths_refuse_one(server, path):
    assert_error(server.get(path), 404, "not_found")


def test_a_large_json_document_for_feedback_is_refused(server):
    items = [{"request_id": "a" * 32, "model": "tint", "label": "red", "point": 0}] * 20_000
    response = post_json(server, "/v1/feedback", json.dumps({"items": items}))
    assert response.status_code in (400, 413), response.text
    assert response.json()["code"] in ("bad_request", "payload_too_large")


def test_fields_take_integers_past_a_doubles_range_as_a_mistake():
    """Behind the reader's number length, the fields check their range themselves (OverflowError before)."""
    from service.errors import BadRequest
    from service.http.api.fields import classify_args

    for fields in ({"x": 10 ** 400, "y": 1}, {"points": [[1, 10 ** 400]]}, {"x": "1" + "0" * 400, "y": "1"},
                   {"x": 1, "y": 1, "top_k": "1" + "0" * 5000}):
        with pytest.raises(BadRequest):
            classify_args(fields, typed=not isinstance(fields.get("x", ""), str))


def test_the_json_reader_counts_depth_outside_strings_only_and_refuses_deep_documents_fast():
    from service.protocols import jsonread

    def read(text, **options):
        return jsonread.loads(text, **options)[0]

    assert read("[" * 64 + "]" * 64) is not None
    with pytest.raises(jsonread.Refused):
        read("[" * 65 + "]" * 65)
    # Brackets inside strings, escaped quotes included, are text, not nesting.
    document = {"a": "[" * 500, "b": '\\"[[[[' * 100, "c": [[[1]]]}
    assert read(json.dumps(document)) == document
    with pytest.raises(jsonread.Refused):  # an escaped quote does not end the string: the 70 brackets nest
        read('{"a": "x\\"", "b": ' + "[" * 70 + "]" * 70 + "}")
    started = time.perf_counter()
    with pytest.raises(jsonread.Refused):
        read('{"x": ' + "[0," * 3_000_000 + "}")
    assert time.perf_counter() - started < 1
    # Numbers: bounded length; non-finite only where asked for; TF Serving's reader keeps its NaN.
    with pytest.raises(jsonread.Refused):
        read("[" + "1" * 101 + "]")
    with pytest.raises(jsonread.Refused):
        read("[1e999]")
    with pytest.raises(jsonread.Refused):
        read("[NaN]")
    assert math.isnan(read("[NaN]", nonfinite=True)[0]) and read("[1e999]", nonfinite=True) == [math.inf]
    # Text: a lone surrogate anywhere (a value or a key) is refused; a pair is a character.
    for text in ('["\\ud800"]', '{"\\udfff": 1}', '{"a": [{"b": "x\\ud800y"}]}'):
        with pytest.raises(jsonread.Refused):
            read(text)
    assert read('["\\ud83d\\ude00"]') == ["\U0001F600"]

"""GET /openapi.json: an OpenAPI 3 document generated from the code's own declarations, valid by
openapi-spec-validator, naming every route the API serves (checked against real answers); the real answers
of every route validate against the schemas it gives them, and requests its schemas forbid are refused."""

from __future__ import annotations

import base64

import pytest
from openapi_schema_validator import OAS30Validator
from openapi_spec_validator import validate

from fixtures import split_image


def test_the_document_is_valid_openapi_and_names_every_route(server):
    response = server.get("/openapi.json")
    assert response.status_code == 200 and response.headers["Content-Type"].startswith("application/json")
    document = response.json()
    validate(document)
    paths = document["paths"]
    for path, method in (("/v1/classify", "post"), ("/v1/images", "post"), ("/v1/images/{id}", "delete"),
                         ("/v1/models", "get"), ("/v1/models/{name}:predict", "post"),
                         ("/v1/models/{name}/versions/{version}:classify", "post"),
                         ("/v1/models/{name}/metadata", "get"), ("/v1/config", "get"), ("/v1/feedback", "post"),
                         ("/v1/report", "get"), ("/v1/report/plot.png", "get"), ("/healthz", "get"), ("/readyz", "get"),
                         ("/metrics", "get"),
                         ("/v2/health/ready", "get"), ("/v2/models/{name}/infer", "post"), ("/openapi.json", "get")):
        assert method in paths.get(path, {}), (path, method, sorted(paths))
    assert "/v1/config/{id}" not in paths
    codes = document["components"]["schemas"]["Error"]["properties"]["code"]["enum"]
    assert {"bad_request", "not_found", "unauthorized", "rate_limited", "timeout"} <= set(codes)
    # What it names is served: a GET route it lists answers something other than 404 / 405.
    for path in ("/v1/models", "/v1/config", "/healthz", "/v2/health/live", "/v2/models/tint"):
        assert server.get(path).status_code not in (404, 405), path


def test_the_reference_page_is_served_locally_and_reads_the_document(server):
    response = server.get("/static/openapi.html")
    assert response.status_code == 200 and "text/html" in response.headers["Content-Type"]
    assert '<script src="/static/openapi.js">' in response.text and 'href="/static/openapi.css"' in response.text
    assert 'fetch("/openapi.json")' in server.get("/static/openapi.js").text
    for name in ("openapi.html", "openapi.js", "openapi.css"):  # nothing from elsewhere
        text = server.get(f"/static/{name}").text
        assert "http://" not in text and "https://" not in text and "//cdn" not in text, name


def test_every_operation_has_an_id_the_reference_page_links_to(described):
    ids = [operation["operationId"] for operations in described["paths"].values() for operation in operations.values()]
    assert len(ids) == len(set(ids)) and "post_v1_classify" in ids and "post_v2_models_name_infer" in ids
    assert all(id_.replace("_", "").isalnum() for id_ in ids)


# ---- the schemas: real answers validate against them, and what they forbid the server refuses ----

JSON = "application/json"


@pytest.fixture(scope="module")
def described(server) -> dict:
    return server.get("/openapi.json").json()


def _inline(node, document):
    """The schema with every $ref replaced by what it names (the document's own components)."""
    if isinstance(node, dict):
        if "$ref" in node:
            target = document
            for part in node["$ref"].lstrip("#/").split("/"):
                target = target[part]
            return _inline(target, document)
        return {key: _inline(value, document) for key, value in node.items()}
    if isinstance(node, list):
        return [_inline(item, document) for item in node]
    return node


def _validator(document, schema) -> OAS30Validator:
    schema = _inline(schema, document)
    OAS30Validator.check_schema(schema)
    return OAS30Validator(schema)


def answer_schema(document, path, method, status, media=JSON) -> dict:
    return document["paths"][path][method]["responses"][str(status)]["content"][media]["schema"]


def request_schema(document, path, method, media=JSON) -> dict:
    return document["paths"][path][method]["requestBody"]["content"][media]["schema"]


def check(document, response, path, method="get", status=200) -> dict | None:
    """The answer has the status and validates against the schema the document gives it."""
    assert response.status_code == status, (path, response.status_code, response.text[:300])
    media = response.headers["Content-Type"].split(";")[0].strip()
    content = document["paths"][path][method]["responses"][str(status)]["content"]
    assert media in content, (path, media, sorted(content))
    if media != JSON:
        return None
    answer = response.json()
    errors = sorted(_validator(document, content[media]["schema"]).iter_errors(answer), key=str)
    assert not errors, (path, [f"{list(e.absolute_path)}: {e.message}" for e in errors][:5])
    return answer


def allowed(document, body, path, method="post", media=JSON) -> bool:
    return _validator(document, request_schema(document, path, method, media)).is_valid(body)


def posted(server, document, path, body, method="post", status=200):
    """A JSON request the request schema takes, sent; its answer checked against the answer schema."""
    assert allowed(document, body, path, method), (path, body)
    return check(document, server.post(path.replace("{name}", "tint"), json=body), path, method, status)


def test_every_operation_declares_its_answers_and_every_error_is_the_contracts_shape(described):
    for path, operations in described["paths"].items():
        for method, operation in operations.items():
            answers = {status: r for status, r in operation["responses"].items() if status[0] in "23"}
            assert answers and all("content" in r for r in answers.values()), (method, path)
            errors = {status: r for status, r in operation["responses"].items() if status[0] in "45"}
            assert "500" in errors and "405" in errors, (method, path)
            if method == "post":
                assert "requestBody" in operation and "413" in errors, (method, path)
            guarded = path.startswith(("/v1", "/v2")) and not path.startswith("/v2/health")
            assert ("401" in errors and "429" in errors) == guarded, (method, path)  # an API key, a rate limit
    error = _validator(described, answer_schema(described, "/v1/classify", "post", 415))
    assert error.is_valid({"error": "no", "code": "unsupported_media_type"})
    assert not error.is_valid({"error": "no", "code": "timeout"})  # a 504's code, not a 415's
    assert not error.is_valid({"error": "no"})


def test_classify_answers_validate_in_each_of_its_three_forms(server, described):
    path = "/v1/classify"
    body = {"path": "split.png", "x": 10, "y": 50, "top_k": 2}
    answer = posted(server, described, path, body)
    assert answer["predictions"][0]["results"]["tint"][0]["label"] == "red"
    image = base64.b64encode(split_image()).decode()
    posted(server, described, path, {"image_b64": image, "points": [[10, 50], {"x": 190, "y": 50}],
                                     "models": ["tint"], "units": "px"})
    form = {"x": 190, "y": 50, "models": "tint,bright"}  # typed in the schema, text in the form (OpenAPI's rule)
    assert allowed(described, {"image": "…", **form}, path, media="multipart/form-data")
    check(described, server.post(path, files={"image": ("s.png", split_image(), "image/png")},
                                 data={name: str(value) for name, value in form.items()}), path, "post")
    parameters = {p["name"] for p in described["paths"][path]["post"]["parameters"] if p["in"] == "query"}
    assert parameters == {"x", "y", "points", "units", "models", "top_k"}
    check(described, server.post(path, params={"points": "[[10, 50]]", "top_k": "3"}, data=split_image(),
                                 headers={"Content-Type": "image/png"}), path, "post")


def test_what_the_classify_schema_forbids_the_server_refuses(server, described):
    path = "/v1/classify"
    good = {"path": "split.png", "x": 10, "y": 50}
    for wrong in ({**good, "colour": "red"}, {**good, "top_k": 0}, {**good, "top_k": 21}, {**good, "x": "10"},
                  {"path": "split.png", "x": 10}, {**good, "points": [[1, 2]]}, {"x": 10, "y": 50},
                  {**good, "image_id": "abc"}, {**good, "units": "inch"}, {"path": "split.png", "points": []},
                  {"path": "split.png", "points": [[1, 2, 3]]}):
        assert not allowed(described, wrong, path), wrong
        response = server.post(path, json=wrong)
        assert response.status_code == 400 and response.json()["code"] == "bad_request", (wrong, response.text)
    form = {"image": "…", "x": 1, "y": 2, "size": "big"}
    assert not allowed(described, form, path, media="multipart/form-data")
    response = server.post(path, files={"image": ("s.png", split_image(), "image/png")},
                           data={k: v for k, v in form.items() if k != "image"})
    assert response.status_code == 400


def test_images_models_config_and_health_answers_validate(server, described):
    stored = check(described, server.post("/v1/images", data=split_image(), headers={"Content-Type": "image/png"}),
                   "/v1/images", "post", 201)
    check(described, server.delete(f"/v1/images/{stored['image_id']}"), "/v1/images/{id}", "delete")
    check(described, server.post("/v1/images", files={"image": ("s.png", split_image(), "image/png")}),
          "/v1/images", "post", 201)
    assert not allowed(described, {"image": "…", "x": 1}, "/v1/images", media="multipart/form-data")
    assert server.post("/v1/images", files={"image": ("s.png", split_image(), "image/png")},
                       data={"x": "1"}).status_code == 400
    listing = check(described, server.get("/v1/models"), "/v1/models")
    assert {"tint", "bright"} <= {model["name"] for model in listing["models"]}
    check(described, server.get("/v1/config"), "/v1/config")
    for path in ("/healthz", "/readyz", "/v2", "/v2/health/live", "/v2/health/ready", "/openapi.json"):
        check(described, server.get(path), path)
    assert server.get("/metrics").headers["Content-Type"].startswith("text/plain")


def test_feedback_and_report_answers_validate(server, described):
    request_id = server.post("/v1/classify", json={"path": "split.png", "x": 10, "y": 50,
                                                     "models": "tint"}).json()["request_id"]
    choice = {"request_id": request_id, "point": 0, "model": "tint", "label": "red"}
    posted(server, described, "/v1/feedback", choice, status=201)
    posted(server, described, "/v1/feedback", {"items": [{**choice, "label": "none"}]}, status=200)
    for wrong in ({**choice, "colour": "red"}, {k: v for k, v in choice.items() if k != "label"},
                  {**choice, "point": -1}, {**choice, "label": " "}, {"items": []}, {"items": [choice], "x": 1}):
        assert not allowed(described, wrong, "/v1/feedback"), wrong
        assert server.post("/v1/feedback", json=wrong).status_code == 400, wrong
    report = check(described, server.get("/v1/report", params={"model": "tint", "bucket": "day"}), "/v1/report")
    assert report["versions"] and report["versions"][0]["labels"]
    check(described, server.get("/v1/report/plot.png", params={"width": "400"}), "/v1/report/plot.png")
    assert server.get("/v1/report", params={"bucket": "week"}).status_code == 400  # not in the schema's enum


def test_tf_serving_answers_validate(server, described):
    image = {"b64": base64.b64encode(split_image()).decode()}
    check(described, server.get("/v1/models/tint"), "/v1/models/{name}")
    check(described, server.get("/v1/models/tint/versions/1"), "/v1/models/{name}/versions/{version}")
    check(described, server.get("/v1/models/bright/metadata"), "/v1/models/{name}/metadata")
    pixels = [[[0.5, 0.5, 0.5]] * 8] * 8
    posted(server, described, "/v1/models/{name}:predict", {"instances": [pixels]})
    posted(server, described, "/v1/models/{name}:predict", {"inputs": [pixels], "signature_name": "serving_default"})
    posted(server, described, "/v1/models/{name}:classify", {"examples": [{"image": image, "x": 10, "y": 50}]})
    for path, wrong in (("/v1/models/{name}:classify", {"context": {"x": 1}}),
                        ("/v1/models/{name}:classify", {"examples": []}),
                        ("/v1/models/{name}:predict", {"instances": [pixels], "inputs": [pixels]}),
                        ("/v1/models/{name}:predict", {"signature_name": "serving_default"})):
        assert not allowed(described, wrong, path), wrong
        response = server.post(path.replace("{name}", "tint"), json=wrong)
        assert response.status_code == 400 and response.json()["code"] == "bad_request", (wrong, response.text)


def test_open_inference_protocol_answers_validate(server, described):
    check(described, server.get("/v2/models/tint"), "/v2/models/{name}")
    check(described, server.get("/v2/models/tint/ready"), "/v2/models/{name}/ready")
    check(described, server.get("/v2/models/tint/versions/1"), "/v2/models/{name}/versions/{version}")
    pixels = [0.5] * (8 * 8 * 3)
    tensor = {"name": "input", "datatype": "FP32", "shape": [1, 8, 8, 3], "data": pixels}
    answer = posted(server, described, "/v2/models/{name}/infer", {"id": "a", "inputs": [tensor]})
    assert answer["outputs"][0]["name"] == "scores"
    binary = {"inputs": [tensor], "parameters": {"binary_data_output": True}}
    assert allowed(described, binary, "/v2/models/{name}/infer")
    check(described, server.post("/v2/models/tint/infer", json=binary), "/v2/models/{name}/infer", "post")
    for wrong in ({"id": "a"}, {"inputs": [{**tensor, "datatype": "FLOAT"}]},
                  {"inputs": [{k: v for k, v in tensor.items() if k != "shape"}]},
                  {"inputs": [tensor], "outputs": ["scores"]}):
        assert not allowed(described, wrong, "/v2/models/{name}/infer"), wrong
        response = server.post("/v2/models/tint/infer", json=wrong)
        assert response.status_code == 400 and response.json()["code"] == "bad_request", (wrong, response.text)


# ---- what a reader forgives, its schema takes: the spellings the server accepts validate ----

def query_schema(document, path, name, method="get") -> dict:
    return next(p["schema"] for p in document["paths"][path][method]["parameters"] if p["name"] == name)


def test_units_in_any_case_and_with_blanks_validate_and_are_read(server, described):
    path, point = "/v1/classify", {"path": "split.png", "x": 10, "y": 50, "models": "tint"}
    units = _validator(described, query_schema(described, path, "units", "post"))
    for spelling, x in (("PX", 10), ("Pct", 5), (" px ", 10), ("pct\n", 5), ("PcT", 95)):
        answer = posted(server, described, path, {**point, "x": x, "units": spelling})
        expected = "blue" if x > 50 else "red"  # split.png: red on the left half, blue on the right
        assert answer["predictions"][0]["results"]["tint"][0]["label"] == expected, (spelling, answer)
        assert units.is_valid(spelling), spelling
        raw = server.post(path, params={"x": str(x), "y": "50", "units": spelling, "models": "tint"},
                          data=split_image(), headers={"Content-Type": "image/png"})
        check(described, raw, path, "post")
        assert allowed(described, {"image": "…", "x": x, "y": 50, "units": spelling}, path,
                       media="multipart/form-data")
        form = server.post(path, files={"image": ("s.png", split_image(), "image/png")},
                           data={"x": str(x), "y": "50", "units": spelling})
        check(described, form, path, "post")
    for wrong in ("inch", "p x", "pxx", "", "px,pct", "ｐｘ"):
        assert not units.is_valid(wrong) and not allowed(described, {**point, "units": wrong}, path), wrong
        response = server.post(path, json={**point, "units": wrong})
        assert response.status_code == 400 and "units must be" in response.json()["error"], (wrong, response.text)


def test_a_v2_request_id_of_any_json_type_validates_and_comes_back(server, described):
    tensor = {"name": "input", "datatype": "FP32", "shape": [1, 8, 8, 3], "data": [0.5] * (8 * 8 * 3)}
    for request_id in ("a", 7, 2.5, None, True, ["a", 1], {"trace": "x"}):
        answer = posted(server, described, "/v2/models/{name}/infer", {"id": request_id, "inputs": [tensor]})
        assert answer["id"] == request_id


def test_v2_parameters_and_outputs_given_as_null_validate_and_read_as_absent(server, described):
    path = "/v2/models/{name}/infer"
    tensor = {"name": "input", "datatype": "FP32", "shape": [1, 8, 8, 3], "data": [0.5] * (8 * 8 * 3)}
    for body in ({"inputs": [tensor], "parameters": None}, {"inputs": [tensor], "outputs": None},
                 {"inputs": [{**tensor, "parameters": None}]},
                 {"inputs": [tensor], "outputs": [{"name": "scores", "parameters": None}]}):
        answer = posted(server, described, path, body)
        assert answer["outputs"][0]["name"] == "scores" and len(answer["outputs"][0]["data"]) == 3, body
    # What is neither an object nor null is refused by both (a string's parameters were a 500 before).
    for wrong in ({"inputs": [tensor], "parameters": "binary"}, {"inputs": [{**tensor, "parameters": 3}]},
                  {"inputs": [tensor], "outputs": [{"name": "scores", "parameters": []}]},
                  {"inputs": [{**tensor, "shape": [1], "data": 0.5}]},
                  {"inputs": [{**tensor, "shape": [True, 8, 8, 3]}]}):
        assert not allowed(described, wrong, path), wrong
        response = server.post("/v2/models/tint/infer", json=wrong)
        assert response.status_code == 400 and response.json()["code"] == "bad_request", (wrong, response.text)


def test_empty_report_filters_validate_and_mean_none(server, described):
    path = "/v1/report"
    empty = {name: "" for name in ("model", "version", "since", "until", "bucket")}
    for name, value in empty.items():
        assert _validator(described, query_schema(described, path, name)).is_valid(value), name
    report = check(described, server.get(path, params=empty), path)
    assert report["filters"] == {"model": None, "version": None, "since": None, "until": None}
    version = _validator(described, query_schema(described, path, "version"))
    for wrong in ("v2", "2a", " 2", "1234567890"):  # the pattern is anchored: the reader's whole value
        assert not version.is_valid(wrong), wrong
        assert server.get(path, params={"model": "tint", "version": wrong}).status_code == 400, wrong

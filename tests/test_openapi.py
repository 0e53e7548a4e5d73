"""GET /openapi.json: an OpenAPI 3 document generated from the code's own route declarations, valid by
openapi-spec-validator, naming every route the API serves (checked against real answers)."""

from __future__ import annotations

from openapi_spec_validator import validate


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
    assert 'fetch("/openapi.json")' in response.text
    assert "http://" not in response.text and "https://" not in response.text  # nothing from elsewhere

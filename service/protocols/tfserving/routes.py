"""TF Serving's REST routes (http_rest_api_util.cc): /v1/models/{name}[/versions/{v}|/labels/{l}]
[/metadata|:predict|:classify|:regress], matched and decoded as TF Serving does.
"""

from __future__ import annotations

import re
import urllib.parse
from typing import NamedTuple

from service.protocols.tfserving.error_codes import invalid

# The routes parse_model_path matches: (method, path template, what it answers), for the OpenAPI document
# (service/http/openapi.py); /labels/{label} may stand wherever /versions/{version} does.
ROUTES = (
    ("GET", "/v1/models/{name}", "TF Serving's model status: every version and its state"),
    ("GET", "/v1/models/{name}/versions/{version}", "one version's status"),
    ("GET", "/v1/models/{name}/metadata", "the model's signature_def, in TF Serving's shape"),
    ("GET", "/v1/models/{name}/versions/{version}/metadata", "one version's signature_def"),
    ("POST", "/v1/models/{name}:predict", "TF Serving's Predict: instances (row) or inputs (columnar)"),
    ("POST", "/v1/models/{name}/versions/{version}:predict", "Predict on one version"),
    ("POST", "/v1/models/{name}:classify", "TF Serving's Classify: examples with an image and a point"),
    ("POST", "/v1/models/{name}/versions/{version}:classify", "Classify on one version"),
)

_PREDICTION = re.compile(
    r"/v1/models/([^/:]+)(?:(?:/versions/(\d+))|(?:/labels/([^/:]+)))?:(classify|regress|predict)",
    re.IGNORECASE | re.ASCII)
_STATUS = re.compile(
    r"/v1/models(?:/([^/:]+))?(?:(?:/versions/(\d+))|(?:/labels/([^/:]+)))?(?:/(metadata))?",
    re.IGNORECASE | re.ASCII)
_BOTH = re.compile(r"/v1/models/([^/:]+)/versions/(\d+)/labels/([^/:]+)(?:/metadata|:\w+)?",
                   re.IGNORECASE | re.ASCII)
_INT64_MAX = 2**63 - 1


class ModelPath(NamedTuple):
    name: str
    version: int | None
    label: str | None
    verb: str | None  # "predict", "classify", "regress", "metadata", or None (status)


def parse_model_path(path: str, method: str | None = None) -> ModelPath:
    """Split a TF Serving route: /v1/models/{name}[/versions/{v}|/labels/{l}][/metadata|:predict|...].

    `path` is the raw request path (still percent-encoded, no query string): the name and the label
    are percent-decoded after matching, as TF Serving does. `method` ("GET" or "POST") picks the
    route as TF Serving does (GET: status or /metadata; POST: :predict, :classify, :regress); without
    it either form is accepted. Matching is case-insensitive; the verb comes back lower-case.
    Raises TFServingError (400) like TF Serving: "Malformed request: ...", "Missing model name in
    request.", "Failed to convert version: ...", and for a version and a label together TF's
    FillModelSpecWithNameVersionAndLabel message.
    """
    method = method.upper() if method else None
    both = _BOTH.fullmatch(path)
    if both:
        raise invalid(f"Both model version ({both.group(2)}) and model version label "
                      f"({_decode(both.group(3), 'model version label')}) cannot be supplied.")
    match = None
    if method in (None, "POST"):
        match = _PREDICTION.fullmatch(path)
    if match is None and method in (None, "GET"):
        match = _STATUS.fullmatch(path)
        if match is not None and match.group(1) is None:
            raise invalid("Missing model name in request.")
    if match is None:
        raise invalid(f"Malformed request: {method or 'GET'} {path}")
    name, version_text, label, verb = match.groups()
    version = None
    if version_text is not None:
        version = int(version_text)
        if version > _INT64_MAX:
            raise invalid(f"Failed to convert version: {version_text} to numeric.")
    name = _decode(name, "model name")
    if label is not None:
        label = _decode(label, "model version label")
    return ModelPath(name, version, label, verb.lower() if verb else None)


def _decode(text: str, what: str) -> str:
    try:
        return urllib.parse.unquote(text, errors="strict")
    except UnicodeDecodeError:
        raise invalid(f"Failed to decode {what}:{text}") from None

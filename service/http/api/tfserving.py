"""The TensorFlow Serving REST routes under /v1/models/{name}: status, metadata, :predict, :classify.

The HTTP edge of TF Serving's API (TF Serving's http_rest_api_handler.cc): the route and the body read,
the call made, the answer or the error written. The protocol's rules are service/protocols/tfserving/
(routes, JSON <-> tensors, signatures, errors, and the calls gRPC makes too); the models run as
/v1/classify's do (service/serving/model_run.py), under the same limits.
Errors are TF Serving's {"error": message}, plus Pinpoint's machine `code`, with TF Serving's statuses.
"""

from __future__ import annotations

import json
import math

import cherrypy

from service.engine import Engine
from service.errors import PinpointError
from service.http.api.deadline import deadline_ms
from service.http.api.schema import JSON, Operation, json_answer
from service.protocols import model_input, named_tensors
from service.protocols.tfserving import calls, json_examples, json_render, json_schema, json_tensor, routes, signatures
from service.protocols.tfserving.error_codes import TFServingError
from service.serving.manager import ModelRef

ROUTES = routes.ROUTES

CODES = {404: "not_found", 400: "bad_request", 401: "unauthorized", 405: "method_not_allowed",
         429: "rate_limited", 503: "model_unavailable", 504: "timeout", 413: "payload_too_large",
         415: "unsupported_media_type", 403: "path_forbidden", 500: "internal_error"}


# Each route's bodies (service/protocols/tfserving/json_schema.py) and its errors' codes, for the OpenAPI document.
_LOOKUP = ("bad_request", "not_found", "model_unavailable")
_RUN = (*_LOOKUP, "payload_too_large", "overloaded", "timeout")
_BY_VERB = {
    None: Operation(answers=json_answer(json_schema.STATUS_ANSWER), errors=_LOOKUP),
    "metadata": Operation(answers=json_answer(json_schema.METADATA_ANSWER), errors=_LOOKUP),
    "predict": Operation(request={JSON: json_schema.PREDICT_REQUEST}, answers=json_answer(json_schema.PREDICT_ANSWER),
                         errors=_RUN),
    "classify": Operation(request={JSON: json_schema.CLASSIFY_REQUEST},
                          answers=json_answer(json_schema.CLASSIFY_ANSWER), errors=_RUN),
}
OPERATIONS = {(method, template): _BY_VERB[template.rpartition(":")[2] if ":" in template
                                          else "metadata" if template.endswith("/metadata") else None]
              for method, template, *_ in ROUTES}


def handle(engine: Engine) -> bytes:
    request, response = cherrypy.serving.request, cherrypy.serving.response
    response.headers["Content-Type"] = "application/json"
    try:
        if request.method not in ("GET", "HEAD", "POST"):
            response.headers["Allow"] = "GET, POST"
            raise TFServingError(f"use GET or POST here, not {request.method}", status=405)
        route = routes.parse_model_path(request.path_info, request.method if request.method != "HEAD" else "GET")
        ref = ModelRef(route.name, route.version, route.label)
        if route.verb is None:
            document = calls.status(engine, ref)
        elif route.verb == "metadata":
            document = calls.metadata(engine, ref)
        elif route.verb == "predict":
            document = predict(engine, ref, json_tensor.parse_json(request.body.read()), _deadline_ms(engine))
        elif route.verb == "classify":
            document = classify(engine, ref, json_tensor.parse_json(request.body.read()), _deadline_ms(engine))
        else:
            raise TFServingError(f"{route.verb} is not implemented by Pinpoint", "UNIMPLEMENTED")
        return json_render.dumps(document).encode()
    except PinpointError as error:
        return _error(TFServingError.from_pinpoint(error))
    except TFServingError as error:
        return _error(error)


def predict(engine: Engine, ref: ModelRef, document: dict, deadline_ms: float) -> dict:
    """A :predict body, run: its tensors read against the served version's signature, the answer in the
    body's form (row or columnar)."""
    def run(models) -> dict:
        version = models.version
        chosen = named_tensors.find(version, json_tensor.signature_name(document), json_tensor.SIGNATURE_MISSING)
        request = json_tensor.parse_predict(document, chosen)
        if named_tensors.wanted(version, chosen):  # a SavedModel's named tensors, any of its signatures
            return json_render.render_predict(named_tensors.run(models, chosen, request.inputs), request.format)
        feed, fetch = signatures.aliases(version)
        scores = model_input.predict(engine, models, request.inputs[feed], feed in request.images)
        return json_render.render_predict({fetch: scores}, request.format)

    return calls.served(engine, ref, run, deadline_ms)


def classify(engine: Engine, ref: ModelRef, document: dict, deadline_ms: float) -> dict:
    """A :classify body, run: every example's labels with their probabilities, highest first."""
    def run(models) -> dict:  # the body read once the model is known: an unknown one is the first error
        examples = json_examples.parse_classify(document)
        return json_examples.render_classify(calls.classify(engine, models, examples))

    return calls.served(engine, ref, run, deadline_ms)


def _deadline_ms(engine: Engine) -> float:
    return deadline_ms(cherrypy.serving.request.headers.get("X-Deadline-Ms"), engine.settings.deadline_ms)


def _error(error: TFServingError) -> bytes:
    response = cherrypy.serving.response
    response.status = error.status
    if error.retry_after is not None:
        response.headers["Retry-After"] = str(max(1, math.ceil(error.retry_after)))
    return json.dumps({**error.body(), "code": CODES.get(error.status, "bad_request")}).encode()

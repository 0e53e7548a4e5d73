"""The TensorFlow Serving REST routes under /v1/models/{name}: status, metadata, :predict, :classify.

TF Serving's own shapes (the codec is service/http/api/tfserving.py), run through the same manager,
runtime queue, batching, deadlines and limits as /v1/classify. For Pinpoint's models:
- the signature's one input, `input`, is the model's input tensor, already cropped and normalised;
  or, per example, `{"b64": <an encoded image>}`: that whole image, resized as the model's crop is;
- its one output, `scores`, is the graph's raw output row (no softmax added);
- :classify takes examples with an `image` bytes feature ({"b64": ...}) and optionally `x` and `y`
  (pixels): the model's crop around that point, else the whole image; it answers every label with its
  probability, highest first.
Errors are TF Serving's {"error": message}, plus Pinpoint's machine `code`, with TF Serving's statuses.
"""

from __future__ import annotations

import contextlib
import json
import math
import time
from typing import Iterator

import cherrypy
import numpy as np

from service.classify import imaging
from service.http.api import tfserving
from service.http.api.render import public_text
from service.http.api.tfserving import Signature, TensorSpec, TFServingError
from service.engine import Engine
from service.errors import PinpointError
from service.serving.manager import ModelRef, Version
from service.classify.preprocess import prepare

# The TF Serving routes below /v1/models (tfserving.parse_model_path matches them): (method, path template,
# what it answers). Declared here for the OpenAPI document (service/http/openapi.py); /labels/{label} may
# stand wherever /versions/{version} does.
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

CODES = {404: "not_found", 400: "bad_request", 401: "unauthorized", 405: "method_not_allowed",
         429: "rate_limited", 503: "model_unavailable", 504: "timeout", 413: "payload_too_large",
         415: "unsupported_media_type", 403: "path_forbidden"}


def handle(engine: Engine) -> bytes:
    request, response = cherrypy.serving.request, cherrypy.serving.response
    response.headers["Content-Type"] = "application/json"
    try:
        if request.method not in ("GET", "HEAD", "POST"):
            response.headers["Allow"] = "GET, POST"
            raise TFServingError(f"use GET or POST here, not {request.method}", status=405)
        route = tfserving.parse_model_path(request.path_info, request.method if request.method != "HEAD" else "GET")
        ref = ModelRef(route.name, route.version, route.label)
        if route.verb is None:
            document = status(engine, ref)
        elif route.verb == "metadata":
            document = metadata(engine, ref)
        elif route.verb in ("predict", "classify"):
            document = infer(engine, ref, route.verb, tfserving.parse_json(request.body.read()))
        else:
            raise TFServingError(f"{route.verb} is not implemented by Pinpoint", "UNIMPLEMENTED")
        return tfserving.dumps(document).encode()
    except PinpointError as error:
        return _error(TFServingError.from_pinpoint(error))
    except TFServingError as error:
        return _error(error)


def _error(error: TFServingError) -> bytes:
    response = cherrypy.serving.response
    response.status = error.status
    if error.retry_after is not None:
        response.headers["Retry-After"] = str(max(1, math.ceil(error.retry_after)))
    return json.dumps({**error.body(), "code": CODES.get(error.status, "bad_request")}).encode()


def status(engine: Engine, ref: ModelRef) -> dict:
    """Every version of the model, or the one a version or label names (TF Serving's GetModelStatus)."""
    versions = engine.manager.snapshot().get(ref.name)
    if not versions:
        raise tfserving.no_versions(ref.name)
    if ref.label is not None:
        number = engine.manager.labels.get(ref.name, {}).get(ref.label)
        if number is None:
            raise tfserving.unknown_label(ref.label)
        versions = [v for v in versions if v.version == number]
    elif ref.version is not None:
        versions = [v for v in versions if v.version == ref.version]
        if not versions:
            raise tfserving.version_not_found(ref.name, ref.version)
    models = engine.settings.models
    document = tfserving.status_document(  # no server path in a message (the log has the whole one)
        tfserving.VersionStatus(v.version, v.state.value, "UNKNOWN" if v.error else None,
                                public_text(v.error, models)) for v in versions)
    # Beyond TF Serving, which answers OK with no reason: why a version that did not fail is not serving
    # ("not in the version policy", "removed from the repository"); error_code stays OK for those.
    reasons = {str(v.version): public_text(v.reason, models) for v in versions if v.reason and not v.error}
    for entry in document["model_version_status"]:
        if entry["version"] in reasons:
            entry["status"]["error_message"] = reasons[entry["version"]]
    return document


def signature(version: Version) -> Signature:
    """The signature a version serves: a SavedModel's own (its aliases, dtypes, shapes and tensors),
    else Pinpoint's `input` -> `scores` from model.toml."""
    if version.spec.is_saved_model:
        return saved_signatures(version)[version.spec.signature_name]
    spec = version.spec.input
    if spec.kind == "encoded":
        shape, dtype = [-1], object
    elif spec.kind == "flat":
        shape, dtype = [-1, spec.height * spec.width * spec.channels], np.dtype(spec.dtype)
    elif spec.layout == "nchw":
        shape, dtype = [-1, spec.channels, spec.height, spec.width], np.dtype(spec.dtype)
    else:
        shape, dtype = [-1, spec.height, spec.width, spec.channels], np.dtype(spec.dtype)
    return Signature(
        inputs=(TensorSpec("input", dtype, shape, tensor=_tensor(spec.tensor), images=spec.kind != "encoded"),),
        outputs=(TensorSpec("scores", np.float32, [-1, len(version.spec.labels)],
                            tensor=_tensor(version.spec.output_tensor)),))


def saved_signatures(version: Version) -> dict[str, Signature]:
    """Every signature of a SavedModel version, as TF Serving's metadata shows them. The input a request
    may also send as {"b64": <an encoded image>} is the served signature's image input."""
    spec = version.spec
    images = spec.input.kind == "image"
    documents = {}
    for key, info in spec.signatures:
        served = key == spec.signature_name
        documents[key] = Signature(  # as saved: __saved_model_init_op too, its NoOp output DT_INVALID
            inputs=tuple(TensorSpec(t.key, t.dtype or _INVALID, t.shape, tensor=t.name,
                                    images=served and images and t.key == spec.input.tensor) for t in info.inputs),
            outputs=tuple(TensorSpec(t.key, t.dtype or _INVALID, t.shape, tensor=t.name) for t in info.outputs),
            method_name=info.method_name, name=key)
    return documents


_INVALID = np.dtype("V")  # no TF DataType: shown as DT_INVALID


def aliases(version: Version) -> tuple[str, str]:
    """The served signature's input and output aliases: a SavedModel's own, else `input` and `scores`."""
    if version.spec.is_saved_model:
        return version.spec.input.tensor, version.spec.output_tensor
    return "input", "scores"


def metadata(engine: Engine, ref: ModelRef) -> dict:
    with engine.manager.acquire([ref]) as lease:
        version = lease.versions[0]
        if version.spec.is_saved_model:
            return tfserving.metadata_document(version.name, version.version, saved_signatures(version))
        return tfserving.metadata_document(version.name, version.version, signature(version))


def infer(engine: Engine, ref: ModelRef, verb: str, document: dict, deadline_ms: float | None = None) -> dict:
    """A :predict or :classify body, run: the REST routes' entry; gRPC and the Open Inference Protocol
    (service/grpc/server.py, service/http/api/v2.py) call the same `predict` and `classify` inside `lease`."""
    deadline_ms = _deadline_ms(engine) if deadline_ms is None else deadline_ms
    with lease(engine, ref) as version:
        if verb == "predict":
            request = tfserving.parse_predict(document, signature(version))
            feed, fetch = aliases(version)
            value = request.inputs[feed]
            scores = predict(engine, version, value, feed in request.images, deadline_ms)
            return tfserving.render_predict({fetch: scores}, request.format)
        return tfserving.render_classify(classify(engine, version, tfserving.parse_classify(document), deadline_ms))


@contextlib.contextmanager
def lease(engine: Engine, ref: ModelRef) -> Iterator[Version]:
    """The version a request names, held (not unloaded) while the request uses it."""
    with contextlib.ExitStack() as stack:
        try:
            held = stack.enter_context(engine.manager.acquire([ref]))
        except PinpointError as error:  # TF Serving's words for what it does not have (docs/api.md)
            if error.code != "not_found":
                raise
            raise (tfserving.unknown_label(ref.label) if ref.label is not None
                   else tfserving.servable_not_found(ref.name, ref.version)) from None
        yield held.versions[0]


def predict(engine: Engine, version: Version, value, images: bool, deadline_ms: float) -> np.ndarray:
    """The graph's raw output rows for a batch: `value` is the input tensor, or with `images` a list of
    encoded images (each resized as the model's crop is)."""
    rows = _images(engine, version, value) if images else _tensor_rows(version, value)
    return _run(engine, version, rows, deadline_ms)


def classify(engine: Engine, version: Version, examples: list[dict], deadline_ms: float) -> list[list[tuple[str, float]]]:
    """tf.Examples (feature name -> values: `image` bytes, optional `x`, `y`) -> every label with its
    probability, highest first, per example."""
    crops = [_example_crop(engine, version, example) for example in examples]
    scores = _run(engine, version, prepare(version.spec.input, np.stack(crops)), deadline_ms)
    if version.spec.softmax:
        scores = np.exp(scores - scores.max(axis=1, keepdims=True))
        scores /= scores.sum(axis=1, keepdims=True)
    labels = version.spec.labels
    return [[(labels[i], float(row[i])) for i in np.argsort(-row, kind="stable")] for row in scores]


def _run(engine: Engine, version: Version, rows, deadline_ms: float) -> np.ndarray:
    outcome = engine.manager.runtime.infer({version.key: rows}, time.monotonic() + deadline_ms / 1000)
    if version.key in outcome.errors:
        error = outcome.errors[version.key]
        raise TFServingError(error, "DEADLINE_EXCEEDED" if "deadline" in error else "INTERNAL")
    return outcome.outputs[version.key]


def _deadline_ms(engine: Engine) -> float:
    configured = engine.settings.deadline_ms
    header = cherrypy.serving.request.headers.get("X-Deadline-Ms")
    try:
        wanted = float(header) if header is not None else configured
    except ValueError:
        raise TFServingError("X-Deadline-Ms must be a number of milliseconds") from None
    if not wanted > 0:
        raise TFServingError("X-Deadline-Ms must be positive")
    return min(wanted, configured)


def _images(engine: Engine, version: Version, images: list[bytes]) -> np.ndarray:
    """Whole images, each resized as the model's crop would be."""
    spec = version.spec.crop
    crops = []
    for data in images:
        decoded = imaging.decode(data, engine.limits)
        whole = imaging.CropSpec(spec.width, spec.height, spec.channels, fraction=1.0, min_px=1,
                                 keep_aspect=spec.keep_aspect, resize=spec.resize)
        crops.append(imaging.crop(decoded, whole, decoded.width / 2, decoded.height / 2))
    return prepare(version.spec.input, np.stack(crops))


def _tensor_rows(version: Version, value) -> np.ndarray:
    if version.spec.input.kind == "encoded":
        return np.array(value, dtype=object)
    return np.asarray(value, dtype=np.dtype(version.spec.input.dtype))


def _example_crop(engine: Engine, version: Version, example: dict) -> np.ndarray:
    image = example.get("image")
    if not image or not isinstance(image[0], bytes):
        raise TFServingError('each example needs an "image" feature: {"b64": <an encoded image>}')
    decoded = imaging.decode(image[0], engine.limits)
    if "x" in example or "y" in example:
        try:
            x, y = float(example["x"][0]), float(example["y"][0])
        except (KeyError, IndexError, TypeError, ValueError):
            raise TFServingError('give both "x" and "y" as numbers (pixels), or neither') from None
        if not (0 <= x < decoded.width and 0 <= y < decoded.height):
            raise TFServingError(f"point ({x}, {y}) is outside the {decoded.width}x{decoded.height} image")
        return imaging.crop(decoded, version.spec.crop, x, y)
    spec = version.spec.crop
    whole = imaging.CropSpec(spec.width, spec.height, spec.channels, fraction=1.0, min_px=1,
                             keep_aspect=spec.keep_aspect, resize=spec.resize)
    return imaging.crop(decoded, whole, decoded.width / 2, decoded.height / 2)


def _tensor(name: str) -> str:
    return name if ":" in name else f"{name}:0"

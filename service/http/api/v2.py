"""The Open Inference Protocol (KServe v2) over REST, under /v2 (the protocol's core in service/protocols/oip.py):

    GET  /v2                                         server metadata
    GET  /v2/health/live, /v2/health/ready           200, or 400 when not ready (the protocol's "4xx")
    GET  /v2/models/{name}[/versions/{v}]            model metadata
    GET  /v2/models/{name}[/versions/{v}]/ready      200, or 400 when not ready
    POST /v2/models/{name}[/versions/{v}]/infer      inference with JSON tensors

The infer body is JSON whatever its Content-Type; with the binary tensor data extension (what
tritonclient sends by default) the header `Inference-Header-Content-Length: N` says the first N bytes
are the JSON and the rest the inputs' raw data, in order, each input's size in its
`parameters.binary_data_size`. Outputs come back as binary the same way when the request asks
(`outputs[].parameters.binary_data`, or `parameters.binary_data_output` for all), else as JSON `data`.
A SavedModel's other signatures are named by the request's `parameters.signature_name`.
Errors are the protocol's {"error": message} (plus Pinpoint's machine `code`) with 4xx/5xx statuses.
Auth, rate limits and the body limit are the API's (service/http/protection.py); X-Deadline-Ms as on /v1.
"""

from __future__ import annotations

import json
import math

import cherrypy

import service
from service.engine import Engine
from service.errors import BadRequest
from service.http.api.deadline import deadline_ms
from service.http.api.schema import JSON, Operation, binary, json_answer
from service.http.api.tfserving import CODES
from service.protocols import oip, oip_schema
from service.protocols.tfserving.error_codes import TFServingError

HEADER_LENGTH = "Inference-Header-Content-Length"
EXTENSIONS = ["binary_tensor_data"]


# The routes below /v2: (method, path template, what it answers, the V2 method that answers). Dispatch
# reads this table, and so does the OpenAPI document (service/http/openapi.py).
ROUTES = (
    ("GET", "/v2", "the server's metadata: name, version, protocol extensions", "_server"),
    ("GET", "/v2/health/live", "200 while the process serves", "_live"),
    ("GET", "/v2/health/ready", "200 once every model is ready, else 400", "_ready"),
    ("GET", "/v2/models/{name}", "the model's metadata: versions, platform, input and output tensors", "_metadata"),
    ("GET", "/v2/models/{name}/versions/{version}", "one version's metadata", "_metadata"),
    ("GET", "/v2/models/{name}/ready", "200 when the model's serving version is ready, else 400", "_model_ready"),
    ("GET", "/v2/models/{name}/versions/{version}/ready", "200 when that version is ready, else 400", "_model_ready"),
    ("POST", "/v2/models/{name}/infer", "inference with the protocol's JSON tensors (and binary data)", "_infer"),
    ("POST", "/v2/models/{name}/versions/{version}/infer", "inference on one version", "_infer"),
)


# Each route's bodies (service/protocols/oip_schema.py) and its errors' codes, by the V2 method that answers;
# a 400 that is not an error (not ready) is declared as an answer.
_LOOKUP = ("bad_request", "not_found", "model_unavailable")
_BY_HANDLER = {
    "_server": Operation(answers=json_answer(oip_schema.SERVER_ANSWER)),
    "_live": Operation(answers=json_answer(oip_schema.LIVE_ANSWER)),
    "_ready": Operation(answers={**json_answer(oip_schema.READY_ANSWER), **json_answer(oip_schema.READY_ANSWER, 400)}),
    "_metadata": Operation(answers=json_answer(oip_schema.METADATA_ANSWER), errors=_LOOKUP),
    "_model_ready": Operation(answers={**json_answer(oip_schema.MODEL_READY_ANSWER),
                                       **json_answer(oip_schema.MODEL_READY_ANSWER, 400)}, errors=_LOOKUP),
    "_infer": Operation(
        request={JSON: oip_schema.INFER_REQUEST,
                 "application/octet-stream": binary(f"the JSON request ({HEADER_LENGTH} bytes), then the inputs' "
                                                    "binary data")},
        answers={200: {JSON: oip_schema.INFER_ANSWER, "application/octet-stream": binary(
            f"with binary outputs: the JSON answer ({HEADER_LENGTH} bytes), then the outputs' data")}},
        errors=(*_LOOKUP, "payload_too_large", "overloaded", "timeout")),
}
OPERATIONS = {(method, template): _BY_HANDLER[handler] for method, template, _, handler in ROUTES}


def _match(template: str, parts: list[str]) -> dict | None:
    pattern = template.split("/")[2:]  # after "/v2"
    if len(pattern) != len(parts):
        return None
    found = {}
    for want, got in zip(pattern, parts):
        if want.startswith("{"):
            found[want[1:-1]] = got
        elif want != got:
            return None
    return found


class V2:
    def __init__(self, engine: Engine):
        self.engine = engine

    @cherrypy.expose
    def default(self, *vpath, **params):
        request, response = cherrypy.serving.request, cherrypy.serving.response
        response.headers["Content-Type"] = "application/json"
        try:
            return self._route(list(vpath), request.method)
        except (oip.OIPError, TFServingError) as error:
            return _error(oip.OIPError.of(error))

    index = default
    default.allowed_methods = lambda *vpath: ("GET", "HEAD", "POST")
    default.routes = ROUTES
    default.operations = OPERATIONS

    def _route(self, parts: list[str], method: str):
        method = "GET" if method == "HEAD" else method
        allowed = []
        for verb, template, _, name in ROUTES:
            found = _match(template, parts)
            if found is None:
                continue
            if verb == method:
                return getattr(self, name)(**found)
            allowed.append(verb)
        if allowed:
            cherrypy.serving.response.headers["Allow"] = ", ".join(sorted(set(allowed)))
            raise oip.OIPError(f"use {' or '.join(sorted(set(allowed)))} here, not {method}", 405)
        raise oip.OIPError(f"no such route: {method} {cherrypy.serving.request.path_info}", 404)

    def _server(self):
        return _json({"name": "pinpoint", "version": service.__version__, "extensions": EXTENSIONS})

    def _live(self):
        return _status(oip.live(), {"live": oip.live()})

    def _ready(self):
        ok = oip.ready(self.engine)
        return _status(ok, {"ready": ok})

    def _metadata(self, name: str, version: str | None = None):
        return _json(oip.metadata(self.engine, name, version))

    def _model_ready(self, name: str, version: str | None = None):
        ok = oip.model_ready(self.engine, name, version)
        return _status(ok, {"name": name, "ready": ok})

    def _infer(self, name: str, version: str | None = None):
        request = cherrypy.serving.request
        body = request.body.read()
        header_length = request.headers.get(HEADER_LENGTH)
        if header_length is not None:
            if not header_length.isdigit() or int(header_length) > len(body):
                raise oip.OIPError(f"{HEADER_LENGTH} must be the length of the JSON part of the body")
            text, binary = body[:int(header_length)], body[int(header_length):]
        else:
            text, binary = body, b""
        try:
            document = json.loads(text)
        except (ValueError, UnicodeDecodeError) as error:
            raise oip.OIPError(f"the body is not valid JSON: {error}") from None
        if not isinstance(document, dict) or not isinstance(document.get("inputs"), list):
            raise oip.OIPError('the body must be a JSON object with "inputs": a list of tensors')
        inputs = _inputs(document["inputs"], binary)
        wanted, binary_out = _outputs(document)
        try:
            deadline = deadline_ms(request.headers.get("X-Deadline-Ms"), self.engine.settings.deadline_ms)
        except BadRequest as error:
            raise oip.OIPError(error.message) from None
        signature_name = (document.get("parameters") or {}).get("signature_name", "")
        if not isinstance(signature_name, str):
            raise oip.OIPError("parameters.signature_name is a string: a SavedModel's signature")
        model_version, outputs = oip.infer(self.engine, name, version, inputs, deadline, outputs=wanted,
                                           signature_name=signature_name)
        answer = {"model_name": name, "model_version": model_version, "outputs": []}
        if "id" in document:
            answer["id"] = document["id"]
        chunks = []
        for tensor in outputs:
            if wanted is not None and tensor.name not in wanted:
                continue
            entry = {"name": tensor.name, "datatype": tensor.datatype, "shape": tensor.shape}
            if binary_out(tensor.name):
                raw = oip.to_raw(tensor)
                entry["parameters"] = {"binary_data_size": len(raw)}
                chunks.append(raw)
            else:
                entry["data"] = tensor.value.ravel().tolist()
            answer["outputs"].append(entry)
        head = json.dumps(answer).encode()
        if chunks:
            response = cherrypy.serving.response
            response.headers["Content-Type"] = "application/octet-stream"
            response.headers[HEADER_LENGTH] = str(len(head))
            return head + b"".join(chunks)
        return head


def _inputs(entries: list, binary: bytes) -> list[oip.Tensor]:
    tensors, offset = [], 0
    for entry in entries:
        if not isinstance(entry, dict) or not isinstance(entry.get("name"), str) \
                or not isinstance(entry.get("datatype"), str) or not isinstance(entry.get("shape"), list) \
                or not all(isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in entry["shape"]):
            raise oip.OIPError('each input needs "name", "datatype" and "shape" (a list of sizes)')
        datatype, shape = entry["datatype"], entry["shape"]
        size = parameters(entry, f"input {entry['name']!r}: ").get("binary_data_size")
        if size is not None:
            if not isinstance(size, int) or size < 0 or offset + size > len(binary):
                raise oip.OIPError(f"input {entry['name']!r}: binary_data_size {size} is beyond the binary data")
            value = oip.from_raw(datatype, shape, binary[offset:offset + size])
            offset += size
        elif "data" in entry:
            data = entry["data"]
            if not isinstance(data, list):  # as oip_schema's DATA: a lone value is not a one-element tensor
                raise oip.OIPError(f"input {entry['name']!r}: data is a list of the tensor's elements")
            if datatype == "BYTES":
                data = [item.encode("utf-8") if isinstance(item, str) else item for item in _flat(data)]
                if any(not isinstance(item, bytes) for item in data):
                    raise oip.OIPError(f"input {entry['name']!r}: BYTES data are strings")
            value = oip.array(datatype, shape, data)
        else:
            raise oip.OIPError(f"input {entry['name']!r} has no data")
        tensors.append(oip.Tensor(entry["name"], datatype, shape, value))
    if offset != len(binary):
        raise oip.OIPError("the binary data is longer than the inputs' binary_data_size")
    return tensors


def parameters(entry: dict, where: str) -> dict:
    """An entry's `parameters`: an object, or null (as absent: clients that write every field send null), as
    oip_schema.PARAMETERS says."""
    value = entry.get("parameters")
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise oip.OIPError(f'{where}"parameters" must be an object')
    return value


def _flat(value):
    if isinstance(value, list):
        for item in value:
            yield from _flat(item)
    else:
        yield value


def _outputs(document: dict):
    """(the output names asked for, or None for all; whether an output is sent as binary)."""
    every = bool(parameters(document, "").get("binary_data_output", False))
    outputs = document.get("outputs")
    if outputs is None:
        return None, lambda name: every
    if not isinstance(outputs, list) or not all(isinstance(o, dict) and isinstance(o.get("name"), str)
                                                for o in outputs):
        raise oip.OIPError('"outputs" is a list of {"name": ...}')
    binary = {o["name"]: bool(parameters(o, f"output {o['name']!r}: ").get("binary_data", every)) for o in outputs}
    return set(binary), lambda name: binary.get(name, every)  # names checked against the model's: oip.infer


def _json(document: dict) -> bytes:
    return json.dumps(document).encode()


def _status(ok: bool, document: dict) -> bytes:
    if not ok:
        cherrypy.serving.response.status = 400
    return _json(document)


def _error(error: oip.OIPError) -> bytes:
    response = cherrypy.serving.response
    response.status = error.status
    response.headers["Content-Type"] = "application/json"
    if error.retry_after is not None:
        response.headers["Retry-After"] = str(max(1, math.ceil(error.retry_after)))
    return json.dumps({"error": error.message, "code": CODES.get(error.status, "bad_request")}).encode()


__all__ = ["V2"]

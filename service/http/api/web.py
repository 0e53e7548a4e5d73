"""What the test page needs to run the models in the browser (docs/browser.md):

- GET /v1/models/{name}/versions/{v}/web/model.json: the manifest: the ONNX files (float32, float16)
  with their sizes and hashes, and everything the page needs to prepare an input exactly as the
  server does (crop window rule, input size, channels, resize filter, normalisation, labels, softmax).
  Revalidated (ETag): it names the files, which may change when a version's files are replaced.
- GET /v1/models/{name}/versions/{v}/web/{sha256}.onnx: a file, named by its content, so it is
  cached for a year (`immutable`): a new version or a replaced file is a new URL.
- GET /static/vendor/onnxruntime-web/ort-wasm-simd-threaded.wasm: the runtime's WebAssembly, kept
  gzip-compressed in the repository (3.7 MB instead of 14) and sent so to browsers that accept it.
"""

from __future__ import annotations

import gzip
import hashlib
import json
from pathlib import Path

import cherrypy

from service.engine import Engine
from service.errors import BadRequest, NotFound, PinpointError
from service.http.api.client_config import describe_crop
from service.http.api.error_responses import Refusal
from service.serving.servable_id import ServableId
from service.serving.web_model import WebModel

IMMUTABLE = "public, max-age=31536000, immutable"
RUNTIME_DIR = Path(__file__).resolve().parents[3] / "static" / "vendor" / "onnxruntime-web"
WASM = "ort-wasm-simd-threaded.wasm"


def manifest_url(name: str, version: int) -> str:
    return f"/v1/models/{name}/versions/{version}/web/model.json"


def is_web_path(vpath: tuple[str, ...]) -> bool:
    """/v1/models/{name}/versions/{v}/web/{file}: below the TF Serving routes, which end at the version."""
    return len(vpath) == 5 and vpath[1] == "versions" and vpath[3] == "web"


def handle(engine: Engine, vpath: tuple[str, ...]) -> bytes:
    name, _, number, _, file_name = vpath
    request, response = cherrypy.serving.request, cherrypy.serving.response
    try:
        if request.method not in ("GET", "HEAD"):
            raise PinpointError(f"{request.method} is not allowed here; use GET", code="method_not_allowed")
        if not number.isdigit():
            raise BadRequest(f"a web copy is per version number, not {number!r}")
        version = int(number)
        web = engine.runner.web(name, version)  # NotFound or ModelUnavailable for a version not serving
        if file_name == "model.json":
            body = json.dumps(_manifest(web), indent=1).encode()
            response.headers["Content-Type"] = "application/json"
            response.headers["Cache-Control"] = "no-cache"  # revalidated with its ETag (CherryPy's etags tool)
            response.headers["ETag"] = '"' + hashlib.sha256(body).hexdigest()[:32] + '"'
            cherrypy.lib.cptools.validate_etags()
            return body
        path = web.path(file_name)
        if path is None:
            raise NotFound(f"{ServableId(name, version)} has no web file {file_name!r}; "
                           "its files are listed in model.json")
        response.headers["Cache-Control"] = IMMUTABLE
        return cherrypy.lib.static.serve_file(str(path), content_type="application/octet-stream")
    except PinpointError as error:
        if error.code == "method_not_allowed":
            response.headers["Allow"] = "GET, HEAD"
        raise Refusal(error) from None


def _manifest(web: WebModel) -> dict:
    spec = web.spec
    base = f"/v1/models/{spec.name}/versions/{spec.version}/web/"
    i = spec.input
    return {
        "model": spec.name,
        "version": spec.version,
        "labels": list(spec.labels),
        "softmax": spec.softmax,
        "input": {"name": web.input_name, "kind": i.kind, "height": i.height, "width": i.width,
                  "channels": i.channels, "dtype": i.dtype, "layout": i.layout, "scale": i.scale,
                  "offset": i.offset, "mean": list(i.mean) if i.mean else None,
                  "std": list(i.std) if i.std else None},
        "output": web.output_name,
        "crop": describe_crop(spec.crop),
        "files": {variant: {"url": base + file.name, "bytes": file.size, "sha256": file.sha256,
                            "max_difference": round(file.max_difference, 6)}
                  for variant, file in web.files.items()},
        "source": web.source,
    }


class Static:
    """Below /static, what the staticdir tool does not find on disk: the runtime's WebAssembly."""

    @cherrypy.expose
    def default(self, *vpath, **params):
        if vpath == ("vendor", "onnxruntime-web", WASM):
            return runtime_wasm()
        raise cherrypy.NotFound()


def runtime_wasm() -> bytes:
    """The WebAssembly of onnxruntime-web, from its gzip file: as is to browsers (Content-Encoding),
    inflated for a client that does not accept gzip."""
    request, response = cherrypy.serving.request, cherrypy.serving.response
    if request.method not in ("GET", "HEAD"):
        response.headers["Allow"] = "GET, HEAD"
        raise Refusal(PinpointError(f"{request.method} is not allowed here; use GET", code="method_not_allowed"))
    compressed = (RUNTIME_DIR / f"{WASM}.gz").read_bytes()
    response.headers["Content-Type"] = "application/wasm"
    response.headers["Cache-Control"] = "public, max-age=86400"  # the runtime's version is in its directory
    response.headers["Vary"] = "Accept-Encoding"
    if "gzip" in request.headers.get("Accept-Encoding", ""):
        response.headers["Content-Encoding"] = "gzip"
        return compressed
    return gzip.decompress(compressed)

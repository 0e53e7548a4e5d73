"""Web copies of the served versions, for inference in the browser (docs/browser.md).

The first ask for a version exports it (service/serving/backends/web_export.py: the verified ONNX model and a
float16 variant, written under content-addressed names) where the models live: in this process, or in
the model runner when there are API workers (Runner.web, service/processes/runner.py). Later asks
answer from memory. The HTTP side (service/http/api/web.py) turns a WebModel into the manifest and
serves its files.
"""

from __future__ import annotations

import dataclasses
import threading
from pathlib import Path

from service.errors import ModelUnavailable, NotFound
from service.serving.manager import Manager, State
from service.serving.repository import ModelSpec


class NotForTheBrowser(NotFound):
    """This version has no web copy (an encoded input, a graph tf2onnx cannot convert)."""


@dataclasses.dataclass(frozen=True)
class WebFile:
    name: str  # <sha256 prefix>.onnx, under WebModel.directory
    size: int
    sha256: str
    max_difference: float  # largest change of a shown score against float32, on the check inputs


@dataclasses.dataclass(frozen=True)
class WebModel:
    spec: ModelSpec  # the version exported: its labels, input and crop go into the manifest
    input_name: str  # the ONNX graph's names, which the browser feeds and fetches
    output_name: str
    directory: Path
    files: dict[str, WebFile]  # "float32", "float16"
    source: str  # where the ONNX model comes from (model.onnx, or the verified conversion)

    def path(self, file_name: str) -> Path | None:
        """The file behind a URL's last part, if it is one of this version's."""
        if any(file.name == file_name for file in self.files.values()):
            return self.directory / file_name
        return None


class WebModels:
    def __init__(self, manager: Manager, options):
        self.manager = manager
        self.options = options  # () -> LoadOptions: the ONNX cache and tolerance in force
        self._exported: dict[tuple[str, int, object], WebModel] = {}
        self._locks: dict[tuple[str, int], threading.Lock] = {}
        self._guard = threading.Lock()

    def get(self, name: str, version: int) -> WebModel:
        """The version's web copy, exported on first ask (seconds when its graph must be converted)."""
        entry = self._serving(name, version)
        identity = (name, version, entry.fingerprint)  # a version reloaded from new files is exported again
        with self._guard:
            lock = self._locks.setdefault((name, version), threading.Lock())
        with lock:  # concurrent first asks export once
            found = self._exported.get(identity)
            if found is None:
                from service.serving.backends import web_export

                found = self._exported[identity] = web_export.export(entry.spec, self.options())
            return found

    def _serving(self, name: str, version: int):
        entry = self.manager.find(name, version)
        if entry is None:
            raise NotFound(f"model {name!r} has no version {version}")
        if entry.state is not State.AVAILABLE or entry.spec is None:
            raise ModelUnavailable(f"{name}@{version} is {entry.state.value}", retry_after=1)
        return entry

"""Web copies of the served versions, for inference in the browser (docs/browser.md).

The first ask for a version exports it (service/serving/backends/web_export.py: the verified ONNX model and a
float16 variant, written under content-addressed names) where the models live: in this process, or in
the model runner when there are API workers (Runner.web, service/processes/runner.py). Later asks
answer from memory. The HTTP side (service/http/api/web.py) turns a WebModel (service/serving/web_model.py)
into the manifest and serves its files.
"""

from __future__ import annotations

import threading

from service.errors import ModelUnavailable, NotFound
from service.serving.manager import Manager, State
from service.serving.servable_id import ServableId
from service.serving.web_model import WebModel


class WebModels:
    def __init__(self, manager: Manager, options):
        self.manager = manager
        self.options = options  # () -> LoadOptions: the ONNX cache and tolerance in force
        self._exported: dict[tuple[ServableId, tuple], WebModel] = {}
        self._locks: dict[ServableId, threading.Lock] = {}
        self._guard = threading.Lock()

    def get(self, name: str, version: int) -> WebModel:
        """The version's web copy, exported on first ask (seconds when its graph must be converted)."""
        entry = self._serving(ServableId(name, version))
        identity = (entry.id, entry.fingerprint)  # a version reloaded from new files is exported again
        with self._guard:
            lock = self._locks.setdefault(entry.id, threading.Lock())
        with lock:  # concurrent first asks export once
            found = self._exported.get(identity)
            if found is None:
                from service.serving.backends import web_export

                found = self._exported[identity] = web_export.export(entry.spec, self.options())
            return found

    def _serving(self, servable: ServableId):
        entry = self.manager.find(servable.name, servable.version)
        if entry is None:
            raise NotFound(f"model {servable.name!r} has no version {servable.version}")
        if entry.state is not State.AVAILABLE or entry.spec is None:
            raise ModelUnavailable(f"{servable} is {entry.state.value}", retry_after=1)
        return entry

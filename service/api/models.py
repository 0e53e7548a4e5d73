"""GET /v1/models (Pinpoint's listing) and the TensorFlow Serving REST routes below it:
status, metadata, :predict and :classify, in TF Serving's own JSON shapes (docs/api.md)."""

from __future__ import annotations

import cherrypy

from service.api.errors import json_endpoint, require_method
from service.engine import Engine
from service.errors import BadRequest, NotFound
from service.manager import ModelRef, State, Version


class Models:
    def __init__(self, engine: Engine):
        self.engine = engine

    @json_endpoint
    def default(self, *vpath, **params):
        if not vpath:
            require_method("GET", "HEAD")
            snapshot = self.engine.manager.snapshot()
            return {"models": [self._describe(name, versions) for name, versions in snapshot.items()]}
        path = "/".join(vpath)
        name, _, verb = path.partition(":")
        parts = name.split("/")
        ref = _reference(parts)
        if verb:
            from service.api import serving  # the TF Serving verbs

            require_method("POST")
            return serving.run_verb(self.engine, ref, verb, params)
        require_method("GET", "HEAD")
        if parts[-1] == "metadata":
            from service.api import serving

            return serving.metadata(self.engine, ref)
        return self._status(ref)

    index = default  # CherryPy calls index for the collection, default for paths below it

    def _status(self, ref: ModelRef) -> dict:
        """TF Serving's GetModelStatus: every version when none is named, else that one."""
        snapshot = self.engine.manager.snapshot()
        versions = snapshot.get(ref.name)
        if not versions:
            raise NotFound(f"unknown model {ref.name!r}")
        if ref.label is not None:
            number = self.engine.manager.labels.get(ref.name, {}).get(ref.label)
            if number is None:
                raise NotFound(f"model {ref.name!r} has no label {ref.label!r} on an AVAILABLE version")
            versions = [v for v in versions if v.version == number]
        elif ref.version is not None:
            versions = [v for v in versions if v.version == ref.version]
            if not versions:
                raise NotFound(f"model {ref.name!r} has no version {ref.version}")
        return {"model_version_status": [_status(v) for v in versions]}

    def _describe(self, name: str, versions: list[Version]) -> dict:
        manager = self.engine.manager
        serving = manager.default_version(name)
        shown = serving or versions[0]
        spec = shown.spec
        model_policy = manager.policies.get(name)
        return {
            "name": name,
            "version": shown.version,
            "state": shown.state.value,
            "backend": shown.backend,
            "labels": len(spec.labels) if spec else 0,
            "input": ({"kind": spec.input.kind, "height": spec.input.height, "width": spec.input.width,
                       "channels": spec.input.channels} if spec else None),
            "error": shown.error or None,
            "policy": model_policy.describe() if model_policy else "latest 1",
            "version_labels": dict(manager.labels.get(name, {})),
            "versions": [{
                "version": v.version, "state": v.state.value, "backend": v.backend,
                "error": v.error or None, "reason": v.reason or None, "load_ms": v.load_ms,
                "run_ms": round(v.cost_ms, 3), **({"shadow": _shadow(v)} if v.shadow else {}),
            } for v in versions],
        }


def _reference(parts: list[str]) -> ModelRef:
    """name[/versions/{v}|/labels/{l}][/metadata] -> a reference (TF Serving's route grammar)."""
    if parts and parts[-1] == "metadata":
        parts = parts[:-1]
    if not parts or not parts[0]:
        raise NotFound("no such resource")
    name, rest = parts[0], parts[1:]
    if not rest:
        return ModelRef(name)
    if len(rest) == 2 and rest[0] == "versions" and rest[1].isdigit():
        return ModelRef(name, version=int(rest[1]))
    if len(rest) == 2 and rest[0] == "labels" and rest[1]:
        return ModelRef(name, label=rest[1])
    if "versions" in rest and "labels" in rest:
        raise BadRequest("give a version or a label, not both")
    raise NotFound(f"model {name!r} has no such resource")


def _status(version: Version) -> dict:
    failed = version.state is State.END and version.error
    message = version.error or version.reason
    return {"version": str(version.version), "state": version.state.value,
            "status": {"error_code": "UNKNOWN" if failed else "OK", "error_message": message}}


def _shadow(version: Version) -> dict:
    agreed = sum(counts[0] for counts in version.shadow.values())
    total = sum(counts[1] for counts in version.shadow.values())
    return {"compared": total, "top1_agreement": round(agreed / total, 4) if total else None,
            "by_label": {label: {"compared": n, "top1_agreement": round(a / n, 4)}
                         for label, (a, n) in sorted(version.shadow.items())}}

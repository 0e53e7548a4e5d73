"""GET /v1/config: what a client (the test page) needs to know to speak to this server.

Whether an image root is configured (never where it is), whether API keys are required, the limits a
request must keep, and each model's crop window (the models /v1/classify can run: not those served as
named tensors only) (per version: versions may cut differently), so a
client can draw the region a model saw exactly as service.classify.imaging.crop_box cuts it.
"""

from __future__ import annotations

import dataclasses

from service.classify.imaging import CropSpec
from service.classify.request import MAX_POINTS, MAX_TOP_K
from service.engine import Engine
from service.http.api.error_responses import json_endpoint
from service.http.api.schema import (
    BOOLEAN,
    INTEGER,
    NUMBER,
    STRING,
    Operation,
    array,
    json_answer,
    map_of,
    nullable,
    obj,
    of_dataclass,
)


class Config:
    def __init__(self, engine: Engine):
        self.engine = engine

    @json_endpoint(methods=("GET", "HEAD"))
    def index(self, **params):
        settings = self.engine.settings  # the current ones: a reload replaces them
        manager = self.engine.manager
        models = {}
        for name, versions in manager.snapshot().items():
            # Only what /v1/classify can run: a SavedModel served as named tensors takes no crop.
            versions = [entry for entry in versions if entry.spec and not entry.spec.tensors_only]
            if not versions:
                continue
            crops = {str(entry.version): describe_crop(entry.spec.crop) for entry in versions if entry.spec}
            serving = manager.default_version(name)
            default = serving.version if serving else next((entry.version for entry in versions if entry.spec), None)
            models[name] = {"version": default, "crop": crops.get(str(default)), "versions": crops,
                            # for feedback: a user may choose any label of the version that answered
                            "labels": {str(entry.version): list(entry.spec.labels) for entry in versions if entry.spec}}
        return {
            "image_root": settings.image_root is not None,
            "auth": bool(settings.api_keys),
            "max_body_bytes": settings.max_body_bytes,
            "max_pixels": settings.max_pixels,
            "max_side": settings.max_side,
            "formats": list(settings.formats),
            "max_top_k": MAX_TOP_K,
            "max_points": MAX_POINTS,
            "models": models,
            "feedback": {"enabled": settings.feedback, "sample_rate": settings.feedback_sample_rate},
        }


# index's document, for the OpenAPI document (service/http/openapi.py); a crop is every CropSpec field.
CROP = of_dataclass(CropSpec)
CONFIG = obj(image_root=BOOLEAN, auth=BOOLEAN, max_body_bytes=INTEGER, max_pixels=INTEGER, max_side=INTEGER,
             formats=array(STRING), max_top_k=INTEGER, max_points=INTEGER,
             models=map_of(obj(version=nullable(INTEGER), crop=nullable(CROP), versions=map_of(CROP),
                               labels=map_of(array(STRING)))),
             feedback=obj(enabled=BOOLEAN, sample_rate=NUMBER))
Config.index.operations = {"GET": Operation(answers=json_answer(CONFIG))}


def describe_crop(spec: CropSpec) -> dict:
    """Every field of the model's CropSpec (docs/models.md): the window is
    `box` (width, height) in pixels when set, else `fraction` of the image's width and height with
    each side at least `min_px`; clipped to the image; narrowed to the aspect of the model's input
    (`width` x `height`) when `keep_aspect`; centred on the point and shifted inside the image."""
    crop = dataclasses.asdict(spec)
    crop["box"] = list(spec.box) if spec.box is not None else None
    return crop

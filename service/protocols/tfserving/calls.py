"""TF Serving's calls over Pinpoint's models, as REST (service/http/api/tfserving.py) and gRPC
(service/grpc/server.py) both answer them: GetModelStatus, GetModelMetadata, and the model runs of
Predict and Classify, which go through service/serving/model_run.py as /v1/classify does (lease,
deadline, batching, the retry after a swap, probabilities).

For Pinpoint's models:
- Predict's one input, `input`, and one output, `scores`: service/protocols/model_input.py;
- Classify takes examples with an `image` bytes feature and optionally `x` and `y` (pixels): the
  model's crop around that point, else the whole image; it answers every label with its probability,
  highest first.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

import numpy as np

from service.classify import imaging
from service.classify.pipeline import tensors_only
from service.classify.preprocess import prepare
from service.engine import Engine
from service.errors import NotFound, public_text
from service.protocols import model_input
from service.protocols.tfserving import error_codes, signatures
from service.protocols.tfserving.error_codes import TFServingError
from service.protocols.tfserving.version_status import VersionStatus, status_document
from service.serving import model_run
from service.serving.manager import ModelRef, Version

T = TypeVar("T")


def status(engine: Engine, ref: ModelRef) -> dict:
    """Every version of the model, or the one a version or label names (TF Serving's GetModelStatus)."""
    versions = engine.manager.snapshot().get(ref.name)
    if not versions:
        raise error_codes.no_versions(ref.name)
    if ref.label is not None:
        number = engine.manager.labels.get(ref.name, {}).get(ref.label)
        if number is None:
            raise error_codes.unknown_label(ref.label)
        versions = [v for v in versions if v.version == number]
    elif ref.version is not None:
        versions = [v for v in versions if v.version == ref.version]
        if not versions:
            raise error_codes.version_not_found(ref.name, ref.version)
    models = engine.settings.models
    document = status_document(  # no server path in a message (the log has the whole one)
        VersionStatus(v.version, v.state.value, "UNKNOWN" if v.error else None, public_text(v.error, models))
        for v in versions)
    # Beyond TF Serving, which answers OK with no reason: why a version that did not fail is not serving
    # ("not in the version policy", "removed from the repository"); error_code stays OK for those.
    reasons = {str(v.version): public_text(v.reason, models) for v in versions if v.reason and not v.error}
    for entry in document["model_version_status"]:
        if entry["version"] in reasons:
            entry["status"]["error_message"] = reasons[entry["version"]]
    return document


def metadata(engine: Engine, ref: ModelRef) -> dict:
    """The version's signature_def map (TF Serving's GetModelMetadata): a SavedModel's every signature,
    else Pinpoint's one."""
    try:
        with engine.manager.acquire([ref]) as lease:
            version = lease.versions[0]
            if version.spec.is_saved_model:
                return signatures.metadata_document(version.name, version.version,
                                                    signatures.saved_signatures(version))
            return signatures.metadata_document(version.name, version.version, signatures.signature(version))
    except NotFound:
        raise _not_served(ref) from None


def served(engine: Engine, ref: ModelRef, work: Callable[[model_run.Models], T], deadline_ms: float) -> T:
    """`work` with the version `ref` names held (service/serving/model_run.py: the deadline, the retry
    after a swap); what the manager does not have is said in TF Serving's words (docs/api.md)."""
    try:
        return model_run.run(engine.manager, [ref], work, deadline_ms)
    except NotFound:  # only the lease says not_found: every later failure has its own code
        raise _not_served(ref) from None


def _not_served(ref: ModelRef) -> TFServingError:
    """TF Serving's words for a name, version or label the manager does not have."""
    if ref.label is not None:
        return error_codes.unknown_label(ref.label)
    return error_codes.servable_not_found(ref.name, ref.version)


def classify(engine: Engine, models: model_run.Models, examples: list[dict]) -> list[list[tuple[str, float]]]:
    """tf.Examples (feature name -> values: `image` bytes, optional `x`, `y`) -> every label with its
    probability, highest first, per example: the scores /v1/classify answers for the same crop."""
    version = models.version
    if version.spec.tensors_only:
        raise TFServingError(f"model {version.name!r} cannot classify an image crop: {tensors_only(version)}")
    crops = [_example_crop(engine, version, example) for example in examples]
    rows = models.run(version, prepare(version.spec.input, np.stack(crops)))
    mismatch = model_run.label_mismatch(version, rows)
    if mismatch:
        raise model_run.ModelFailed(mismatch)
    scores = model_run.probabilities(rows, version.spec.softmax)
    labels = version.spec.labels
    return [[(labels[i], float(row[i])) for i in np.argsort(-row, kind="stable")] for row in scores]


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
    whole = model_input.whole_image(version.spec.crop)
    return imaging.crop(decoded, whole, decoded.width / 2, decoded.height / 2)

"""A :classify body and its answer as TF Serving reads and writes them (tensorflow_serving/util/json_tensor.cc
FillClassifyRegressRequestFromJson, MakeExampleFromJsonObject, MakeJsonFromClassificationResult):
tf.Examples as feature name -> values, and every example's classes with their scores. No HTTP.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from service.protocols.tfserving.error_codes import invalid
from service.protocols.tfserving.json_render import floats
from service.protocols.tfserving.json_tensor import b64decode, debug_text, is_b64, json_type, requested_signature

_KIND = {bytes: "bytes", float: "float", int: "int64"}


def _feature_value(value: Any, name: str, values: list) -> None:
    """AddValueToFeature: one element of a feature, of the kind the feature already has."""
    if value is None or isinstance(value, list) or (isinstance(value, dict) and not is_b64(value)):
        raise invalid(f"Feature: {name} has element with unexpected JSON type: {json_type(value)}")
    if isinstance(value, bool):
        item: Any = int(value)
    elif isinstance(value, dict):
        item = b64decode(value)
    elif isinstance(value, str):
        item = value.encode("utf-8")
    elif isinstance(value, float) or value > 2**64 - 1 or value < -(2**63):
        try:
            with np.errstate(over="ignore"):  # a double in rapidjson; float_list holds float32
                item = float(np.float32(float(value)))
        except OverflowError:
            raise invalid("JSON Parse error: Number too big to be stored in double.") from None
    else:
        if value > 2**63 - 1:
            raise invalid(f"Feature: {name} has uint64_t element. Only int64_t is supported.")
        item = value
    if values and type(values[0]) is not type(item):
        raise invalid(f"Unexpected element type in feature: {name} expecting type: "
                      f"{_KIND[type(values[0])]}")
    values.append(item)


def _example(value: Any) -> dict[str, list]:
    """MakeExampleFromJsonObject."""
    if not isinstance(value, dict):
        raise invalid(f"Example must be JSON object but got JSON {json_type(value)}")
    example = {}
    for name, content in value.items():
        values: list = []
        for item in content if isinstance(content, list) else [content]:
            _feature_value(item, name, values)
        example[name] = values
    return example


def parse_classify(document: Mapping[str, Any]) -> list[dict[str, list]]:
    """A :classify body as tf.Examples: one dict per entry of "examples", feature name -> its values
    (a list of bytes (strings and {"b64"}), of floats (float32 precision) or of ints (bools as 0/1);
    a single value is a list of one). "context" is merged into every example as TF Serving does when
    it serializes ExampleListWithContext (context first, so an example's own feature wins)."""
    if not isinstance(document, Mapping):
        raise invalid(f"JSON Value: {debug_text(document)} Is not object")
    requested_signature(document, "No signature was found with the name: {name}")
    context = _example(document["context"]) if "context" in document else {}
    if "examples" not in document:
        raise invalid(f"JSON Value: {debug_text(document)} When method is classify, key 'examples' "
                      "is expected and was not found")
    examples = document["examples"]
    if not isinstance(examples, list):
        raise invalid(f"JSON Value: {debug_text(document)} Expecting 'examples' value to be an list/array")
    if not examples:
        raise invalid(f"JSON Value: {debug_text(document)} 'examples' value is an empty array")
    return [{**context, **_example(example)} for example in examples]


def render_classify(results: Sequence[Sequence[tuple[str, float]]]) -> dict[str, Any]:
    """{"results": [[[label, score], ...] per example]}: TF Serving's code says "results" (its doc
    says "result"); scores are float32 printed as WriteDecimal does."""
    if not results:
        raise invalid("Cannot convert empty ClassificationResults to JSON")
    out = []
    for classes in results:
        scores = floats(np.asarray([score for _, score in classes], dtype=np.float32))
        out.append([[str(label), score] for (label, _), score in zip(classes, scores)])
    return {"results": out}

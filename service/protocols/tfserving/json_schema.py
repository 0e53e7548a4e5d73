"""The JSON Schemas of TF Serving's REST bodies (docs/api.md; TF Serving's REST API reference), declared
once here for the OpenAPI document (service/http/api/tfserving.py names them per route). What the
readers (json_tensor.py, json_examples.py) refuse beyond a schema's reach (a tensor's shape against the
signature, a feature's values) they say in TF Serving's words.
"""

from __future__ import annotations

from service.protocols.tfserving.version_status import STATES

_STRING = {"type": "string"}
_TENSOR = {"description": "a tensor as nested JSON lists; binary strings as {\"b64\": \"...\"}"}
_SIGNATURE = {**_STRING, "description": "the signature to run (default: serving_default)"}

# :predict: the row form {"instances": [...]} or the columnar form {"inputs": ...}, one of them.
PREDICT_REQUEST = {
    "type": "object",
    "properties": {"signature_name": _SIGNATURE,
                   "instances": {"type": "array", "items": _TENSOR, "description": "one entry per example"},
                   "inputs": {**_TENSOR, "description": "a tensor, or an object of named tensors"}},
    "oneOf": [{"required": ["instances"]}, {"required": ["inputs"]}],
}
# Rows answer "predictions", columns "outputs" (as the request's form).
PREDICT_ANSWER = {"type": "object", "properties": {"predictions": {"type": "array", "items": _TENSOR},
                                                   "outputs": _TENSOR},
                  "oneOf": [{"required": ["predictions"]}, {"required": ["outputs"]}]}

_FEATURES = {"type": "object", "description": "feature name -> a value or a list of values (bytes as "
                                              "{\"b64\": ...}); Pinpoint reads image, x, y (and units)",
             "additionalProperties": {}}
CLASSIFY_REQUEST = {
    "type": "object", "required": ["examples"],
    "properties": {"signature_name": _SIGNATURE, "context": _FEATURES,
                   "examples": {"type": "array", "items": _FEATURES, "minItems": 1}},
}
# One list per example: [label, score] pairs, highest score first.
CLASSIFY_ANSWER = {"type": "object", "required": ["results"], "properties": {"results": {
    "type": "array", "items": {"type": "array", "items": {
        "type": "array", "minItems": 2, "maxItems": 2, "items": {"oneOf": [_STRING, {"type": "number"}]}}}}}}

STATUS_ANSWER = {"type": "object", "required": ["model_version_status"], "properties": {"model_version_status": {
    "type": "array", "items": {"type": "object", "required": ["version", "state", "status"], "properties": {
        "version": _STRING, "state": {**_STRING, "enum": list(STATES)},
        "status": {"type": "object", "required": ["error_code", "error_message"],
                   "properties": {"error_code": _STRING, "error_message": _STRING}}}}}}}

_TENSOR_INFO = {"type": "object", "properties": {
    "dtype": _STRING, "name": _STRING,
    "tensor_shape": {"type": "object", "properties": {
        "dim": {"type": "array", "items": {"type": "object", "properties": {"size": _STRING, "name": _STRING}}},
        "unknown_rank": {"type": "boolean"}}}}}
_SIGNATURE_DEF = {"type": "object", "required": ["inputs", "outputs", "method_name"], "properties": {
    "inputs": {"type": "object", "additionalProperties": _TENSOR_INFO},
    "outputs": {"type": "object", "additionalProperties": _TENSOR_INFO},
    "method_name": _STRING, "defaults": {"type": "object"}}}
METADATA_ANSWER = {"type": "object", "required": ["model_spec", "metadata"], "properties": {
    "model_spec": {"type": "object", "required": ["name", "signature_name", "version"],
                   "properties": {"name": _STRING, "signature_name": _STRING, "version": _STRING}},
    "metadata": {"type": "object", "required": ["signature_def"], "properties": {"signature_def": {
        "type": "object", "required": ["signature_def"], "properties": {
            "signature_def": {"type": "object", "additionalProperties": _SIGNATURE_DEF}}}}}}}

"""The JSON Schemas of the Open Inference Protocol's REST bodies (KServe v2's REST spec), declared once here
for the OpenAPI document (service/http/api/v2.py names them per route). The datatypes are the ones
service/protocols/oip.py reads (its DATATYPES). Binary data (the binary_tensor_data extension) travels
after the JSON part, whose length `Inference-Header-Content-Length` gives.
"""

from __future__ import annotations

from service.protocols.oip import DATATYPES

_STRING = {"type": "string"}
_BOOLEAN = {"type": "boolean"}
_DATATYPE = {**_STRING, "enum": list(DATATYPES)}
_SHAPE = {"type": "array", "items": {"type": "integer", "minimum": 0}}
_ANSWER_PARAMETERS = {"type": "object", "description": "the protocol's parameters (binary_data_size)"}
# In a request, null is read as absent (service/http/api/v2.py's `parameters`): clients that write every
# field send it.
PARAMETERS = {"type": "object", "nullable": True,
              "description": "the protocol's parameters (binary_data_size, binary_data, ...); null: none"}
_DATA = {"type": "array", "description": "the tensor's elements, flat or nested, row-major (BYTES: strings)"}
# The request's id, whatever JSON it is, comes back as it came.
_ID = {"description": "any JSON value, echoed in the answer"}


def _tensors(*required: str, **properties) -> dict:
    return {"type": "array", "items": {"type": "object", "required": list(required), "properties": properties}}


SERVER_ANSWER = {"type": "object", "required": ["name", "version", "extensions"],
                 "properties": {"name": _STRING, "version": _STRING, "extensions": {"type": "array", "items": _STRING}}}
LIVE_ANSWER = {"type": "object", "required": ["live"], "properties": {"live": _BOOLEAN}}
READY_ANSWER = {"type": "object", "required": ["ready"], "properties": {"ready": _BOOLEAN}}
MODEL_READY_ANSWER = {"type": "object", "required": ["name", "ready"],
                      "properties": {"name": _STRING, "ready": _BOOLEAN}}
METADATA_ANSWER = {"type": "object", "required": ["name", "versions", "platform", "inputs", "outputs"], "properties": {
    "name": _STRING, "versions": {"type": "array", "items": _STRING}, "platform": _STRING,
    "inputs": _tensors("name", "datatype", "shape", name=_STRING, datatype=_DATATYPE,
                       shape={"type": "array", "items": {"type": "integer"}}),
    "outputs": _tensors("name", "datatype", "shape", name=_STRING, datatype=_DATATYPE,
                        shape={"type": "array", "items": {"type": "integer"}})}}
_REQUEST_PARAMETERS = {**PARAMETERS, "properties": {
    "signature_name": {**_STRING, "description": "a SavedModel's signature (default: the served one)"},
    "binary_data_output": _BOOLEAN}}
INFER_REQUEST = {"type": "object", "required": ["inputs"], "properties": {
    "id": _ID, "parameters": _REQUEST_PARAMETERS,
    "inputs": _tensors("name", "datatype", "shape", name=_STRING, datatype=_DATATYPE, shape=_SHAPE,
                       parameters=PARAMETERS, data=_DATA),
    "outputs": {**_tensors("name", name=_STRING, parameters=PARAMETERS), "nullable": True,
                "description": "the outputs to answer (null or absent: all)"}}}
INFER_ANSWER = {"type": "object", "required": ["model_name", "model_version", "outputs"], "properties": {
    "model_name": _STRING, "model_version": _STRING, "id": _ID,
    "outputs": _tensors("name", "datatype", "shape", name=_STRING, datatype=_DATATYPE, shape=_SHAPE,
                        parameters=_ANSWER_PARAMETERS, data=_DATA)}}

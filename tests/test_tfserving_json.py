"""The TensorFlow Serving REST codec (service/protocols/tfserving/) against TF Serving's own shapes.

Test data is quoted from TF Serving's documentation (tensorflow_serving/g3doc/api_rest.md), its unit
tests (tensorflow_serving/util/json_tensor_test.cc, model_servers/http_rest_api_util_test.cc,
http_rest_api_handler_test.cc) and its metadata fixture
(servables/tensorflow/testdata/saved_model_half_plus_two_2_versions_metadata.json).
"""

from __future__ import annotations

import base64
import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from service.protocols.tfserving import (
    error_codes,
    json_examples,
    json_render,
    json_tensor,
    routes,
    signatures,
    version_status,
)
from service.protocols.tfserving.error_codes import TFServingError
from service.protocols.tfserving.signatures import Signature, TensorSpec

ROOT = Path(__file__).resolve().parent.parent


def sig(*inputs: TensorSpec, outputs=()) -> Signature:
    return Signature(inputs=inputs, outputs=outputs)


def error_of(call, *args) -> TFServingError:
    with pytest.raises(TFServingError) as caught:
        call(*args)
    return caught.value


def text(document) -> object:
    """What a client reads: the document through dumps and a NaN-aware JSON parser."""
    return json.loads(json_render.dumps(document))


# --- api_rest.md: row format -----------------------------------------------------------------

def test_doc_row_scalars_one_input():
    # api_rest.md: { // List of 3 scalar tensors.  "instances": [ "foo", "bar", "baz" ] }
    request = json_tensor.parse_predict({"instances": ["foo", "bar", "baz"]}, sig(TensorSpec("x", object)))
    assert request.format == "row"
    assert request.inputs["x"].tolist() == [b"foo", b"bar", b"baz"]
    assert request.batch_size == 3


def test_doc_row_nested_tensors():
    # api_rest.md: { // List of 2 tensors each of [1, 2] shape  "instances": [ [[1, 2]], [[3, 4]] ] }
    request = json_tensor.parse_predict({"instances": [[[1, 2]], [[3, 4]]]},
                                sig(TensorSpec("x", np.int32, (-1, 1, 2))))
    assert request.inputs["x"].shape == (2, 1, 2)
    assert request.inputs["x"].dtype == np.int32
    assert request.inputs["x"].tolist() == [[[1, 2]], [[3, 4]]]


THREE_INPUTS = sig(TensorSpec("tag", object, (-1,)), TensorSpec("signal", np.int32, (-1, 5)),
                   TensorSpec("sensor", np.float32, (-1, 2, 2)))


def test_doc_row_several_named_inputs():
    # api_rest.md's example, with its stray "]" after the second "signal" removed
    document = {
        "instances": [
            {"tag": "foo", "signal": [1, 2, 3, 4, 5], "sensor": [[1, 2], [3, 4]]},
            {"tag": "bar", "signal": [3, 4, 1, 2, 5], "sensor": [[4, 5], [6, 8]]},
        ]
    }
    request = json_tensor.parse_predict(document, THREE_INPUTS)
    assert request.format == "row"
    assert request.inputs["tag"].tolist() == [b"foo", b"bar"]
    assert request.inputs["signal"].tolist() == [[1, 2, 3, 4, 5], [3, 4, 1, 2, 5]]
    assert request.inputs["sensor"].dtype == np.float32
    assert request.inputs["sensor"].tolist() == [[[1, 2], [3, 4]], [[4, 5], [6, 8]]]


def test_doc_columnar_several_named_inputs():
    # api_rest.md: "Columnar representation of the previous example is as follows"
    document = {
        "inputs": {
            "tag": ["foo", "bar"],
            "signal": [[1, 2, 3, 4, 5], [3, 4, 1, 2, 5]],
            "sensor": [[[1, 2], [3, 4]], [[4, 5], [6, 8]]],
        }
    }
    request = json_tensor.parse_predict(document, THREE_INPUTS)
    assert request.format == "columnar"
    assert request.inputs["signal"].shape == (2, 5)
    assert request.inputs["sensor"].shape == (2, 2, 2)
    assert request.batch_size == 2


def test_doc_half_plus_three_predict():
    # api_rest.md: curl -d '{"instances": [1.0,2.0,5.0]}' ... → { "predictions": [3.5, 4.0, 5.5] }
    request = json_tensor.parse_predict({"instances": [1.0, 2.0, 5.0]}, sig(TensorSpec("x", np.float32, (-1,))))
    y = request.inputs["x"] * 0.5 + 3
    answer = json_render.render_predict({"y": y}, request.format)
    assert answer == {"predictions": [3.5, 4.0, 5.5]}
    assert json_render.dumps(answer) == '{"predictions": [3.5, 4.0, 5.5]}'


# --- json_tensor_test.cc: more request forms ---------------------------------------------------

def test_row_single_unnamed_tensor_and_mixed_numbers():
    request = json_tensor.parse_predict({"instances": [[1, 2], [3, 4], [5, 6]]}, sig(TensorSpec("default", np.int32)))
    assert request.inputs["default"].shape == (3, 2)
    floats = json_tensor.parse_predict({"instances": [1, 2.0, 3, 4, 5.003, 0.007, 0.0]},
                               sig(TensorSpec("default", np.float32)))
    assert floats.inputs["default"].dtype == np.float32
    assert floats.inputs["default"].tolist() == pytest.approx([1, 2, 3, 4, 5.003, 0.007, 0])


def test_float_precision_loss_and_overflow_to_infinity():
    # FloatTensorWithPrecisionLoss, FloatTensorThatExceedsMaxReturnsInf
    request = json_tensor.parse_predict({"instances": [1435774380, 1435774380.0, 1.7976931348623157e308]},
                                sig(TensorSpec("default", np.float32)))
    assert request.inputs["default"].tolist() == [1435774336.0, 1435774336.0, math.inf]


def test_row_nan_and_infinity_and_named_objects():
    # MultipleNamedTensor (NaN / Infinity tokens as Python's json reads them)
    document = json.loads("""{"instances": [
        {"int_tensor": [[1,2],[3,4],[5,6]], "str_tensor": ["foo", "bar"],
         "float_tensor": [1.0, NaN], "dbl_tensor": [NaN]},
        {"int_tensor": [[7,8],[9,0],[1,2]], "str_tensor": ["baz", "bat"],
         "float_tensor": [2.0, Infinity], "dbl_tensor": [2.0]}]}""")
    signature = sig(TensorSpec("int_tensor", np.int32), TensorSpec("str_tensor", object),
                    TensorSpec("float_tensor", np.float32), TensorSpec("dbl_tensor", np.float64))
    request = json_tensor.parse_predict(document, signature)
    assert request.inputs["int_tensor"].shape == (2, 3, 2)
    assert request.inputs["str_tensor"].tolist() == [[b"foo", b"bar"], [b"baz", b"bat"]]
    floats = request.inputs["float_tensor"]
    assert floats.shape == (2, 2) and math.isnan(floats[0, 1]) and floats[1, 1] == math.inf
    assert request.inputs["dbl_tensor"].dtype == np.float64


def test_b64_scalars_lists_and_named():
    # SingleUnnamedTensorBase64Scalars / Lists, SingleNamedTensorBase64
    strings = sig(TensorSpec("default", object))
    scalars = json_tensor.parse_predict({"instances": [{"b64": "aGVsbG8="}, {"b64": "d29ybGQ="}]}, strings)
    assert scalars.inputs["default"].tolist() == [b"hello", b"world"]
    lists = json_tensor.parse_predict({"instances": [[{"b64": "aGVsbG8="}], [{"b64": "d29ybGQ="}]]}, strings)
    assert lists.inputs["default"].shape == (2, 1)
    named = json_tensor.parse_predict(
        {"instances": [{"default": [[{"b64": "aGVsbG8="}], [{"b64": "d29ybGQ="}]]}]}, strings)
    assert named.inputs["default"].shape == (1, 2, 1)
    assert named.inputs["default"].ravel().tolist() == [b"hello", b"world"]


def test_b64_binary_round_trip():
    data = bytes(range(256))
    request = json_tensor.parse_predict({"instances": [{"b64": base64.b64encode(data).decode()}]},
                                sig(TensorSpec("image_bytes", object, (-1,))))
    assert request.inputs["image_bytes"][0] == data


def test_columnar_single_input_bare_or_named():
    # SingleUnnamedTensorColumnarFormat
    signature = sig(TensorSpec("int_tensor", np.int32))
    named = json_tensor.parse_predict({"inputs": {"int_tensor": [[[1, 2], [3, 4], [5, 6]]]}}, signature)
    bare = json_tensor.parse_predict({"inputs": [[[1, 2], [3, 4], [5, 6]]]}, signature)
    for request in (named, bare):
        assert request.format == "columnar"
        assert request.inputs["int_tensor"].shape == (1, 3, 2)


def test_columnar_mixed_named_with_b64_scalar():
    # MultipleNamedTensorColumnarFormat: inputs need not share the 0-th dimension
    signature = sig(TensorSpec("int_tensor", np.int32), TensorSpec("str_tensor", object),
                    TensorSpec("bin_tensor", object))
    request = json_tensor.parse_predict({"inputs": {"int_tensor": [[[1, 2], [3, 4], [5, 6]]],
                                            "str_tensor": ["foo", "bar"],
                                            "bin_tensor": {"b64": "aGVsbG8="}}}, signature)
    assert request.inputs["bin_tensor"].shape == ()
    assert request.inputs["bin_tensor"].item() == b"hello"
    assert request.inputs["str_tensor"].tolist() == [b"foo", b"bar"]


def test_signature_name_default_accepted_others_refused():
    signature = sig(TensorSpec("x", np.float32))
    for name in ("serving_default", ""):
        assert json_tensor.parse_predict({"signature_name": name, "instances": [1]}, signature).signature_name \
            == "serving_default"
    error = error_of(json_tensor.parse_predict, {"signature_name": "predict_images", "instances": [[1, 2]]},
                     signature)
    assert error.status == 400
    assert error.message == 'Serving signature name: "predict_images" not found in signature def'
    error = error_of(json_tensor.parse_predict, {"signature_name": 100}, signature)
    assert "'signature_name' key must be a string value." in error.message


# --- errors (json_tensor_test.cc SingleUnnamedTensorErrors, MultipleNamedTensorErrors) --------

INT = sig(TensorSpec("default", np.int32))


@pytest.mark.parametrize("document, expected", [
    ({"instances": [[1, 2], [3, 4], [5, 6, 7]], "inputs": [[1, 2], [3, 4], [5, 6, 7]]},
     "Not formatted correctly"),
    ({"instances": [[1, 2], [3, 4], [5, 6, 7]]}, "Expecting tensor size"),
    ({"instances": [[1, 2], [3, 4], [[5, 6]]]}, "Expecting shape"),
    ({"instances": [1, [1]]}, "Expecting shape"),
    ({"instances": [[1, 2], ["a", "b"]]}, "not of expected type"),
    ({"instances": []}, "No values in 'instances' array"),
    ({"instances": {"x": 1}}, "Expecting 'instances' to be an list/array"),
    ({}, "Missing 'inputs' or 'instances' key"),
    ({"inputs": [[1, 2], [3]]}, "Encountered list at unexpected size: 1 at level: 1 expected size: 2"),
    ({"inputs": [[1, 2], 3]}, "found at incorrect level: 2 in the JSON DOM. Expected at level: 2"),
    ({"inputs": [1, [2]]}, "Encountered list at unexpected level: 1 expected < 1"),
    ({"instances": [1, True]}, "Type: True is not of expected type: int32"),
    ({"instances": [1.5]}, "Type: Number is not of expected type: int32"),
])
def test_single_input_errors(document, expected):
    error = error_of(json_tensor.parse_predict, document, INT)
    assert error.status == 400 and error.code == "INVALID_ARGUMENT"
    assert expected in error.message
    assert error_codes.error_body(error.message) == {"error": error.message}


def test_ragged_rows_message_is_tf_servings():
    error = error_of(json_tensor.parse_predict, {"instances": [[1, 2], [3, 4], [5, 6, 7]]}, INT)
    assert error.message == ("Failed to process element: 2 of 'instances' list. Error: "
                             "INVALID_ARGUMENT: Expecting tensor size: 2 but got: 3")


def test_strings_for_a_float_input():
    # http_rest_api_handler_test.cc PredictRequestErrors: "not of expected type: float"
    error = error_of(json_tensor.parse_predict, {"instances": ["x", "y"]}, sig(TensorSpec("x", np.float32)))
    assert error.message == ("Failed to process element: 0 of 'instances' list. Error: INVALID_ARGUMENT: "
                             'JSON Value: "x" Type: String is not of expected type: float')
    error = error_of(json_tensor.parse_predict, {"inputs": {"b64": "aGVsbG8="}}, sig(TensorSpec("x", np.float32)))
    assert "Type: Object is not of expected type: float" in error.message


TWO = sig(TensorSpec("int_tensor", np.int32), TensorSpec("str_tensor", object))


@pytest.mark.parametrize("instances, expected", [
    ([{"int_tensor": [[1, 2], [3, 4], [5, 6]], "str_tensor": ["foo", "bar"]},
      {"int_tensor": [[[7, 8], [9, 0], [1, 2]]], "str_tensor": ["baz", "bat"]}], "Expecting shape"),
    ([{"int_tensor": [[1, 2], [3, 4], [5, 6], [7, 8]], "str_tensor": ["foo", "bar"]},
      {"int_tensor": [[7, 8], [9, 0], [1, 2]], "str_tensor": ["baz", "bat"]}], "Expecting tensor size"),
    ([{"int_tensor": [[1, 2], [3, 4], [5, 6]], "str_tensor": ["foo", "bar"]}, [1, 20, 30]],
     "Expecting object but got list at item 1"),
    ([[1, 2], [3, 4]], "instances is a plain list, but expecting list of objects"),
    ([{"int_tensor": [1, 2]}], "keys must be equal to: int_tensor,str_tensor"),
    ([{"int_tensor": [1], "str_tensor": ["a"], "extra": [1]}], "does not have named input: extra"),
])
def test_several_inputs_errors(instances, expected):
    error = error_of(json_tensor.parse_predict, {"instances": instances}, TWO)
    assert expected in error.message and error.status == 400


def test_list_after_object_with_one_input():
    error = error_of(json_tensor.parse_predict, {"instances": [["baz", "bar"], {"str_tensor": ["baz", "bat"]}]},
                     sig(TensorSpec("str_tensor", object)))
    assert "Expecting value/list but got object at item 1" in error.message


def test_columnar_errors_and_batch_mismatch():
    error = error_of(json_tensor.parse_predict, {"inputs": [1, 2]}, TWO)
    assert "inputs is a plain value/list, but expecting an object" in error.message
    error = error_of(json_tensor.parse_predict, {"inputs": {"int_tensor": [1]}}, TWO)
    assert error.message == "Missing named input: str_tensor in 'inputs' object."
    batched = sig(TensorSpec("a", np.float32, (-1, 2)), TensorSpec("b", np.float32, (-1,)))
    error = error_of(json_tensor.parse_predict, {"inputs": {"a": [[1, 2], [3, 4]], "b": [1, 2, 3]}}, batched)
    assert "different batch sizes (a: 2, b: 3)" in error.message


def test_shape_checked_against_the_signature():
    image = sig(TensorSpec("input", np.float32, (-1, 2, 2, 3)))
    error = error_of(json_tensor.parse_predict, {"instances": [[[1, 2, 3]]]}, image)
    assert "has shape [1,1,3] but the signature's shape is [-1,2,2,3]" in error.message
    pixel = [[[0.5, 0.5, 0.5]] * 2] * 2
    assert json_tensor.parse_predict({"instances": [pixel, pixel]}, image).inputs["input"].shape == (2, 2, 2, 3)


def test_bad_base64_and_b64_object_shape():
    strings = sig(TensorSpec("s", object))
    assert error_of(json_tensor.parse_predict, {"instances": [{"b64": "!!!"}]}, strings).message.endswith(
        "Unable to base64 decode")
    error = error_of(json_tensor.parse_predict, {"inputs": [{"b64": "aGk=", "x": 1}]}, strings)
    assert "not formatted correctly for base64 data" in error.message


def test_images_input_takes_encoded_images_or_tensors():
    spec = TensorSpec("input", np.float32, (-1, 2, 2, 3), images=True)
    jpeg = b"\xff\xd8\xff\xe0 not really"
    b64 = {"b64": base64.b64encode(jpeg).decode()}
    row = json_tensor.parse_predict({"instances": [b64, b64]}, sig(spec))
    assert row.inputs["input"] == [jpeg, jpeg] and row.images == {"input"} and row.batch_size == 2
    columnar = json_tensor.parse_predict({"inputs": b64}, sig(spec))
    assert columnar.inputs["input"] == [jpeg] and columnar.format == "columnar"
    pixel = [[[0.5, 0.5, 0.5]] * 2] * 2
    tensors = json_tensor.parse_predict({"instances": [pixel]}, sig(spec))
    assert tensors.images == frozenset() and tensors.inputs["input"].shape == (1, 2, 2, 3)
    error = error_of(json_tensor.parse_predict, {"instances": [b64, pixel]}, sig(spec))
    assert "every instance must be" in error.message


def test_unsupported_input_dtype_is_unimplemented():
    # columnar: TF's Unimplemented (501); row form wraps it in INVALID_ARGUMENT, as TF does
    error = error_of(json_tensor.parse_predict, {"inputs": [1.0]}, sig(TensorSpec("x", np.float16)))
    assert error.code == "UNIMPLEMENTED" and error.status == 501
    assert error.message == "Conversion of JSON Value: 1.0 to type: half"
    error = error_of(json_tensor.parse_predict, {"instances": [1.0]}, sig(TensorSpec("x", np.float16)))
    assert error.status == 400 and "Error: UNIMPLEMENTED: Conversion of JSON Value" in error.message


# --- responses (json_tensor_test.cc FromJson*) --------------------------------------------------

INT_TENSOR = np.array([[[1, 2], [3, 4], [5, 6]], [[7, 8], [9, 0], [1, 2]]], dtype=np.int32)


def test_single_output_row_and_columnar():
    # FromJsonSingleTensor
    assert json_render.render_predict({"int_tensor": INT_TENSOR}, "row") == {
        "predictions": [[[1, 2], [3, 4], [5, 6]], [[7, 8], [9, 0], [1, 2]]]}
    assert json_render.render_predict({"int_tensor": INT_TENSOR}, "columnar") == {
        "outputs": [[[1, 2], [3, 4], [5, 6]], [[7, 8], [9, 0], [1, 2]]]}
    # FromJsonSingleScalarTensor
    five = np.arange(1, 6, dtype=np.int32)
    assert json_render.render_predict({"int_tensor": five}, "row") == {"predictions": [1, 2, 3, 4, 5]}
    assert json_render.render_predict({"int_tensor": five}, "columnar") == {"outputs": [1, 2, 3, 4, 5]}


def test_bytes_outputs_by_name_suffix():
    # FromJsonSingleBytesTensor: DT_STRING named *_bytes is {"b64": ...}; other strings are text
    strings = np.array([[b"hello", b"world"], [b"tf", b"serving"]], dtype=object)
    assert json_render.render_predict({"str_tensor_bytes": strings}, "row") == {"predictions": [
        [{"b64": "aGVsbG8="}, {"b64": "d29ybGQ="}], [{"b64": "dGY="}, {"b64": "c2VydmluZw=="}]]}
    assert json_render.render_predict({"str_tensor": strings}, "row") == {
        "predictions": [["hello", "world"], ["tf", "serving"]]}


def test_several_outputs_row_and_columnar():
    # FromJsonMultipleNamedTensors
    outputs = {
        "int_tensor": INT_TENSOR,
        "str_tensor": np.array([[b"foo", b"bar"], [b"baz", b"bat"]], dtype=object),
        "float_tensor": np.array([[1.0], [2.0]], dtype=np.float32),
        "double_scalar_tensor": np.array([8.0, 9.0]),
        "str_tensor_bytes": np.array([[b"hello", b"world"], [b"tf", b"serving"]], dtype=object),
    }
    assert text(json_render.render_predict(outputs, "row")) == {"predictions": [
        {"double_scalar_tensor": 8.0, "float_tensor": [1.0], "int_tensor": [[1, 2], [3, 4], [5, 6]],
         "str_tensor": ["foo", "bar"], "str_tensor_bytes": [{"b64": "aGVsbG8="}, {"b64": "d29ybGQ="}]},
        {"double_scalar_tensor": 9.0, "float_tensor": [2.0], "int_tensor": [[7, 8], [9, 0], [1, 2]],
         "str_tensor": ["baz", "bat"], "str_tensor_bytes": [{"b64": "dGY="}, {"b64": "c2VydmluZw=="}]},
    ]}
    assert text(json_render.render_predict(outputs, "columnar")) == {"outputs": {
        "double_scalar_tensor": [8.0, 9.0],
        "float_tensor": [[1.0], [2.0]],
        "int_tensor": [[[1, 2], [3, 4], [5, 6]], [[7, 8], [9, 0], [1, 2]]],
        "str_tensor": [["foo", "bar"], ["baz", "bat"]],
        "str_tensor_bytes": [[{"b64": "aGVsbG8="}, {"b64": "d29ybGQ="}],
                             [{"b64": "dGY="}, {"b64": "c2VydmluZw=="}]],
    }}


def test_float_text_is_tf_servings():
    # FromJsonSingleFloatTensorSixDigitPrecision and ...NonFinite
    six = np.array([[9000000, 999999, 0.50000], [.0003, .00003, 555557.5]], dtype=np.float32)
    assert json_render.dumps(json_render.render_predict({"float_tensor": six}, "row")) == \
        '{"predictions": [[9e+06, 999999.0, 0.5], [0.0003, 3e-05, 555557.5]]}'
    odd = np.array([[np.nan, np.inf], [3, -np.inf]], dtype=np.float32)
    assert json_render.dumps(json_render.render_predict({"float_tensor": odd}, "row")) == \
        '{"predictions": [[NaN, Infinity], [3.0, -Infinity]]}'
    # float32 0.2 is 0.2 (no float64 noise); values "%g" cannot carry get max_digits10
    assert json_render.format_float(np.float32(0.2)) == "0.2"
    assert json_render.format_float(np.float32(0.123456789)) == "0.123456791"
    assert json_render.format_float(0.1 + 0.2, np.float64) == "0.30000000000000004"
    assert json_render.format_float(-0.0) == "-0.0"
    # and the values are the same through the standard library's json
    floats = json_render.render_predict({"y": np.array([0.2, 0.123456789], dtype=np.float32)}, "row")
    assert json.loads(json.dumps(floats)) == {"predictions": [0.2, 0.123456791]}


def test_render_errors():
    assert "empty tensor map" in error_of(json_render.render_predict, {}, "row").message
    assert "no shape information" in error_of(
        json_render.render_predict, {"tensor": np.array(1, dtype=np.int32)}, "row").message
    error = error_of(json_render.render_predict, {"int_tensor": np.zeros((2, 3), np.int32),
                                          "str_tensor": np.array([[b"foo", b"bar", b"baz"]], object)}, "row")
    assert "inconsistent batch size" in error.message
    error = error_of(json_render.render_predict, {"tensor": np.array([1 + 2j], np.complex64)}, "row")
    assert "tensor type: complex64" in error.message


def test_zero_batch():
    # FromJsonSingleZeroBatchTensor, FromJsonMultipleZeroBatchTensors
    assert json_render.render_predict({"int_tensor": np.zeros((0, 2), np.int32)}, "row") == {"predictions": []}
    assert json_render.render_predict({"str_tensor": np.zeros((0, 1, 2), object),
                               "float_tensor": np.zeros((0, 3, 4), np.float32)}, "row") == {"predictions": []}


# --- classify --------------------------------------------------------------------------------

def test_doc_classify_request_with_b64():
    # api_rest.md "Encoding binary values" (its signature_name swapped for the default one)
    examples = json_examples.parse_classify({
        "examples": [
            {"image": {"b64": "aW1hZ2UgYnl0ZXM="}, "caption": "seaside"},
            {"image": {"b64": "YXdlc29tZSBpbWFnZSBieXRlcw=="}, "caption": "mountains"},
        ]
    })
    assert examples == [{"image": [b"image bytes"], "caption": [b"seaside"]},
                        {"image": [b"awesome image bytes"], "caption": [b"mountains"]}]


def test_classify_context_and_kinds():
    # json_tensor_test.cc RequestWithContextAndSignature (default signature)
    examples = json_examples.parse_classify(json.loads("""{
      "context": {"query": "pizza", "location": ["sfo"]},
      "examples": [
        {"names": ["foo", "bar"], "ratings": [8.0, 9.0, NaN, Infinity], "age": 20},
        {"names": ["baz", {"b64": "aGVsbG8="}], "ratings": 6.0, "intboolmix": [1, true, false]},
        {"names": "bar", "ratings": -Infinity}
      ]}"""))
    assert examples[0]["query"] == [b"pizza"] and examples[2]["location"] == [b"sfo"]
    assert examples[0]["age"] == [20]
    assert examples[1] == {"query": [b"pizza"], "location": [b"sfo"], "names": [b"baz", b"hello"],
                           "ratings": [6.0], "intboolmix": [1, 1, 0]}
    assert examples[2]["ratings"] == [-math.inf]
    # an example's own feature wins over the context's (later map entry wins in the merged proto)
    assert json_examples.parse_classify({"context": {"a": 1}, "examples": [{"a": 2}]}) == [{"a": [2]}]


@pytest.mark.parametrize("document, expected", [
    ({"signature_name": ["hello"], "examples": [{"names": ["foo", "bar"]}]},
     "'signature_name' key must be a string"),
    ({"context": [{"names": ["foo", "bar"]}]}, "Example must be JSON object"),
    ({"examples": {"names": ["foo", "bar"]}}, "list/array"),
    ({"examples": [[{"names": ["foo", "bar"]}]]}, "Example must be JSON object"),
    ({"examples": [{"names": [10, None]}]}, "names has element with unexpected JSON type: Null"),
    ({"examples": [{"names": [10, 10.0]}]}, "feature: names expecting type: int64"),
    ({"examples": [{"names": [10, {"test": 10}]}]}, "names has element with unexpected JSON type: Object"),
    ({"examples": [{"names": [[10], 20]}]}, "names has element with unexpected JSON type: Array"),
    ({"examples": [{"names": [20, 18446744073709551603]}]}, "Only int64_t is supported"),
    ({"examples": []}, "'examples' value is an empty array"),
    ({"instances": [1]}, "key 'examples' is expected and was not found"),
    ({"signature_name": "classify_objects", "examples": [{"x": 1}]},
     "No signature was found with the name: classify_objects"),
])
def test_classify_errors(document, expected):
    error = error_of(json_examples.parse_classify, document)
    assert expected in error.message and error.status == 400


def test_classify_results():
    # json_tensor_test.cc JsonFromClassificationResult: "results", not the doc's "result"
    answer = json_examples.render_classify([[("car", 0.2), ("bike", 0.7), ("bus", 0.1)],
                                  [("car", 0.7), ("bike", 0.1), ("bus", 0.2)]])
    assert answer == {"results": [[["car", 0.2], ["bike", 0.7], ["bus", 0.1]],
                                  [["car", 0.7], ["bike", 0.1], ["bus", 0.2]]]}
    assert json_render.dumps(answer).startswith('{"results": [[["car", 0.2], ["bike", 0.7]')
    assert "empty ClassificationResults" in error_of(json_examples.render_classify, []).message


# --- status and metadata ---------------------------------------------------------------------

def test_doc_status_document():
    # api_rest.md: curl http://localhost:8501/v1/models/saved_model_half_plus_three
    assert version_status.status_document([(123, "AVAILABLE")]) == {
        "model_version_status": [
            {"version": "123", "state": "AVAILABLE", "status": {"error_code": "OK", "error_message": ""}}
        ]
    }


def test_status_newest_first_states_and_failures():
    import enum

    class State(enum.Enum):
        LOADING = 20
        AVAILABLE = 30

    document = version_status.status_document([
        version_status.VersionStatus(1, State.AVAILABLE),
        {"version": 3, "state": "END", "error_code": "INVALID_ARGUMENT",
         "error_message": "labels do not match the output width"},
        (2, State.LOADING),
        (4, "end", None, "corrupt graph"),
    ])
    assert [e["version"] for e in document["model_version_status"]] == ["4", "3", "2", "1"]
    assert document["model_version_status"][0] == {
        "version": "4", "state": "END", "status": {"error_code": "UNKNOWN", "error_message": "corrupt graph"}}
    assert document["model_version_status"][1]["status"] == {
        "error_code": "INVALID_ARGUMENT", "error_message": "labels do not match the output width"}
    assert document["model_version_status"][2]["state"] == "LOADING"
    with pytest.raises(ValueError):
        version_status.status_document([(1, "READY")])


def test_metadata_matches_tf_servings_fixture():
    # saved_model_half_plus_two_2_versions_metadata.json, its "serving_default" signature
    half_plus_two = Signature(inputs=[TensorSpec("x", np.float32, (-1, 1), tensor="x:0")],
                              outputs=[TensorSpec("y", np.float32, (-1, 1), tensor="y:0")])
    dim = [{"size": "-1", "name": ""}, {"size": "1", "name": ""}]
    expected = {
        "model_spec": {"name": "saved_model_half_plus_two_2_versions", "signature_name": "", "version": "123"},
        "metadata": {"signature_def": {"signature_def": {"serving_default": {
            "inputs": {"x": {"dtype": "DT_FLOAT", "tensor_shape": {"dim": dim, "unknown_rank": False},
                             "name": "x:0"}},
            "outputs": {"y": {"dtype": "DT_FLOAT", "tensor_shape": {"dim": dim, "unknown_rank": False},
                              "name": "y:0"}},
            "method_name": "tensorflow/serving/predict",
            "defaults": {},
        }}}},
    }
    assert signatures.metadata_document("saved_model_half_plus_two_2_versions", 123, half_plus_two) == expected


def test_metadata_unknown_rank_and_dtypes():
    # the fixture's classify_x_to_y input: {"dtype": "DT_STRING", "tensor_shape": {"dim": [], "unknown_rank": true}}
    spec = TensorSpec("inputs", object, None, tensor="tf_example:0")
    info = signatures.signature_def(Signature(inputs=[spec]))["inputs"]["inputs"]
    assert info == {"dtype": "DT_STRING", "tensor_shape": {"dim": [], "unknown_rank": True},
                    "name": "tf_example:0"}
    assert [signatures.dtype_enum(d) for d in (np.float64, np.int64, np.uint8, bool, bytes, str)] == [
        "DT_DOUBLE", "DT_INT64", "DT_UINT8", "DT_BOOL", "DT_STRING", "DT_STRING"]


# --- routes (http_rest_api_util_test.cc, http_rest_api_handler_test.cc) ------------------------

RESERVED = "%21%23%24%25%26%27%28%29%2A%2B%2C%2F%3A%3B%3D%3F%40%5B%5D"


@pytest.mark.parametrize("method, path, expected", [
    ("GET", "/v1/models/modelname" + RESERVED, ("modelname!#$%&'()*+,/:;=?@[]", None, None, None)),
    ("GET", "/v1/models/modelname/versions/99", ("modelname", 99, None, None)),
    ("GET", "/v1/models/modelname/labels/latest", ("modelname", None, "latest", None)),
    ("GET", "/v1/models/modelname/labels/latest" + RESERVED, ("modelname", None, "latest!#$%&'()*+,/:;=?@[]", None)),
    ("GET", "/v1/models/modelname/labels/latest/metadata", ("modelname", None, "latest", "metadata")),
    ("GET", "/v1/models/color/metadata", ("color", None, None, "metadata")),
    ("POST", "/v1/models/modelname" + RESERVED + ":predict", ("modelname!#$%&'()*+,/:;=?@[]", None, None, "predict")),
    ("POST", "/v1/models/modelname/versions/99:predict", ("modelname", 99, None, "predict")),
    ("POST", "/v1/models/modelname/labels/latest:classify", ("modelname", None, "latest", "classify")),
    ("POST", "/v1/models/m:regress", ("m", None, None, "regress")),
    ("POST", "/V1/MODELS/Color/VERSIONS/2:PREDICT", ("Color", 2, None, "predict")),
    (None, "/v1/models/color/labels/stable:predict", ("color", None, "stable", "predict")),
    (None, "/v1/models/color/versions/2", ("color", 2, None, None)),
])
def test_routes(method, path, expected):
    assert tuple(routes.parse_model_path(path, method)) == expected


@pytest.mark.parametrize("method, path, expected", [
    ("GET", "/v1/foo", "Malformed request: GET /v1/foo"),
    ("POST", "/v1/foo", "Malformed request"),
    ("GET", "/v1/models", "Missing model name in request."),
    ("GET", "/v1/models/debug/model_name", "Malformed request"),
    ("POST", "/v1/models", "Malformed request"),
    ("GET", "/v1/models/foo:predict", "Malformed request"),
    ("GET", "/v1/models/foo/version/50:predict", "Malformed request"),
    ("POST", "/v1/models/foo/version/50:regress", "Malformed request"),
    ("POST", "/v1/models/foo/versions/HELLO:regress", "Malformed request"),
    ("POST", "/v1/models/foo/metadata", "Malformed request"),
    ("POST", "/v1/models/foo/label/some_label:regress", "Malformed request"),
    ("POST", "/v1/models/foo/versions/18446744073709551615:regress", "Failed to convert version"),
    ("POST", "/v1/models/foo/versions/50/labels/some_label:regress",
     "Both model version (50) and model version label (some_label) cannot be supplied."),
    ("GET", "/v1/models/foo/versions/50/labels/some_label", "cannot be supplied"),
    ("PUT", "/v1/models/foo:predict", "Malformed request: PUT"),
])
def test_route_errors(method, path, expected):
    error = error_of(routes.parse_model_path, path, method)
    assert error.status == 400 and expected in error.message


# --- bodies, errors, statuses ----------------------------------------------------------------

def test_parse_json_as_tf_serving():
    assert error_of(json_tensor.parse_json, b"").message == "JSON Parse error: The document is empty"
    assert error_of(json_tensor.parse_json, b"instances = [1, 2]").message.startswith(
        "JSON Parse error: Invalid value")
    assert "Is not object" in error_of(json_tensor.parse_json, b"[1]").message
    document = json_tensor.parse_json(b'{"instances": [NaN, Infinity, -Infinity]}X')  # rest ignored, as in TF
    assert math.isnan(document["instances"][0]) and document["instances"][2] == -math.inf


def test_error_statuses_follow_tf_serving():
    # api_rest.md: 404 with { "error": "Servable not found for request: Latest(half)" }
    error = error_codes.servable_not_found("half")
    assert (error.status, error.body()) == (404, {"error": "Servable not found for request: Latest(half)"})
    assert error_codes.servable_not_found("color", 3).message == "Servable not found for request: Specific(color, 3)"
    assert {code: error_codes.HTTP_STATUS[code] for code in (
        "INVALID_ARGUMENT", "NOT_FOUND", "RESOURCE_EXHAUSTED", "UNAVAILABLE", "DEADLINE_EXCEEDED",
        "UNAUTHENTICATED")} == {"INVALID_ARGUMENT": 400, "NOT_FOUND": 404, "RESOURCE_EXHAUSTED": 429,
                                "UNAVAILABLE": 503, "DEADLINE_EXCEEDED": 504, "UNAUTHENTICATED": 401}

    class Overloaded(Exception):
        code, message, retry_after = "overloaded", "the inference queue is full", 1.5

    mapped = TFServingError.from_pinpoint(Overloaded())
    assert (mapped.code, mapped.status, mapped.retry_after) == ("UNAVAILABLE", 503, 1.5)
    assert TFServingError.from_pinpoint(type("E", (), {"code": "rate_limited", "message": "slow down"})()).status == 429


def test_importable_without_tensorflow():
    code = ("import sys; from service.protocols.tfserving import error_codes, json_examples, json_render, "
            "json_tensor, routes, signatures, version_status; "
            "assert 'tensorflow' not in sys.modules and 'cherrypy' not in sys.modules")
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True)

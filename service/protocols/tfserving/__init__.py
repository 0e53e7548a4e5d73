"""TensorFlow Serving's API as a protocol over Pinpoint's models: its rules, one module per concern (what
TF Serving keeps in http_rest_api_util.cc, util/json_tensor.cc and its servables' impls), shared by the
REST edge (service/http/api/tfserving.py) and gRPC (service/grpc/server.py). No HTTP, no TensorFlow.

- routes.py: the REST paths;  error_codes.py: TF's error codes, their HTTP statuses, TF Serving's messages
- signatures.py: dtypes, signatures and the metadata document;  version_status.py: the status document
- json_tensor.py: a :predict body -> tensors;  json_render.py: tensors -> JSON with TF Serving's number text
- json_examples.py: a :classify body -> tf.Examples, and its answer
- calls.py: status, metadata and Classify over the engine, and where Predict runs (service/serving/model_run.py;
  the tensors in and out: service/protocols/model_input.py)
"""

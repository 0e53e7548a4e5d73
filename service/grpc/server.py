"""gRPC on `grpc_port` (off by default): TensorFlow Serving's PredictionService (Predict, Classify,
GetModelMetadata) and ModelService (GetModelStatus), and the Open Inference Protocol's
GRPCInferenceService (ServerLive, ServerReady, ModelReady, ModelMetadata, ModelInfer).

Every call goes through what REST uses: the same API keys (metadata `x-api-key`, or `authorization:
Bearer KEY`) and rate-limit buckets (the HTTP guard's own object, so a reload reaches both), the same
calls (service/protocols/tfserving/calls.py, service/protocols/model_input.py) and model runs
(service/serving/model_run.py: lease, retry after a swap, probabilities), hence the same manager, batching
and runtime queue; the call's gRPC deadline becomes ours (never beyond `deadline_ms`); the largest
message is `max_body_bytes`; and each call is counted in the HTTP metrics (route `grpc:<method>`,
method `GRPC`, status the gRPC code).

In one process (workers = 0) the server runs beside CherryPy; with API workers, every worker runs one
on the same port with SO_REUSEPORT and the kernel spreads the connections by a hash of the client's
address (grpcio accepts in C: the HTTP workers' even share, service/processes/connection_share.py, is
not consulted). Protos: service/grpc/protos.py.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from concurrent import futures

import grpc
import numpy as np
import structlog
from google.protobuf import json_format

from service.config import Settings
from service.engine import Engine
from service.errors import PinpointError
from service.grpc import protos
from service.http.protection import _presented_key
from service.processes import supervisor as processes
from service.protocols import model_input, named_tensors, oip
from service.protocols.tfserving import calls as tfserving_calls
from service.protocols.tfserving import signatures
from service.protocols.tfserving.error_codes import TFServingError
from service.serving.manager import ModelRef

log = structlog.get_logger("pinpoint.grpc")

# numpy <-> TF DataType numbers (types.proto) and the TensorProto field holding each.
_TF_DTYPES = {1: np.float32, 2: np.float64, 3: np.int32, 4: np.uint8, 5: np.int16, 6: np.int8, 7: np.object_,
              9: np.int64, 10: np.bool_, 17: np.uint16, 19: np.float16, 22: np.uint32, 23: np.uint64}
_TF_FIELDS = {1: "float_val", 2: "double_val", 3: "int_val", 4: "int_val", 5: "int_val", 6: "int_val",
              7: "string_val", 9: "int64_val", 10: "bool_val", 17: "int_val", 19: "half_val",
              22: "uint32_val", 23: "uint64_val"}
_TF_NUMBERS = {np.dtype(dtype): number for number, dtype in _TF_DTYPES.items() if dtype is not np.object_}


class Refused(Exception):
    def __init__(self, code: grpc.StatusCode, message: str):
        super().__init__(message)
        self.code, self.message = code, message


class Calls:
    """What every call shares: the engine, the HTTP guard (keys, buckets, settings) and the metrics."""

    def __init__(self, engine: Engine, guard, metrics):
        self.engine, self.guard, self.metrics = engine, guard, metrics

    def admit(self, context: grpc.ServicerContext) -> float:
        """Auth and rate limit, then the deadline in ms for this call."""
        settings = self.guard.settings
        metadata = {key.lower(): value for key, value in context.invocation_metadata()}
        key_name = None
        if self.guard.key_digests:
            secret = _presented_key({"Authorization": metadata.get("authorization", ""),
                                     "X-API-Key": metadata.get("x-api-key")})
            digest = hashlib.sha256(secret.encode("utf-8", "surrogateescape")).digest() if secret else b""
            key_name = next((name for known, name in self.guard.key_digests.items()
                             if hmac.compare_digest(digest, known)), None)
            if key_name is None:
                raise Refused(grpc.StatusCode.UNAUTHENTICATED, "a valid API key is required "
                              "(metadata authorization: Bearer KEY, or x-api-key)")
        if settings.rate_limit_per_s > 0:
            rate, burst = settings.rate_limit_per_s, settings.rate_limit_burst
            if key_name is not None:
                rate, burst = settings.rate_limit_keys.get(key_name, (rate, burst))
                client = f"key:{key_name}"
            else:
                client = f"ip:{_peer_ip(context.peer())}"
            decision = self.guard.buckets.take(client, rate, burst)
            if not decision.allowed:
                if self.guard.on_refused is not None:
                    self.guard.on_refused()
                raise Refused(grpc.StatusCode.RESOURCE_EXHAUSTED,
                              f"rate limit exceeded: {rate:g} requests/s, bursts of {burst}; "
                              f"retry after {decision.retry_after_s:.2f} s")
        deadline_ms = self.engine.settings.deadline_ms
        remaining = context.time_remaining()
        if remaining is not None:
            if remaining <= 0:
                raise Refused(grpc.StatusCode.DEADLINE_EXCEEDED, "the call's deadline has passed")
            deadline_ms = min(deadline_ms, remaining * 1000)
        return deadline_ms

    def wrap(self, name: str, handler, guarded: bool = True):
        """A unary handler with auth, limits, the deadline, errors as gRPC statuses, and metrics."""
        route = f"grpc:{name}"

        def call(request, context):
            started = time.perf_counter()
            code = "OK"
            if self.metrics is not None:
                self.metrics.in_flight.inc()
            try:
                deadline_ms = self.admit(context) if guarded else self.engine.settings.deadline_ms
                return handler(request, context, deadline_ms)
            except Refused as error:
                code = error.code.name
                context.abort(error.code, error.message)
            except oip.OIPError as error:
                code = error.grpc_code
                context.abort(grpc.StatusCode[code], error.message)
            except (TFServingError, PinpointError) as error:
                if isinstance(error, PinpointError):
                    error = TFServingError.from_pinpoint(error)
                code = error.code if error.code in grpc.StatusCode.__members__ else "UNKNOWN"
                context.abort(grpc.StatusCode[code], error.message)
            except Exception:  # noqa: BLE001 - a call never takes the server down
                code = "INTERNAL"
                log.exception("grpc_call_failed", method=name)
                context.abort(grpc.StatusCode.INTERNAL, "internal error")
            finally:
                if self.metrics is not None:
                    self.metrics.in_flight.dec()
                    self.metrics.requests.labels(route, "GRPC", code).inc()
                    self.metrics.latency.labels(route).observe(time.perf_counter() - started)

        return call


def _peer_ip(peer: str) -> str:
    """'ipv4:127.0.0.1:5000' / 'ipv6:[::1]:5000' -> the address."""
    kind, _, rest = peer.partition(":")
    if kind == "ipv6":
        return rest.rsplit(":", 1)[0].strip("[]")
    return rest.rsplit(":", 1)[0] if kind == "ipv4" else peer


# ---- TensorFlow Serving ----

def _ref(spec) -> ModelRef:
    if not spec.name:
        raise TFServingError("Missing ModelSpec", "INVALID_ARGUMENT")
    if spec.HasField("version") and spec.version_label:
        raise TFServingError(f"Both model version ({spec.version.value}) and model version label "
                             f"({spec.version_label}) cannot be supplied.")
    version = spec.version.value if spec.HasField("version") else None
    return ModelRef(spec.name, version, spec.version_label or None)


_SIGNATURE_MISSING = 'Serving signature key "{name}" not found.'


def _signature_name(spec, served: str = signatures.SERVING_DEFAULT) -> None:
    if spec.signature_name not in ("", signatures.SERVING_DEFAULT, served):
        raise TFServingError(_SIGNATURE_MISSING.format(name=spec.signature_name))


def to_ndarray(tensor) -> np.ndarray:
    """A TensorProto as numpy (what tf.make_ndarray does), without TensorFlow."""
    dtype = _TF_DTYPES.get(tensor.dtype)
    if dtype is None:
        raise TFServingError(f"tensor dtype {tensor.dtype} is not supported")
    shape = [d.size for d in tensor.tensor_shape.dim]
    count = int(np.prod(shape)) if shape else 1
    if dtype is np.object_:
        values = np.empty(len(tensor.string_val), dtype=object)
        values[:] = list(tensor.string_val)
    elif tensor.tensor_content:
        values = np.frombuffer(tensor.tensor_content, dtype=np.dtype(dtype).newbyteorder("<"))
    else:
        raw = getattr(tensor, _TF_FIELDS[tensor.dtype])
        values = (np.array(raw, dtype=np.uint16).view(np.float16) if tensor.dtype == 19
                  else np.array(raw, dtype=dtype))
    if values.size == count:
        return values.reshape(shape)
    if values.size == 1:  # one value stands for all (make_tensor_proto of a scalar)
        return np.full(shape, values[0], dtype=values.dtype)
    raise TFServingError(f"tensor of shape {shape} holds {values.size} values")


def to_tensor_proto(array: np.ndarray, pb):
    """A numpy array as a TensorProto (what tf.make_tensor_proto does): its bytes in tensor_content,
    DT_STRING values in string_val."""
    array = np.asarray(array)
    if array.dtype.kind in "OSU":
        proto = pb.tensor.TensorProto(dtype=7)
        proto.string_val.extend(v.encode() if isinstance(v, str) else bytes(v) for v in array.ravel())
    else:
        number = _TF_NUMBERS.get(array.dtype)
        if number is None:
            raise TFServingError(f"an output of dtype {array.dtype} cannot be answered", "INTERNAL")
        content = array.astype(array.dtype.newbyteorder("<")).tobytes()
        proto = pb.tensor.TensorProto(dtype=number, tensor_content=content)
    proto.tensor_shape.dim.extend(pb.shape.TensorShapeProto.Dim(size=d) for d in array.shape)
    return proto


def add_tfserving(server: grpc.Server, calls: Calls) -> None:
    pb = protos.tfserving()
    engine = calls.engine

    def model_spec(response_spec, name, version, signature_name=""):
        response_spec.name = name
        response_spec.version.value = int(version)
        response_spec.signature_name = signature_name

    def predict(request, context, deadline_ms):
        def run(models):
            version = models.version
            signature = named_tensors.find(version, request.model_spec.signature_name, _SIGNATURE_MISSING)
            if named_tensors.wanted(version, signature):  # a SavedModel's named tensors, any of its signatures
                inputs = {alias: to_ndarray(tensor) for alias, tensor in request.inputs.items()}
                outputs = named_tensors.run(models, signature, inputs, list(request.output_filter))
                response = pb.predict.PredictResponse()
                model_spec(response.model_spec, version.name, version.version, signature.name)
                for alias, value in outputs.items():
                    response.outputs[alias].CopyFrom(to_tensor_proto(value, pb))
                return response
            feed, fetch = signatures.aliases(version)
            names = set(request.inputs)
            if names != {feed}:
                raise TFServingError(f"input tensor alias not found in signature: "
                                     f"{', '.join(sorted(names - {feed})) or '(none given)'}. "
                                     f"Inputs expected to be in the set {{{feed}}}.")
            value = to_ndarray(request.inputs[feed])
            spec = signature.inputs[0]
            images = value.dtype == object and spec.dtype != np.dtype(object)
            if images:
                if value.ndim != 1:
                    raise TFServingError("a DT_STRING 'input' is a list of encoded images: shape [N]")
                value = [bytes(v) for v in value]
            elif value.dtype != spec.dtype:
                raise TFServingError(f"Expects arg[0] to be {signatures.dtype_name(spec.dtype)} but "
                                     f"{signatures.dtype_name(value.dtype)} is provided")
            elif spec.shape is not None and (value.ndim != len(spec.shape) or any(
                    want >= 0 and got != want for got, want in zip(value.shape[1:], spec.shape[1:]))):
                raise TFServingError(f"input has shape {list(value.shape)}; the signature takes "
                                     f"{list(spec.shape)}")
            scores = model_input.predict(engine, models, value, images)
            response = pb.predict.PredictResponse()
            model_spec(response.model_spec, version.name, version.version, signature.name)
            wanted = list(request.output_filter) or [fetch]
            for name in wanted:
                if name != fetch:
                    raise TFServingError(f"output tensor alias not found in signature: {name} "
                                         f"Outputs expected to be in the set {{{fetch}}}.")
            response.outputs[fetch].CopyFrom(to_tensor_proto(np.asarray(scores, np.float32), pb))
            return response

        return tfserving_calls.served(engine, _ref(request.model_spec), run, deadline_ms)

    def classify(request, context, deadline_ms):
        ref = _ref(request.model_spec)
        _signature_name(request.model_spec)
        kind = request.input.WhichOneof("kind")
        if kind == "example_list":
            examples, context_features = request.input.example_list.examples, {}
        elif kind == "example_list_with_context":
            examples = request.input.example_list_with_context.examples
            context_features = _features(request.input.example_list_with_context.context)
        else:
            raise TFServingError("Input is empty")
        if not examples:
            raise TFServingError("Input is empty")
        parsed = [{**context_features, **_features(example)} for example in examples]

        def run(models):
            results = tfserving_calls.classify(engine, models, parsed)
            response = pb.classification.ClassificationResponse()
            model_spec(response.model_spec, models.version.name, models.version.version, signatures.SERVING_DEFAULT)
            for classes in results:
                entry = response.result.classifications.add()
                for label, score in classes:
                    entry.classes.add(label=label, score=float(np.float32(score)))
            return response

        return tfserving_calls.served(engine, ref, run, deadline_ms)

    def metadata(request, context, deadline_ms):
        ref = _ref(request.model_spec)
        fields = list(request.metadata_field)
        if fields != ["signature_def"]:
            raise TFServingError("Metadata field signature_def is the only one supported"
                                 if fields else "GetModelMetadataRequest must specify at least one metadata_field")
        document = tfserving_calls.metadata(engine, ref)
        response = pb.metadata.GetModelMetadataResponse()
        model_spec(response.model_spec, ref.name, int(document["model_spec"]["version"]))
        signatures = json_format.ParseDict(document["metadata"]["signature_def"], pb.metadata.SignatureDefMap())
        response.metadata["signature_def"].Pack(signatures)
        return response

    def status(request, context, deadline_ms):
        ref = _ref(request.model_spec)
        document = tfserving_calls.status(engine, ref)
        return json_format.ParseDict(document, pb.status.GetModelStatusResponse())

    prediction = {"Predict": (predict, pb.predict.PredictRequest, pb.predict.PredictResponse),
                  "Classify": (classify, pb.classification.ClassificationRequest,
                               pb.classification.ClassificationResponse),
                  "GetModelMetadata": (metadata, pb.metadata.GetModelMetadataRequest,
                                       pb.metadata.GetModelMetadataResponse)}
    _add(server, calls, "tensorflow.serving.PredictionService", prediction)
    _add(server, calls, "tensorflow.serving.ModelService",
         {"GetModelStatus": (status, pb.status.GetModelStatusRequest, pb.status.GetModelStatusResponse)})


def _features(example) -> dict[str, list]:
    out = {}
    for name, feature in example.features.feature.items():
        kind = feature.WhichOneof("kind")
        if kind == "bytes_list":
            out[name] = list(feature.bytes_list.value)
        elif kind == "float_list":
            out[name] = list(feature.float_list.value)
        elif kind == "int64_list":
            out[name] = list(feature.int64_list.value)
        else:
            out[name] = []
    return out


def _add(server: grpc.Server, calls: Calls, service: str, methods: dict, unguarded=()) -> None:
    handlers = {
        method: grpc.unary_unary_rpc_method_handler(
            calls.wrap(f"/{service}/{method}", handler, guarded=method not in unguarded),
            request_deserializer=request_type.FromString, response_serializer=response_type.SerializeToString)
        for method, (handler, request_type, response_type) in methods.items()}
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(service, handlers),))


# ---- the Open Inference Protocol ----

_CONTENTS = {"BOOL": "bool_contents", "INT8": "int_contents", "INT16": "int_contents", "INT32": "int_contents",
             "INT64": "int64_contents", "UINT8": "uint_contents", "UINT16": "uint_contents",
             "UINT32": "uint_contents", "UINT64": "uint64_contents", "FP32": "fp32_contents",
             "FP64": "fp64_contents", "BYTES": "bytes_contents"}


def add_oip(server: grpc.Server, calls: Calls) -> None:
    pb = protos.oip()
    engine = calls.engine

    def server_live(request, context, deadline_ms):
        return pb.ServerLiveResponse(live=oip.live())

    def server_ready(request, context, deadline_ms):
        return pb.ServerReadyResponse(ready=oip.ready(engine))

    def model_ready(request, context, deadline_ms):
        return pb.ModelReadyResponse(ready=oip.model_ready(engine, request.name, request.version))

    def model_metadata(request, context, deadline_ms):
        document = oip.metadata(engine, request.name, request.version)
        response = pb.ModelMetadataResponse(name=document["name"], versions=document["versions"],
                                            platform=document["platform"])
        for key in ("inputs", "outputs"):
            for tensor in document[key]:
                getattr(response, key).add(**tensor)
        return response

    def model_infer(request, context, deadline_ms):
        raw = list(request.raw_input_contents)
        if raw and len(raw) != len(request.inputs):
            raise oip.OIPError("raw_input_contents must hold one entry per input")
        inputs = []
        for i, tensor in enumerate(request.inputs):
            shape = list(tensor.shape)
            if raw:
                value = oip.from_raw(tensor.datatype, shape, raw[i])
            else:
                field = _CONTENTS.get(tensor.datatype)
                if field is None:
                    raise oip.OIPError(f"unknown datatype {tensor.datatype!r}")
                value = oip.array(tensor.datatype, shape, list(getattr(tensor.contents, field)))
            inputs.append(oip.Tensor(tensor.name, tensor.datatype, shape, value))
        wanted = [output.name for output in request.outputs]
        chosen = request.parameters["signature_name"].string_param if "signature_name" in request.parameters else ""
        version, outputs = oip.infer(engine, request.model_name, request.model_version, inputs, deadline_ms,
                                     outputs=wanted or None, signature_name=chosen)
        response = pb.ModelInferResponse(model_name=request.model_name, model_version=version, id=request.id)
        for output in outputs:
            response.outputs.add(name=output.name, datatype=output.datatype, shape=output.shape)
            response.raw_output_contents.append(oip.to_raw(output))
        return response

    methods = {"ServerLive": (server_live, pb.ServerLiveRequest, pb.ServerLiveResponse),
               "ServerReady": (server_ready, pb.ServerReadyRequest, pb.ServerReadyResponse),
               "ModelReady": (model_ready, pb.ModelReadyRequest, pb.ModelReadyResponse),
               "ModelMetadata": (model_metadata, pb.ModelMetadataRequest, pb.ModelMetadataResponse),
               "ModelInfer": (model_infer, pb.ModelInferRequest, pb.ModelInferResponse)}
    # Health holds nothing: open, as /healthz and /readyz are.
    _add(server, calls, protos.OIP_SERVICE, methods, unguarded=("ServerLive", "ServerReady"))


# ---- the server and its place on CherryPy's bus ----

def build(engine: Engine, settings: Settings, guard, metrics, reuse_port: bool) -> tuple[grpc.Server, int]:
    options = [("grpc.so_reuseport", 1 if reuse_port else 0),
               ("grpc.max_receive_message_length", settings.max_body_bytes),
               ("grpc.max_send_message_length", max(settings.max_body_bytes, 64 << 20))]
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=settings.threads, thread_name_prefix="pinpoint-grpc"),
                         options=options)
    calls = Calls(engine, guard, metrics)
    add_tfserving(server, calls)
    add_oip(server, calls)
    host = settings.host
    address = f"[{host}]:{settings.grpc_port}" if ":" in host else f"{host}:{settings.grpc_port}"
    port = server.add_insecure_port(address)
    if not port:
        raise OSError(f"gRPC could not listen on {address}")
    return server, port


def subscribe(bus, engine: Engine, settings: Settings, guard, metrics) -> None:
    """Serve gRPC while the bus runs: start after the engine (priority 70) and before the HTTP server (75),
    so a process that answers /readyz is listening for gRPC too; stop beside the HTTP server, letting
    calls in flight finish within drain_timeout_s."""
    reuse_port = processes.role() == "worker"
    state = {}

    def start():  # built here, after the Daemonizer's fork (priority 65): gRPC's threads do not survive one
        server, port = build(engine, settings, guard, metrics, reuse_port)
        server.start()
        state["server"] = server
        log.info("grpc_serving", address=f"{settings.host}:{port}", reuse_port=reuse_port)

    def stop():
        server = state.pop("server", None)
        if server is not None:
            server.stop(grace=settings.drain_timeout_s).wait()
            log.info("grpc_stopped")

    # The protos first, before the engine (70) starts loading models on other threads: in the process
    # that runs the models they import TensorFlow, which must not be imported by two threads at once.
    bus.subscribe("start", lambda: (protos.tfserving(), protos.oip()), priority=68)
    bus.subscribe("start", start, priority=74)
    bus.subscribe("stop", stop, priority=26)

"""gRPC Predict vs REST :predict on the same model, one client, N calls each way, sequentially:
what the transport and codec cost per call (docs/benchmarks.md, "gRPC vs REST").

    python -m service.tools.bench.protocols --rest http://127.0.0.1:8080 --grpc 127.0.0.1:8500 [-n 500]

against a server started with a gRPC port (PINPOINT_GRPC_PORT=8500 pinpoint serve). The model is
`--model` (default `tint`-like: [-1, 8, 8, 3] float32); the batch is `--batch` rows.
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import requests


def _measure(call, n: int) -> dict:
    for _ in range(min(20, n)):  # warm: connections, the first batches
        call()
    times = []
    started = time.perf_counter()
    for _ in range(n):
        t = time.perf_counter()
        call()
        times.append(time.perf_counter() - t)
    total = time.perf_counter() - started
    times.sort()
    return {"req_s": n / total, "p50_ms": statistics.median(times) * 1000,
            "p99_ms": times[min(len(times) - 1, int(len(times) * 0.99))] * 1000}


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rest", required=True)
    parser.add_argument("--grpc", required=True)
    parser.add_argument("--model", default="tint")
    parser.add_argument("--shape", default="8,8,3")
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("-n", type=int, default=500)
    args = parser.parse_args(argv)

    import grpc
    import tensorflow as tf  # before tensorflow_serving's protos, which import TensorFlow's
    from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

    x = np.random.default_rng(0).random((args.batch, *map(int, args.shape.split(","))), dtype=np.float32)
    session = requests.Session()
    url = f"{args.rest}/v1/models/{args.model}:predict"
    body = {"instances": x.tolist()}

    def rest():
        response = session.post(url, json=body, timeout=10)
        response.raise_for_status()
        return np.array(response.json()["predictions"], np.float32)

    channel = grpc.insecure_channel(args.grpc)
    stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
    request = predict_pb2.PredictRequest()
    request.model_spec.name = args.model
    request.inputs["input"].CopyFrom(tf.make_tensor_proto(x))

    def grpc_predict():
        return tf.make_ndarray(stub.Predict(request, timeout=10).outputs["scores"])

    np.testing.assert_allclose(rest(), grpc_predict(), rtol=1e-6, atol=1e-7)  # the same answer both ways
    for name, call in (("REST :predict", rest), ("gRPC Predict", grpc_predict)):
        result = _measure(call, args.n)
        print(f"{name:14s} {result['req_s']:8.1f} req/s  p50 {result['p50_ms']:.2f} ms  p99 {result['p99_ms']:.2f} ms")


if __name__ == "__main__":
    main()

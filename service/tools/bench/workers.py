"""What API worker processes buy: `workers = auto` against one process (`workers = 0`), on the demo
models and on a tiny flat MLP (where serving overhead dominates), with every process's CPU and memory,
the worker hop's own cost, and whether batches still form across workers."""

from __future__ import annotations

import os
import re
import threading
import time
from pathlib import Path

import numpy as np
import requests

from service.tools.bench import inputs, wrk
from service.tools.bench.server import ServerProcess

TINY_TOML = """
[input]
tensor = "x:0"
kind = "flat"
height = 4
width = 4
channels = 1
mean = [127.5]
std = [127.5]
[output]
tensor = "logits:0"
softmax = true
[crop]
box = [16, 16]
keep_aspect = false
resize = "box"
"""


def tiny_repository(root: Path) -> tuple[Path, Path]:
    """A TF1-style flat MLP (16 -> 32 -> 2): almost no inference, so the serving path is what is measured."""
    models, labels = root / "tiny-models", root / "tiny-labels"
    if (labels / "mlp.txt").exists():  # `make bench` asks twice in one work directory (workers, then peers)
        return models, labels
    import tensorflow as tf

    tf1 = tf.compat.v1
    graph = tf.Graph()
    with graph.as_default():
        x = tf1.placeholder(tf.float32, [None, 16], name="x")
        rng = np.random.default_rng(0)
        hidden = tf.nn.relu(tf.matmul(x, tf.constant(rng.normal(size=(16, 32)).astype(np.float32))))
        tf.matmul(hidden, tf.constant(rng.normal(size=(32, 2)).astype(np.float32)), name="logits")
    (models / "mlp" / "1").mkdir(parents=True)
    labels.mkdir()
    (models / "mlp" / "1" / "frozen_graph.pb").write_bytes(graph.as_graph_def().SerializeToString())
    (models / "mlp" / "1" / "model.toml").write_text(TINY_TOML)
    (labels / "mlp.txt").write_text("dark\nbright\n")
    return models, labels


def batch_histogram(url: str) -> dict[float, float]:
    """Cumulative counts of pinpoint_batch_crops buckets, from /metrics."""
    text = requests.get(url + "/metrics", timeout=10).text
    return {float(le): float(count) for le, count in
            re.findall(r'^pinpoint_batch_crops_bucket\{le="([0-9.e+]+)"\} ([0-9.e+]+)$', text, re.M)}


def ipc_cost_us(calls: int = 2000) -> float:
    """One round trip of the worker hop with a 640x360 request's payload (a 32x32x3 and a 96x96x3
    float32 crop out, 18 + 8 scores back), against a runner-side server in this process."""
    from service.processes.hop import Client, Server

    address = f"/tmp/pinpoint-bench-{os.getpid()}.sock"
    secret = os.urandom(16)
    scores = (np.zeros((1, 18), np.float32), np.zeros((1, 8), np.float32))
    server = Server(address, secret, {"infer": lambda feeds, deadline: scores})
    threading.Thread(target=server.serve_forever, daemon=True).start()
    client = Client(address, secret)
    feeds = {"color@1": np.zeros((1, 32, 32, 3), np.float32), "pattern@1": np.zeros((1, 96, 96, 3), np.float32)}
    for _ in range(100):
        client.call("infer", feeds, 0.0)
    started = time.perf_counter()
    for _ in range(calls):
        client.call("infer", feeds, 0.0)
    elapsed = time.perf_counter() - started
    server.close()  # which removes the socket file
    return elapsed / calls * 1e6


def measure(work: Path, images: dict, seconds: float) -> dict:
    data, size = images["640x360.jpg"]
    request = inputs.request("multipart", data, "640x360.jpg", size, 1)
    tiny_models, tiny_labels = tiny_repository(work)
    auto = os.cpu_count() or 1
    runs = {}
    for model_set, args in (("demo models", []), ("tiny flat MLP", ["--models", str(tiny_models),
                                                                    "--labels", str(tiny_labels)])):
        for workers in (0, auto):
            with ServerProcess(work, {"PINPOINT_WORKERS": str(workers)}, args) as server:
                wrk.run(server.url, *request, 8, 2)  # warm every worker
                for connections in (1, 8):
                    cpu_before = server.cpu_seconds()
                    result = wrk.run(server.url, *request, connections, seconds)
                    cpu = 100 * (server.cpu_seconds() - cpu_before) / result.seconds
                    runs[(model_set, workers, connections)] = (result, cpu)
                if model_set == "demo models":
                    before = batch_histogram(server.url)
                    wrk.run(server.url, *request, 32, seconds)
                    after = batch_histogram(server.url)
                    runs[("batches", workers)] = {le: after.get(le, 0) - before.get(le, 0) for le in after}
                    runs[("rss", workers)] = {f"{role} {pid}": server.rss_mb(pid=pid)
                                              for pid, role in sorted(server.roles().items(), key=lambda x: x[1])}
    runs["ipc_us"] = ipc_cost_us()
    runs["auto"] = auto
    return runs


def report(runs: dict) -> list[str]:
    auto = runs["auto"]
    lines = ["## API workers", "",
             f"The same server with `workers = 0` (one process, as before) and `workers = auto` ({auto} API "
             "workers in front of one model runner); 640×360 multipart upload, 1 point. Server CPU is every "
             "process's, out of " + f"{100 * (os.cpu_count() or 1)}%.", "",
             "| models | workers | c | req/s | p50 ms | p99 ms | server CPU |", "|---|---|---|---|---|---|---|"]
    for key, value in runs.items():
        if isinstance(key, tuple) and len(key) == 3:
            model_set, workers, connections = key
            result, cpu = value
            lines.append(f"| {model_set} | {workers} | {connections} | {result.throughput:.1f} | {result.p50:.2f} | "
                         f"{result.p99:.2f} | {cpu:.0f}% |")
    lines.append("")
    for model_set in ("demo models", "tiny flat MLP"):
        one, many = runs[(model_set, 0, 8)][0], runs[(model_set, auto, 8)][0]
        single, hop = runs[(model_set, 0, 1)][0], runs[(model_set, auto, 1)][0]
        lines.append(f"- {model_set}: c=8 throughput {many.throughput / one.throughput:.2f}× with workers "
                     f"(target ≥ 1.5×); c=1 p50 {hop.p50 - single.p50:+.2f} ms (target within 0.5 ms)")
    lines.append(f"- the worker hop alone (a request's crops out, its scores back, over the Unix socket): "
                 f"{runs['ipc_us']:.0f} µs per request")
    batches = runs[("batches", auto)]
    total = max(batches.values(), default=0)
    if total:
        sizes, previous = [], 0.0
        for le in sorted(batches):
            count = batches[le] - previous
            previous = batches[le]
            if count and le != float("inf"):
                sizes.append(f"≤{le:g}: {count / total:.0%}")
        lines.append(f"- batches at c=32 with workers: {', '.join(sizes)} of {total:.0f} runs")
    for workers in (0, auto):
        memory = ", ".join(f"{name} {mb:.0f} MB" for name, mb in runs[("rss", workers)].items())
        lines.append(f"- RSS with workers = {workers}: {memory}")
    lines.append("")
    return lines


if __name__ == "__main__":  # `python -m service.tools.bench.workers [seconds]`: this section alone
    import sys
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        result = measure(Path(tmp), inputs.write_images(Path(tmp)), float(sys.argv[1]) if len(sys.argv) > 1 else 5)
    print("\n".join(report(result)))

"""Pinpoint beside its peers in one run: every server up at once, each answer checked against Pinpoint's
in-process answer, then wrk on each in turn for every (image, concurrency), so a neighbour's load falls on
all of them alike; the others are paused while one is measured (a peer that polls while idle would take
its CPU from the one measured). Per run: req/s, p50/p99, the server's CPU-ms per request (every process of its tree,
from /proc) and, at the end, its RSS. Then the same for the tiny flat MLP on Pinpoint and the FastAPI
script. The main bench calls `measure` and puts `report.lines` in docs/benchmarks.md.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
import time
from pathlib import Path

import requests

from service.tools.bench import inputs, wrk
from service.tools.bench.peers import exported_models as peer_models
from service.tools.bench.peers import venv
from service.tools.bench.peers.servers import PeerProcess
from service.tools.bench.server import ServerProcess, signal_all

SMALL, LARGE = "640x360.jpg", "12mp.jpg"
GRID = [(SMALL, 1), (SMALL, 8), (SMALL, 32), (LARGE, 1), (LARGE, 8), (LARGE, 32)]
TINY_GRID = [(SMALL, 1), (SMALL, 8)]
PEERS = ("litserve", "bentoml", "fastapi")
DEMO_MODELS = ("color", "pattern")  # the two demo models the comparison was first made on (issue #25)
# Each set measured in turn: the first comparison's two small models, then every model the project ships
# (None), where the topic network is most of a request's work.
MODEL_SETS = (DEMO_MODELS, None)


def _say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def _kind(server_name: str) -> str:
    """Which of `bodies`' requests a server is sent: Pinpoint's (naming the models) or the peers'."""
    return "pinpoint" if server_name == "pinpoint" else "peer"


def bodies(images: dict, names: list[str] | None) -> dict:
    """(image, server kind) -> (path, body, content type): the same upload of one point for every server;
    Pinpoint's also names the models when only some of those it serves are compared."""
    found = {}
    for name, (data, size) in images.items():
        (x, y), = inputs.points(size, 1)
        fields = {"x": str(x), "y": str(y)}
        found[(name, "peer")] = ("/v1/classify", *inputs.multipart(data, fields))
        found[(name, "pinpoint")] = ("/v1/classify", *inputs.multipart(data, {**fields, "models": ",".join(names)}
                                                                       if names else fields))
    return found


def reference(settings, images: dict, names: list[str] | None, models_dir=None, labels_dir=None,
              floors: dict | None = None) -> dict:
    """Pinpoint's in-process answer at each image's benchmark point: image -> model -> [(label, score)].
    With `floors`, also what that request's work costs in-process (floor.py): image -> Floor."""
    from service.engine import Engine
    from service.tools.bench import floor

    if models_dir is not None:
        settings = settings.model_copy(update={"models": Path(models_dir), "labels": Path(labels_dir)})
    found = {}
    with Engine.open(settings=settings) as engine:
        for name, (data, size) in images.items():
            result = engine.classify_image(data, inputs.points(size, 1), models=names or ())
            found[name] = {model: [(label.label, label.score) for label in labels]
                           for model, labels in result.predictions[0].results.items()}
            if floors is not None:
                (point,) = inputs.points(size, 1)
                floors[name] = floor.measure(engine, data, tuple(point), names)
    return found


def check(server, path_body_type: tuple, want: dict) -> dict:
    """The server's answer to the benchmark request beside Pinpoint's: the same top-1 for every model?"""
    path, body, content_type = path_body_type
    response = requests.post(server.url + path, data=body, headers={"Content-Type": content_type}, timeout=60)
    response.raise_for_status()
    have = {model: [(item["label"], item["score"]) for item in labels]
            for model, labels in response.json()["predictions"][0]["results"].items()}
    same_top1 = set(have) == set(want) and all(have[m][0][0] == want[m][0][0] for m in want)
    largest = max((abs(a[1] - b[1]) for m in want if m in have for a, b in zip(have[m], want[m])), default=0.0)
    return {"top1": {m: labels[0][0] for m, labels in have.items()}, "same_top1": same_top1,
            "same_top5": all([label for label, _ in have.get(m, [])] == [label for label, _ in want[m]] for m in want),
            "largest_score_difference": largest}


def ok_per_s(result: wrk.Result) -> float:
    """Answers per second that were answers: wrk counts a 500 as a request, and errors come back fast."""
    return (result.requests - result.non2xx) / result.seconds if result.seconds else 0.0


def cpu_rate(server, seconds: float = 1.0) -> float:
    """The server's CPU use over `seconds`, in cores."""
    before = server.cpu_seconds()
    time.sleep(seconds)
    return (server.cpu_seconds() - before) / seconds


def settle(server, idle_cores: float, limit_s: float = 60.0) -> None:
    """Wait until the server is back at its idle CPU: when wrk stops, the requests it left in flight are
    still worked on (a 12 MP request at c=32 for seconds), and that work must not fall on the next run."""
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline and cpu_rate(server, 0.5) > idle_cores + 0.1:
        pass


def _measure_grid(servers: dict, requests_by: dict, grid: list, seconds: float, found: dict, model_set: str) -> None:
    runs, idle = found["runs"], found["idle_cores"][model_set]
    for image, connections in grid:
        for name, server in servers.items():
            request = requests_by[(image, _kind(name))]
            with _alone(server, servers.values()):
                settle(server, idle[name])
                cpu_before = server.cpu_seconds()
                with _midway(server, seconds) as spread:
                    result = wrk.run(server.url, *request, connections, seconds)
                cpu = server.cpu_seconds() - cpu_before
            runs.append({"models": model_set, "server": name, "image": image, "c": connections, "result": result,
                         "cpu_ms": 1000 * cpu / max(1, result.requests), "ok_per_s": ok_per_s(result),
                         "per_worker": spread})
            _say(f"  {model_set:12s} {name:9s} {image:12s} c={connections:<3d} {ok_per_s(result):8.1f} req/s  "
                 f"p50 {result.p50:7.2f} ms  p99 {result.p99:7.2f} ms  {runs[-1]['cpu_ms']:.2f} CPU-ms/request  "
                 f"non-2xx {result.non2xx}")


@contextlib.contextmanager
def _alone(measured, servers):
    """Every other server paused (SIGSTOP to each of its processes) while `measured` is: a server that
    polls while idle (LitServe's fast queue: ~0.27 cores) would otherwise take that from whichever server
    is measured, and not from itself. Resumed (SIGCONT) after the run, so all stay up for the next."""
    paused = [pid for server in servers if server is not measured for pid in server.pids()]
    try:
        signal_all(paused, signal.SIGSTOP)
        yield
    finally:
        signal_all(paused, signal.SIGCONT)


@contextlib.contextmanager
def _midway(server, seconds: float):
    """The connections each of Pinpoint's API workers holds halfway through a run (as `ss -tnp` would
    count them), in the list yielded; empty for a peer."""
    spread: list[int] = []
    if not isinstance(server, ServerProcess):
        yield spread
        return
    sampler = threading.Timer(seconds / 2, lambda: spread.extend(server.connections_per_worker()))
    sampler.start()
    try:
        yield spread
    finally:
        sampler.join()


def served_names(settings) -> list[str]:
    """Every model Pinpoint serves from its repository (what a set of None stands for)."""
    from service.serving import repository

    return sorted({spec.name for spec in repository.scan(settings.models, settings.labels).specs
                   if not spec.tensors_only})


def measure(work: Path, images: dict, seconds: float, settings, model_sets=MODEL_SETS, peers=PEERS,
            pinpoint: bool = True, tiny: bool = True) -> dict:
    """Every server up, checked, measured, for each set of models in turn (a set of None: every model
    Pinpoint serves). `pinpoint`: measure Pinpoint too (its ratios in the report); `tiny`: the tiny-MLP
    comparison too. Runs are labelled by their set ("color, pattern"), and each set has its in-process
    floor (floor.py) per image."""
    why = venv.missing()
    if why:
        raise RuntimeError(why)
    found = {"runs": [], "checks": {}, "rss_mb": {}, "idle_cores": {}, "versions": venv.versions(), "sets": [],
             "floors": {}, "load_before": os.getloadavg(), "seconds": seconds}
    with contextlib.ExitStack() as stack:
        server = stack.enter_context(ServerProcess(work, {}, [])) if pinpoint else None
        for index, names in enumerate(model_sets):
            names = list(names) if names else served_names(settings)
            label = ", ".join(names)
            found["sets"].append(label)
            _say(f"peers ({label}): the models as ONNX, Pinpoint's in-process answers and floor ...")
            manifest = peer_models.write_manifest(work / f"peer-models-{index}", settings.models, settings.labels,
                                                  settings, names)
            found["floors"][label] = {}
            want = reference(settings, images, names, floors=found["floors"][label])
            _measure_set(work, images, seconds, found, label, names, manifest, want, server, peers)
    if tiny and "fastapi" in peers:
        _tiny(work, images, seconds, settings, pinpoint, found)
    found["load_after"] = os.getloadavg()
    return found


def _measure_set(work: Path, images: dict, seconds: float, found: dict, label: str, names: list[str],
                 manifest: Path, want: dict, pinpoint, peers) -> None:
    requests_by = bodies(images, names)
    with contextlib.ExitStack() as stack:
        servers = {"pinpoint": pinpoint} if pinpoint is not None else {}
        for name in peers:
            _say(f"peers ({label}): starting {name} ...")
            servers[name] = stack.enter_context(PeerProcess(name, work, manifest))
        checks = found["checks"].setdefault(label, {})
        for name, server in servers.items():
            kind = _kind(name)
            checks[name] = {image: check(server, requests_by[(image, kind)], want[image]) for image in images}
            wrk.run(server.url, *requests_by[(SMALL, kind)], 8, 1)  # warm every worker
        for name, server in servers.items():
            time.sleep(1)  # the warm-up's last requests
            found["idle_cores"].setdefault(label, {})[name] = cpu_rate(server, 2.0)
        _measure_grid(servers, requests_by, GRID, seconds, found, label)
        found["rss_mb"][label] = {name: server.rss_mb() for name, server in servers.items()}


def _tiny(work: Path, images: dict, seconds: float, settings, pinpoint: bool, found: dict) -> None:
    """The tiny flat MLP of service/tools/bench/workers.py on Pinpoint and on the FastAPI script."""
    from service.tools.bench.workers import tiny_repository

    _say("peers: the tiny flat MLP on Pinpoint and FastAPI ...")
    tiny_models, tiny_labels = tiny_repository(work)
    manifest = peer_models.write_manifest(work / "peer-tiny", tiny_models, tiny_labels, settings)
    small = {SMALL: images[SMALL]}
    want = reference(settings, small, None, tiny_models, tiny_labels)
    requests_by = bodies(small, None)
    with contextlib.ExitStack() as stack:
        servers = {}
        if pinpoint:
            servers["pinpoint"] = stack.enter_context(
                ServerProcess(work, {}, ["--models", str(tiny_models), "--labels", str(tiny_labels)]))
        servers["fastapi"] = stack.enter_context(PeerProcess("fastapi", work, manifest))
        for name, server in servers.items():
            kind = _kind(name)
            found["checks"].setdefault("tiny MLP", {})[name] = {SMALL: check(server, requests_by[(SMALL, kind)],
                                                                             want[SMALL])}
            wrk.run(server.url, *requests_by[(SMALL, "peer")], 8, 1)
        for name, server in servers.items():
            time.sleep(1)
            found["idle_cores"].setdefault("tiny MLP", {})[name] = cpu_rate(server, 2.0)
        _measure_grid(servers, requests_by, TINY_GRID, seconds, found, "tiny MLP")
        found["rss_mb"]["tiny MLP"] = {name: server.rss_mb() for name, server in servers.items()}

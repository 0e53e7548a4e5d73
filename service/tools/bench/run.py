"""The benchmark plan: HTTP figures from wrk against a real server, each next to the in-process limit
(the same pipeline called directly, no HTTP), written to docs/benchmarks.md."""

from __future__ import annotations

import platform
import statistics
import tempfile
import threading
import time
from importlib import metadata
from pathlib import Path

from service.classify import imaging
from service.engine import Engine
from service.serving import repository
from service.tools.bench import floor, inputs, wrk
from service.tools.bench.benchmarks_md import kept
from service.tools.bench.server import ServerProcess

SMALL, LARGE = "640x360.jpg", "12mp.jpg"


def in_process(engine: Engine, image: bytes, where: list, concurrency: int,
               seconds: float) -> tuple[float, float, float]:
    """(requests per second, p50 ms, CPU % of one core) of engine.classify called from `concurrency` threads."""
    latencies: list[float] = []
    stop_at = time.perf_counter() + seconds

    def worker():
        mine = []
        while time.perf_counter() < stop_at:
            started = time.perf_counter()
            engine.classify_image(image, where)
            mine.append((time.perf_counter() - started) * 1000)
        latencies.extend(mine)

    engine.classify_image(image, where)  # warm
    threads = [threading.Thread(target=worker) for _ in range(concurrency)]
    cpu_before, started = floor.cpu_seconds(), time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - started
    return len(latencies) / elapsed, statistics.median(latencies), 100 * (floor.cpu_seconds() - cpu_before) / elapsed


def decode_costs(image: bytes, settings) -> tuple[float, float, int]:
    """(full decode ms, reduced decode ms, reduction) for the crops the served models ask for."""
    specs = [spec.crop for spec in repository.scan(settings.models, settings.labels).specs]
    limits = imaging.ImageLimits(settings.max_pixels, settings.max_side, settings.formats)
    header = imaging.probe(image, limits)
    reduce = imaging.reduction(specs, header.width, header.height)

    def best(factor: int) -> float:
        times = []
        for _ in range(15):
            started = time.perf_counter()
            imaging.decode(image, limits, reduce=factor)
            times.append((time.perf_counter() - started) * 1000)
        return min(times)

    return best(1), best(reduce), reduce


def main(out: Path, settings, seconds: float = 5.0, memory_requests: int = 20_000) -> int:
    if not wrk.available():
        print("pinpoint bench needs wrk (Debian package `wrk`; `make bench` installs it)")
        return 2
    try:
        kept(out)  # what the page keeps is read again at the end; a broken marker stops the run now
    except ValueError as error:
        print(f"pinpoint bench: {error}")
        return 2

    rows, limits = [], {}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        images = inputs.write_images(work)

        print("in-process limit ...", flush=True)
        with Engine.open(settings=settings) as engine:
            for name, count, concurrency in [(SMALL, 1, 1), (SMALL, 1, 8), (SMALL, 1, 32), (SMALL, 16, 1),
                                             (SMALL, 16, 8), (LARGE, 1, 1), (LARGE, 1, 8), (LARGE, 16, 1)]:
                data, size = images[name]
                limits[(name, count, concurrency)] = in_process(engine, data, inputs.points(size, count),
                                                                concurrency, seconds)
        # The pipeline's own gain from batching, without HTTP: the same load with batches of one.
        with Engine.open(settings=settings.model_copy(update={"max_batch": 1})) as engine:
            data, size = images[SMALL]
            limits[(SMALL, 1, 32, "off")] = in_process(engine, data, inputs.points(size, 1), 32, seconds)
        decode_full, decode_reduced, reduce = decode_costs(images[LARGE][0], settings)

        def measure(server, label, name, count, kind, concurrency, batching="on", request=None):
            data, size = images[name]
            path, body, content_type = request or inputs.request(kind, data, name, size, count)
            cpu_before = server.cpu_seconds()
            result = wrk.run(server.url, path, body, content_type, concurrency, seconds,
                             method="POST" if body else "GET")
            cpu_seconds = server.cpu_seconds() - cpu_before
            cpu = 100 * cpu_seconds / result.seconds
            cpu_ms = 1000 * cpu_seconds / max(1, result.requests)
            limit = limits.get((name, count, concurrency) if batching == "on" else (name, count, concurrency, "off"))
            rows.append({"label": label, "image": name, "points": count, "input": kind, "c": concurrency,
                         "batching": batching, "result": result, "limit": limit, "cpu": cpu, "cpu_ms": cpu_ms})
            print(f"  {label:34s} c={concurrency:<3d} {result.throughput:8.1f} req/s  p50 {result.p50:7.2f} ms"
                  f"  non-2xx {result.non2xx}  server CPU {cpu:.0f}% ({cpu_ms:.2f} ms/request)", flush=True)
            return result

        print("server: defaults ...", flush=True)
        with ServerProcess(work, {}, ["--image-root", str(work)]) as server:
            # What HTTP alone costs: a request with no work behind it, and an upload parsed then refused.
            measure(server, "GET /healthz (HTTP alone)", SMALL, 0, "none", 8, request=("/healthz", b"", ""))
            unknown = inputs.multipart(images[SMALL][0], {"x": "1", "y": "1", "models": "none-such"})
            measure(server, "640x360 upload parsed, no model (404)", SMALL, 0, "multipart", 8,
                    request=("/v1/classify", *unknown))
            for c in (1, 8, 32):
                measure(server, "640x360, 1 point, multipart", SMALL, 1, "multipart", c)
            for c in (1, 8, 32):
                measure(server, "640x360, 1 point, raw body", SMALL, 1, "raw", c)
            measure(server, "640x360, 1 point, path (cached)", SMALL, 1, "path", 8)
            for c in (1, 8):
                measure(server, "640x360, 16 points, multipart", SMALL, 16, "multipart", c)
            for c in (1, 8):
                measure(server, "12 MP, 1 point, multipart", LARGE, 1, "multipart", c)
            measure(server, "12 MP, 16 points, multipart", LARGE, 16, "multipart", 1)
            measure(server, "12 MP, 1 point, raw body", LARGE, 1, "raw", 8)
            for c in (1, 8):
                measure(server, "12 MP, 1 point, path (cached)", LARGE, 1, "path", c)
            measure(server, "12 MP, 16 points, path (cached)", LARGE, 16, "path", 8)
            # Memory across many requests: RSS after a warm-up, then after `memory_requests` more.
            data, size = images[SMALL]
            path, body, content_type = inputs.request("multipart", data, SMALL, size, 1)
            wrk.run(server.url, path, body, content_type, 8, 2)
            rss_start = server.rss_mb()
            rate = max(r["result"].throughput for r in rows if r["label"].startswith("640x360, 1 point, multipart"))
            long_run = wrk.run(server.url, path, body, content_type, 8, max(5.0, memory_requests / rate * 1.1))
            rss_end, rss_peak = server.rss_mb(), server.rss_mb("VmHWM")

        print("server: batching off ...", flush=True)
        with ServerProcess(work, {"PINPOINT_MAX_BATCH": "1"}, ["--image-root", str(work)]) as server:
            for c in (8, 32):
                measure(server, "640x360, 1 point, multipart", SMALL, 1, "multipart", c, batching="off")
            measure(server, "640x360, 16 points, multipart", SMALL, 16, "multipart", 8, batching="off")

        print("server: a version of every model loading under load ...", flush=True)
        from service.tools.bench import reload

        reload_cost = reload.measure(work, settings.models, settings.labels, images[SMALL], seconds)

        print("servers: workers = 0 and workers = auto ...", flush=True)
        from service.tools.bench import workers

        worker_runs = workers.measure(work, images, seconds)

        print("backends: TensorFlow and ONNX Runtime, in-process and served ...", flush=True)
        from service.tools.bench import backends

        backend_inference = backends.inference(settings)
        backend_servers = backends.servers(work, images[SMALL][0], seconds, ["--image-root", str(work)])

        print("browser: the test page's models in headless Chromium (docs/browser.md) ...", flush=True)
        from service.tools.bench import browser

        skipped = browser.missing()
        if skipped:
            print(f"  skipped: {skipped}", flush=True)
            browser_section = ["## In the browser", "", f"Not measured: {skipped}.", ""]
        else:
            browser_run = browser.measure(work, settings.models, settings.labels)
            browser.write(out.parent / "browser.md", browser.report(browser_run))
            browser_section = browser.summary(browser_run)

        print("peers: LitServe, BentoML, FastAPI beside Pinpoint, the same models and crops ...", flush=True)
        from service.tools.bench import profile
        from service.tools.bench.peers import driver as peers
        from service.tools.bench.peers import table as peers_table
        from service.tools.bench.peers import venv as peers_venv

        why = peers_venv.missing()
        if why:
            print(f"  skipped: {why}", flush=True)
            peer_section = ["## Pinpoint and its peers", "", f"Not measured: {why}.", ""]
            profile_section = []
        else:
            peer_section = peers_table.lines(peers.measure(work, images, seconds, settings))
            profile_section = profile.section(work, seconds)

        print("server: no decoded-image cache ...", flush=True)
        with ServerProcess(work, {"PINPOINT_DECODED_CACHE_BYTES": "1"}, ["--image-root", str(work)]) as server:
            for c in (1, 8):
                measure(server, "12 MP, 1 point, path (cold)", LARGE, 1, "path", c)

    from service.tools.bench.benchmarks_md import write

    write(out, rows, limits, settings, decode=(decode_full, decode_reduced, reduce),
          memory=(rss_start, rss_end, rss_peak, long_run.requests), versions=_versions(),
          extra=[*reload.report(reload_cost), *workers.report(worker_runs),
                 *backends.report(backend_inference, backend_servers), *browser_section,
                 *peer_section, *profile_section])
    print(f"wrote {out}")
    return 0


def _versions() -> dict[str, str]:
    found = {"python": platform.python_version()}
    for package in ("tensorflow-cpu", "onnxruntime", "tf2onnx", "cherrypy", "waitress", "pillow", "numpy", "multipart"):
        try:
            found[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            pass
    return found

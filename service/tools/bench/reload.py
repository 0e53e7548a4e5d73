"""What loading a new version costs the version that serves: p99 of a steady load, with and without a
version loading beside it (TF Serving users report another model's p99 rising from 20 ms to over 100 ms).

The server serves a copy of the repository; halfway through the second run every model gets a new
version, published as docs/models.md says (written beside, renamed into place), which the server
finds by polling, loads, warms and swaps in while wrk keeps the load steady.
"""

from __future__ import annotations

import dataclasses
import shutil
import threading
import time
from pathlib import Path

import requests

from service.tools.bench import inputs, wrk
from service.tools.bench.server import ServerProcess

CONNECTIONS = 8


@dataclasses.dataclass
class ReloadCost:
    steady: wrk.Result
    loading: wrk.Result
    swap_s: float  # from publishing to every model answering from its new version


def measure(work: Path, models: Path, labels: Path, image: tuple[bytes, tuple[int, int]],
            seconds: float) -> ReloadCost:
    repository = work / "reload-models"
    shutil.copytree(models, repository)
    names = sorted(p.name for p in repository.iterdir() if p.is_dir() and not p.name.startswith("."))
    data, size = image
    path, body, content_type = inputs.request("multipart", data, "640x360.jpg", size, 1)
    with ServerProcess(work, {"PINPOINT_MODEL_POLL_S": "0.5"},
                       ["--models", str(repository), "--labels", str(labels)]) as server:
        wrk.run(server.url, path, body, content_type, CONNECTIONS, 2)  # warm
        steady = wrk.run(server.url, path, body, content_type, CONNECTIONS, seconds)
        swap: dict[str, float] = {}
        publisher = threading.Thread(target=_publish_during, args=(server.url, repository, names, seconds, swap))
        publisher.start()
        loading = wrk.run(server.url, path, body, content_type, CONNECTIONS, seconds)
        publisher.join()
    return ReloadCost(steady, loading, swap.get("s", float("nan")))


def _publish_during(url: str, repository: Path, names: list[str], seconds: float, swap: dict) -> None:
    time.sleep(seconds / 4)
    started = time.monotonic()
    for name in names:
        versions = sorted(int(p.name) for p in (repository / name).iterdir() if p.name.isdigit())
        staging = repository / name / ".publishing"
        shutil.copytree(repository / name / str(versions[-1]), staging)
        staging.rename(repository / name / str(versions[-1] + 1))
    deadline = started + seconds
    while time.monotonic() < deadline:
        listing = requests.get(url + "/v1/models", timeout=5).json()["models"]
        if all(model["version"] > 1 and all(v["state"] == "END" for v in model["versions"][1:]) for model in listing):
            swap["s"] = time.monotonic() - started
            return
        time.sleep(0.05)


def report(cost: ReloadCost) -> list[str]:
    steady, loading = cost.steady, cost.loading
    return [
        "## Loading a version under load",
        "",
        f"A steady load (wrk, {CONNECTIONS} connections, 640×360 multipart, 1 point) while every model gets a new "
        "version: published by rename, found by polling, loaded on a loader thread, warmed on the inference "
        "thread, swapped in; the old version unloads after its in-flight requests.",
        "",
        "| run | req/s | p50 ms | p90 ms | p99 ms | non-2xx |",
        "|---|---|---|---|---|---|",
        f"| steady | {steady.throughput:.1f} | {steady.p50:.2f} | {steady.p90:.2f} | {steady.p99:.2f} | "
        f"{steady.non2xx + steady.socket_errors} |",
        f"| a version of every model loading | {loading.throughput:.1f} | {loading.p50:.2f} | {loading.p90:.2f} | "
        f"{loading.p99:.2f} | {loading.non2xx + loading.socket_errors} |",
        "",
        f"p99 rose {loading.p99 / steady.p99:.2f}× ({loading.p99 - steady.p99:+.1f} ms) while the versions loaded; "
        f"every model answered from its new version {cost.swap_s:.1f} s after publishing.",
        "",
    ]


if __name__ == "__main__":  # `python -m service.tools.bench.reload`: this section alone, printed
    import sys
    import tempfile

    from service.config import load_settings

    settings = load_settings()
    with tempfile.TemporaryDirectory() as tmp:
        images = inputs.write_images(Path(tmp))
        cost = measure(Path(tmp), settings.models, settings.labels, images["640x360.jpg"],
                       float(sys.argv[1]) if len(sys.argv) > 1 else 8.0)
    print("\n".join(report(cost)))

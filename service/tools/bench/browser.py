"""The models in the browser (issue 15), measured the way a person gets them: the test page in headless
Chromium (Playwright, Debian's `chromium`) against a real server of the demo models on a free port.

Per demo model and variant (float32, float16): the web file's size, its download (cold, and on a second
visit, from the HTTP cache), the onnxruntime-web session's creation, crop + inference per click (median
and p90 over points of scikit-image's astronaut and coffee photos), the server's round trip for the same
clicks in "server" mode, and what float16 costs in answers (top-1 agreement with float32, the largest
change of a top-5 score). Everything comes from the page's own data attributes (cards: data-model,
data-where, data-ms; score rows: data-label, data-score; downloads: data-bytes, data-ms, data-create-ms)
and the browser's Resource Timing entries: nothing here re-implements the page's inference.

`python -m service.tools.bench.browser [--out docs/browser.md] [--points 30]`; `pinpoint bench` runs it too.
It writes its section between the markers in --out (or prints it), and skips, naming the tool, without
chromium or playwright.
"""

from __future__ import annotations

import argparse
import importlib
import os
import re
import shutil
import statistics
import time
from pathlib import Path

import numpy as np
import requests

from service.tools.bench.server import ServerProcess

REPO = Path(__file__).resolve().parents[3]
VARIANTS = ("float32", "float16")
PHOTOS = ("astronaut", "coffee")
TOP_K = 20  # every label of the demo models (18 and 8), so float16's scores can be compared label by label
FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
         "--disable-sync", "--no-first-run"]  # as tests/test_page_browser.py launches it
START, END = "<!-- browser bench: start -->", "<!-- browser bench: end -->"
RUNTIME_FILES = ("preprocess.js", "run.js", "ort.wasm.min.js", "ort-wasm-simd-threaded.mjs",
                 "ort-wasm-simd-threaded.wasm")


def missing() -> str | None:
    """Why the measurement cannot run here (the tool that is missing), or None."""
    if not (shutil.which("chromium") or shutil.which("chromium-browser")):
        return "chromium is not installed (Debian package `chromium`; .ci/run installs it)"
    try:
        importlib.import_module("playwright.sync_api")
    except ImportError:
        return "playwright is not installed (it comes with Pinpoint's test tools: pip install -e '.[test]')"
    return None


def write_photos(root: Path) -> list[tuple[Path, tuple[int, int]]]:
    """scikit-image's astronaut and coffee as JPEGs (quality 90), as a person would choose them."""
    from PIL import Image
    from skimage import data

    made = []
    for name in PHOTOS:
        image = Image.fromarray(getattr(data, name)())
        path = root / f"{name}.jpg"
        image.save(path, quality=90)
        made.append((path, image.size))
    return made


def fractions(count: int, seed: int) -> list[tuple[float, float]]:
    """`count` points as fractions of the shown image, the edges included (the window is shifted inside)."""
    rng = np.random.default_rng(seed)
    return [(float(x), float(y)) for x, y in rng.uniform(0.01, 0.99, size=(count, 2))]


# ---- driving the page ----
def open_page(context, url: str):
    page = context.new_page()
    page.goto(url + "/")
    # A scrollbar that comes and goes (answers of different heights) would change the image's width, and
    # so the pixel a click lands on: always shown, every mode's click at a fraction is the same pixel.
    page.add_style_tag(content="html { overflow-y: scroll }")
    page.wait_for_selector("#models li.state-AVAILABLE")
    page.wait_for_function("document.querySelectorAll('#models li').length >= 2 && "
                           "![...document.querySelectorAll('#models li')]"
                           ".some((li) => !li.className.includes('AVAILABLE'))")
    page.locator("#top-k").fill(str(TOP_K))
    return page


def run_on(page, where: str, variant: str = "float32") -> None:
    page.locator(f"input[name=run-on][value={where}]").check()
    if where != "server":
        box = page.locator("#float16")
        box.set_checked(variant == "float16")
        page.wait_for_function("typeof PinpointBrowser !== 'undefined'", timeout=60_000)


def choose(page, path: Path) -> None:
    page.evaluate("document.querySelector('#image').removeAttribute('src')")
    page.set_input_files("#file", str(path))
    page.wait_for_function("document.querySelector('#image').getAttribute('src') || "
                           "document.querySelector('#status.error')", timeout=60_000)
    if page.locator("#status.error").count():
        raise RuntimeError(f"the page refused {path.name}: {page.locator('#status').inner_text()}")


def click(page, fraction: tuple[float, float], exact: bool = True) -> dict:
    """Click the pixel at `fraction` of the image and wait for its answer (a new history entry);
    -> {"at": that pixel, "cards": the cards on screen}. The page turns a click into a pixel by rounding;
    where a mode's layout puts the image a fraction of a pixel elsewhere, the click is nudged (and the
    answer taken again) until it is that pixel, so every mode answers the same points; not when `exact`
    is false (one click: a first answer, whose all-in time is wanted)."""
    width, height = page.evaluate("[state.width, state.height]")
    target = (min(width - 1, int(fraction[0] * width)), min(height - 1, int(fraction[1] * height)))
    aim = [target[0] + 0.25, target[1] + 0.25]
    for _ in range(3 if exact else 1):
        page.locator("#image").scroll_into_view_if_needed()
        box = page.locator("#image").bounding_box()
        x, y = box["x"] + box["width"] * aim[0] / width, box["y"] + box["height"] * aim[1] / height
        shown = answer(page, lambda x=x, y=y: page.mouse.click(x, y))
        if shown["at"] == target:
            break
        aim = [aim[0] + target[0] - shown["at"][0], aim[1] + target[1] - shown["at"][1]]
    return shown


def answer(page, action) -> dict:
    """Do what makes the page answer (a click; ticking float16 answers the same point again, replacing
    its history entry) and wait for a new entry on screen: -> {"at": its point, "cards": the cards}."""
    page.evaluate("window.benchBefore = state.history[state.shown]")
    action()
    page.wait_for_function("(state.shown >= 0 && state.history[state.shown] !== window.benchBefore) || "
                           "document.querySelector('#status.error')", timeout=300_000)
    if page.locator("#status.error").count():
        raise RuntimeError(f"the page failed: {page.locator('#status').inner_text()}")
    shown = cards(page)
    failed = {f"{where} {model}": card["failed"] for where, models in shown.items()
              for model, card in models.items() if card["failed"]}
    if failed:
        raise RuntimeError(f"a model failed: {failed}")
    at = re.match(r"Point \((\d+), (\d+)\)", page.locator("#point").inner_text()).groups()
    return {"at": tuple(int(value) for value in at), "cards": shown}


def cards(page) -> dict:
    """{where: {model: {version, ms, failed, scores: {label: score}}}} from the cards' data attributes."""
    return page.evaluate("""() => {
      const found = {};
      for (const card of document.querySelectorAll('#results article.model')) {
        found[card.dataset.where] ??= {};
        found[card.dataset.where][card.dataset.model] = {
          version: card.dataset.version, ms: Number(card.dataset.ms),
          failed: card.querySelector('.failed')?.textContent ?? null,
          scores: Object.fromEntries([...card.querySelectorAll('.score')].map(
            (row) => [row.dataset.label, Number(row.dataset.score)])),
        };
      }
      return found;
    }""")


def downloads(page) -> dict:
    """{(model, variant): {bytes, ms, create_ms}} from the page's download line."""
    items = page.locator("#downloads .download").evaluate_all("items => items.map((item) => ({...item.dataset}))")
    return {(item["model"], item["variant"]): {"bytes": int(item["bytes"]), "ms": float(item["ms"]),
                                               "create_ms": float(item["createMs"])} for item in items}


def resources(page) -> list[dict]:
    """The page's Resource Timing entries: what was fetched, its size on the wire and whether it came
    from the HTTP cache (transferSize 0)."""
    return page.evaluate("""() => performance.getEntriesByType('resource').map((entry) => ({
      name: new URL(entry.name).pathname, duration: entry.duration, transfer: entry.transferSize,
      encoded: entry.encodedBodySize, decoded: entry.decodedBodySize }))""")


def first_answer_ms(page) -> float:
    """The page's own figure for the click just answered in this browser: everything, downloads and
    session creation included ("N ms in all" on the meta line)."""
    return float(re.search(r"(\d+) ms in all", page.locator("#meta").inner_text()).group(1))


def environment(page) -> dict:
    return page.evaluate("""() => ({ isolated: globalThis.crossOriginIsolated, threads: ort.env.wasm.numThreads,
      ort: ort.env.versions?.web ?? ort.env.versions?.common ?? null, cores: navigator.hardwareConcurrency })""")


# ---- the measurement ----
def measure(work: Path, models: Path = REPO / "models", labels: Path = REPO / "labels", points: int = 30,
            log=lambda text: print(text, flush=True)) -> dict:
    from playwright.sync_api import sync_playwright

    photos = write_photos(work)
    per_photo = max(1, points // len(photos))
    where = {path: fractions(per_photo, seed) for seed, (path, _) in enumerate(photos)}
    result = {"load_start": os.getloadavg(), "started": time.gmtime(), "points": per_photo * len(photos),
              "photos": [(path.stem, size) for path, size in photos], "clicks": {}, "visits": {}, "exports": {}}
    env = {"PINPOINT_ONNX_CACHE": str(work / "onnx-cache"), "PINPOINT_FEEDBACK_DB": str(work / "feedback.db")}
    with ServerProcess(work, env, ["--models", str(models), "--labels", str(labels)]) as server:
        listing = web_listing(server.url)
        result["server"] = {"workers": len([role for role in server.roles().values() if role == "worker"])}
        for model in listing:
            version = next(entry for entry in model["versions"] if entry["version"] == model["version"])
            started = time.perf_counter()  # the first ask exports the web copy (a fresh ONNX cache: converted)
            manifest = requests.get(server.url + version["web"], timeout=600).json()
            result["exports"][model["name"]] = {"version": model["version"], "s": time.perf_counter() - started,
                                                "backend": model["backend"],
                                                "files": manifest["files"], "source": manifest["source"]}
        exported = ", ".join(f"{name} {entry['s'] * 1000:.0f} ms" for name, entry in result["exports"].items())
        log(f"  web copies exported: {exported}")
        with sync_playwright() as driver:
            browser = driver.chromium.launch(
                executable_path=shutil.which("chromium") or shutil.which("chromium-browser"), args=FLAGS)
            result["chromium"] = browser.version
            try:
                for variant in VARIANTS:
                    log(f"  this browser, {variant}: a first visit and a second ...")
                    visits(browser, server.url, variant, photos[0][0], result)
                log(f"  this browser: {result['points']} points, float32 and float16 in turn ...")
                browser_clicks(browser, server.url, photos, where, result)
                log(f"  server: the same {result['points']} points ...")
                server_clicks(browser, server.url, photos, where, result)
            finally:
                browser.close()
    result["load_end"] = os.getloadavg()
    return result


def web_listing(url: str, wait_s: float = 120) -> list[dict]:
    """GET /v1/models once every model's serving version offers a web copy (an API worker's copy of the
    models' state may trail /readyz by a moment)."""
    deadline = time.monotonic() + wait_s
    while True:
        listing = requests.get(url + "/v1/models", timeout=30).json()["models"]
        if all(any(entry["version"] == model["version"] and entry.get("web") for entry in model["versions"])
               for model in listing):
            return listing
        if time.monotonic() > deadline:
            raise RuntimeError(f"no web copy offered after {wait_s:.0f} s: {listing}")
        time.sleep(0.5)


def visits(browser, url: str, variant: str, photo: Path, result: dict) -> None:
    """A first visit in a fresh browser (an empty HTTP cache) and a second one in the same browser, each
    one click: what the runtime and the variant's model files cost to fetch and start, all in."""
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    try:
        seen = {}
        for visit in ("first", "second"):
            page = open_page(context, url)
            run_on(page, "browser", variant)
            choose(page, photo)
            click(page, (0.5, 0.5), exact=False)
            seen[visit] = dict(downloads=downloads(page), resources=resources(page), answer_ms=first_answer_ms(page))
            result["environment"] = environment(page)
            page.close()
        result["visits"][variant] = seen
    finally:
        context.close()


def browser_clicks(browser, url: str, photos, where, result: dict) -> None:
    """Every point in float32 and in float16 on one page, one right after the other (ticking the float16
    box answers the same point again), the order alternating from point to point: the load on a shared
    machine drifts, and it then drifts for both alike."""
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    clicks = {variant: [] for variant in VARIANTS}
    try:
        page = open_page(context, url)
        run_on(page, "browser", "float32")
        box = page.locator("#float16")
        for path, _ in photos:
            choose(page, path)
            click(page, (0.5, 0.5), exact=False)  # not counted: both variants' sessions made, first runs done
            answer(page, lambda: box.set_checked(not box.is_checked()))
            for fraction in where[path]:
                first = click(page, fraction)
                clicks["float16" if box.is_checked() else "float32"].append(
                    {"at": (path.stem, *first["at"]), **first["cards"]})
                then = answer(page, lambda: box.set_checked(not box.is_checked()))
                clicks["float16" if box.is_checked() else "float32"].append(
                    {"at": (path.stem, *then["at"]), **then["cards"]})
    finally:
        context.close()
    result["clicks"].update(clicks)


def server_clicks(browser, url: str, photos, where, result: dict) -> None:
    """The same points in "server" mode: the page's round trip of each (POST /v1/classify, image_id)."""
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    clicks = result["clicks"]["server"] = []
    try:
        page = open_page(context, url)
        run_on(page, "server")
        for path, _ in photos:
            choose(page, path)  # the upload (POST /v1/images)
            click(page, (0.5, 0.5), exact=False)  # not counted: a first request of its image
            for fraction in where[path]:
                shown = click(page, fraction)
                clicks.append({"at": (path.stem, *shown["at"]), **shown["cards"]})
    finally:
        context.close()


# ---- the report ----
def _median_p90(values: list[float]) -> tuple[float, float]:
    return statistics.median(values), float(np.percentile(values, 90))


def agreement(reference: list[dict], other: list[dict], model: str, where: tuple[str, str]) -> tuple[int, int, float]:
    """Over the points both sides answered: (points compared, points with the same top-1, largest
    difference of a score in the reference's top 5). where: the cards' side in each (browser, server)."""
    theirs_at = {click["at"]: click[where[0]][model]["scores"] for click in reference}
    compared = same = 0
    largest = 0.0
    for click in other:
        theirs, mine = theirs_at.get(click["at"]), click[where[1]][model]["scores"]
        if theirs is None:
            continue
        compared += 1
        same += max(theirs, key=theirs.get) == max(mine, key=mine.get)
        for label in sorted(theirs, key=theirs.get, reverse=True)[:5]:
            largest = max(largest, abs(theirs[label] - mine.get(label, 0.0)))
    return compared, same, largest


def cpu_flags() -> tuple[str, list[str]]:
    name, flags = "unknown", []
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name") and name == "unknown":
            name = line.split(":", 1)[1].strip()
        if line.startswith("flags") and not flags:
            flags = line.split(":", 1)[1].split()
    return name, flags


def _size(n: int) -> str:
    return f"{n / 1e6:.2f} MB" if n >= 1e5 else f"{n / 1e3:.0f} kB"


def report(result: dict) -> list[str]:
    name, flags = cpu_flags()
    simd = [flag for flag in flags if flag in ("sse4_1", "sse4_2", "avx", "avx2", "fma", "f16c")]
    avx512 = [flag for flag in flags if flag.startswith("avx512")]
    env = result["environment"]
    start, end = result["load_start"], result["load_end"]
    photos = " and ".join(f"{stem} ({w}×{h})" for stem, (w, h) in result["photos"])
    server = result["clicks"]["server"]
    models = sorted(result["exports"])
    lines = [
        START, "",
        f"Measured by `python -m service.tools.bench.browser` on "
        f"{time.strftime('%Y-%m-%d %H:%M UTC', result['started'])}:", "",
        f"- machine: {os.cpu_count()} cores ({name}); CPU flags: {', '.join(simd)}; "
        f"{'avx512: ' + ', '.join(avx512) if avx512 else 'no avx512'}",
        f"- a shared machine: load average (1, 5, 15 min) {start[0]:.2f}, {start[1]:.2f}, {start[2]:.2f} at the start "
        f"and {end[0]:.2f}, {end[1]:.2f}, {end[2]:.2f} at the end (the server's and the browser's own load among "
        "it): compare the columns with each other more than with another machine",
        f"- browser: headless Chromium {result['chromium']} (Playwright); onnxruntime-web {env['ort'] or '?'} "
        f"(its WebAssembly build with SIMD and threads, {env['threads']} thread(s), cross-origin isolated: "
        f"{'yes' if env['isolated'] else 'no'}, navigator.hardwareConcurrency {env['cores']})",
        f"- server: `pinpoint serve` defaults ({result['server']['workers']} API workers and the model runner) on the "
        "same machine, over loopback: the round trip has no network in it",
        f"- clicks: {result['points']} points (fixed seeds, the edges included) on scikit-image's {photos} as "
        f"JPEGs, chosen in the page and clicked, top_k {TOP_K}: in this browser each point in float32 and in "
        "float16 one right after the other (the float16 box ticked or unticked answers the point again; which "
        "comes first alternates), then on the server; a first click per photo (downloads, session creation, "
        "first runs) is not counted",
        "",
        "| model | variant | web file | download, first visit | download, second visit | session creation, first / "
        "second visit | in this browser: crop + inference, median / p90 | download at 10 Mbit/s (computed) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for model in models:
        for variant in VARIANTS:
            visits = result["visits"][variant]
            first, second = (visits["first"]["downloads"][(model, variant)],
                             visits["second"]["downloads"][(model, variant)])
            cached = _from_cache(visits["second"]["resources"], result["exports"][model]["files"][variant]["url"])
            browser_ms = [click["browser"][model]["ms"] for click in result["clicks"][variant]]
            median, p90 = _median_p90(browser_ms)
            lines.append(f"| {model} v{result['exports'][model]['version']} | {variant} | {_size(first['bytes'])} | "
                         f"{first['ms']:.0f} ms | {second['ms']:.0f} ms{' (HTTP cache)' if cached else ''} | "
                         f"{first['create_ms']:.0f} / {second['create_ms']:.0f} ms | "
                         f"{median:.2f} / {p90:.2f} ms | {first['bytes'] * 8 / 10e6:.2f} s |")
    runs_first = next(iter(result["visits"]["float32"]["first"]["downloads"]))[0]
    lines += ["", f"Downloads and session creation are the page's own figures (fetch to ArrayBuffer; "
              "`InferenceSession.create`), over loopback: the computed column is what the file takes on a 10 Mbit/s "
              f"line. The first session of a visit ({runs_first}'s: the page runs the models in the server's order) "
              "also starts the runtime: it compiles the 14 MB WebAssembly and starts its threads."]
    round_trip = [click["server"][models[0]]["ms"] for click in server]
    lines += ["", "Per click, every model (the page runs them one after the other in the browser; the server "
              "runs them in one batch):", "",
              "| where | median | p90 | first answer of a visit (all in: runtime, downloads, session creation) |",
              "|---|---|---|---|"]
    for variant in VARIANTS:
        total = [sum(click["browser"][model]["ms"] for model in models) for click in result["clicks"][variant]]
        median, p90 = _median_p90(total)
        visits = result["visits"][variant]
        lines.append(f"| this browser, {variant} (crop + inference) | {median:.2f} ms | {p90:.2f} ms | "
                     f"{visits['first']['answer_ms']:.0f} ms first visit, "
                     f"{visits['second']['answer_ms']:.0f} ms second |")
    median, p90 = _median_p90(round_trip)
    lines.append(f"| server (the page's round trip: POST /v1/classify with the stored image's id) | {median:.2f} ms | "
                 f"{p90:.2f} ms | the image's upload (POST /v1/images) comes first |")
    lines += ["", "The code fetched besides the models (Resource Timing: first visit, and a second one in the same "
              "browser): preprocess.js with the page, the rest once \"this browser\" or \"both\" is first chosen "
              "(a visit that stays on \"server\" fetches none of it):", "",
              "| file | on the wire | size | first visit | second visit |", "|---|---|---|---|---|"]
    first_resources = result["visits"]["float32"]["first"]["resources"]
    second_resources = result["visits"]["float32"]["second"]["resources"]
    for file_name in RUNTIME_FILES:
        entry = next((e for e in first_resources if e["name"].endswith("/" + file_name)), None)
        again = next((e for e in second_resources if e["name"].endswith("/" + file_name)), None)
        if entry is None:
            continue
        lines.append(f"| {file_name} | {_size(entry['transfer'] or entry['encoded'])} | {_size(entry['decoded'])} | "
                     f"{entry['duration']:.0f} ms | {_visit(again)} |")
    lines += ["", "What float16 costs (the same points), and the browser against the server:", "",
              "| model | float16 vs float32: same top-1 | largest top-5 score difference | published `max_difference` "
              "(model.json) | float32 in this browser vs the server: same top-1 | largest top-5 score difference |",
              "|---|---|---|---|---|---|"]
    clicks = result["clicks"]
    for model in models:
        count16, same16, diff16 = agreement(clicks["float32"], clicks["float16"], model, ("browser", "browser"))
        count, same, diff = agreement(server, clicks["float32"], model, ("server", "browser"))
        published = result["exports"][model]["files"]["float16"]["max_difference"]
        lines.append(f"| {model} | {same16}/{count16} | {diff16:.4f} | {published:.4f} | {same}/{count} | {diff:.6f} |")
    exports = ", ".join(f"{model} {entry['s'] * 1000:.0f} ms" for model, entry in result["exports"].items())
    backends = {entry["backend"] for entry in result["exports"].values()}
    converted = ("the float32 file is the ONNX model the ONNX Runtime backend converted with tf2onnx and verified "
                 "when it loaded the version" if backends == {"onnxruntime"} else
                 "with an empty ONNX cache: the tf2onnx conversion and its check against TensorFlow")
    lines += ["", f"The server's one-time export of the web copies, the first ask for each model.json (the float16 "
              f"copy and its check; {converted}): {exports}.", "", END]
    return lines


def _from_cache(entries: list[dict], url: str) -> bool:
    entry = next((e for e in entries if e["name"] == url), None)
    return entry is not None and entry["transfer"] == 0 and entry["decoded"] > 0


def _visit(entry) -> str:
    if entry is None:
        return "not fetched"
    if entry["transfer"] == 0 and entry["decoded"] > 0:
        return f"{entry['duration']:.0f} ms (HTTP cache)"
    return f"{entry['duration']:.0f} ms ({_size(entry['transfer'])} on the wire)"


def summary(result: dict) -> list[str]:
    """A short section for docs/benchmarks.md; the whole table is in docs/browser.md."""
    models = sorted(result["exports"])
    f32 = [sum(click["browser"][m]["ms"] for m in models) for click in result["clicks"]["float32"]]
    server = [click["server"][models[0]]["ms"] for click in result["clicks"]["server"]]
    return ["## In the browser", "",
            f"The test page's \"this browser\" mode, in headless Chromium: every demo model's crop + inference "
            f"{statistics.median(f32):.2f} ms per click (median, float32) against the server's round trip of "
            f"{statistics.median(server):.2f} ms for the same clicks; sizes, downloads, float16 and the rest: "
            "[browser.md](browser.md).", ""]


def write(out: Path, lines: list[str]) -> None:
    """Replace the measured section of `out` (between the markers), or add it at its end."""
    text = out.read_text() if out.exists() else ""
    section = "\n".join(lines)
    if START in text and END in text:
        text = text[:text.index(START)] + section + text[text.index(END) + len(END):]
    else:
        text = text.rstrip("\n") + ("\n\n" if text else "") + section + "\n"
    out.write_text(text)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m service.tools.bench.browser", description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, help="the Markdown file whose measured section to replace (default: print)")
    parser.add_argument("--points", type=int, default=30, help="points clicked per mode (split over the photos)")
    parser.add_argument("--models", type=Path, default=REPO / "models")
    parser.add_argument("--labels", type=Path, default=REPO / "labels")
    args = parser.parse_args(argv)
    why = missing()
    if why:
        print(f"skipped: {why}")
        return 0
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        result = measure(Path(tmp), args.models, args.labels, args.points)
    lines = report(result)
    if args.out:
        write(args.out, lines)
        print(f"wrote {args.out}")
    else:
        print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

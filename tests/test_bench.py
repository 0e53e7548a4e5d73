"""`pinpoint bench`'s parts: wrk really drives a server, and the report states targets and bounds.

The full benchmark takes minutes and its numbers are the machine's, so it is `make bench`, not a
test; these tests check that its tools measure what they say on a short run.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from service.config import load_settings
from service.tools.bench import benchmarks_md as report
from service.tools.bench import inputs, wrk

needs_wrk = pytest.mark.skipif(shutil.which("wrk") is None, reason="wrk is not installed (.ci/run installs it)")


@needs_wrk
def test_wrk_posts_the_exact_upload_and_reads_back_counts_and_latencies(server):
    image = inputs.photo((320, 180))
    body, content_type = inputs.multipart(image, {"x": "50", "y": "50", "units": "pct"})
    result = wrk.run(server.url, "/v1/classify", body, content_type, connections=2, seconds=1)
    assert result.requests > 0 and result.non2xx == 0 and result.socket_errors == 0
    assert 0 < result.p50 <= result.p90 <= result.p99
    assert result.throughput == pytest.approx(result.requests / result.seconds)


@needs_wrk
def test_wrk_counts_refusals_as_non_2xx(server):
    result = wrk.run(server.url, "/v1/classify", b"not an image", "image/jpeg", connections=1, seconds=1)
    assert result.requests > 0 and result.non2xx == result.requests


@needs_wrk
def test_wrk_can_get(server):
    result = wrk.run(server.url, "/healthz", b"", "", connections=1, seconds=1, method="GET")
    assert result.requests > 0 and result.non2xx == 0


def _row(label, c, rate, p50=5.0, batching="on", cpu=150.0, limit=None):
    result = wrk.Result(requests=int(rate * 10), seconds=10.0, non2xx=0, socket_errors=0,
                        p50=p50, p90=p50 * 1.5, p99=p50 * 2, mean=p50)
    return {"label": label, "image": "640x360.jpg", "points": 1, "input": "multipart", "c": c,
            "batching": batching, "result": result, "limit": limit, "cpu": cpu}


def test_report_marks_each_target_and_explains_the_ceiling_with_the_runs_numbers(tmp_path: Path):
    limits = {("640x360.jpg", 1, 1): (400.0, 2.5, 110.0), ("640x360.jpg", 1, 8): (800.0, 10.0, 160.0),
              ("640x360.jpg", 1, 32): (800.0, 40.0, 150.0), ("640x360.jpg", 1, 32, "off"): (400.0, 80.0, 140.0)}
    rows = [_row("GET /healthz (HTTP alone)", 8, 2000.0, cpu=110.0),
            _row("640x360 upload parsed, no model (404)", 8, 1200.0, cpu=115.0),
            _row("640x360, 1 point, multipart", 1, 300.0, p50=3.0, limit=limits[("640x360.jpg", 1, 1)]),
            _row("640x360, 1 point, multipart", 8, 480.0, limit=limits[("640x360.jpg", 1, 8)]),
            _row("640x360, 1 point, multipart", 32, 470.0, limit=limits[("640x360.jpg", 1, 32)]),
            _row("640x360, 1 point, multipart", 32, 460.0, batching="off")]
    settings = load_settings(None).model_copy(update={"models": Path(__file__).resolve().parents[1] / "models"})
    out = tmp_path / "benchmarks.md"
    report.write(out, rows, limits, settings, decode=(45.0, 14.0, 8), memory=(670.0, 672.0, 690.0, 20_000),
                 versions={"python": "3.11"})
    text = out.read_text()
    assert ("| 640x360 JPEG, 1 point, multipart, c=8: ≥ 70% of the in-process limit | 60% (480 vs 800 req/s) "
            "| **missed** |") in text
    assert "in-process 2.00× (800 vs 400 req/s)" in text
    assert ("| 12 MP JPEG, small crops: decode ≤ 1/3 of a full decode | 0.31 (14.0 vs 45.0 ms, 1/8 scale) "
            "| met |") in text
    # The ceiling: 1 / (1.25 ms pipeline + 0.83 ms HTTP) = 480 req/s, 60% of the limit.
    assert "= 480 req/s, 60% of the in-process limit" in text
    assert "| 640x360.jpg | 1 | 32 | off | 400.0 | 80.00 | 140% |" in text


def test_a_fresh_run_rewrites_the_figures_and_keeps_what_was_measured_by_hand(tmp_path: Path):
    rows = [_row("640x360, 1 point, multipart", 8, 480.0)]
    settings = load_settings(None).model_copy(update={"models": Path(__file__).resolve().parents[1] / "models"})
    out = tmp_path / "benchmarks.md"

    def run(rate: float) -> str:
        rows[0]["result"] = _row("640x360, 1 point, multipart", 8, rate)["result"]
        report.write(out, rows, {}, settings, decode=(45.0, 14.0, 8), memory=(670.0, 672.0, 690.0, 20_000),
                     versions={"python": "3.11"})
        return out.read_text()

    assert "measured by hand" not in run(480.0)  # nothing to keep yet, nor to point to
    by_hand = "\n".join([report.KEPT_START, "## Measured by hand", "", "Change 1: 401 → 480 req/s.",
                         report.KEPT_END])
    out.write_text(out.read_text() + "\n" + by_hand + "\n")
    text = run(512.0)
    assert "| 512.0 |" in text and "| 480.0 |" not in text  # the figures are this run's
    assert text.count(by_hand) == 1 and text.index(by_hand) > text.index("## Every run")
    assert run(530.0).count(by_hand) == 1  # and again, not duplicated
    assert "[what was measured by hand](#measured-by-hand)" in text


@pytest.mark.parametrize("edit", ["end marker lost", "start marker lost", "text after the end marker"])
def test_a_run_never_drops_hand_written_text_it_cannot_place(tmp_path: Path, edit: str):
    settings = load_settings(None).model_copy(update={"models": Path(__file__).resolve().parents[1] / "models"})
    out = tmp_path / "benchmarks.md"
    page = "\n".join(["# Benchmarks", "", report.KEPT_START, "## Measured by hand", "", "Change 1: 401 → 480 req/s.",
                      report.KEPT_END, ""])
    page = {"end marker lost": page.replace(report.KEPT_END, ""),
            "start marker lost": page.replace(report.KEPT_START, ""),
            "text after the end marker": page + "A note added at the very end.\n"}[edit]
    out.write_text(page)
    with pytest.raises(ValueError, match="run again"):
        report.write(out, [_row("640x360, 1 point, multipart", 8, 512.0)], {}, settings, decode=(45.0, 14.0, 8),
                     memory=(670.0, 672.0, 690.0, 20_000), versions={"python": "3.11"})
    assert out.read_text() == page  # left as it was
    assert "| 512.0 |" in (tmp_path / "benchmarks.md.new").read_text()  # and the run's figures kept aside


def test_make_bench_refuses_at_once_a_page_whose_markers_are_broken(tmp_path: Path, monkeypatch, capsys):
    from service.tools.bench import run

    monkeypatch.setattr(wrk, "available", lambda: True)
    out = tmp_path / "benchmarks.md"
    out.write_text(f"# Benchmarks\n\n{report.KEPT_START}\nChange 1: 401 → 480 req/s.\n")
    assert run.main(out, load_settings(None), seconds=0.1) == 2  # before measuring anything
    assert "mend them, then run again" in capsys.readouterr().out


def test_backends_section_marks_each_target_and_says_what_bounds_the_http_ratios():
    from service.tools.bench import backends

    def served(p50, rate, cpu_ms):
        return {"c": 1, "result": wrk.Result(requests=int(rate * 10), seconds=10.0, non2xx=0, socket_errors=0,
                                               p50=p50, p90=p50, p99=p50 * 2, mean=p50), "cpu_ms": cpu_ms}

    inference = [{"model": "color", "batch": 1, "tensorflow_ms": 1.2, "onnxruntime_ms": 0.5,
                  "tensorflow_median_ms": 1.3, "onnxruntime_median_ms": 0.6, "ratio": 0.5 / 1.2, "difference": 2e-7,
                  "top1_same": 1, "crops": 1},
                 {"model": "color", "batch": 32, "tensorflow_ms": 20.0, "onnxruntime_ms": 12.0,
                  "tensorflow_median_ms": 21.0, "onnxruntime_median_ms": 13.0, "ratio": 0.6, "difference": 3e-7,
                  "top1_same": 32, "crops": 32}]
    servers = [{"server": "auto, cold conversion cache", "runs": [], "rss_mb": 1135.0, "ready_s": 15.0,
                "backends": "color: onnxruntime"},
               {"server": "tensorflow", "runs": [served(9.0, 90, 9.0), {**served(48.0, 150, 7.4), "c": 8}],
                "rss_mb": 1075.0, "ready_s": 12.0, "backends": "color: tensorflow"},
               {"server": "auto, warm conversion cache",
                "runs": [served(6.0, 130, 6.5), {**served(30.0, 240, 5.8), "c": 8}],
                "rss_mb": 465.0, "ready_s": 9.0, "backends": "color: onnxruntime"}]
    text = "\n".join(backends.report(inference, servers))
    assert ("| color, batch 1: ONNX Runtime ≤ 0.5× TensorFlow, same top-1, scores within 1e-4 | "
            "0.42× (0.50 vs 1.20 ms), top-1 1/1, largest difference 2e-07 | met |") in text
    assert "| color, batch 32: ONNX Runtime ≤ 0.5× TensorFlow" in text and "0.60× (12.00 vs 20.00 ms)" in text
    assert "| 640×360 upload, c=1: p50 ≥ 1.5× lower than on TensorFlow | 1.50× (6.00 vs 9.00 ms) | met |" in text
    assert "| 640×360 upload, c=8: throughput ≥ 1.5× TensorFlow's | 1.60× (240 vs 150 req/s) | met |" in text
    assert "| auto, cold conversion cache | color: onnxruntime | 15.0 s | – | – | – | – | – | 1135 |" in text
    assert "takes 2.5 ms of server CPU off each request at c=1 (9.0 → 6.5 ms)" in text
    assert "ONNX Runtime's runs are about 0.5 ms" in text


def _browser_run() -> dict:
    """What service.tools.bench.browser.measure returns, for two models and two points: float16 changes
    colour's top-1 at the second point, and the server answered one point the browser did not."""
    import time

    from service.tools.bench import browser

    def scores(top, other, shift=0.0):
        return {top: 0.6 + shift, other: 0.4 - shift}

    models = {"color": ("red", "blue"), "theme": ("solid", "stripes")}
    at = [("astronaut", 10, 20), ("astronaut", 300, 400)]
    clicks = {
        "float32": [{"at": point, "browser": {m: {"ms": 2.0 + i, "scores": scores(*labels)}
                                              for m, labels in models.items()}}
                    for i, point in enumerate(at)],
        "float16": [{"at": point, "browser": {m: {"ms": 3.0, "scores": scores(*labels, shift=-0.3 * i * (m == "color"))}
                                              for m, labels in models.items()}} for i, point in enumerate(at)],
        "server": [{"at": point, "server": {m: {"ms": 20.0, "scores": scores(*labels, shift=0.001)}
                                            for m, labels in models.items()}}
                   for point in (at[0], ("astronaut", 1, 1))],
    }
    files = {m: {v: {"url": f"/v1/models/{m}/versions/1/web/{m}-{v}.onnx", "bytes": 600_000, "max_difference": 0.0004}
                 for v in browser.VARIANTS} for m in models}
    visits = {v: {visit: {"downloads": {(m, v): {"bytes": 600_000 // (1 + (v == "float16")), "ms": 40.0,
                                                 "create_ms": 9.0}
                                        for m in models},
                          "resources": [{"name": files[m][v]["url"], "duration": 5.0,
                                         "transfer": 0 if visit == "second" else 600_300,
                                         "encoded": 600_000, "decoded": 600_000} for m in models]
                          + [{"name": "/static/vendor/onnxruntime-web/ort-wasm-simd-threaded.wasm", "duration": 200.0,
                              "transfer": 3_660_000, "encoded": 3_659_927, "decoded": 14_240_000}],
                          "answer_ms": 1500.0}
                  for visit in ("first", "second")} for v in browser.VARIANTS}
    return {"load_start": (5.0, 4.0, 3.0), "load_end": (6.0, 5.0, 4.0), "started": time.gmtime(0), "points": 2,
            "photos": [("astronaut", (512, 512))], "chromium": "156.0", "server": {"workers": 2},
            "environment": {"isolated": True, "threads": 2, "ort": "1.30.0", "cores": 2},
            "exports": {m: {"version": 1, "s": 0.2, "backend": "onnxruntime", "files": files[m], "source": ""}
                        for m in models},
            "clicks": clicks, "visits": visits}


def test_browser_section_states_sizes_timings_and_what_float16_changes(tmp_path: Path):
    from service.tools.bench import browser

    lines = browser.report(_browser_run())
    text = "\n".join(lines)
    assert lines[0] == browser.START and lines[-1] == browser.END
    assert "load average (1, 5, 15 min) 5.00, 4.00, 3.00 at the start and 6.00, 5.00, 4.00 at the end" in text
    assert "onnxruntime-web 1.30.0" in text and "Chromium 156.0" in text and "2 thread(s)" in text
    assert "| color v1 | float32 | 0.60 MB | 40 ms | 40 ms (HTTP cache) | 9 / 9 ms | 2.50 / 2.90 ms | 0.48 s |" in text
    assert "| theme v1 | float16 | 0.30 MB |" in text
    # float16 against float32 on both points; the server against the browser on the one point both answered.
    assert "| color | 1/2 | 0.3000 | 0.0004 | 1/1 | 0.001000 |" in text
    assert "| theme | 2/2 | 0.0000 | 0.0004 | 1/1 | 0.001000 |" in text
    assert "| ort-wasm-simd-threaded.wasm | 3.66 MB | 14.24 MB | 200 ms | 200 ms (3.66 MB on the wire) |" in text
    assert "| server (the page's round trip" in text and "| 20.00 ms | 20.00 ms |" in text

    # The section replaces the one between the markers and leaves the page's prose alone.
    page = tmp_path / "browser.md"
    page.write_text(f"# Prose\n\n{browser.START}\nold figures\n{browser.END}\n\nMore prose.\n")
    browser.write(page, lines)
    browser.write(page, lines)
    written = page.read_text()
    assert written.startswith("# Prose\n\n" + browser.START) and written.endswith(browser.END + "\n\nMore prose.\n")
    assert "old figures" not in written and written.count(browser.START) == 1


def test_browser_bench_names_the_missing_tool(monkeypatch, capsys):
    from service.tools.bench import browser

    monkeypatch.setattr(shutil, "which", lambda name: None)
    assert browser.main([]) == 0
    assert "skipped: chromium is not installed" in capsys.readouterr().out


def test_the_tiny_model_can_be_written_twice_in_one_work_directory(tmp_path: Path):
    """`make bench` asks for it in the workers' stage and again in the peers' (it once stopped there)."""
    from service.tools.bench.workers import tiny_repository

    first = tiny_repository(tmp_path)
    graph = (first[0] / "mlp" / "1" / "frozen_graph.pb").read_bytes()
    assert tiny_repository(tmp_path) == first
    assert (first[0] / "mlp" / "1" / "frozen_graph.pb").read_bytes() == graph


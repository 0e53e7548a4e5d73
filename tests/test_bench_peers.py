"""The peers of `make bench` (service/tools/bench/peers/): a peer server answers what Pinpoint answers on
the benchmark's upload, its section reports Pinpoint ÷ peer ratios, and the profiler's raw files are read
right.

The peers live in .bench-venv, which `python -m service.tools.bench.peers --setup` fills from PyPI; tests
have no network, so the server test skips (naming what is missing) where it was not made.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
import requests

from service.config import load_settings
from service.engine import Engine
from service.tools.bench import floor, inputs, wrk
from service.tools.bench.peers import driver, exported_models, table, venv
from service.tools.bench.peers.servers import PeerProcess
from service.tools.bench.profile import read_raw

ROOT = Path(__file__).resolve().parents[1]


def _peers_missing() -> str:
    if shutil.which("wrk") is None:
        return "wrk is not installed (Debian package `wrk`)"
    return venv.missing()


@pytest.fixture(scope="module")
def demo_repository(tmp_path_factory) -> Path:
    """The two demo models the comparison is made on (the theme model would only slow the test down)."""
    repo = tmp_path_factory.mktemp("peer-models")
    for name in driver.DEMO_MODELS:
        (repo / name).symlink_to(ROOT / "models" / name)
    return repo


@pytest.mark.skipif(bool(_peers_missing()), reason=_peers_missing() or "ready")
def test_the_fastapi_peer_answers_what_pinpoint_answers_in_process(tmp_path: Path, demo_repository: Path):
    settings = load_settings(None).model_copy(update={"models": demo_repository, "labels": ROOT / "labels"})
    manifest = exported_models.write_manifest(tmp_path / "onnx", demo_repository, ROOT / "labels", settings)
    photo = inputs.photo((640, 360))
    (x, y), = inputs.points((640, 360), 1)
    with Engine.open(settings=settings) as engine:
        want = engine.classify_image(photo, [(x, y)]).predictions[0].results
    body, content_type = inputs.multipart(photo, {"x": str(x), "y": str(y)})
    with PeerProcess("fastapi", tmp_path, manifest) as peer:
        answer = requests.post(peer.url + "/v1/classify", data=body, headers={"Content-Type": content_type},
                               timeout=60)
        assert answer.status_code == 200, answer.text
        have = answer.json()["predictions"][0]["results"]
        assert sorted(have) == sorted(want) == sorted(driver.DEMO_MODELS)
        for name, labels in want.items():
            assert [item["label"] for item in have[name]] == [label.label for label in labels]
            assert [item["score"] for item in have[name]] == pytest.approx([label.score for label in labels], abs=1e-5)
        # and wrk drives it as it drives Pinpoint
        result = wrk.run(peer.url, "/v1/classify", body, content_type, connections=2, seconds=1)
        assert result.requests > 0 and result.non2xx == 0 and result.socket_errors == 0
        assert peer.cpu_seconds() > 0 and peer.rss_mb() > 0


def _run(server, image, c, ok_per_s, requests=1000, non2xx=0, per_worker=()):
    seconds = (requests - non2xx) / ok_per_s
    result = wrk.Result(requests=requests, seconds=seconds, non2xx=non2xx, socket_errors=0, p50=5.0, p90=7.0,
                        p99=9.0, mean=5.5)
    return {"models": "color, pattern", "server": server, "image": image, "c": c, "result": result, "cpu_ms": 4.0,
            "ok_per_s": ok_per_s, "per_worker": list(per_worker)}


def test_the_section_gives_pinpoint_over_peer_ratios_and_marks_losses_and_short_runs():
    small, large = driver.SMALL, driver.LARGE
    found = {"runs": [_run("pinpoint", small, 1, 300.0), _run("litserve", small, 1, 200.0),
                      _run("pinpoint", small, 8, 400.0, per_worker=(4, 4)), _run("litserve", small, 8, 500.0),
                      _run("pinpoint", large, 32, 20.0, requests=10), _run("litserve", large, 32, 5.0, requests=40)],
             "checks": {"color, pattern": {"litserve": {small: {"top1": {"color": "red"}, "same_top1": True,
                                                                "same_top5": True, "largest_score_difference": 0.0}}}},
             "rss_mb": {"color, pattern": {"pinpoint": 500.0, "litserve": 900.0}},
             "idle_cores": {"color, pattern": {"pinpoint": 0.0, "litserve": 0.2}},
             "floors": {"color, pattern": {small: floor.Floor(decode_ms=1.0, crops_ms=0.5, infer_ms={"color": 0.5},
                                                              infer_single_ms={"color": 0.75})}},
             "versions": {"litserve": "0.2.19"}, "sets": ["color, pattern"], "load_before": (1.0, 1.0, 1.0),
             "load_after": (2.0, 2.0, 2.0), "seconds": 3}
    text = "\n".join(table.lines(found))
    row = next(line for line in text.splitlines() if line.startswith("| LitServe 0.2.19"))
    cells = [cell.strip() for cell in row.strip("|").split("|")]
    assert cells[1] == "1.50× (200)"  # 300 ÷ 200
    assert cells[2] == "**0.80×** (500)"  # a loss, in bold
    assert cells[6] == "(5†)"  # Pinpoint answered 10 at c=32: too short for a ratio
    assert "litserve 900 MB" in text and "same top-1" in text and "litserve 0.20" in text
    assert "connections per API worker halfway through each run" in text and "640×360 c=8: 4 / 4." in text
    # CPU per request over the work itself: 4.0 CPU-ms over a floor of 1.0 + 0.5 + 0.5 = 2.0
    assert "decode 1.00 + crops 0.50 + inference at 8 crops a run (color 0.50) = **2.00 CPU-ms**" in text
    row = next(line for line in text.splitlines() if line.startswith("| pinpoint |"))
    assert [cell.strip() for cell in row.strip("|").split("|")][1:3] == ["2.00× (4.0)", "2.00× (4.0)"]


def test_py_spy_raw_stacks_give_own_and_total_shares(tmp_path: Path):
    raw = tmp_path / "worker.raw.txt"
    raw.write_text("main (a.py);serve (b.py);decode (c.py) 30\n"
                   "main (a.py);serve (b.py) 10\n"
                   "main (a.py);serve (b.py);serve (b.py);write (d.py) 60\n")
    own, total, samples = read_raw(raw)
    assert samples == 100
    assert own == {"decode (c.py)": 30, "serve (b.py)": 10, "write (d.py)": 60}
    assert total["serve (b.py)"] == 100 and total["main (a.py)"] == 100  # a recursion counts once per sample
    assert total["decode (c.py)"] == 30


def test_the_floor_is_decode_plus_crops_plus_each_models_inference_in_process(onnx_repository, tmp_path: Path):
    models, labels = onnx_repository
    settings = load_settings(environ={}, overrides={"models": str(models), "labels": str(labels),
                                                    "onnx_cache": os.environ["PINPOINT_ONNX_CACHE"]})  # the run's
    image = inputs.photo((640, 360))
    with Engine.open(settings=settings) as engine:
        work = floor.measure(engine, image, (320, 180), ["tint", "bright"], budget_s=0.02)  # rounds of ~20 ms
    assert set(work.infer_ms) == set(work.infer_single_ms) == {"tint", "bright"}
    assert work.decode_ms > 0 and work.crops_ms >= 0 and all(ms > 0 for ms in work.infer_ms.values())
    assert work.total_ms == work.decode_ms + work.crops_ms + sum(work.infer_ms.values())
    assert floor.describe(work).startswith(f"decode {work.decode_ms:.2f} + crops {work.crops_ms:.2f} + inference")


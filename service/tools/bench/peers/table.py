"""The peers' section of docs/benchmarks.md, from driver.measure's result: Pinpoint ÷ peer ratios (when
Pinpoint was measured), every run's figures, the answers' agreement, RSS, the CPU's flags and the load
average around the run."""

from __future__ import annotations

import os
import platform
from pathlib import Path

from service.tools.bench import floor
from service.tools.bench.peers import driver

SETUPS = {
    "pinpoint": "Pinpoint (its defaults: API workers in front of one model runner)",
    "litserve": "LitServe {litserve} (2 workers, batch 32, 5 ms batch timeout, fast queue)",
    "bentoml": "BentoML {bentoml} (API workers = cpu_count + one batching model service, batch 32)",
    "fastapi": "FastAPI {fastapi} + uvicorn {uvicorn} (one process, `def` handler, no batching)",
}


def _image(name: str) -> str:
    return "12 MP" if name == driver.LARGE else "640×360"


def cpu_flags() -> str:
    """The vector extensions ONNX Runtime and Pillow's decoders may use, as /proc/cpuinfo lists them."""
    wanted = ("sse4_2", "avx", "avx2", "fma", "f16c", "avx512f", "avx512bw", "avx512_vnni", "avx_vnni",
              "amx_tile", "amx_bf16")
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("flags"):
            have = set(line.split(":", 1)[1].split())
            return " ".join(flag for flag in wanted if flag in have) or "none of " + ", ".join(wanted)
    return platform.machine()


def _setup(name: str, versions: dict) -> str:
    return SETUPS[name].format(**{key.replace("-", "_"): value for key, value in versions.items()})


SHORT = "†"


def _short(run: dict) -> bool:
    """Fewer answers than connections: the run was too short to say anything at this load."""
    return run["result"].requests - run["result"].non2xx < max(run["c"], 2)


def _run(runs: list, models: str, server: str, image: str, c: int):
    return next((r for r in runs if (r["models"], r["server"], r["image"], r["c"]) == (models, server, image, c)),
                None)


def ratio_table(found: dict, models: str, grid: list) -> list[str]:
    """req/s as Pinpoint ÷ peer, one row per peer, the peer's own req/s in brackets."""
    runs = found["runs"]
    peers = [name for name in dict.fromkeys(r["server"] for r in runs if r["models"] == models) if name != "pinpoint"]
    header = " | ".join(f"{_image(image)} c={c}" for image, c in grid)
    lines = [f"| req/s, Pinpoint ÷ peer (peer's req/s) | {header} |", "|---" * (len(grid) + 1) + "|"]
    for peer in peers:
        cells = []
        for image, c in grid:
            ours, theirs = _run(runs, models, "pinpoint", image, c), _run(runs, models, peer, image, c)
            if not theirs:
                cells.append("–")
            elif ours and theirs["ok_per_s"] and not (_short(ours) or _short(theirs)):
                ratio = ours["ok_per_s"] / theirs["ok_per_s"]
                cells.append(f"{'**' if ratio < 1 else ''}{ratio:.2f}×{'**' if ratio < 1 else ''} "
                             f"({theirs['ok_per_s']:.0f})")
            else:
                cells.append(f"({theirs['ok_per_s']:.0f}{SHORT if _short(theirs) or (ours and _short(ours)) else ''})")
        lines.append(f"| {_setup(peer, found['versions'])} | {' | '.join(cells)} |")
    return lines


def spread_line(found: dict, models: str, grid: list) -> list[str]:
    """How Pinpoint's connections sat on its API workers halfway through each run (c > 1)."""
    cells = [f"{_image(image)} c={c}: {' / '.join(map(str, run['per_worker']))}" for image, c in grid
             if c > 1 and (run := _run(found["runs"], models, "pinpoint", image, c)) and run.get("per_worker")]
    return [f"Pinpoint's kept-alive connections per API worker halfway through each run (read from /proc as "
            f"`ss -tnp` reads them): {'; '.join(cells)}.", ""] if cells else []


def floor_table(found: dict, models: str, grid: list) -> list[str]:
    """Each server's CPU-ms per request ÷ the in-process floor of the same request (floor.py): what it
    spends above the work itself."""
    floors, runs = found.get("floors", {}).get(models), found["runs"]
    if not floors:
        return []
    servers = list(dict.fromkeys(r["server"] for r in runs if r["models"] == models))
    header = " | ".join(f"{_image(image)} c={c}" for image, c in grid)
    out = [f"| CPU-ms per request ÷ the floor (server's CPU-ms) | {header} |", "|---" * (len(grid) + 1) + "|"]
    for server in servers:
        cells = []
        for image, c in grid:
            run = _run(runs, models, server, image, c)
            cells.append(f"{run['cpu_ms'] / floors[image].total_ms:.2f}× ({run['cpu_ms']:.1f})"
                         if run and image in floors and not _short(run) else "–")
        out.append(f"| {server} | {' | '.join(cells)} |")
    return out


def floor_lines(found: dict, models: str) -> list[str]:
    floors = found.get("floors", {}).get(models, {})
    return [f"- In-process floor, {_image(image)}: {floor.describe(value)}" for image, value in floors.items()]


def lines(found: dict, title: str = "## Pinpoint and its peers") -> list[str]:
    versions = found["versions"]
    sets = found["sets"]
    out = [title, "",
           "One run, every server up at once and measured in turn, the others paused (SIGSTOP) meanwhile: "
           f"wrk, {found['seconds']:g} s per figure, the "
           f"multipart upload of one point (`image`, `x`, `y`); the same ONNX models (in turn: "
           f"{'; '.join(sets)}), converted from Pinpoint's frozen graphs by Pinpoint's loader, with Pinpoint's ONNX "
           "Runtime session options, and the same crops (the peers call Pinpoint's own imaging and preprocessing; "
           "they decode the whole image; Pinpoint decodes a large JPEG at reduced scale, and an upload only down to "
           "the lowest row its crops read). Peers from .bench-venv "
           f"({', '.join(f'{k} {v}' for k, v in sorted(versions.items()))}). "
           f"CPU: {_cpu_model()}, {os.cpu_count()} cores, flags {cpu_flags()}. Load average (1, 5, 15 min) "
           f"{_load(found['load_before'])} before the run, {_load(found.get('load_after'))} after.", ""]
    has_pinpoint = any(r["server"] == "pinpoint" for r in found["runs"])
    for models in sets:
        out += [f"### {models}", ""]
        if has_pinpoint:
            out += [*ratio_table(found, models, driver.GRID), "",
                    "Answers (2xx) per second; in **bold** where Pinpoint answered fewer than the peer.", "",
                    *spread_line(found, models, driver.GRID)]
        if found.get("floors", {}).get(models):
            out += ["The work itself, measured in-process with Pinpoint's code (service/tools/bench/floor.py), and "
                    "each server's CPU per request over it:", "", *floor_lines(found, models), "",
                    *floor_table(found, models, driver.GRID), ""]
    out += ["### Every run of the peers' comparison", "",
            "| models | server | image | c | req/s (2xx) | p50 ms | p99 ms | server CPU-ms/request | non-2xx | "
            "socket errors |", "|---|---|---|---|---|---|---|---|---|---|"]
    for run in found["runs"]:
        result = run["result"]
        out.append(f"| {run['models']} | {run['server']} | {_image(run['image'])} | {run['c']} | "
                   f"{run['ok_per_s']:.1f}{SHORT if _short(run) else ''} | {result.p50:.2f} | {result.p99:.2f} | "
                   f"{run['cpu_ms']:.2f} | {result.non2xx} | {result.socket_errors} |")
    out += ["", f"{SHORT} fewer answers than connections in the run: too short to measure this load (a longer "
            "--duration does). Server CPU counts every process of the server over the run, including what it spends "
            "idle (below), divided by the requests wrk counted; before each run the server is left to finish what "
            "the previous run left in flight.", ""]
    if has_pinpoint and any(r["models"] == "tiny MLP" for r in found["runs"]):
        out += ["The tiny flat MLP (service/tools/bench/workers.py: 16 → 32 → 2, almost no inference) on Pinpoint "
                "and on the FastAPI script:", "", *ratio_table(found, "tiny MLP", driver.TINY_GRID), ""]
    for model_set, idle in found["idle_cores"].items():
        out.append(f"- CPU while idle ({model_set}), in cores: "
                   + ", ".join(f"{name} {cores:.2f}" for name, cores in idle.items()))
    for model_set, memory in found["rss_mb"].items():
        out.append(f"- RSS after the {model_set} runs (every process of the server): "
                   + ", ".join(f"{name} {mb:.0f} MB" for name, mb in memory.items()))
    for model_set, by_server in found["checks"].items():
        for name, by_image in by_server.items():
            answers = "; ".join(
                f"{_image(image)}: top-1 {', '.join(f'{m} {label}' for m, label in check['top1'].items())} "
                f"({'same top-1' if check['same_top1'] else '**top-1 differs**'} as Pinpoint in-process, "
                f"{'same' if check['same_top5'] else 'other'} top-5 order, scores within "
                f"{check['largest_score_difference']:.1g})" for image, check in by_image.items())
            out.append(f"- {name} ({model_set}): {answers}")
    return out + [""]


def _cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def _load(values) -> str:
    return " / ".join(f"{v:.2f}" for v in values) if values else "–"

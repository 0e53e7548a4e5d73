"""docs/benchmarks.md: the machine, the versions, every figure, and the targets with pass or miss.

Every section is rewritten on each run but one: what was measured by hand (a change's before and
after, a profile read closely, a tool run on its own) sits between two markers at the end of the page
and is carried over as it stands, so a fresh run never erases what each change bought."""

from __future__ import annotations

import os
import platform
import time
from pathlib import Path

from service.tools.bench import wrk


def _cpu() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def _memory_gib() -> float:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal"):
            return int(line.split()[1]) / 1024 / 1024
    return 0.0


KEPT_START = "<!-- measured by hand: `make bench` keeps everything from here to the end marker as it stands -->"
KEPT_END = "<!-- end of what `make bench` keeps -->"
HAND_POINTER = ("After the measured sections, [what was measured by hand](#measured-by-hand) (each change's before and",
                "after, closer profiles, tools run on their own), which a run carries over unchanged.")


def kept(page: Path) -> list[str]:
    """The hand-measured part of the page as it stands, its markers included ([] if it has none).

    A ValueError if rewriting the page would lose hand-written text: a marker without the other, or
    text after the end marker."""
    try:
        text = page.read_text()
    except FileNotFoundError:
        return []
    start, end = text.find(KEPT_START), text.find(KEPT_END)
    if start < 0 and end < 0:
        return []
    if start < 0 or end < start:
        raise ValueError(f"{page}: the hand-measured part's markers are missing or out of order "
                         f"({KEPT_START} ... {KEPT_END}); mend them, then run again")
    if text[end + len(KEPT_END):].strip():
        raise ValueError(f"{page}: text after {KEPT_END} would be lost; move it above the marker, then run again")
    return text[start:end + len(KEPT_END)].split("\n")


def _find(rows, label, c, batching="on"):
    return next((r for r in rows if r["label"] == label and r["c"] == c and r["batching"] == batching), None)


def targets(rows, limits, decode, memory) -> list[tuple[str, str, bool]]:
    checks = []
    small_c8, limit_c8 = _find(rows, "640x360, 1 point, multipart", 8), limits.get(("640x360.jpg", 1, 8))
    if small_c8 and limit_c8:
        ratio = small_c8["result"].throughput / limit_c8[0]
        checks.append(("640x360 JPEG, 1 point, multipart, c=8: ≥ 70% of the in-process limit",
                       f"{ratio:.0%} ({small_c8['result'].throughput:.0f} vs {limit_c8[0]:.0f} req/s)", ratio >= 0.7))
    on, off = _find(rows, "640x360, 1 point, multipart", 32), _find(rows, "640x360, 1 point, multipart", 32, "off")
    if on and off:
        ratio = on["result"].throughput / off["result"].throughput
        pipeline_on, pipeline_off = limits.get(("640x360.jpg", 1, 32)), limits.get(("640x360.jpg", 1, 32, "off"))
        in_process = (f"; in-process {pipeline_on[0] / pipeline_off[0]:.2f}× ({pipeline_on[0]:.0f} vs "
                      f"{pipeline_off[0]:.0f} req/s)" if pipeline_on and pipeline_off else "")
        checks.append(("batching on vs off, c=32: ≥ 2×", f"{ratio:.2f}× ({on['result'].throughput:.0f} vs "
                       f"{off['result'].throughput:.0f} req/s){in_process}", ratio >= 2))
    idle, limit_c1 = _find(rows, "640x360, 1 point, multipart", 1), limits.get(("640x360.jpg", 1, 1))
    if idle and limit_c1:
        gap = idle["result"].p50 - limit_c1[1]
        checks.append(("idle latency: c=1 p50 within 1.5 ms of the in-process request",
                       f"+{gap:.2f} ms ({idle['result'].p50:.2f} vs {limit_c1[1]:.2f} ms)", gap <= 1.5))
    full, reduced, reduce = decode
    checks.append(("12 MP JPEG, small crops: decode ≤ 1/3 of a full decode",
                   f"{reduced / full:.2f} ({reduced:.1f} vs {full:.1f} ms, 1/{reduce} scale)", reduced / full <= 1 / 3))
    one, sixteen = _find(rows, "12 MP, 1 point, multipart", 1), _find(rows, "12 MP, 16 points, multipart", 1)
    if one and sixteen:
        ratio = sixteen["result"].p50 / one["result"].p50
        checks.append(("12 MP: 16 points cost < 2× one point (p50, c=1)",
                       f"{ratio:.2f}× ({sixteen['result'].p50:.1f} vs {one['result'].p50:.1f} ms)", ratio < 2))
    cached, cold = _find(rows, "12 MP, 1 point, path (cached)", 8), _find(rows, "12 MP, 1 point, path (cold)", 8)
    if cached and cold:
        ratio = cached["result"].throughput / cold["result"].throughput
        checks.append(("12 MP `path`: cached ≥ 3× uncached (c=8)", f"{ratio:.1f}× ({cached['result'].throughput:.0f}"
                       f" vs {cold['result'].throughput:.0f} req/s)", ratio >= 3))
    start, end, peak, requests = memory
    drift = (end - start) / start
    checks.append((f"RSS flat (±10%) across {requests:,} requests", f"{start:.0f} → {end:.0f} MB ({drift:+.1%})",
                   abs(drift) <= 0.10))
    checks.append(("peak RSS under load < 1.5 GB with the demo models", f"{peak:.0f} MB", peak < 1536))
    return checks


def bounds(rows, limits) -> list[str]:
    """What sets the ceiling, in this run's own numbers: the explanation of the ratios above."""
    alone, parsed = _find(rows, "GET /healthz (HTTP alone)", 8), _find(rows, "640x360 upload parsed, no model (404)", 8)
    served, limit = _find(rows, "640x360, 1 point, multipart", 8), limits.get(("640x360.jpg", 1, 8))
    if not (alone and parsed and served and limit):
        return []
    http, pipeline = parsed["result"].throughput, limit[0]
    predicted = (1 / pipeline) / (1 / pipeline + 1 / http)
    return [
        "## What bounds the throughput",
        "",
        "Python runs one thread at a time (the GIL). JPEG decoding, resizing and TensorFlow run in parallel",
        "outside it, but everything else takes turns: waitress and CherryPy reading and answering a request, the",
        "multipart parser, the engine's glue, the runtime thread's batching. So the server saturates the GIL",
        "before it saturates the cores:",
        "",
        f"- `GET /healthz`, a request with no work behind it, peaks at {alone['result'].throughput:.0f} req/s using "
        f"{alone['cpu']:.0f}% CPU of the 200% two cores offer: the HTTP stack's own ceiling.",
        f"- A 640×360 upload parsed and refused (no model runs) peaks at {http:.0f} req/s "
        f"({parsed['cpu']:.0f}% CPU): about {1000 / http:.2f} ms of turn-taking per upload.",
        f"- The pipeline in-process, 8 threads, peaks at {pipeline:.0f} req/s using {limit[2]:.0f}% CPU: "
        f"about {1000 / pipeline:.2f} ms per request.",
        f"- Served over HTTP, a request needs both, one after the other: the ceiling is about "
        f"1 / ({1000 / pipeline:.2f} + {1000 / http:.2f} ms) = {predicted * pipeline:.0f} req/s, "
        f"{predicted:.0%} of the in-process limit. Measured: {served['result'].throughput:.0f} req/s "
        f"({served['result'].throughput / pipeline:.0%}) at {served['cpu']:.0f}% CPU.",
        "",
        "Making the pipeline cheaper lowers that ratio rather than raising it; only cheaper HTTP raises it, and",
        f"{1000 / alone['result'].throughput:.2f} ms of the upload's {1000 / http:.2f} ms "
        "is what answering any request "
        "at all costs (the `/healthz` line). The same",
        "bound hides batching: in-process, batching multiplies the pipeline's throughput (the target row above);",
        "over HTTP, batches of one are bound by the runtime thread's time per run and batches of many by the",
        "turn-taking of the HTTP threads, and with the demo models' small graphs the two ceilings are about",
        "the same height. Larger models (more time in TensorFlow per crop) shift the balance toward batching.",
        "",
    ]


def _cpu_ms(row) -> str:
    """The server's CPU time per answered request (every process, from /proc)."""
    return f"{row['cpu_ms']:.2f}" if row.get("cpu_ms") is not None else "–"


def write(out: Path, rows, limits, settings, decode, memory, versions, extra: list[str] = ()) -> None:
    wrk_version = [wrk.version()] if wrk.version() else []
    try:  # read now, at the end of the run: the page may have been edited meanwhile
        by_hand, broken = kept(out), None
    except ValueError as error:
        by_hand, broken = [], error
    lines = [
        "# Benchmarks",
        "",
        "Written by `make bench` (`pinpoint bench`); rerun it to refresh this page. Every HTTP figure comes from",
        "[wrk](https://github.com/wg/wrk) (a C load generator, so the client takes little of the 2 cores) against a",
        "real server on loopback, and is set beside the **in-process limit**: the same pipeline (`Engine.classify`)",
        "called directly from as many threads, no HTTP. Ratios matter more than absolute numbers on a shared machine.",
        *(HAND_POINTER if by_hand else ()),
        "",
        f"- when: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}",
        f"- machine: {os.cpu_count()} cores ({_cpu()}), {_memory_gib():.0f} GiB",
        "- versions: " + ", ".join(f"{k} {v}" for k, v in versions.items())
        + (f", {wrk_version[0]}" if wrk_version else ""),
        f"- models: {', '.join(sorted(p.name for p in settings.models.iterdir() if p.is_dir()))}"
        f" from `{settings.models.name}/`;"
        f" server defaults ({settings.workers} API workers of {settings.threads} HTTP threads, max_batch"
        f" {settings.max_batch}, {settings.inference_threads} inference threads, intra-op {settings.intra_op_threads},"
        f" inter-op {settings.inter_op_threads}); as served: rate limiting on with a limit the load never reaches,"
        " a log line per request, metrics and the feedback log",
        "- images: scikit-image's `coffee` photograph as a 640×360 JPEG and as a 4000×3000 (12 MP) JPEG",
        "",
        "## Targets",
        "",
        "| target | measured | |",
        "|---|---|---|",
    ]
    for name, measured, ok in targets(rows, limits, decode, memory):
        lines.append(f"| {name} | {measured} | {'met' if ok else '**missed**'} |")
    lines += ["", *bounds(rows, limits)]
    lines += ["## Every run", "",
              "| request | input | c | batching | req/s | p50 ms | p90 ms | p99 ms | non-2xx | server CPU | "
              "server CPU ms/request | in-process req/s | HTTP / limit |",
              "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for row in rows:
        result, limit = row["result"], row["limit"]
        ratio = f"{result.throughput / limit[0]:.0%}" if limit else "–"
        lines.append(f"| {row['label']} | {row['input']} | {row['c']} | {row['batching']} | {result.throughput:.1f} | "
                     f"{result.p50:.2f} | {result.p90:.2f} | {result.p99:.2f} | "
                     f"{result.non2xx + result.socket_errors} | "
                     f"{row['cpu']:.0f}% | {_cpu_ms(row)} | {f'{limit[0]:.1f}' if limit else '–'} | {ratio} |")
    lines += ["", "In-process limit (threads calling `Engine.classify`; CPU of 200%):", "",
              "| image | points | threads | batching | req/s | p50 ms | CPU |", "|---|---|---|---|---|---|---|"]
    for key, (rate, p50, cpu) in limits.items():
        name, count, concurrency = key[:3]
        lines.append(f"| {name} | {count} | {concurrency} | {'off' if len(key) > 3 else 'on'} | {rate:.1f} | "
                     f"{p50:.2f} | {cpu:.0f}% |")
    full, reduced, reduce = decode
    start, end, peak, requests = memory
    lines += ["", f"Decoding the 12 MP JPEG: full {full:.1f} ms, at 1/{reduce} scale {reduced:.1f} ms (best of 15).",
              f"Server RSS: {start:.0f} MB after warm-up, {end:.0f} MB after {requests:,} more requests, "
              f"peak {peak:.0f} MB.",
              "", *extra]
    if broken is not None:  # the page was edited badly during the run: this run's figures are kept aside
        out.with_name(out.name + ".new").write_text("\n".join(lines))
        raise broken
    out.write_text("\n".join([*lines, *([""] + by_hand + [""] if by_hand else [])]))

"""The report's picture: top-1 and top-5 hit rate over time, one panel per model, one colour per version,
the top-1 rate's 95% interval shaded. Drawn server-side with matplotlib's Agg backend (no display, no
pyplot state), so request threads, the CLI and tests draw alike."""

from __future__ import annotations

import datetime as dt
import io
import threading

COLORS = ("#2f6fed", "#e8590c", "#12b76a", "#7a5af8", "#ee46bc", "#eaaa08", "#0ba5ec", "#667085")
_LOCK = threading.Lock()  # matplotlib's font and text caches are not made for concurrent drawing


def hit_rate_png(report: dict, width_px: int = 960, dpi: int = 100) -> bytes:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.dates import AutoDateLocator, ConciseDateFormatter
    from matplotlib.figure import Figure
    from matplotlib.ticker import PercentFormatter

    by_model: dict[str, list[dict]] = {}
    for entry in report["versions"]:
        if entry["series"]:
            by_model.setdefault(entry["model"], []).append(entry)
    panels = max(1, len(by_model))
    width = width_px / dpi
    with _LOCK:
        figure = Figure(figsize=(width, 0.6 + 2.8 * panels if by_model else 1.4), dpi=dpi, layout="constrained")
        FigureCanvasAgg(figure)
        axes_list = figure.subplots(panels, 1, squeeze=False, sharex=True)[:, 0]
        if not by_model:
            axes = axes_list[0]
            axes.set_axis_off()
            axes.text(0.5, 0.5, "No feedback yet: hit rates appear here once users say which label was right.",
                      ha="center", va="center", wrap=True, fontsize=11, color="#667085", transform=axes.transAxes)
        step = dt.timedelta(hours=1) if report["bucket"] == "hour" else dt.timedelta(days=1)
        narrow = width_px < 640
        everywhere = []  # every bucket drawn, so the shared time axis spans them all
        for axes, (model, entries) in zip(axes_list, sorted(by_model.items())):
            moments = []
            for index, entry in enumerate(sorted(entries, key=lambda e: e["version"])):
                color = COLORS[index % len(COLORS)]
                series = entry["series"]
                # Each bucket drawn at its middle, so a lone hour sits inside its own interval.
                times = [dt.datetime.fromisoformat(point["start"].replace("Z", "+00:00")) + step / 2
                         for point in series]
                moments += times
                top1 = [point["top1"]["rate"] for point in series]
                top5 = [point["top5"]["rate"] for point in series]
                below = [rate - point["top1"]["low"] for rate, point in zip(top1, series)]
                above = [point["top1"]["high"] - rate for rate, point in zip(top1, series)]
                total = entry["feedback"]
                band = f"v{entry['version']} top-1, 95% interval"
                if len(series) > 1:
                    axes.fill_between(times, [p["top1"]["low"] for p in series], [p["top1"]["high"] for p in series],
                                      color=color, alpha=0.13, linewidth=0, label=band)
                else:
                    axes.errorbar(times, top1, yerr=[below, above], color=color, alpha=0.45, capsize=5, linewidth=1,
                                  fmt="none", label=band)
                axes.plot(times, top1, color=color, marker="o", markersize=5, linewidth=2,
                          label=f"v{entry['version']} top-1 · {total:,} feedback")
                axes.plot(times, top5, color=color, marker="^", markersize=4, linewidth=1.2, linestyle="--",
                          label=f"v{entry['version']} top-5")
            axes.set_title(f"{model}: hit rate per {report['bucket']}", loc="left", fontsize=11)
            axes.set_ylim(0, 1.04)
            axes.yaxis.set_major_formatter(PercentFormatter(1.0))
            axes.grid(True, color="#eaecf0")
            everywhere += moments
            locator = AutoDateLocator(minticks=3, maxticks=6 if narrow else 10)
            axes.xaxis.set_major_locator(locator)
            axes.xaxis.set_major_formatter(ConciseDateFormatter(locator))
            if narrow:
                axes.legend(loc="upper center", bbox_to_anchor=(0.5, -0.2), fontsize=8, ncols=2, frameon=False)
            else:
                axes.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8, frameon=False)
            for side in ("top", "right"):
                axes.spines[side].set_visible(False)
        if everywhere:  # never less than a few buckets wide, so one bucket is not a dot in a decade
            first, last = min(everywhere), max(everywhere)
            pad = max(step * 1.5, (last - first) * 0.05)
            axes_list[0].set_xlim(first - pad, last + pad)
            for axes in axes_list:
                axes.xaxis.set_tick_params(labelbottom=True)  # each panel keeps its dates
        buffer = io.BytesIO()
        figure.savefig(buffer, format="png")
    return buffer.getvalue()

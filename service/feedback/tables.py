"""The report (service/feedback/report.py's dict) for people and spreadsheets: the terminal table that
`pinpoint report` and `pinpoint evaluate --csv` print, and the CSV file of `--csv out.csv`."""

from __future__ import annotations

import csv
from pathlib import Path

from service.feedback.report import wilson

CSV_COLUMNS = ("model", "version", "label", "feedback", "top1_hits", "top1_rate", "top1_low", "top1_high",
               "top5_hits", "top5_rate", "none", "none_share", "predicted", "correct", "precision", "recall")
LABEL_ROWS = 20  # per version in the terminal; the CSV and the JSON have every label


def pct(value) -> str:
    return "–" if value is None else f"{100 * value:.1f}%"


def counted(n: int, one: str, many: str) -> str:
    return f"{n:,} {one if n == 1 else many}"


def text(report: dict, logged: tuple[str, str] = ("answer logged", "answers logged"),
         answered: str = "with feedback") -> str:
    """The terminal table; `logged`: what a logged row is called (singular, plural), `answered`: the feedback."""
    filters = report["filters"]
    span = " ".join(f"{name} {filters[name]}" for name in ("model", "version", "since", "until")
                    if filters.get(name) is not None)
    lines = [f"Feedback report{' (' + span + ')' if span else ''}: {counted(report['totals']['logged'], *logged)}, "
             f"{report['totals']['feedback']:,} {answered}"]
    if not report["versions"]:
        lines.append("Nothing logged yet" + (" for these filters." if span else "."))
        return "\n".join(lines)
    for entry in report["versions"]:
        lines.append("")
        share = f" ({pct(entry['feedback_share'])})" if entry["feedback_share"] is not None else ""
        lines.append(f"{entry['model']} v{entry['version']}: {counted(entry['logged'], *logged)}, "
                     f"{entry['feedback']:,} {answered}{share}, none of these: {entry['none']['count']:,}"
                     + (f" ({pct(entry['none']['share'])})" if entry["none"]["share"] is not None else ""))
        if not entry["feedback"]:
            continue
        top1, top5 = entry["top1"], entry["top5"]
        lines.append(f"  top-1 {pct(top1['rate'])} [{pct(top1['low'])}, {pct(top1['high'])}]   "
                     f"top-5 {pct(top5['rate'])} [{pct(top5['low'])}, {pct(top5['high'])}]   (95% intervals)")
        labels = entry["labels"]
        width = max([len("label")] + [len(row["label"]) for row in labels[:LABEL_ROWS]])
        lines.append(f"  {'label':<{width}}  chosen  shown first  precision  recall  top-5")
        for row in labels[:LABEL_ROWS]:
            lines.append(f"  {row['label']:<{width}}  {row['chosen']:>6}  {row['predicted']:>11}  "
                         f"{pct(row['precision']):>9}  {pct(row['recall']):>6}  {pct(row['top5']):>6}")
        if len(labels) > LABEL_ROWS:
            lines.append(f"  … {len(labels) - LABEL_ROWS} more labels (--csv has every one)")
        if entry["confusions"]:
            pairs = ", ".join(f"{c['predicted']} → {c['chosen']} ({c['count']})" for c in entry["confusions"][:5])
            lines.append(f"  most confused (shown first → chosen): {pairs}")
    return "\n".join(lines)


def csv_rows(report: dict) -> list[dict]:
    """One row per model version (label "*") and one per label of it; empty cells where a column does not
    apply. For a label row, feedback and the hit rates are over the feedback that chose that label."""
    rows = []
    for entry in report["versions"]:
        rows.append({"model": entry["model"], "version": entry["version"], "label": "*",
                     "feedback": entry["feedback"], "top1_hits": entry["top1"]["hits"],
                     "top1_rate": entry["top1"]["rate"], "top1_low": entry["top1"]["low"],
                     "top1_high": entry["top1"]["high"], "top5_hits": entry["top5"]["hits"],
                     "top5_rate": entry["top5"]["rate"], "none": entry["none"]["count"],
                     "none_share": entry["none"]["share"]})
        for label in entry["labels"]:
            interval = wilson(label["correct"], label["chosen"])
            rows.append({"model": entry["model"], "version": entry["version"], "label": label["label"],
                         "feedback": label["chosen"], "top1_hits": label["correct"], "top1_rate": label["recall"],
                         "top1_low": round(interval[0], 4) if interval else None,
                         "top1_high": round(interval[1], 4) if interval else None,
                         "top5_hits": label["top5_hits"], "top5_rate": label["top5"],
                         "predicted": label["predicted"], "correct": label["correct"],
                         "precision": label["precision"], "recall": label["recall"]})
    return rows


def write_csv(report: dict, path: str | Path) -> int:
    rows = csv_rows(report)
    with open(path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, CSV_COLUMNS)
        writer.writeheader()
        for row in rows:
            writer.writerow({key: "" if row.get(key) is None else row[key] for key in CSV_COLUMNS})
    return len(rows)

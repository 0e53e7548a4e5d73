"""`pinpoint evaluate --csv FILE`: a labelled set read as live feedback is read.

Each row of FILE is `image, x, y, units, model, label` (a header row with those names is optional;
units px or pct, empty means px; label may be "none"). Image paths are relative to FILE's directory.
Every image is classified once with all its points, in process, with the served models (as `pinpoint
predict` does); each row becomes a logged answer with the row's label as its feedback, in a database
in memory with the server's schema; and the report is built by the code that builds GET /v1/report,
so both print the same table.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import sys
from collections import defaultdict
from pathlib import Path

from service.config import ConfigError, load_settings
from service.errors import PinpointError

COLUMNS = ("image", "x", "y", "units", "model", "label")


class RowError(ValueError):
    pass


def read_rows(path: Path) -> list[dict]:
    """The CSV's rows as dicts, each with its line number; a header row is optional."""
    rows = []
    with open(path, newline="") as handle:
        for line, cells in enumerate(csv.reader(handle), start=1):
            if not cells or all(not cell.strip() for cell in cells) or cells[0].lstrip().startswith("#"):
                continue
            cells = [cell.strip() for cell in cells]
            if line == 1 and [cell.lower() for cell in cells[:6]] == list(COLUMNS):
                continue
            if len(cells) != len(COLUMNS):
                raise RowError(f"{path}:{line}: expected {len(COLUMNS)} columns ({', '.join(COLUMNS)}), "
                               f"got {len(cells)}")
            row = dict(zip(COLUMNS, cells))
            try:
                row["x"], row["y"] = float(row["x"]), float(row["y"])
            except ValueError:
                raise RowError(f"{path}:{line}: x and y must be numbers, got {cells[1]!r}, {cells[2]!r}") from None
            row["units"] = row["units"] or "px"
            if row["units"] not in ("px", "pct"):
                raise RowError(f"{path}:{line}: units must be px or pct, got {row['units']!r}")
            if not row["model"] or not row["label"] or not row["image"]:
                raise RowError(f"{path}:{line}: image, model and label must not be empty")
            row["line"] = line
            rows.append(row)
    if not rows:
        raise RowError(f"{path}: no rows to evaluate")
    return rows


def evaluate(engine, rows: list[dict], base: Path, top_k: int = 5):
    """Classify every row's point, log it with its label as feedback (in memory).
    Returns (store, problems): problems are (line, message) of the rows that could not be evaluated."""
    from service.feedback.store import Store

    store = Store(":memory:")
    store.migrate()
    problems: list[tuple[int, str]] = []
    groups: dict[tuple[str, str], list[dict]] = defaultdict(list)
    for row in rows:
        groups[(row["image"], row["units"])].append(row)
    labels = {(name, entry.version): list(entry.spec.labels)
              for name, versions in engine.manager.snapshot().items() for entry in versions if entry.spec}
    for (image, units), group in groups.items():
        path = Path(image) if Path(image).is_absolute() else base / image
        try:
            data = path.read_bytes()
        except OSError as error:
            problems += [(row["line"], f"cannot read {path}: {error.strerror}") for row in group]
            continue
        # One decode and one batched run per image; if that fails (a point outside it, say), row by row,
        # so one bad row costs only itself.
        try:
            _log(store, engine, data, group, units, top_k, labels, problems)
            continue
        except PinpointError as error:
            if len(group) == 1:
                problems.append((group[0]["line"], error.message))
                continue
        for row in group:
            try:
                _log(store, engine, data, [row], units, top_k, labels, problems)
            except PinpointError as error:
                problems.append((row["line"], error.message))
    return store, problems


def _log(store, engine, data: bytes, group: list[dict], units: str, top_k: int, labels: dict, problems: list):
    import dataclasses

    from service.feedback.recorder import Pending
    from service.feedback.recorder import rows as answer_rows
    from service.feedback.store import NONE, Choice, now_ms

    models = sorted({row["model"] for row in group})
    result = engine.classify_image(data, [(row["x"], row["y"]) for row in group], units=units, models=models,
                                   top_k=top_k)
    request_id = f"csv-{group[0]['line']}"
    result = dataclasses.replace(result, request_id=request_id)
    sets = {(model, answer.version): labels[(model, answer.version)] for model, answer in result.models.items()
            if (model, answer.version) in labels}
    store.write_log([answer_rows(Pending(now_ms(), None, "upload", top_k, result, sets))])
    for index, row in enumerate(group):
        if row["model"] in result.errors:
            problems.append((row["line"], f"{row['model']}: {result.errors[row['model']]}"))
            continue
        label = None if row["label"] == NONE else row["label"]
        try:
            store.record([Choice(request_id, index, row["model"], label)], client=None)
        except PinpointError as error:
            problems.append((row["line"], error.message))


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="pinpoint evaluate --csv",
                                     description="Evaluate the served models on a labelled CSV of points: "
                                                 "the report's table (docs/feedback.md).")
    parser.add_argument("--csv", required=True, metavar="FILE",
                        help="rows of image, x, y, units, model, label (image paths relative to FILE)")
    parser.add_argument("--config", metavar="FILE", help="a TOML settings file (for models and labels)")
    parser.add_argument("--models", help="the model repository (default: models)")
    parser.add_argument("--labels", help="the labels directory (default: labels)")
    parser.add_argument("--format", choices=("table", "json"), default="table",
                        help="table (default), or json: the shape of GET /v1/report")
    args = parser.parse_args(argv)
    csv_path = Path(args.csv)
    try:
        rows = read_rows(csv_path)
        settings = load_settings(args.config, overrides={"models": args.models, "labels": args.labels})
    except (RowError, ConfigError) as error:
        print(f"pinpoint: {error}", file=sys.stderr)
        return 2
    except OSError as error:
        print(f"pinpoint: cannot read {csv_path}: {error.strerror}", file=sys.stderr)
        return 2
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from service.engine import Engine
    from service.feedback import report as reports
    from service.feedback.tables import text
    from service.observe import configure_logging

    configure_logging("warning", "console")  # the table alone on stdout
    try:
        with Engine.open(settings=settings) as engine:
            store, problems = evaluate(engine, rows, csv_path.resolve().parent)
    except PinpointError as error:
        print(f"pinpoint: {error.message}", file=sys.stderr)
        return 1
    report = reports.build(store)
    report["filters"] = {"csv": str(csv_path)}
    print(json.dumps(report, indent=2) if args.format == "json"
          else text(report, logged=("point classified", "points classified"), answered="labelled"))
    for line, problem in sorted(problems):
        print(f"pinpoint: {csv_path}:{line}: {problem}", file=sys.stderr)
    if problems:
        print(f"pinpoint: {len(problems)} of {len(rows)} rows could not be evaluated", file=sys.stderr)
    return 1 if problems else 0

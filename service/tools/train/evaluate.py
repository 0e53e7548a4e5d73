"""Measure a served model: top-1/top-5 and a per-label table, on generated or real-photo points.

    pinpoint evaluate color                   # held-out generated set + real photos
    pinpoint evaluate theme                   # the real-photo topic points (dev and held-out)
    pinpoint evaluate pattern --data generated --per-label 200
    pinpoint evaluate color --data real --set holdout
    pinpoint evaluate --csv points.csv        # any served model on labelled points: the feedback report's table

It loads the frozen graph from models/<name>/<version>/ exactly as committed (not the Keras model),
so these are the numbers of what Pinpoint serves. The model cards quote this command's output.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np


def accuracy_table(scores: np.ndarray, truth: np.ndarray, labels: list[str], title: str,
                   accepted: np.ndarray | None = None) -> str:
    """Markdown: overall top-1/top-5, then per label n, top-1, top-5 and the most common mistake.

    `accepted` [n, labels] marks the answers a person accepts at each point (the label always);
    without it only the label counts. A point is right at top-1 when the first answer is accepted,
    at top-5 when an accepted answer is among the first five."""
    accepted = acceptance(truth, len(labels)) if accepted is None else accepted
    ranked = np.argsort(-scores, axis=1)
    rows_index = np.arange(len(truth))[:, None]
    top1 = accepted[rows_index[:, 0], ranked[:, 0]]
    top5 = accepted[rows_index, ranked[:, :5]].any(axis=1)
    exact = ranked[:, 0] == truth
    summary = f"**{title}**: {len(truth)} examples, top-1 **{top1.mean():.1%}**, top-5 **{top5.mean():.1%}**"
    if not np.array_equal(exact, top1):
        summary += f" (the person's own label first: {exact.mean():.1%})"
    lines = [summary, "", "| label | n | top-1 | top-5 | most often mistaken for |", "|---|---:|---:|---:|---|"]
    for k, label in enumerate(labels):
        rows = truth == k
        if not rows.any():
            continue
        wrong = ranked[rows & ~top1, 0]
        mistakes = ""
        if len(wrong):
            counts = np.bincount(wrong, minlength=len(labels))
            mistakes = ", ".join(f"{labels[j]} ({counts[j]})" for j in np.argsort(-counts)[:2] if counts[j])
        lines.append(f"| {label} | {rows.sum()} | {top1[rows].mean():.0%} | {top5[rows].mean():.0%} | {mistakes} |")
    return "\n".join(lines)


def acceptance(truth: np.ndarray, classes: int, points: list[dict] | None = None,
               labels: list[str] | None = None) -> np.ndarray:
    """[n, classes] booleans: the label of each row, and the answers its point accepts."""
    accepted = np.zeros((len(truth), classes), dtype=bool)
    accepted[np.arange(len(truth)), truth] = True
    for row, point in enumerate(points or []):
        for name in point.get("accept", []):
            accepted[row, labels.index(name)] = True
    return accepted


def rates(scores: np.ndarray, accepted: np.ndarray, ks: tuple[int, ...] = (1, 5)) -> tuple[float, ...]:
    """(top-k for each k of ks; top-1 and top-5 by default) with the accepted answers counting as right."""
    ranked = np.argsort(-scores, axis=1)
    rows = np.arange(len(scores))[:, None]
    return tuple(float(accepted[rows, ranked[:, :k]].any(axis=1).mean()) for k in ks)


def point_table(points: list[dict], scores: np.ndarray, labels: list[str]) -> str:
    lines = ["| set | image | x, y | label (also accepted) | answer (top-3) | ok |", "|---|---|---|---|---|---|"]
    for point, row in zip(points, scores):
        top = np.argsort(-row)[:3]
        answer = ", ".join(f"{labels[k]} {row[k]:.2f}" for k in top)
        ok = "yes" if labels[top[0]] in [point["label"], *point.get("accept", [])] else "**no**"
        also = f" ({', '.join(point['accept'])})" if point.get("accept") else ""
        lines.append(f"| {point.get('set', '')} | {point['image']} | {point['x']}, {point['y']} | "
                     f"{point['label']}{also} "
                     f"| {answer} | {ok} |")
    return "\n".join(lines)


def generated_scores(models_dir: Path, labels_dir: Path, name: str, per_label: int, seed: int):
    from service.tools.train import demos, run_frozen

    demo = demos.get(name)
    images, truth = demo.dataset(seed, per_label)
    with run_frozen.FrozenModel(models_dir, labels_dir, name) as model:
        return model.probabilities(images), truth, model.labels


def generated_report(models_dir: Path, labels_dir: Path, name: str, per_label: int, seed: int,
                     measured: dict | None = None) -> str:
    scores, truth, labels = generated_scores(models_dir, labels_dir, name, per_label, seed)
    if measured is not None:
        measured["generated"] = (len(truth), *rates(scores, acceptance(truth, len(labels))))
    return accuracy_table(scores, truth, labels,
                          f"Held-out generated set (seed {seed}, {per_label} per label, never trained on)")


def real_scores(models_dir: Path, labels_dir: Path, name: str, points_path: Path | None = None,
                which: str = "all", engine=None):
    """The real-photo points of `name` in set `which`, their scores through the engine, the label list
    and the acceptance matrix."""
    from service.tools.train import realcheck

    points = [p for p in realcheck.load_points(points_path, name) if which == "all" or p.get("set") == which]
    if not points:
        return points, None, None, None, ""
    scores, labels, how = realcheck.score(models_dir, labels_dir, name, points, engine)
    truth = np.array([labels.index(p["label"]) for p in points])
    return points, scores, labels, acceptance(truth, len(labels), points, labels), how


def real_report(models_dir: Path, labels_dir: Path, name: str, points_path: Path | None, which: str,
                details: bool, measured: dict | None = None) -> str:
    points, scores, labels, accepted, how = real_scores(models_dir, labels_dir, name, points_path, which)
    if not points:
        return f"(no real-photo points for {name} in set {which!r})"
    truth = np.array([labels.index(p["label"]) for p in points])
    sections = []
    for subset in (list(dict.fromkeys(p.get("set") for p in points)) if which == "all" else [which]):
        rows = np.array([p.get("set") == subset for p in points])
        if rows.any():
            if measured is not None:
                measured[subset] = (int(rows.sum()), *rates(scores[rows], accepted[rows]))
            sections.append(accuracy_table(scores[rows], truth[rows], labels,
                                           f"Real photographs, {subset} points (through {how})", accepted[rows]))
    if details:
        sections.append(point_table(points, scores, labels))
    return "\n\n".join(sections)


def summary_table(measured: dict) -> str:
    """One line per set: the generated set beside the real-photo dev and held-out points."""
    names = {"generated": "held-out generated set", "dev": "real photos, dev points",
             "holdout": "real photos, held-out points"}
    lines = ["| set | n | top-1 | top-5 |", "|---|---:|---:|---:|"]
    for key, (n, top1, top5) in measured.items():
        lines.append(f"| {names.get(key, key)} | {n} | {top1:.1%} | {top5:.1%} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if any(arg == "--csv" or arg.startswith("--csv=") for arg in argv):
        from service.feedback.offline import main as evaluate_csv  # a labelled set, read as live feedback is

        return evaluate_csv(argv)
    from service.tools.train import demos, realcheck

    parser = argparse.ArgumentParser(prog="pinpoint evaluate", description=__doc__.split("\n")[0])
    demo_names = (*demos.NAMES, "theme")
    parser.add_argument("model", help=f"the demo model to measure: {', '.join(demo_names)} (only it is loaded); "
                                      "any other served model: --csv")
    parser.add_argument("--models", type=Path, default=None,
                        help="model repository (default: the `models` setting, the checkout's models/)")
    parser.add_argument("--labels", type=Path, default=None,
                        help="labels directory (default: the `labels` setting, the checkout's labels/)")
    parser.add_argument("--log-level", dest="log_level", default="warning",
                        help="model loading on stderr: warning (default: only problems) or info")
    parser.add_argument("--data", choices=("generated", "real", "all"), default="all")
    parser.add_argument("--per-label", type=int, default=200, help="generated examples per label (default 200)")
    parser.add_argument("--seed", type=int, default=None, help="generated set seed (default: the held-out seed)")
    parser.add_argument("--points", type=Path, default=None,
                        help="real-photo points JSON (default tests/data/real_points.json; "
                             "tests/data/topic_points.json for theme)")
    parser.add_argument("--set", default="all", help="which real-photo points: dev, holdout or all (default)")
    parser.add_argument("--details", action="store_true", help="also list every real-photo point and its answer")
    parser.add_argument("--csv", metavar="FILE", help="instead: rows of image, x, y, units, model, label; prints "
                                                      "the feedback report's table for them (docs/feedback.md)")
    args = parser.parse_args(argv)
    if args.model not in demo_names:
        parser.error(f"{args.model!r} is not a demo model ({', '.join(demo_names)}): its points and labels are "
                     "not known here; `pinpoint evaluate --csv points.csv` measures any served model on labelled "
                     "points (rows of image, x, y, units, model, label; docs/feedback.md)")
    if args.models is None or args.labels is None:
        from service.config import ConfigError, load_settings

        try:
            settings = load_settings()
        except ConfigError as error:
            parser.error(str(error))
        args.models = args.models or settings.models
        args.labels = args.labels or settings.labels
    if args.model == "theme" and args.data == "generated":
        parser.error("theme has no generated set (it was not trained on generated data): use --data real")
    if args.model == "theme":
        args.data = "real"
    if args.data in ("real", "all"):  # a mistake here is refused now, not after the generated set's run
        try:
            sets = {p.get("set") for p in realcheck.load_points(args.points, args.model)}
        except (OSError, ValueError, KeyError) as error:
            parser.error(f"--points: cannot read real-photo points: {error}")
        if args.set != "all" and args.set not in sets:
            parser.error(f"--set {args.set!r}: the real-photo points of {args.model} are in "
                         f"{', '.join(sorted(s for s in sets if s))} (or all)")
    from service.observe import configure_logging
    from service.quiet import import_tensorflow

    import_tensorflow()  # without its C++ notices

    configure_logging(args.log_level, "console")  # the report alone on stdout; loads on stderr with --log-level info

    seed = demos.HELD_OUT_SEED if args.seed is None else args.seed
    measured: dict = {}
    sections = []
    if args.data in ("generated", "all"):
        sections.append(generated_report(args.models, args.labels, args.model, args.per_label, seed, measured))
    if args.data in ("real", "all"):
        sections.append(real_report(args.models, args.labels, args.model, args.points, args.set, args.details,
                                    measured))
    reports = [f"## {args.model}: models/{args.model} evaluated by `pinpoint evaluate`"]
    if measured:
        reports.append(summary_table(measured))
    print("\n\n".join(reports + sections))
    return 0


if __name__ == "__main__":
    sys.exit(main())

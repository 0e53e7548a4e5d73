"""`pinpoint report`: the feedback report from the database the server writes, without the server.

    pinpoint report                                  # every model and version, all time
    pinpoint report --model color --since 7d --plot hit-rate.png --csv report.csv
    pinpoint report --config pinpoint.toml --format json
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from service.config import ConfigError, load_settings
from service.errors import PinpointError, first_line


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="pinpoint report", description="Per model and version: answers logged, feedback, top-1 and top-5 hit "
        "rates with 95% intervals, per-label precision and recall, the most confused pairs, the share of "
        "\"none\" (docs/feedback.md).")
    parser.add_argument("--config", metavar="FILE", help="the server's TOML settings file (it names feedback_db)")
    parser.add_argument("--db", metavar="PATH_OR_URL", help="the feedback database, instead of the settings' "
                                                             "feedback_db: a SQLite file or a postgresql:// URL")
    parser.add_argument("--model", help="one model only")
    parser.add_argument("--version", type=int, help="one version only (with --model)")
    parser.add_argument("--since", help="answers given since: an ISO 8601 date or time, or an age (24h, 7d)")
    parser.add_argument("--until", help="answers given before: an ISO 8601 date or time, or an age")
    parser.add_argument("--bucket", choices=("hour", "day"), help="the plot's time step (default: from the span)")
    parser.add_argument("--format", choices=("table", "json"), default="table",
                        help="table (default) or json: GET /v1/report's answer")
    parser.add_argument("--plot", metavar="OUT.png", help="also draw the hit rate over time per version to this PNG")
    parser.add_argument("--csv", metavar="OUT.csv", help="also write one row per version and per label to this CSV")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        settings = load_settings(args.config, overrides={"feedback_db": args.db})
    except (ConfigError, OSError) as error:
        print(f"pinpoint: {error}", file=sys.stderr)
        return 2
    from service.feedback import report as reports
    from service.feedback.store import Store
    from service.feedback.tables import text

    database = settings.feedback_db
    if "://" not in database and not Path(database).exists():
        print(f"pinpoint: no feedback database at {database} (the server creates it when it starts with "
              "feedback on; --db or --config name another)", file=sys.stderr)
        return 1
    store = Store(database)
    try:
        store.migrate()
        filters = {"model": args.model, "version": args.version, "bucket": args.bucket}
        for name in ("since", "until"):
            if getattr(args, name):
                filters[f"{name}_ms"] = reports.parse_time(getattr(args, name), f"--{name}")
        report = reports.build(store, **filters)
        if args.model and not report["versions"]:
            logged = sorted({entry["model"] for entry in reports.build(store)["versions"]})
            if args.model not in logged:  # a typo, not an unused model: say what there is
                print(f"pinpoint: no answer of model {args.model!r} is logged; models in the log: "
                      f"{', '.join(logged) or 'none yet'}", file=sys.stderr)
                return 1
    except PinpointError as error:
        print(f"pinpoint: {error.message}", file=sys.stderr)
        return 2
    except Exception as error:  # the database could not be reached or read: say so, plainly
        print(f"pinpoint: cannot read the feedback database {store.describe()}: {first_line(error, None)}",
              file=sys.stderr)
        return 1
    finally:
        store.close()
    print(json.dumps(report, indent=2) if args.format == "json" else text(report))
    return _write_files(report, args.plot, args.csv)


def _write_files(report: dict, plot: str | None, csv_path: str | None) -> int:
    try:
        if plot:
            from service.feedback.plot import hit_rate_png

            Path(plot).write_bytes(hit_rate_png(report))
            print(f"wrote {plot}", file=sys.stderr)
        if csv_path:
            from service.feedback.tables import write_csv

            rows = write_csv(report, csv_path)
            print(f"wrote {csv_path} ({rows} rows)", file=sys.stderr)
    except OSError as error:
        print(f"pinpoint: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""`python -m service.tools.bench.peers`: Pinpoint beside LitServe, BentoML and the FastAPI script, and
the markdown section it makes (on stdout; progress on stderr)."""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

from service.tools.bench import inputs, wrk
from service.tools.bench.peers import driver, table, venv


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m service.tools.bench.peers", description=__doc__)
    parser.add_argument("--duration", type=float, default=10.0, help="seconds of wrk per figure")
    parser.add_argument("--setup", action="store_true",
                        help=f"make and fill {venv.VENV} from PyPI first, if it is missing or stale")
    parser.add_argument("--setup-only", action="store_true", help=f"make and fill {venv.VENV}, measure nothing")
    parser.add_argument("--peers", default=",".join(driver.PEERS), help="which peers (comma-separated)")
    parser.add_argument("--models", default=";".join(",".join(names) if names else "all"
                                                  for names in driver.MODEL_SETS),
                        help="the sets of models compared, each in turn (sets separated by ';', models by ','); "
                             "`all`: every model Pinpoint serves")
    parser.add_argument("--no-pinpoint", action="store_true", help="the peers alone, no ratios")
    parser.add_argument("--no-tiny", action="store_true", help="skip the tiny-MLP comparison")
    parser.add_argument("--out", type=Path, help="also write the section to this file")
    args = parser.parse_args(argv)
    if args.setup_only:
        venv.ensure()
        return 0
    if not wrk.available():
        print("the peers' benchmark needs wrk (Debian package `wrk`)", file=sys.stderr)
        return 2
    if args.setup:
        venv.ensure()
    why = venv.missing()
    if why:
        print(why, file=sys.stderr)
        return 2
    from service.config import load_settings

    settings = load_settings(None)
    model_sets = [None if text.strip() == "all" else [name for name in text.split(",") if name]
                  for text in args.models.split(";") if text.strip()]
    peers = [name for name in args.peers.split(",") if name]
    with tempfile.TemporaryDirectory(prefix="pinpoint-peers-") as tmp:
        work = Path(tmp)
        found = driver.measure(work, inputs.write_images(work), args.duration, settings, model_sets, peers,
                               pinpoint=not args.no_pinpoint, tiny=not args.no_tiny)
    text = "\n".join(table.lines(found))
    print(text)
    if args.out:
        args.out.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())

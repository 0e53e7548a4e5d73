"""The `pinpoint` command: serve over HTTP, or predict in-process with the same pipeline; run the
daemon, the benchmark, and the demo models' training and evaluation."""

from __future__ import annotations

import argparse
import importlib
import json
import os
import sys
from pathlib import Path

from service.config import ConfigError, load_settings
from service.errors import PinpointError


# Commands that are another module's own command line: their options are theirs (`--help` shows them).
DELEGATED = {
    "train-demo": ("service.train.cli", "train the demo models (python -m service.train)"),
    "evaluate": ("service.train.evaluate", "accuracy of a demo model (python -m service.train.evaluate)"),
    "inspect": ("service.inspect", "a frozen GraphDef's inputs, outputs, dtypes, shapes; --config: a model.toml"),
    "convert": ("service.convert", "a Keras model or SavedModel -> a new frozen version in the repository"),
}


def _settings(args):
    overrides = {key: getattr(args, key, None) for key in ("host", "port", "models", "labels", "image_root",
                                                             "threads", "log_level")}
    return load_settings(args.config, overrides=overrides)


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", help="a TOML settings file (see service/defaults.toml)")
    parser.add_argument("--models", help="the model repository (default: models)")
    parser.add_argument("--labels", help="the labels directory (default: labels)")
    parser.add_argument("--log-level", dest="log_level", help="debug, info, warning, error")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="pinpoint", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", help="serve the HTTP API in the foreground")
    _common(serve)
    serve.add_argument("--host", help="address to bind (default 127.0.0.1)")
    serve.add_argument("--port", type=int, help="port (default 8080)")
    serve.add_argument("--threads", type=int, help="HTTP worker threads (default 10)")
    serve.add_argument("--image-root", dest="image_root", help="allow `path` requests for images under this directory")
    serve.add_argument("--daemonize", action="store_true", help=argparse.SUPPRESS)  # what `pinpoint start` runs

    for name, text in (("start", "start the server as a background daemon (pidfile, log file)"),
                       ("restart", "stop the daemon, then start it")):
        daemon = commands.add_parser(name, help=text)
        _common(daemon)
        daemon.add_argument("--host")
        daemon.add_argument("--port", type=int)
        daemon.add_argument("--threads", type=int)
        daemon.add_argument("--image-root", dest="image_root")
    for name, text in (("stop", "stop the daemon: drain in-flight requests, then exit"),
                       ("status", "is the daemon running? (LSB exit codes: 0 yes, 1 dead with pidfile, 3 no)"),
                       ("reload", "re-read settings and the model repository without dropping requests (SIGHUP)")):
        _common(commands.add_parser(name, help=text))

    predict = commands.add_parser("predict", help="classify a point of an image in-process, no server")
    _common(predict)
    predict.add_argument("image", help="an image file")
    predict.add_argument("--x", type=float, help="the point's x")
    predict.add_argument("--y", type=float, help="the point's y")
    predict.add_argument("--points", help='many points as JSON, e.g. "[[10,20],[30,40]]"')
    predict.add_argument("--units", default="px", choices=("px", "pct"))
    predict.add_argument("--only", dest="models_subset", help="comma-separated models (default: all)")
    predict.add_argument("--top-k", dest="top_k", type=int, default=5)
    bench = commands.add_parser("bench", help="measure throughput and latency with wrk; write docs/benchmarks.md")
    _common(bench)
    bench.add_argument("--out", default="docs/benchmarks.md", help="where to write the report")
    bench.add_argument("--seconds", type=float, default=5.0, help="seconds per measurement")
    bench.add_argument("--memory-requests", dest="memory_requests", type=int, default=20_000)
    for name, (_, text) in DELEGATED.items():
        commands.add_parser(name, help=text, add_help=False)
    return parser


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    if argv and argv[0] in DELEGATED:
        return importlib.import_module(DELEGATED[argv[0]][0]).main(argv[1:])
    args = build_parser().parse_args(argv)
    try:
        settings = _settings(args)
    except (ConfigError, OSError) as error:
        print(f"pinpoint: {error}", file=sys.stderr)
        return 2
    if args.command == "serve":
        from service.app import AddressInUse, serve

        try:
            serve(settings, daemonize=args.daemonize, reread_settings=lambda: _settings(args))
        except AddressInUse as error:
            print(f"pinpoint: {error}", file=sys.stderr)
            return 2
        return 0
    if args.command in ("start", "stop", "status", "restart", "reload"):
        from service import daemon

        forwarded = list(argv)
        forwarded.remove(args.command)
        if args.command == "restart":
            stopped = daemon.stop(settings)
            return stopped if stopped else daemon.start(settings, forwarded)
        if args.command == "start":
            return daemon.start(settings, forwarded)
        return getattr(daemon, args.command)(settings)
    if args.command == "predict":
        return _predict(args, settings)
    if args.command == "bench":
        from service.bench.run import main as bench

        if args.models:
            os.environ["PINPOINT_MODELS"] = str(settings.models)  # the servers it starts serve the same models
        if args.labels:
            os.environ["PINPOINT_LABELS"] = str(settings.labels)
        return bench(Path(args.out), settings, seconds=args.seconds, memory_requests=args.memory_requests)
    return 2


def _predict(args, settings) -> int:
    from service.api.fields import classify_args
    from service.engine import Engine
    from service.observe import configure_logging

    configure_logging("warning" if args.log_level is None else args.log_level, "console")
    fields = {"units": args.units, "top_k": args.top_k}
    if args.points:
        fields["points"] = args.points
    else:
        fields.update(x=args.x, y=args.y)
    if args.models_subset:
        fields["models"] = args.models_subset
    fields = {key: value for key, value in fields.items() if value is not None}
    try:
        data = Path(args.image).read_bytes()
        with Engine.open(settings=settings) as engine:
            answer = engine.classify(data, **classify_args(fields))
    except PinpointError as error:
        print(json.dumps({"error": error.message, "code": error.code}), file=sys.stderr)
        return 1
    except OSError as error:
        print(f"pinpoint: {error}", file=sys.stderr)
        return 1
    print(json.dumps(answer, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""The `pinpoint` command: serve over HTTP, or predict in-process with the same pipeline; run the
daemon, the benchmark, and the demo models' training and evaluation."""

from __future__ import annotations

import argparse
import importlib
import json
import os
import sys
from pathlib import Path

from service import quiet
from service.config import PATH_SETTINGS, ConfigError, Settings, default, load_settings
from service.errors import PinpointError

# Commands that are another module's own command line: their options are theirs (`--help` shows them).
DELEGATED = {
    "train-demo": ("service.tools.train.cli", "train the demo models"),
    "evaluate": ("service.tools.train.evaluate", "accuracy of a demo model on generated and real-photo points"),
    "inspect": ("service.tools.inspect_graph",
                "a frozen GraphDef's inputs, outputs, dtypes, shapes; --config: a model.toml"),
    "convert": ("service.tools.convert", "a Keras model or SavedModel -> a new frozen version in the repository"),
    "report": ("service.feedback.cli", "how often answers held what users chose, per model and version"),
}
# Commands that import TensorFlow: it is imported first, without its C++ notices (service/quiet.py).
USE_TENSORFLOW = ("train-demo",)  # inspect, convert and evaluate do it themselves, once their arguments are checked
# The settings every command that loads models takes as flags; serve, start and restart take every
# setting declared with flag=True in service/config.py.
MODEL_FLAGS = ("models", "labels", "log_level")


def flagged_settings() -> list[str]:
    return [name for name, field in Settings.model_fields.items() if (field.json_schema_extra or {}).get("flag")]


def add_setting_flags(parser: argparse.ArgumentParser, names=None) -> None:
    """--config and a flag per setting (`image_root` -> --image-root), help and default from its declaration.
    Values stay text: load_settings parses them as the environment's, and refuses them by the setting's name."""
    parser.add_argument("--config", metavar="FILE",
                        help="a TOML settings file (every setting, with its default: service/defaults.toml)")
    for name in names or flagged_settings():
        field = Settings.model_fields[name]
        shown = default(name)
        metavar = "DIR" if "Path" in str(field.annotation) else name.split("_")[-1].upper()
        parser.add_argument(f"--{name.replace('_', '-')}", dest=name, metavar=metavar,
                            help=f"{field.description} (default: {'none' if shown is None else shown})")


def _settings(args):
    names = [name for name in flagged_settings() if hasattr(args, name)]
    return load_settings(args.config, overrides={name: getattr(args, name) for name in names})


def _serve_args(args, settings: Settings) -> list[str]:
    """The flags a daemon's `pinpoint serve --daemonize` gets: the ones given to start/restart, paths
    made absolute (the daemon works in /, and reads them again on every reload)."""
    forwarded = ["--config", str(Path(args.config).resolve())] if args.config else []
    for name in flagged_settings():
        if getattr(args, name, None) is not None:
            value = getattr(settings, name) if name in PATH_SETTINGS else getattr(args, name)
            forwarded += [f"--{name.replace('_', '-')}", str(value)]
    return forwarded


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="pinpoint", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", help="serve the HTTP API in the foreground")
    add_setting_flags(serve)
    serve.add_argument("--daemonize", action="store_true", help=argparse.SUPPRESS)  # what `pinpoint start` runs

    for name, text in (("start", "start the server as a background daemon (pidfile, log file); waits until "
                                 "every model is ready"),
                       ("restart", "stop the daemon, then start it")):
        daemon = commands.add_parser(name, help=text, description=text)
        add_setting_flags(daemon)
        daemon.add_argument("--no-wait", dest="wait", action="store_false",
                            help="return once the daemon runs and has written its pidfile, without waiting "
                                 "for its models (/readyz)")
        daemon.add_argument("--timeout", type=float, default=90, metavar="SECONDS",
                            help="how long to wait for /readyz to answer 200 before reporting failure "
                                 "(default: 90)")
    for name, text in (("stop", "stop the daemon: drain in-flight requests, then exit"),
                       ("status", "is the daemon running, and where? (LSB exit codes: 0 yes, 1 dead with "
                                  "pidfile, 3 no)"),
                       ("reload", "re-read settings and the model repository without dropping requests (SIGHUP)")):
        command = commands.add_parser(name, help=text, description=text)
        command.add_argument("--config", metavar="FILE", help="the TOML settings file the daemon was started "
                                                              "with (it names the pidfile)")

    predict = commands.add_parser("predict", help="classify a point of an image in-process, no server")
    add_setting_flags(predict, MODEL_FLAGS)
    predict.add_argument("image", help="an image file")
    predict.add_argument("--x", type=float, help="the point's x (with --y)")
    predict.add_argument("--y", type=float, help="the point's y (with --x)")
    predict.add_argument("--points", help='many points as JSON, e.g. "[[10,20],[30,40]]" (instead of --x/--y)')
    predict.add_argument("--units", default="px", choices=("px", "pct"), help="px (default) or pct: 0..100 of "
                                                                              "width and height")
    predict.add_argument("--only", dest="models_subset", metavar="MODELS", help="comma-separated models (default: all)")
    predict.add_argument("--top-k", dest="top_k", type=int, default=5, metavar="K",
                         help="labels per model (default: 5)")
    predict.add_argument("--format", choices=("table", "json"), default=None,
                         help="table: one line per point and model; json: the API's answer "
                              "(default: table on a terminal, json when piped)")
    bench = commands.add_parser(
        "bench", help="measure throughput and latency with wrk, and the models in headless Chromium; write "
                      "the report (--out) and browser.md's table beside it")
    add_setting_flags(bench, MODEL_FLAGS)
    bench.add_argument("--out", default="benchmarks.md",
                       help="where to write the report, browser.md beside it (default: benchmarks.md here; "
                            "`make bench` writes the committed docs/benchmarks.md)")
    bench.add_argument("--seconds", type=float, default=5.0, help="seconds per measurement (default: 5)")
    bench.add_argument("--memory-requests", dest="memory_requests", type=int, default=20_000,
                       help="requests of the memory-growth check (default: 20000)")
    for name, (_, text) in DELEGATED.items():
        commands.add_parser(name, help=text, add_help=False)
    parser.commands = commands.choices  # name -> its parser (main() refuses in predict's name; tests read help)
    return parser


def main(argv=None) -> int:
    """The command, its exit code; output cut short by a closed pipe (`pinpoint status | head -1`) is
    not an error worth a traceback."""
    try:
        code = _main(argv)
        sys.stdout.flush()
        return code
    except BrokenPipeError:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())  # so the interpreter's last flush at exit does not fail again
        return 1


def _main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    if argv and argv[0] in DELEGATED:
        if argv[0] in USE_TENSORFLOW and not {"-h", "--help"} & set(argv):
            quiet.import_tensorflow()
        return importlib.import_module(DELEGATED[argv[0]][0]).main(argv[1:])
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command == "predict":
        _check_point(parser.commands["predict"], args)
    try:
        settings = _settings(args)
    except (ConfigError, OSError) as error:
        print(f"pinpoint: {error}", file=sys.stderr)
        return 2
    if args.command == "predict" and _loads_tensorflow(settings):
        quiet.import_tensorflow()  # here, quietly, rather than on a loader thread into the output
    from service.processes.address import AddressError
    from service.serving.repository import RepositoryMissing, check_repository

    try:
        if args.command in ("serve", "start", "restart"):
            check_repository(settings.models)  # before a stop, a fork or a port: exit 2, the path named
        return _run(args, settings)
    except (AddressError, RepositoryMissing) as error:
        print(f"pinpoint: {error}", file=sys.stderr)
        return 2


def _check_point(predict: argparse.ArgumentParser, args) -> None:
    """As the API: x and y, or points, never both (exit 2 before any model loads)."""
    has_xy = args.x is not None or args.y is not None
    if args.points is not None and has_xy:
        predict.error("give --x and --y, or --points, not both")
    if args.points is None and not has_xy:
        predict.error("give a point: --x and --y, or --points")
    if args.points is None and (args.x is None or args.y is None):
        predict.error("give both --x and --y")


def _run(args, settings: Settings) -> int:
    if args.command == "serve":
        from service.http.app import serve

        serve(settings, daemonize=args.daemonize, reread_settings=lambda: _settings(args))  # AddressError: exit 2
        return 0
    if args.command in ("start", "stop", "status", "restart", "reload"):
        from service.processes import daemon

        if args.command == "restart":
            stopped = daemon.stop(settings)
            return stopped if stopped else daemon.start(settings, _serve_args(args, settings), args.wait, args.timeout)
        if args.command == "start":
            return daemon.start(settings, _serve_args(args, settings), args.wait, args.timeout,
                                port_given=args.port is not None)
        if args.command == "reload":
            return daemon.reload(settings, args.config)
        return getattr(daemon, args.command)(settings)
    if args.command == "predict":
        return _predict(args, settings)
    if args.command == "bench":
        from service.tools.bench.run import main as bench

        if args.models:
            os.environ["PINPOINT_MODELS"] = str(settings.models)  # the servers it starts serve the same models
        if args.labels:
            os.environ["PINPOINT_LABELS"] = str(settings.labels)
        return bench(Path(args.out), settings, seconds=args.seconds, memory_requests=args.memory_requests)
    return 2


def _loads_tensorflow(settings) -> bool:
    """Whether loading the served models imports TensorFlow (~3 s): not when each is ONNX, or a frozen
    graph whose conversion and check are already in the ONNX cache."""
    from service.serving import loader, repository
    from service.serving.servable import LoadOptions

    options = LoadOptions.of(settings)
    try:
        return any(loader.needs_tensorflow(spec, options)
                   for spec in repository.scan(settings.models, settings.labels).specs)
    except Exception:  # noqa: BLE001 - the load says what is wrong; meanwhile TensorFlow's notices stay out
        return True


def _predict(args, settings) -> int:
    from service.engine import Engine
    from service.http.api.fields import classify_args
    from service.http.api.render import classify_document
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
        request = classify_args(fields)  # a mistake in the fields is refused before the models load
        with Engine.open(settings=settings) as engine:
            answer = classify_document(engine.classify_image(
                data, request["points"], units=request.get("units", "px"), models=request.get("models", ()),
                top_k=request.get("top_k", 5)))
    except PinpointError as error:
        print(json.dumps({"error": error.message, "code": error.code}), file=sys.stderr)
        return 1
    except OSError as error:
        print(f"pinpoint: {error}", file=sys.stderr)
        return 1
    fmt = args.format or ("table" if sys.stdout.isatty() else "json")
    print(json.dumps(answer, indent=2) if fmt == "json" else table(answer, args.image))
    return 0


def table(answer: dict, name: str = "image") -> str:
    """`pinpoint predict`'s terminal form: a heading, then one line per point and model."""
    image = answer["image"]
    total = answer.get("timings_ms", {}).get("total")
    lines = [f"{name}: {image['width']}×{image['height']} {image['format']}"
             + (f", {total:.0f} ms" if total is not None else "")]
    versions = {model: info.get("version") for model, info in answer.get("models", {}).items()}
    width = max((len(f"{m} v{v}") for m, v in versions.items()), default=0)
    for prediction in answer["predictions"]:
        where = f"({prediction['point']['x']}, {prediction['point']['y']})"
        for i, (model, labels) in enumerate(prediction["results"].items()):
            ranked = ", ".join(f"{label['label']} {label['score']:.2f}" for label in labels)
            lines.append(f"{where if i == 0 else '':<12} {f'{model} v{versions.get(model)}':<{width}}  {ranked}")
    for model, error in answer.get("errors", {}).items():
        lines.append(f"{model}: {error}")
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())

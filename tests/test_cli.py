"""`pinpoint predict` runs the same pipeline in-process and prints the same JSON; the other commands
that need no server (evaluate, train-demo) answer as documented."""

from __future__ import annotations

import argparse
import json
import re
import time
from pathlib import Path

import pytest

from fixtures import pinpoint as run_pinpoint
from fixtures import split_image
from service.cli import build_parser

REPO = Path(__file__).resolve().parents[1]


def pinpoint(*args, cwd=None, env=None):
    return run_pinpoint(*args, cwd=cwd, env=env)


def test_predict_prints_the_api_answer(repository, tmp_path):
    """Piped (as here), predict prints the API's JSON answer; on a terminal, the table below."""
    models, labels = repository
    image = tmp_path / "split.png"
    image.write_bytes(split_image())
    done = pinpoint("predict", str(image), "--x", "95", "--y", "50", "--units", "pct",
                    "--models", str(models), "--labels", str(labels))
    assert done.returncode == 0, done.stderr
    answer = json.loads(done.stdout)
    assert answer["predictions"][0]["point"] == {"x": 190, "y": 50}
    assert answer["predictions"][0]["results"]["tint"][0]["label"] == "blue"
    assert set(answer["models"]) == {"tint", "bright", "jpeg"}


def test_predict_reports_errors_in_the_contract_shape(onnx_repository, tmp_path):
    models, labels = onnx_repository
    image = tmp_path / "split.png"
    image.write_bytes(split_image())
    done = pinpoint("predict", str(image), "--x", "500", "--y", "1", "--models", str(models), "--labels", str(labels))
    assert done.returncode == 1
    assert json.loads(done.stderr.strip().splitlines()[-1])["code"] == "point_out_of_bounds"


def test_predict_on_models_already_converted_does_not_import_tensorflow(onnx_repository, tmp_path):
    """Importing TensorFlow is ~3 s of a predict; it is skipped when every model runs on ONNX Runtime from
    the conversion cache (graphs not converted yet, SavedModels and TensorFlow-only models still need it)."""
    models, labels = onnx_repository
    image = tmp_path / "split.png"
    image.write_bytes(split_image())
    args = ("predict", str(image), "--x", "10", "--y", "50", "--models", str(models), "--labels", str(labels))
    assert pinpoint(*args).returncode == 0  # converts them into the run's cache, unless a test did already
    done = pinpoint(*args, env={"PYTHONPROFILEIMPORTTIME": "1"})  # each module imported, on stderr
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["predictions"][0]["results"]["tint"][0]["label"] == "red"
    imported = {line.rsplit("|", 1)[1].strip() for line in done.stderr.splitlines() if line.startswith("import time:")}
    assert "onnxruntime" in imported and "tensorflow" not in imported


def test_predict_prints_one_line_per_point_and_model_and_no_colour_codes_into_a_file(repository, tmp_path):
    models, labels = repository
    image = tmp_path / "split.png"
    image.write_bytes(split_image())
    done = pinpoint("predict", str(image), "--points", "[[10, 50], [190, 50]]", "--format", "table",
                    "--log-level", "info", "--models", str(models), "--labels", str(labels))
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].startswith(f"{image}: 200×100 PNG, ")
    assert len(lines) == 1 + 2 * 3  # a heading, then each point's three models
    assert lines[1].startswith("(10, 50)") and lines[4].startswith("(190, 50)")
    assert any("tint v1    red " in line for line in lines[1:4])  # columns: point, model, labels
    assert any("tint v1    blue " in line for line in lines[4:])
    assert "version_available" in done.stderr  # the log, readable...
    assert "\x1b[" not in done.stderr  # ...and without ANSI colour codes, since stderr is not a terminal


def test_predict_refuses_x_and_y_together_with_points_before_loading_anything(tmp_path):
    done = pinpoint("predict", str(tmp_path / "any.png"), "--x", "1", "--y", "2", "--points", "[[3, 4]]")
    assert done.returncode == 2
    assert "give --x and --y, or --points, not both" in done.stderr
    done = pinpoint("predict", str(tmp_path / "any.png"), "--x", "1")
    assert done.returncode == 2 and "give both --x and --y" in done.stderr


def test_serve_refuses_a_bad_config_with_a_clear_message(tmp_path):
    config = tmp_path / "bad.toml"
    config.write_text("prot = 80\n")
    done = pinpoint("serve", "--config", str(config))
    assert done.returncode == 2 and "unknown setting 'prot'" in done.stderr


def test_evaluate_prints_accuracy_tables_for_a_demo_model():
    done = pinpoint("evaluate", "color", "--data", "generated", "--per-label", "2", cwd=REPO)
    assert done.returncode == 0, done.stderr
    assert "Held-out generated set" in done.stdout and "| label | n | top-1 | top-5 |" in done.stdout


def test_evaluate_color_on_real_photos_loads_only_the_color_model():
    done = pinpoint("evaluate", "color", "--data", "real", "--set", "dev", "--log-level", "info", cwd=REPO)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("## color: models/color evaluated by `pinpoint evaluate`")
    assert "model=color" in done.stderr and "model=theme" not in done.stderr  # the loads, logged on stderr


def test_evaluate_prints_its_report_alone_from_any_directory(tmp_path):
    """No log lines (nor TensorFlow's notices) between the tables in a terminal: only problems reach
    stderr; and the checkout's models are found from elsewhere."""
    done = pinpoint("evaluate", "color", "--data", "generated", "--per-label", "2", cwd=tmp_path,
                    env={"PINPOINT_HOME": ""})
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("## color: ") and done.stderr == ""


def test_evaluate_points_a_model_that_is_not_a_demo_to_csv():
    done = pinpoint("evaluate", "mine", cwd=REPO)
    assert done.returncode == 2
    assert "'mine' is not a demo model (color, pattern, theme)" in done.stderr
    assert "`pinpoint evaluate --csv points.csv` measures any served model" in done.stderr


def test_inspect_and_convert_print_no_tensorflow_notices(tmp_path):
    done = pinpoint("inspect", str(REPO / "models" / "color" / "1" / "frozen_graph.pb"), cwd=tmp_path)
    assert done.returncode == 0 and done.stderr == "", done.stderr
    done = pinpoint("convert", str(tmp_path / "nothing.keras"), "--name", "x", cwd=tmp_path)
    assert done.returncode == 2 and done.stderr == f"pinpoint convert: {tmp_path / 'nothing.keras'} does not exist\n"


def test_evaluate_refuses_an_unknown_set_at_once():
    started = time.monotonic()
    done = pinpoint("evaluate", "color", "--set", "bogus", cwd=REPO)
    assert done.returncode == 2 and time.monotonic() - started < 10
    assert re.search(r"--set 'bogus': the real-photo points of color are in dev, holdout\b.* \(or all\)", done.stderr)


def test_evaluate_help_names_the_command_a_user_types():
    done = pinpoint("evaluate", "--help")
    assert done.returncode == 0 and done.stdout.startswith("usage: pinpoint evaluate ")


@pytest.mark.parametrize("command", ["serve", "start", "restart"])
def test_every_option_of_the_server_commands_is_explained(command):
    parser = build_parser().commands[command]
    for action in parser._actions:
        if action.help != argparse.SUPPRESS:
            assert action.help and len(action.help) > 10, f"{command} {action.option_strings} has no help"
    done = pinpoint(command, "--help")
    assert "--image-root DIR" in done.stdout and "(default: 8080)" in done.stdout


def test_train_demo_is_the_training_command():
    done = pinpoint("train-demo", "--help")
    assert done.returncode == 0 and "--only" in done.stdout and "--quick" in done.stdout


def test_serve_on_a_port_a_foreground_server_holds_names_that_process(process_server, tmp_path):
    server = process_server
    port = server.url.rsplit(":", 1)[1]
    done = pinpoint("serve", "--port", port, cwd=tmp_path, env={"PINPOINT_MODELS": str(REPO / "models")})
    assert done.returncode == 2
    assert f"cannot listen on 127.0.0.1:{port}: the address is in use" in done.stderr
    assert f"process {server.process.pid} (pinpoint serve --port {port} " in done.stderr and "--port" in done.stderr
    assert "pinpoint status" not in done.stderr  # no daemon there: status would only say "not running"
    assert "Traceback" not in done.stderr


@pytest.mark.parametrize("args, message", [
    (["serve", "--port", "80800"],
     "pinpoint: port: input should be less than or equal to 65535; got 80800 from --port"),
    (["start", "--port", "0"], "pinpoint: port: input should be greater than or equal to 1; got 0 from --port"),
    (["start", "--host", "no-such-host.invalid"], "pinpoint: host: cannot resolve 'no-such-host.invalid'"),
    (["serve", "--port", "8080.9"], "pinpoint: port: input should be a valid integer; got '8080.9' from --port"),
])
def test_a_bad_address_is_refused_in_one_line_before_anything_starts(tmp_path, args, message):
    started = time.monotonic()
    done = pinpoint(*args, cwd=tmp_path, env={"PINPOINT_MODELS": str(REPO / "models")})
    assert done.returncode == 2 and message in done.stderr, done.stderr
    assert "Traceback" not in done.stderr and time.monotonic() - started < 10
    assert not (tmp_path / "var").exists()  # no daemon was launched


@pytest.mark.parametrize("command", ["serve", "start"])
@pytest.mark.parametrize("repository, message", [
    ("nonexistent", "the model repository {path} does not exist"),
    ("empty", "the model repository {path} holds no model: put one in {path}/<name>/1/"),
])
def test_a_missing_or_empty_model_repository_is_refused_at_once_naming_it(tmp_path, command, repository,
                                                                          message):
    path = tmp_path / repository
    if repository == "empty":
        path.mkdir()
    started = time.monotonic()
    done = pinpoint(command, "--models", str(path), "--port", "8", cwd=tmp_path)
    assert done.returncode == 2 and f"pinpoint: {message.format(path=path)}" in done.stderr, done.stderr
    assert "--models, PINPOINT_MODELS or `models` in the settings file" in done.stderr
    assert time.monotonic() - started < 15 and not (tmp_path / "var").exists()  # no daemon, no waiting


def test_default_paths_do_not_follow_the_current_directory(tmp_path):
    """From another directory, the defaults are still the checkout's: its models/, its var/."""
    from service.config import load_settings

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    done = pinpoint("status", cwd=elsewhere, env={"PINPOINT_HOME": ""})
    assert done.returncode in (0, 1, 3) and not (elsewhere / "var").exists()
    settings = load_settings(environ={})
    assert settings.models == REPO / "models" and settings.pidfile == REPO / "var" / "pinpoint.pid"
    assert settings.feedback_db == str(REPO / "var" / "feedback.db")


def test_paths_in_a_settings_file_are_relative_to_the_file(tmp_path, monkeypatch):
    from service.config import load_settings

    config = tmp_path / "etc" / "pinpoint.toml"
    config.parent.mkdir()
    config.write_text('models = "../srv/models"\nfeedback_db = "state/feedback.db"\nhome = "/var/lib/pinpoint"\n')
    monkeypatch.chdir(REPO)
    settings = load_settings(config, environ={"PINPOINT_LABELS": "here/labels"})
    assert settings.models == tmp_path / "srv" / "models"                   # the file's directory
    assert settings.feedback_db == str(tmp_path / "etc" / "state" / "feedback.db")
    assert settings.labels == REPO / "here" / "labels"                      # the environment: the current one
    assert settings.pidfile == Path("/var/lib/pinpoint/var/pinpoint.pid")   # a default: under home


@pytest.mark.parametrize("workers", ["2", "0"])
def test_serve_prints_one_line_when_ready_and_keeps_cherrypys_engine_chatter_at_debug(tmp_path, workers):
    import subprocess
    import sys

    import graphs
    from fixtures import free_port, kill

    models, labels = graphs.write_repository(tmp_path, names=("tint", "bright"))
    port = free_port()
    with open(tmp_path / "log", "w") as log:  # the server writes to its own copy of the descriptor
        server = subprocess.Popen([sys.executable, "-m", "service", "serve", "--port", str(port), "--workers", workers,
                                   "--models", str(models), "--labels", str(labels)], cwd=tmp_path, text=True,
                                  stdout=subprocess.PIPE, stderr=log,
                                  env={**__import__("os").environ, "PINPOINT_HOME": str(tmp_path),
                                       "PINPOINT_LOG_FORMAT": "json"})
    try:
        ready = server.stdout.readline().strip()
    finally:
        kill(server)
    processes = "2 API workers, 1 model runner" if workers == "2" else "one process"
    assert ready == f"pinpoint ready on http://127.0.0.1:{port}/: models bright v1, tint v1; {processes}"
    log = (tmp_path / "log").read_text()
    assert '"event": "ready"' in log and "ENGINE Bus STARTING" not in log and "ENGINE Serving on" not in log
    assert '"path": "/readyz"' not in log  # its own wait for readiness is not in the access log


def test_report_on_a_model_the_log_does_not_know_says_which_it_knows(tmp_path):
    from service.feedback.store import Store

    store = Store(str(tmp_path / "feedback.db"))
    store.migrate()
    store.close()
    done = pinpoint("report", "--db", str(tmp_path / "feedback.db"), "--model", "nope", cwd=tmp_path)
    assert done.returncode == 1 and done.stdout == ""
    assert "pinpoint: no answer of model 'nope' is logged; models in the log: none yet" in done.stderr


def test_status_into_a_closed_pipe_ends_without_a_traceback(tmp_path):
    """`pinpoint status | head -1`: the reader may be gone before the status is written."""
    import os
    import subprocess
    import sys

    read, write = os.pipe()
    os.close(read)
    try:
        done = subprocess.run([sys.executable, "-m", "service", "status"], stdout=write, stderr=subprocess.PIPE,
                              text=True, cwd=tmp_path, env={**os.environ, "PINPOINT_HOME": str(tmp_path)},
                              timeout=60)
    finally:
        os.close(write)
    assert "Traceback" not in done.stderr and "BrokenPipeError" not in done.stderr, done.stderr


def test_bench_help_gives_every_default_and_the_report_goes_to_the_current_directory():
    bench = build_parser().commands["bench"]
    text = bench.format_help()
    assert "(default: 5)" in text and "(default: 20000)" in text and "default: benchmarks.md here" in text
    assert bench.parse_args([]).out == "benchmarks.md"   # never the committed docs/benchmarks.md unasked

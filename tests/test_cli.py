"""`pinpoint predict` runs the same pipeline in-process and prints the same JSON; the other commands
that need no server (evaluate, train-demo) answer as documented."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from fixtures import pinpoint as run_pinpoint, split_image

REPO = Path(__file__).resolve().parents[1]


def pinpoint(*args, cwd=None):
    return run_pinpoint(*args, cwd=cwd)


def test_predict_prints_the_api_answer(repository, tmp_path):
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


def test_predict_reports_errors_in_the_contract_shape(repository, tmp_path):
    models, labels = repository
    image = tmp_path / "split.png"
    image.write_bytes(split_image())
    done = pinpoint("predict", str(image), "--x", "500", "--y", "1", "--models", str(models), "--labels", str(labels))
    assert done.returncode == 1
    assert json.loads(done.stderr.strip().splitlines()[-1])["code"] == "point_out_of_bounds"


def test_serve_refuses_a_bad_config_with_a_clear_message(tmp_path):
    config = tmp_path / "bad.toml"
    config.write_text("prot = 80\n")
    done = pinpoint("serve", "--config", str(config))
    assert done.returncode == 2 and "unknown setting 'prot'" in done.stderr


def test_evaluate_prints_accuracy_tables_for_a_demo_model():
    done = pinpoint("evaluate", "color", "--data", "generated", "--per-label", "2", cwd=REPO)
    assert done.returncode == 0, done.stderr
    assert "Held-out generated set" in done.stdout and "| label | n | top-1 | top-5 |" in done.stdout


def test_train_demo_is_the_training_command():
    done = pinpoint("train-demo", "--help")
    assert done.returncode == 0 and "--only" in done.stdout and "--quick" in done.stdout


def test_serve_on_a_taken_port_says_so_at_once(server):
    port = server.url.rsplit(":", 1)[1]
    done = pinpoint("serve", "--port", port)
    assert done.returncode == 2
    assert f"cannot listen on 127.0.0.1:{port}" in done.stderr and "--port" in done.stderr
    assert "Traceback" not in done.stderr

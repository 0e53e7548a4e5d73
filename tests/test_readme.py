"""The README's first example is true: the photo it tells the reader to make, classified at the point
its first cURL line sends, gives the answer it shows (through the same pipeline the server runs)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
README = (REPO / "README.md").read_text()


def test_the_readme_answer_is_what_its_photo_and_point_give(tmp_path):
    make_photo = re.search(r'`\.venv/bin/python -c "(.+?)"`', README).group(1)
    subprocess.run([sys.executable, "-c", make_photo], cwd=tmp_path, check=True)
    x, y = map(int, re.search(r"curl -F image=@photo\.jpg -F x=(\d+) -F y=(\d+) ", README).groups())
    shown = json.loads(re.search(r"The first one's answer.*?```json\n(.+?)```", README, re.S).group(1))

    from fixtures import demo_engine
    from service.http.api.render import classify_document

    with demo_engine() as engine:
        answer = classify_document(engine.classify_image((tmp_path / "photo.jpg").read_bytes(), [(x, y)]))

    assert answer["image"] == shown["image"]
    assert answer["models"] == shown["models"]
    assert answer["errors"] == shown["errors"] == {}
    [point] = answer["predictions"]
    assert point["point"] == shown["predictions"][0]["point"] == {"x": x, "y": y}
    for model, labels in shown["predictions"][0]["results"].items():
        got = point["results"][model]
        assert [label["label"] for label in got] == [label["label"] for label in labels]
        assert [label["score"] for label in got] == pytest.approx([label["score"] for label in labels], abs=1e-4)


def test_the_readme_python_snippet_prints_what_its_comments_say(tmp_path):
    """The snippet runs as a reader would run it, against `pinpoint serve` with the demo models; what
    it prints is compared with the README's own `# ...` output lines (so regenerated examples stay checked)."""
    from fixtures import start_server, stop_server

    block = re.search(r"From Python:\n```python\n(.+?)```", README, re.S).group(1)
    code = "\n".join(line for line in block.splitlines() if not line.startswith("# "))
    shown = [line[2:] for line in block.splitlines() if line.startswith("# ")]
    assert shown, "the snippet shows its output as # comments"
    make_photo = re.search(r'`\.venv/bin/python -c "(.+?)"`', README).group(1)
    subprocess.run([sys.executable, "-c", make_photo], cwd=tmp_path, check=True)

    server = start_server(tmp_path, REPO / "models", REPO / "labels", "--workers", "1")
    try:
        done = subprocess.run([sys.executable, "-c", code.replace("http://127.0.0.1:8080", server.url)],
                              cwd=tmp_path, capture_output=True, text=True, timeout=120)
    finally:
        stop_server(server)
    assert done.returncode == 0, done.stderr
    printed = done.stdout.splitlines()
    assert [line.rsplit(" ", 1)[0] for line in printed] == [line.rsplit(" ", 1)[0] for line in shown]
    assert [float(line.rsplit(" ", 1)[1]) for line in printed] == \
        pytest.approx([float(line.rsplit(" ", 1)[1]) for line in shown], abs=1e-4)


def test_the_readme_predict_table_is_what_predict_prints(tmp_path):
    make_photo = re.search(r'`\.venv/bin/python -c "(.+?)"`', README).group(1)
    subprocess.run([sys.executable, "-c", make_photo], cwd=tmp_path, check=True)
    command = re.search(r"\.venv/bin/pinpoint predict photo\.jpg --points '(\[.+?\])'", README).group(1)
    table = re.search(r"```\n(photo\.jpg: .+?)```", README, re.S).group(1).splitlines()
    done = subprocess.run([sys.executable, "-m", "service", "predict", "photo.jpg", "--points", command,
                           "--format", "table", "--models", str(REPO / "models"), "--labels", str(REPO / "labels")],
                          cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    printed = done.stdout.splitlines()
    assert re.sub(r", \d+ ms$", "", printed[0]) == re.sub(r", \d+ ms$", "", table[0])
    assert printed[1:] == table[1:]

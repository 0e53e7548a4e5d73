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

    from service.api.render import classify_document
    from service.engine import Engine

    with Engine.open(models_dir=REPO / "models", labels_dir=REPO / "labels") as engine:
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

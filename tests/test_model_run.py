"""The scores every route answers (service/serving/model_run.py `probabilities`): a model's output rows
in, probabilities out, whatever the graph gave: logits past float32's range, infinities, nans, scores
outside 0..1. /v1/classify, TF Serving's :classify and gRPC Classify all answer these numbers."""

from __future__ import annotations

import numpy as np
import pytest

from service.serving.model_run import probabilities

INF, NAN = float("inf"), float("nan")

# (output row, softmax in model.toml, the scores answered)
TABLE = [
    ([2.0, 1.0, 0.0], True, [0.665241, 0.244728, 0.090031]),  # logits: their softmax
    ([1000.0, 0.0, -1000.0], True, [1.0, 0.0, 0.0]),  # large logits: no overflow (the max comes off first)
    ([3.4e38, 3.4e38, 0.0], True, [0.5, 0.5, 0.0]),  # near float32's largest: a tie stays a tie
    ([INF, -INF, -INF], True, [0.0, 0.0, 0.0]),  # infinite logits: no number is right, so none is claimed
    ([NAN, 1.0, 2.0], True, [0.0, 0.0, 0.0]),  # one nan spoils the row's sum: all 0, never NaN
    ([0.25, 0.5, 0.25], False, [0.25, 0.5, 0.25]),  # probabilities already: as they are
    ([1.5, -0.5, NAN], False, [1.0, 0.0, 0.0]),  # outside 0..1 clipped, nan 0
]


@pytest.mark.parametrize(("row", "softmax", "answered"), TABLE)
def test_a_models_rows_become_the_scores_answered(row, softmax, answered):
    scores = probabilities(np.array([row], np.float32), softmax)
    assert scores.dtype == np.float64 and scores.shape == (1, 3)
    assert scores[0] == pytest.approx(answered, abs=1e-6)
    assert np.isfinite(scores).all() and (scores >= 0).all() and (scores <= 1).all()


def test_rows_are_scored_each_on_its_own():
    rows = np.array([[INF, 0.0, 0.0], [0.0, 0.0, 0.0]], np.float32)
    assert probabilities(rows, True)[1] == pytest.approx([1 / 3] * 3)  # a broken row spoils only itself

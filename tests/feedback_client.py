"""A client of the feedback loop, for the tests: classify points of the split test image, say which label
was right. With a requests.Session the calls keep one connection (one API worker), as a product's would."""

from __future__ import annotations

import base64

import requests

from fixtures import split_image

LEFT, RIGHT = (10, 50), (190, 50)  # in split_image(): left half red, right half blue
IMAGE_B64 = base64.b64encode(split_image()).decode()


def classify(server, points, models="tint", session=None, headers=None, **extra) -> dict:
    response = (session or requests).post(server.url + "/v1/classify", timeout=30, headers=headers,
                                          json={"image_b64": IMAGE_B64, "points": points, "models": models, **extra})
    assert response.status_code == 200, response.text
    return response.json()


def give(server, request_id, model, label, point=0, session=None, headers=None):
    body = {"request_id": request_id, "point": point, "model": model, "label": label}
    return (session or requests).post(server.url + "/v1/feedback", json=body, timeout=30, headers=headers)

"""A client of the feedback loop, for the tests: classify points of the split test image, say which label
was right. With a requests.Session the calls keep one connection (one API worker), as a product's would."""

from __future__ import annotations

import base64
import threading

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


def many_clients(ask, tell, clients=20, per_client=5, models="tint") -> list[str]:
    """`clients` threads, each classifying both points `per_client` times on `ask(n)` and giving
    feedback on `tell(n)` (the same server, or another replica) for one of them, with its own
    keep-alive connections; returns what went wrong (an empty list when every call succeeded)."""
    errors = []

    def client(number):
        with requests.Session() as to_ask, requests.Session() as to_tell:
            for i in range(per_client):
                try:
                    answer = classify(ask(number), [LEFT, RIGHT], models=models, session=to_ask)
                    label = ("red", "green", "blue", "none")[(number + i) % 4]
                    response = give(tell(number), answer["request_id"], "tint", label, point=i % 2, session=to_tell)
                    if response.status_code != 201:
                        errors.append(response.text)
                except Exception as error:  # noqa: BLE001 - every failure is reported
                    errors.append(repr(error))

    threads = [threading.Thread(target=client, args=(n,)) for n in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return errors

"""GET /metrics: Prometheus text that parses, with counters that match the requests sent."""

from __future__ import annotations

import time

from fixtures import scrape, split_image, value


def test_counters_match_the_requests_sent(server):
    before = scrape(server)
    for _ in range(7):
        server.post("/v1/classify?x=1&y=1&models=tint", data=split_image(), headers={"Content-Type": "image/png"})
    for _ in range(3):
        server.post("/v1/classify?x=999&y=1", data=split_image(), headers={"Content-Type": "image/png"})
    ok = dict(name="pinpoint_requests_total", route="/v1/classify", method="POST")
    # A request is counted as it ends, just after its answer went out: read once the last one has ended.
    deadline = time.monotonic() + 5
    while True:
        after = scrape(server)
        if value(after, **ok, status="400") - value(before, **ok, status="400") >= 3 or time.monotonic() > deadline:
            break
        time.sleep(0.02)
    assert value(after, **ok, status="200") - value(before, **ok, status="200") == 7
    assert value(after, **ok, status="400") - value(before, **ok, status="400") == 3
    count = "pinpoint_request_duration_seconds_count"
    assert value(after, count, route="/v1/classify") - value(before, count, route="/v1/classify") == 10
    for stage in ("decode", "crop", "queue", "infer"):
        assert value(after, "pinpoint_stage_duration_seconds_count", stage=stage) - \
            value(before, "pinpoint_stage_duration_seconds_count", stage=stage) == 7
    assert value(after, "pinpoint_batch_crops_count") - value(before, "pinpoint_batch_crops_count") >= 7


def test_models_queue_and_in_flight_are_reported(server):
    samples = scrape(server)
    assert value(samples, "pinpoint_model_info", model="tint", version="1", state="AVAILABLE") == 1
    assert value(samples, "pinpoint_model_load_seconds", model="tint", version="1") > 0
    assert value(samples, "pinpoint_queue_depth") == 0
    # The scrape itself is in flight. A request is counted out just after its answer went out, so the
    # last request of the test before may still be ending: it must end within a moment, not stay counted.
    deadline = time.monotonic() + 5
    while value(samples, "pinpoint_in_flight_requests") != 1 and time.monotonic() < deadline:
        time.sleep(0.02)
        samples = scrape(server)
    assert value(samples, "pinpoint_in_flight_requests") == 1


def test_random_paths_do_not_create_series(server):
    for i in range(20):
        server.get(f"/no/such/path/{i}")
    routes = {dict(labels).get("route") for (name, labels) in scrape(server) if name == "pinpoint_requests_total"}
    assert "other" in routes  # the twenty random paths share one series
    assert not [route for route in routes if "/no/such" in route]  # (other tests' real routes may be there too)

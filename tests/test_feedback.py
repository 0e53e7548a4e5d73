"""The feedback loop against a real server and its SQLite file: classify answers are logged, users' choices
are taken at POST /v1/feedback and checked against the log, and the report (JSON, CLI, CSV, plot) counts
them as the test does by hand. docs/feedback.md describes what these tests use."""

from __future__ import annotations

import contextlib
import csv
import hashlib
import io
import json
import math
import sqlite3
import time

import pytest
from PIL import Image

from feedback_client import LEFT, RIGHT, classify, give, many_clients
from fixtures import assert_error, pinpoint, scrape, start_server, stop_server, value
from inprocess import InProcessServer


@pytest.fixture(scope="module")
def served(tmp_path_factory, repository):
    """A server with the default workers, logging every answer to its own SQLite file."""
    models, labels = repository
    tmp = tmp_path_factory.mktemp("feedback")
    running = start_server(tmp, models, labels, env={"PINPOINT_RATE_LIMIT_PER_S": "0"})
    running.db = tmp / "feedback.db"
    yield running
    stop_server(running)


def wilson(hits, n, z=1.959964):
    """The 95% Wilson score interval, written out again here so the server's is checked, not copied."""
    p = hits / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z / (1 + z * z / n) * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return round(max(0, centre - half), 4), round(min(1, centre + half), 4)


def iso_now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() - 1))


# ---- stored, validated, reported ----
def test_feedback_is_stored_and_reported_with_hit_rates_computed_by_hand(served, tmp_path):
    since = iso_now()
    # Only this test asks the jpeg model (red, green, blue too), so its report holds this test's rows alone.
    answer = classify(served, [LEFT, RIGHT, (20, 50), (180, 50)], models="jpeg")
    shown = [point["results"]["jpeg"] for point in answer["predictions"]]
    assert [labels[0]["label"] for labels in shown] == ["red", "blue", "red", "blue"]
    request_id = answer["request_id"]
    # Two right at the top, one right but not first (green was shown 2nd or 3rd), one "none of these".
    choices = ["red", "blue", "green", "none"]
    for point, label in enumerate(choices):
        response = give(served, request_id, "jpeg", label, point)
        assert response.status_code == 201, response.text
        rank = next((i + 1 for i, item in enumerate(shown[point]) if item["label"] == label), None)
        assert response.json() == {"request_id": request_id, "point": point, "model": "jpeg", "version": 1,
                                   "label": label, "rank": rank, "created": True}

    report = served.get("/v1/report", params={"model": "jpeg"}).json()
    (jpeg,) = report["versions"]
    assert (jpeg["model"], jpeg["version"], jpeg["logged"], jpeg["feedback"]) == ("jpeg", 1, 4, 4)
    assert jpeg["top1"] == {"hits": 2, "rate": 0.5, "low": wilson(2, 4)[0], "high": wilson(2, 4)[1]}
    assert jpeg["top5"]["hits"] == 3 and jpeg["top5"]["rate"] == 0.75
    assert (jpeg["top5"]["low"], jpeg["top5"]["high"]) == wilson(3, 4)
    assert jpeg["none"] == {"count": 1, "share": 0.25}
    labels = {row["label"]: row for row in jpeg["labels"]}
    # red shown first twice (right once), chosen once; blue the same; green chosen once, never first.
    assert (labels["red"]["predicted"], labels["red"]["correct"], labels["red"]["precision"], labels["red"]["recall"]) \
        == (2, 1, 0.5, 1.0)
    assert (labels["blue"]["precision"], labels["blue"]["recall"]) == (0.5, 1.0)
    assert (labels["green"]["chosen"], labels["green"]["predicted"], labels["green"]["recall"],
            labels["green"]["precision"]) == (1, 0, 0.0, None)
    assert jpeg["confusions"] == [{"predicted": "red", "chosen": "green", "count": 1}]
    assert sum(point["feedback"] for point in jpeg["series"]) == 4

    # The command line reads the same file (while the server writes it) and prints the same numbers.
    out_csv, out_png = tmp_path / "report.csv", tmp_path / "plot.png"
    printed = pinpoint("report", "--db", str(served.db), "--model", "jpeg", "--since", since,
                       "--csv", str(out_csv), "--plot", str(out_png), cwd=tmp_path)
    assert printed.returncode == 0, printed.stderr
    assert "jpeg v1: 4 answers logged, 4 with feedback (100.0%), none of these: 1 (25.0%)" in printed.stdout
    assert f"top-1 50.0% [{100 * wilson(2, 4)[0]:.1f}%, {100 * wilson(2, 4)[1]:.1f}%]" in printed.stdout
    assert "most confused (shown first → chosen): red → green (1)" in printed.stdout
    rows = {row["label"]: row for row in csv.DictReader(out_csv.open())}
    assert rows["*"]["top1_rate"] == "0.5" and rows["*"]["top5_hits"] == "3" and rows["*"]["none"] == "1"
    assert rows["red"]["precision"] == "0.5" and rows["green"]["recall"] == "0.0"
    with Image.open(out_png) as picture:
        assert picture.format == "PNG" and picture.width == 960
    as_json = pinpoint("report", "--db", str(served.db), "--model", "jpeg", "--format", "json",
                       cwd=tmp_path)
    assert json.loads(as_json.stdout)["versions"][0]["top1"] == jpeg["top1"]


def test_the_plot_is_a_png_of_the_asked_width(served):
    response = served.get("/v1/report/plot.png", params={"width": "480", "model": "tint"})
    assert response.status_code == 200 and response.headers["Content-Type"] == "image/png"
    with Image.open(io.BytesIO(response.content)) as picture:
        assert picture.width == 480
    assert_error(served.get("/v1/report/plot.png", params={"width": "5"}), 400, "bad_request")


def test_a_second_choice_replaces_the_first_and_answers_200(served):
    request_id = classify(served, [LEFT])["request_id"]
    assert give(served, request_id, "tint", "blue").status_code == 201
    again = give(served, request_id, "tint", "red")
    assert again.status_code == 200 and again.json()["created"] is False and again.json()["rank"] == 1
    # A batch: 201 when every item is new, 200 when one of them replaced a choice.
    other = classify(served, [LEFT, RIGHT], models="tint,bright")["request_id"]
    items = [{"request_id": other, "point": 0, "model": "tint", "label": "red"},
             {"request_id": other, "point": 1, "model": "bright", "label": "none"}]
    first = served.post("/v1/feedback", json={"items": items})
    assert first.status_code == 201 and [item["created"] for item in first.json()["items"]] == [True, True]
    items[1]["label"] = "dark"
    second = served.post("/v1/feedback", json={"items": items})
    assert second.status_code == 200 and [item["label"] for item in second.json()["items"]] == ["red", "dark"]
    stored = _rows(served.db, "SELECT label, revision FROM pinpoint_feedback WHERE request_id = ? ORDER BY point",
                   other)
    assert stored == [("red", 2), ("dark", 2)]


def test_wrong_ids_labels_points_and_bodies_get_the_contracts_errors(served):
    request_id = classify(served, [LEFT], models="tint,bright")["request_id"]
    body = {"request_id": request_id, "point": 0, "model": "tint", "label": "red"}
    assert "no logged answer" in assert_error(
        served.post("/v1/feedback", json={**body, "request_id": "never-classified"}), 404, "not_found")["error"]
    assert "has no label 'purple'" in assert_error(
        served.post("/v1/feedback", json={**body, "label": "purple"}), 400, "bad_request")["error"]
    assert "out of range" in assert_error(
        served.post("/v1/feedback", json={**body, "point": 1}), 400, "bad_request")["error"]
    assert "did not answer" in assert_error(
        served.post("/v1/feedback", json={**body, "model": "jpeg"}), 400, "bad_request")["error"]
    # A label of another model is not one of this model's.
    assert_error(served.post("/v1/feedback", json={**body, "model": "bright", "label": "red"}), 400, "bad_request")
    for broken in ({**body, "point": "0"}, {**body, "point": True}, {**body, "point": -1}, {**body, "label": ""},
                   {key: given for key, given in body.items() if key != "label"}, {**body, "lable": "red"},
                   {"items": []}, {"items": "x"}, {"items": [body], "request_id": request_id}):
        assert_error(served.post("/v1/feedback", json=broken), 400, "bad_request")
    assert_error(served.post("/v1/feedback", data=b"{not json", headers={"Content-Type": "application/json"}),
                 400, "bad_request")
    assert_error(served.post("/v1/feedback", data=b"[1, 2]", headers={"Content-Type": "application/json"}),
                 400, "bad_request")
    assert_error(served.post("/v1/feedback", data=b"x", headers={"Content-Type": "text/plain"}),
                 415, "unsupported_media_type")
    assert_error(served.get("/v1/feedback"), 405, "method_not_allowed")
    assert_error(served.post("/v1/feedback/extra", json=body), 404, "not_found")
    # A batch is checked whole: one bad item stores nothing, and the message names it.
    batch = {"items": [body, {**body, "model": "bright", "label": "nope"}]}
    assert "items[1]" in assert_error(served.post("/v1/feedback", json=batch), 400, "bad_request")["error"]
    assert _rows(served.db, "SELECT count(*) FROM pinpoint_feedback WHERE request_id = ?", request_id) == [(0,)]
    # The report's filters are checked too.
    assert_error(served.get("/v1/report", params={"since": "last tuesday"}), 400, "bad_request")
    assert_error(served.get("/v1/report", params={"version": "two"}), 400, "bad_request")
    assert_error(served.get("/v1/report", params={"modle": "tint"}), 400, "bad_request")


def test_the_log_holds_the_answer_never_the_image(served):
    answer = classify(served, [LEFT, RIGHT], models="tint,bright", top_k=2)
    (request,) = _eventually(lambda: _rows(served.db, "SELECT source, width, height, points, top_k, client "
                                                      "FROM pinpoint_requests WHERE request_id = ?",
                                           answer["request_id"]))  # written a moment after the answer
    assert request == ("upload", 200, 100, 2, 2, None)
    logged = _rows(served.db, "SELECT point, model, version, x, y, labels, scores, top1 FROM pinpoint_predictions "
                              "WHERE request_id = ? ORDER BY point, model", answer["request_id"])
    expected = []
    for index, prediction in enumerate(answer["predictions"]):
        for model in sorted(prediction["results"]):
            shown = prediction["results"][model]
            expected.append((index, model, 1, float(prediction["point"]["x"]), float(prediction["point"]["y"]),
                             [item["label"] for item in shown], [round(item["score"], 6) for item in shown],
                             shown[0]["label"]))
    assert [(*row[:5], json.loads(row[5]), json.loads(row[6]), row[7]) for row in logged] == expected
    columns = {row[1] for table in ("pinpoint_requests", "pinpoint_predictions", "pinpoint_feedback")
               for row in _rows(served.db, f"PRAGMA table_info({table})")}
    assert not columns & {"image", "image_b64", "bytes", "path", "data"}


def test_config_tells_clients_about_feedback_and_each_versions_labels(served):
    config = served.get("/v1/config").json()
    assert config["feedback"] == {"enabled": True, "sample_rate": 1.0}
    assert config["models"]["tint"]["labels"] == {"1": ["red", "green", "blue"]}


def test_twenty_threads_classifying_and_giving_feedback_lose_no_rows(served):
    before = _counts(served.db)
    samples_before = scrape(served)
    per_thread = 6
    errors = many_clients(lambda n: served, lambda n: served, clients=20, per_client=per_thread)
    assert not errors, errors[:3]
    after = _counts(served.db)
    answers = 20 * per_thread
    assert after["requests"] - before["requests"] == answers
    assert after["predictions"] - before["predictions"] == 2 * answers
    assert after["feedback"] - before["feedback"] == answers
    assert _rows(served.db, "PRAGMA integrity_check") == [("ok",)]
    assert _rows(served.db, "PRAGMA foreign_key_check") == []
    samples = scrape(served)
    assert value(samples, "pinpoint_prediction_log_rows_total") - value(
        samples_before, "pinpoint_prediction_log_rows_total") == 2 * answers
    assert value(samples, "pinpoint_prediction_log_dropped_total", reason="queue_full") == 0
    stored = sum(value(samples, "pinpoint_feedback_total", model="tint", version="1", outcome=outcome)
                 - value(samples_before, "pinpoint_feedback_total", model="tint", version="1", outcome=outcome)
                 for outcome in ("top1", "top5", "miss", "none"))
    assert stored == answers
    assert 0 <= value(samples, "pinpoint_feedback_top1_hit_rate", model="tint", version="1") <= 1
    assert value(samples, "pinpoint_feedback_recent", model="tint", version="1") > 0


# ---- restarts, a full queue, feedback off ----
def test_a_restart_keeps_everything_and_a_full_queue_is_counted_while_classify_answers(tmp_path, onnx_repository):
    models, labels = onnx_repository
    db = tmp_path / "feedback.db"
    first = start_server(tmp_path, models, labels, env={"PINPOINT_RATE_LIMIT_PER_S": "0"})
    try:
        empty = first.get("/v1/report").json()
        assert empty["totals"] == {"logged": 0, "feedback": 0} and empty["versions"] == []
        with Image.open(io.BytesIO(first.get("/v1/report/plot.png").content)) as picture:
            assert picture.format == "PNG"
        answer = classify(first, [LEFT, RIGHT], models="tint,bright")
        assert give(first, answer["request_id"], "tint", "red").status_code == 201
        before = first.get("/v1/report").json()
    finally:
        stop_server(first)
    # Stopping wrote everything queued; the next server reads it all back. It wants API keys, and its log
    # writer gets a queue of two answers: the test holds SQLite's write lock, so the queue fills while
    # classify goes on.
    key = {"X-API-Key": "s3cret"}
    second = start_server(tmp_path, models, labels, env={
        "PINPOINT_RATE_LIMIT_PER_S": "0", "PINPOINT_FEEDBACK_QUEUE_SIZE": "2", "PINPOINT_WORKERS": "1",
        "PINPOINT_API_KEYS": json.dumps({"tester": hashlib.sha256(b"s3cret").hexdigest()})})
    try:
        assert_error(second.get("/v1/report"), 401, "unauthorized")
        assert_error(give(second, answer["request_id"], "tint", "blue"), 401, "unauthorized")
        assert second.get("/v1/report", headers=key).json()["versions"] == before["versions"]
        assert give(second, answer["request_id"], "tint", "blue", headers=key).status_code == 200  # still there
        assert _rows(db, "SELECT label, client FROM pinpoint_feedback WHERE request_id = ? AND model = 'tint'",
                     answer["request_id"]) == [("blue", "tester")]  # the key's name, never the key
        logged_before = _counts(db)["requests"]
        lock = sqlite3.connect(db, timeout=10, isolation_level=None)
        lock.execute("BEGIN EXCLUSIVE")
        try:
            sent = 30
            for _ in range(sent):
                assert classify(second, [LEFT], headers=key)["predictions"]  # never slowed or failed by the log
            samples = scrape(second)
        finally:
            lock.execute("ROLLBACK")
            lock.close()
        dropped = value(samples, "pinpoint_prediction_log_dropped_total", reason="queue_full")
        assert 1 <= dropped <= sent - 2
        deadline = time.monotonic() + 20
        while _counts(db)["requests"] - logged_before < sent - dropped and time.monotonic() < deadline:
            time.sleep(0.1)
        assert _counts(db)["requests"] - logged_before == sent - dropped  # each answer: logged or counted
        assert _rows(db, "SELECT client FROM pinpoint_requests ORDER BY created_ms DESC LIMIT 1") == [("tester",)]
        assert '"prediction_log_dropped"' in second.log() and '"reason": "queue_full"' in second.log()
    finally:
        stop_server(second)


def test_feedback_off_answers_404_and_writes_nothing(tmp_path, repository):
    models, labels = repository
    # Its models need not load for this (the log's hook is never installed): HTTP up is enough.
    server = InProcessServer(tmp_path, models, labels, env={"PINPOINT_FEEDBACK": "false", "PINPOINT_WORKERS": "0"},
                             wait_ready=False).start()
    try:
        assert "feedback is off" in assert_error(give(server, "any-id", "tint", "red"), 404, "not_found")["error"]
        assert_error(server.get("/v1/report"), 404, "not_found")
        assert_error(server.get("/v1/report/plot.png"), 404, "not_found")
        assert server.get("/v1/config").json()["feedback"]["enabled"] is False
    finally:
        server.stop()
    assert not (tmp_path / "feedback.db").exists()


# ---- helpers ----
def _rows(db, sql, *args):
    with contextlib.closing(sqlite3.connect(db, timeout=10)) as connection:
        return connection.execute(sql, args).fetchall()


def _eventually(read, timeout=10):
    deadline = time.monotonic() + timeout
    while not (found := read()) and time.monotonic() < deadline:
        time.sleep(0.05)
    return found


def _counts(db) -> dict:
    return {name: _rows(db, f"SELECT count(*) FROM pinpoint_{name}")[0][0]
            for name in ("requests", "predictions", "feedback")}


# ---- a labelled set, read as live feedback is ----
def test_evaluate_csv_prints_the_reports_table_for_a_labelled_set(tmp_path, repository):
    from fixtures import split_image

    models, labels = repository
    (tmp_path / "images").mkdir()
    (tmp_path / "images" / "split.png").write_bytes(split_image())
    points = tmp_path / "points.csv"
    points.write_text("image,x,y,units,model,label\n"
                      "images/split.png,10,50,px,tint,red\n"       # shown first: a top-1 hit
                      "images/split.png,95,50,pct,tint,blue\n"     # the right half, in percent: a hit
                      "images/split.png,20,50,px,tint,green\n"     # shown, not first: a top-5 hit
                      "images/split.png,30,50,px,tint,none\n"      # nothing fits
                      "images/split.png,10,50,px,tint,purple\n"    # not a label of tint: reported, not counted
                      "images/split.png,900,50,px,tint,red\n")     # outside the image: reported, not counted
    done = pinpoint("evaluate", "--csv", str(points), "--models", str(models), "--labels", str(labels),
                    cwd=tmp_path)
    assert done.returncode == 1, done.stderr  # two rows could not be evaluated, and it says which
    assert f"{points}:6: tint v1 has no label 'purple'" in done.stderr
    assert f"{points}:7: " in done.stderr and "2 of 6 rows could not be evaluated" in done.stderr
    assert "tint v1: 5 points classified, 4 labelled (80.0%), none of these: 1 (25.0%)" in done.stdout
    assert f"top-1 50.0% [{100 * wilson(2, 4)[0]:.1f}%, {100 * wilson(2, 4)[1]:.1f}%]" in done.stdout
    assert f"top-5 75.0% [{100 * wilson(3, 4)[0]:.1f}%, {100 * wilson(3, 4)[1]:.1f}%]" in done.stdout
    assert "most confused (shown first → chosen): red → green (1)" in done.stdout

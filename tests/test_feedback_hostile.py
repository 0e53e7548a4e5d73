"""Feedback against abuse and a full disk: bogus feedback never parks the HTTP threads classify needs, and a
full disk is 507 for uploads and 503 for feedback, at once, with classify unaffected and recovery when
space returns (on a real, small tmpfs the test mounts)."""

from __future__ import annotations

import contextlib
import os
import secrets
import subprocess
import threading
import time

import pytest
import requests

import graphs
from feedback_client import IMAGE_B64, LEFT
from fixtures import assert_error, split_image, start_server, stop_server


def classify(server, session=None):
    started = time.perf_counter()
    response = (session or requests).post(server.url + "/v1/classify", timeout=30,
                                          json={"image_b64": IMAGE_B64, "points": [LEFT], "models": "tint"})
    assert response.status_code == 200, response.text
    return response.json(), time.perf_counter() - started


def give(server, request_id, session=None, timeout=30):
    return (session or requests).post(server.url + "/v1/feedback", timeout=timeout, json={
        "request_id": request_id, "point": 0, "model": "tint", "label": "red"})


def forged_recent_id() -> str:
    """An id of the server's form, stamped now: the most a client can forge to make feedback wait."""
    return f"{time.time_ns() // 1_000_000:012x}{secrets.token_hex(10)}"


@pytest.fixture(scope="module")
def one_worker(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("bogus")
    models, labels = graphs.write_repository(tmp, names=("tint",))
    server = start_server(tmp, models, labels, env={"PINPOINT_RATE_LIMIT_PER_S": "0", "PINPOINT_WORKERS": "0",
                                                    "PINPOINT_THREADS": "10"})
    yield server
    stop_server(server)


def test_24_bogus_feedback_posts_in_flight_do_not_slow_a_classify(one_worker):
    """Before: feedback for an unknown request_id held an HTTP thread 5 s, so 24 in flight took most of
    the 10 threads and an idle classify waited seconds. Now an unknown id is a 404 at once, and ids
    forged to look just minted wait in at most 3 threads, the rest told to retry (503 overloaded)."""
    classify(one_worker)  # warm
    stop = threading.Event()
    bogus: list[tuple[int, float]] = []

    def abuser(number):
        """One bogus post a second (the issue's 24 in flight came to about 5 a second, each held 5 s)."""
        with requests.Session() as session:
            while not stop.is_set():
                request_id = forged_recent_id() if number % 2 else secrets.token_hex(16)
                started = time.perf_counter()
                response = give(one_worker, request_id, session)
                bogus.append((response.status_code, time.perf_counter() - started))
                stop.wait(max(0.0, 1.0 - (time.perf_counter() - started)))

    threads = [threading.Thread(target=abuser, args=(n,)) for n in range(24)]
    for thread in threads:
        thread.start()
    try:
        time.sleep(1.0)  # every abuser has posts in flight
        with requests.Session() as session:
            took = sorted(classify(one_worker, session)[1] for _ in range(20))
    finally:
        stop.set()
        for thread in threads:
            thread.join(30)
    assert took[-1] < 1.0 and took[10] < 0.25, took  # before: seconds (threads parked 5 s each)
    assert bogus and {status for status, _ in bogus} <= {404, 503}, {status for status, _ in bogus}
    assert max(seconds for _, seconds in bogus) < 6  # the forged ones wait LOG_WAIT_S at most
    unknown_ms = sorted(seconds for status, seconds in bogus if status == 404)
    print(f"classify under 24 bogus feedback posters: p50 {took[10] * 1000:.0f} ms, max {took[-1] * 1000:.0f} ms; "
          f"{len(bogus)} bogus posts, 404 p50 {unknown_ms[len(unknown_ms) // 2] * 1000:.0f} ms")


def test_feedback_right_after_the_answer_still_waits_for_its_log_row(one_worker):
    with requests.Session() as session:
        for _ in range(10):
            answer, _ = classify(one_worker, session)
            assert give(one_worker, answer["request_id"], session).status_code == 201


# ---- a full disk ----

@pytest.fixture
def small_disk(tmp_path):
    """A 4 MB tmpfs mounted for the test (root only); skipped, saying why, where it cannot be."""
    disk = tmp_path / "disk"
    disk.mkdir()
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root (this test fills a real filesystem)")
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(disk)],
                             capture_output=True, text=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.strip() or mounted.returncode}")
    yield disk
    subprocess.run(["umount", "-l", str(disk)], check=False)


def fill(disk):
    """Write a file until the filesystem has not a byte left."""
    filler = disk / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        for size in (65536, 4096, 512, 1):
            with contextlib.suppress(OSError):
                while True:
                    os.write(fd, b"\0" * size)
    finally:
        os.close(fd)
    return filler


def test_a_full_disk_is_507_for_uploads_503_for_feedback_at_once_and_recovers(small_disk, tmp_path):
    models, labels = graphs.write_repository(tmp_path, names=("tint",))
    server = start_server(tmp_path, models, labels, env={
        "PINPOINT_RATE_LIMIT_PER_S": "0", "PINPOINT_WORKERS": "0", "PINPOINT_UPLOAD_DIR": str(small_disk / "up"),
        "PINPOINT_FEEDBACK_DB": str(small_disk / "feedback.db")})
    try:
        with requests.Session() as session:
            before, _ = classify(server, session)
            assert give(server, before["request_id"], session).status_code == 201
            assert session.post(server.url + "/v1/images", data=split_image(),
                                headers={"Content-Type": "image/png"}).status_code == 201
            filler = fill(small_disk)

            started = time.perf_counter()
            refused = session.post(server.url + "/v1/images", data=split_image(size=(400, 300)),
                                   headers={"Content-Type": "image/png"})
            assert_error(refused, 507, "insufficient_storage")
            assert refused.headers["Retry-After"] and time.perf_counter() - started < 1
            assert not [name for name in os.listdir(small_disk / "up") if name.startswith(".upload-")]

            during, took = classify(server, session)  # unaffected: its answer is just not logged
            assert took < 1
            for request_id in (during["request_id"], before["request_id"]):
                started = time.perf_counter()
                answer = give(server, request_id, session)
                assert_error(answer, 503, "storage_unavailable")
                assert answer.headers["Retry-After"] and time.perf_counter() - started < 1, request_id

            os.unlink(filler)  # space returns
            deadline = time.monotonic() + 30
            while True:
                after, _ = classify(server, session)
                response = give(server, after["request_id"], session)
                if response.status_code == 201:
                    break
                assert response.status_code in (404, 503) and time.monotonic() < deadline, response.text
                time.sleep(0.5)
            stored = session.post(server.url + "/v1/images", data=split_image(), headers={"Content-Type": "image/png"})
            assert stored.status_code == 201, stored.text
        log = server.log()
        assert '"stored_image_no_space"' in log
        assert all("internal_error" not in line for line in log.splitlines()), log[-2000:]
        assert "unhandled_error" not in log
    finally:
        stop_server(server)


def test_an_unreachable_feedback_database_is_503_at_once_not_a_parked_thread(tmp_path):
    """A database that cannot be opened (here: its directory would be below a file) answers 503 at once;
    before, every feedback post and report waited 2 s for it in an HTTP thread."""
    models, labels = graphs.write_repository(tmp_path, names=("tint",))
    (tmp_path / "a-file").write_text("")
    server = start_server(tmp_path, models, labels, env={
        "PINPOINT_RATE_LIMIT_PER_S": "0", "PINPOINT_WORKERS": "0",
        "PINPOINT_FEEDBACK_DB": str(tmp_path / "a-file" / "feedback.db")})
    try:
        deadline = time.monotonic() + 10
        while '"feedback_database_unreachable"' not in server.log():
            assert time.monotonic() < deadline
            time.sleep(0.05)
        with requests.Session() as session:
            answer, took = classify(server, session)  # classify never fails for the log
            for ask in (lambda: give(server, answer["request_id"], session),
                        lambda: session.get(server.url + "/v1/report", timeout=30)):
                started = time.perf_counter()
                response = ask()
                assert_error(response, 503, "storage_unavailable")
                assert time.perf_counter() - started < 0.5
    finally:
        stop_server(server)

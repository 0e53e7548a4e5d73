"""The feedback loop on PostgreSQL, as replicas use it: a real PostgreSQL (Debian's package) started by the
test on a free port, two Pinpoint servers sharing its database, twenty threads posting classify and
feedback through both, a restart. Skipped, naming the tool, where PostgreSQL is not installed."""

from __future__ import annotations

import itertools
import threading

import pytest
import requests

import postgres
from feedback_client import LEFT, RIGHT, classify, give
from fixtures import assert_error, start_server, stop_server

pytestmark = pytest.mark.skipif(postgres.missing() is not None, reason=str(postgres.missing()))


@pytest.fixture(scope="module")
def database():
    server = postgres.Postgres().start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def replicas(tmp_path_factory, repository, database):
    """Two Pinpoint servers on one database: one with API workers (each its own writer and pool), one
    in a single process."""
    models, labels = repository
    env = {"PINPOINT_FEEDBACK_DB": database.url, "PINPOINT_RATE_LIMIT_PER_S": "0"}
    first = start_server(tmp_path_factory.mktemp("replica-a"), models, labels, env=env)
    second = start_server(tmp_path_factory.mktemp("replica-b"), models, labels,
                          env={**env, "PINPOINT_WORKERS": "0"})
    yield [first, second]
    for server in (first, second):
        stop_server(server)


def test_twenty_threads_through_two_replicas_lose_nothing_and_both_report_the_same(replicas, database):
    before = {table: database.count(f"pinpoint_{table}") for table in ("requests", "predictions", "feedback")}
    errors, per_thread = [], 5
    labels = itertools.cycle(("red", "green", "blue", "none"))

    def client(number):
        # Classify on one replica, tell the other what the user chose: the log is the database's, not a process's.
        asked, told = replicas[number % 2], replicas[(number + 1) % 2]
        with requests.Session() as to_asked, requests.Session() as to_told:
            for i in range(per_thread):
                try:
                    answer = classify(asked, [LEFT, RIGHT], models="tint,bright", session=to_asked)
                    response = give(told, answer["request_id"], "tint", next(labels), point=i % 2, session=to_told)
                    if response.status_code != 201:
                        errors.append(response.text)
                except Exception as error:  # noqa: BLE001 - every failure is reported below
                    errors.append(repr(error))

    threads = [threading.Thread(target=client, args=(n,)) for n in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors, errors[:3]
    answers = 20 * per_thread
    assert database.count("pinpoint_requests") - before["requests"] == answers
    assert database.count("pinpoint_predictions") - before["predictions"] == answers * 2 * 2  # 2 points, 2 models
    assert database.count("pinpoint_feedback") - before["feedback"] == answers

    reports = [server.get("/v1/report").json() for server in replicas]
    assert reports[0]["versions"] == reports[1]["versions"]
    assert reports[0]["totals"] == reports[1]["totals"] == {"logged": database.count("pinpoint_predictions"),
                                                             "feedback": database.count("pinpoint_feedback")}


def test_feedback_errors_and_replacing_on_postgres(replicas):
    first, second = replicas
    request_id = classify(first, [LEFT], models="tint")["request_id"]
    assert give(second, request_id, "tint", "blue").status_code == 201
    assert give(first, request_id, "tint", "red").status_code == 200
    assert_error(give(second, "unknown-id", "tint", "red"), 404, "not_found")
    assert_error(give(second, request_id, "tint", "mauve"), 400, "bad_request")
    assert_error(give(second, request_id, "tint", "red", point=3), 400, "bad_request")


def test_a_restarted_replica_reports_everything_it_reported_before(replicas, tmp_path, repository, database):
    models, labels = repository
    before = replicas[1].get("/v1/report").json()
    stop_server(replicas[1])
    replicas[1] = start_server(tmp_path, models, labels, env={"PINPOINT_FEEDBACK_DB": database.url,
                                                              "PINPOINT_WORKERS": "0"})
    after = replicas[1].get("/v1/report").json()
    assert after["totals"] == before["totals"] and after["versions"] == before["versions"]

"""The feedback loop on PostgreSQL, as replicas use it: a real PostgreSQL (Debian's package) started by the
test on a free port, two Pinpoint servers sharing its database, twenty threads posting classify and
feedback through both, a restart. Skipped, naming the tool, where PostgreSQL is not installed."""

from __future__ import annotations

import threading
import uuid

import pytest

import postgres
from feedback_client import LEFT, classify, give, many_clients
from fixtures import assert_error, start_server, stop_server

pytestmark = pytest.mark.skipif(postgres.missing() is not None, reason=str(postgres.missing()))


@pytest.fixture(scope="module")
def database():
    server = postgres.Postgres().start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def replicas(tmp_path_factory, onnx_repository, database):
    """Two Pinpoint servers on one database: one with API workers (each its own writer and pool), one
    in a single process."""
    models, labels = onnx_repository
    # replica_secret: each knows the other's answer ids, so feedback sent to the other one waits for the log
    env = {"PINPOINT_FEEDBACK_DB": database.url, "PINPOINT_RATE_LIMIT_PER_S": "0",
           "PINPOINT_REPLICA_SECRET": "shared by the two replicas"}
    first = start_server(tmp_path_factory.mktemp("replica-a"), models, labels, env=env)
    second = start_server(tmp_path_factory.mktemp("replica-b"), models, labels,
                          env={**env, "PINPOINT_WORKERS": "0"})
    servers = [first, second]
    yield servers
    for server in servers:  # as they are now: a test restarts one in place
        stop_server(server)


def test_twenty_threads_through_two_replicas_lose_nothing_and_both_report_the_same(replicas, database):
    before = {table: database.count(f"pinpoint_{table}") for table in ("requests", "predictions", "feedback")}
    per_thread = 5
    # Classify on one replica, tell the other what the user chose: the log is the database's, not a process's.
    errors = many_clients(lambda n: replicas[n % 2], lambda n: replicas[(n + 1) % 2], clients=20,
                          per_client=per_thread, models="tint,bright")
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


def test_a_restarted_replica_reports_everything_it_reported_before(replicas, tmp_path, onnx_repository, database):
    models, labels = onnx_repository
    before = replicas[1].get("/v1/report").json()
    stop_server(replicas[1])
    replicas[1] = start_server(tmp_path, models, labels, env={"PINPOINT_FEEDBACK_DB": database.url,
                                                              "PINPOINT_WORKERS": "0"})
    after = replicas[1].get("/v1/report").json()
    assert after["totals"] == before["totals"] and after["versions"] == before["versions"]


def test_writers_of_two_replicas_naming_new_versions_in_opposite_orders_never_deadlock(database):
    """Each process meets a request's models in its own order (a set's order varies with the process's
    hash seed): the log must still take both writers' first answers at once, every time."""
    from service.feedback.store import LoggedAnswer, Store

    stores = [Store(database.url), Store(database.url)]
    stores[0].migrate()
    failures = []
    for version in range(1000, 1300):
        sets = [{"model": model, "version": version, "labels": '["a", "b"]'} for model in ("order-a", "order-b")]
        start = threading.Barrier(2)

        def write(store, label_sets, start):
            start.wait()
            try:
                store.write_log([LoggedAnswer({"request_id": uuid.uuid4().hex, "created_ms": 0, "client": None,
                                               "source": "upload", "width": 1, "height": 1, "points": 0,
                                               "top_k": 5}, [], label_sets)])
            except Exception as error:  # noqa: BLE001 - the failure is the finding
                failures.append(str(error).splitlines()[0])

        threads = [threading.Thread(target=write, args=(stores[0], sets, start)),
                   threading.Thread(target=write, args=(stores[1], sets[::-1], start))]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    for store in stores:
        store.close()
    assert not failures, failures[:3]

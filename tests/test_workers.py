"""`workers = N`: API worker processes in front of one model runner, under a supervisor. Real
processes, killed for real, while clients keep asking."""

from __future__ import annotations

import os
import signal
import socket
import threading
import time
from multiprocessing import connection
from pathlib import Path

import numpy as np
import pytest
import requests
from cherrypy.process.wspbus import Bus

import graphs
from fixtures import Clients, api_worker_maps, assert_error, scrape, split_image, start_server, value, wait_until
from service import errors
from service.config import load_settings
from service.engine import Engine
from service.errors import BadRequest, NotFound, PinpointError
from service.processes import failures
from service.processes import hop as ipc
from service.processes.messages import Op, RunnerState
from service.processes.roles import RUNNER_ENV, WORKER_ENV, children
from service.processes.runner import Runner, serve
from service.processes.runner_client import RemoteRunner
from service.processes.supervisor import Supervisor
from service.serving.manager import ManagerState, ModelRef, StaleVersions, State, Version
from service.serving.web_model import NotForTheBrowser
from service.tools.bench.server import established_connections


def pids(server) -> dict[str, list[int]]:
    """role -> pids of the supervisor's children (what `ps` would show)."""
    found: dict[str, list[int]] = {}
    for role, pid in children(server.process.pid):
        found.setdefault(role, []).append(pid)
    return found


def wait_for_every_event_loop(server, timeout: float = 30) -> None:
    """Until every API worker's event loop runs: each binds its wake-up socket (run_dir/wake-N) as it
    starts. /readyz answers as soon as one worker does; on a loaded machine the other may still be
    starting, and until it runs the first takes every connection (as it should)."""
    deadline = time.monotonic() + timeout
    while True:
        workers = pids(server).get("worker", [])
        environs = [dict(entry.split("=", 1) for entry in Path(f"/proc/{pid}/environ").read_text().split("\0")
                         if "=" in entry) for pid in workers]
        if len(workers) == 2 and all(Path(env[RUNNER_ENV]).with_name(f"wake-{env[WORKER_ENV]}").exists()
                                     for env in environs):
            return
        assert time.monotonic() < deadline, "the API workers' event loops did not start"
        time.sleep(0.05)


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def classify(url, session=None, timeout=10):
    return (session or requests).post(f"{url}/v1/classify?x=10&y=50&models=tint", data=split_image(),
                                      headers={"Content-Type": "image/png"}, timeout=timeout)


class Load(Clients):
    """Clients asking all the time; each outcome kept: a status code or the exception's name."""

    def __init__(self, url, clients=6, fresh_connections=False):
        super().__init__(clients)
        self.url, self.fresh = url, fresh_connections

    def _client(self):
        session = None if self.fresh else requests.Session()
        while not self.stopping.is_set():
            started = time.monotonic()
            try:
                outcome = classify(self.url, session).status_code
            except requests.RequestException as error:
                outcome = type(error).__name__
                session = None if self.fresh else requests.Session()
            self.answers.append((outcome, time.monotonic() - started))

    def statuses(self):
        return [outcome for outcome, _ in self.answers]


@pytest.fixture
def workers(tmp_path):
    models, labels = graphs.write_repository(tmp_path, names=("tint",))
    server = start_server(tmp_path, models, labels, env={"PINPOINT_WORKERS": "2", "PINPOINT_RATE_LIMIT_PER_S": "0"})
    yield server
    if server.process.poll() is None:
        server.process.send_signal(signal.SIGTERM)
        server.process.wait(60)


def test_two_workers_and_one_runner_serve_and_workers_stay_small(workers):
    roles = pids(workers)
    assert len(roles["worker"]) == 2 and len(roles["runner"]) == 1
    for pid, loaded in api_worker_maps(workers).items():
        assert "tensorflow" not in loaded and "onnxruntime" not in loaded  # workers never load a model runtime
        assert rss_mb(pid) < 150
    answers = [classify(workers.url) for _ in range(20)]
    assert all(a.status_code == 200 for a in answers)
    assert {a.json()["predictions"][0]["results"]["tint"][0]["label"] for a in answers} == {"red"}
    samples = scrape(workers)  # one answer for every process
    assert value(samples, "pinpoint_requests_total", route="/v1/classify", method="POST", status="200") == 20
    assert value(samples, "pinpoint_batch_crops_count") >= 20  # observed in the runner, read by a worker


def test_kept_alive_connections_are_shared_evenly_and_a_stuck_worker_holds_none_back(workers):
    """32 keep-alive clients (a product's connection pool, or wrk -c 32): each worker holds half. Left to
    the kernel, one shared socket gave a single worker 31 of 32, and a socket each (SO_REUSEPORT) split
    wrk's 8 connections 7/1 in one run of five; the worker holding fewer takes the next one. A worker
    that stops answering (SIGSTOP here; stuck, in production) stops counting within a second, and new
    connections all go to the other instead of waiting for it."""
    port = int(workers.url.rsplit(":", 1)[1])
    wait_for_every_event_loop(workers)
    sessions = [requests.Session() for _ in range(32)]
    try:
        for session in sessions:
            assert classify(workers.url, session).status_code == 200
        held = [established_connections(pid, port) for pid in pids(workers)["worker"]]
        assert sum(held) >= 32  # and any the readiness probes left open
        assert max(held) - min(held) <= 2, held  # 16 and 16, give or take the probes' connections
    finally:
        for session in sessions:
            session.close()
    # Both now hold nothing (their loops have seen the closes); one stops answering. The other takes the
    # first new connection, then holds more than the stuck one's last word, so only its staleness lets
    # it take the next: within STALE_S (1 s), not never.
    # The readiness probe's kept-alive connection (the fixture's, made just before the sessions) is
    # closed by the server when idle for socket_timeout, 10 s after it: wait for that, with a margin.
    deadline = time.monotonic() + 15
    while any(established_connections(pid, port) for pid in pids(workers)["worker"]):
        assert time.monotonic() < deadline, "the closed sessions' connections stayed open"
        time.sleep(0.05)
    time.sleep(0.5)  # both tables' entries say 0 (each event loop writes at least every 0.25 s)
    stuck, live = pids(workers)["worker"]
    os.kill(stuck, signal.SIGSTOP)
    deadline = time.monotonic() + 5  # kill() returns before every thread has stopped (one could still accept)
    while not all((task / "stat").read_text().rsplit(")", 1)[1].split()[0] == "T"
                  for task in Path(f"/proc/{stuck}/task").iterdir()):
        assert time.monotonic() < deadline, "SIGSTOP did not stop the worker"
        time.sleep(0.01)
    sessions = [requests.Session() for _ in range(4)]
    try:
        started = time.monotonic()
        for session in sessions:
            assert classify(workers.url, session, timeout=5).status_code == 200
        assert time.monotonic() - started < 3.0
        assert established_connections(live, port) == 4
    finally:
        os.kill(stuck, signal.SIGCONT)
        for session in sessions:
            session.close()


def test_a_killed_worker_is_replaced_and_other_requests_succeed(workers):
    victim = pids(workers)["worker"][0]
    with Load(workers.url) as load:
        load.run_for(10)
        os.kill(victim, signal.SIGKILL)
        deadline = time.monotonic() + 30
        while not (len(pids(workers).get("worker", [])) == 2 and victim not in pids(workers)["worker"]):
            assert time.monotonic() < deadline, "the worker was not replaced"
            time.sleep(0.1)
        load.run_for(20)  # and the replacement serves its share
    statuses = load.statuses()
    assert statuses.count(200) > 20
    assert all(s == 200 or s in ("ConnectionError", "ChunkedEncodingError") for s in statuses), set(statuses)
    assert "process_died" in workers.log()
    assert value(scrape(workers), "pinpoint_process_restarts_total", process="worker") == 1


def test_each_worker_is_kept_on_a_cpu_of_its_own_and_its_replacement_on_the_same(workers):
    allowed = os.sched_getaffinity(0)
    placed = {pid: os.sched_getaffinity(pid) for pid in pids(workers)["worker"]}
    assert all(len(cpus) == 1 and cpus <= allowed for cpus in placed.values())
    if len(allowed) >= 2:
        assert len(set(map(frozenset, placed.values()))) == 2  # one CPU each, not the same one
    assert os.sched_getaffinity(pids(workers)["runner"][0]) == allowed  # the runner may use every CPU
    assert '"cpu"' in workers.log() or "cpu=" in workers.log()  # process_started says where

    victim = next(iter(placed))
    os.kill(victim, signal.SIGKILL)
    deadline = time.monotonic() + 30
    while not (len(pids(workers).get("worker", [])) == 2 and victim not in pids(workers)["worker"]):
        assert time.monotonic() < deadline, "the worker was not replaced"
        time.sleep(0.1)
    replacement = next(pid for pid in pids(workers)["worker"] if pid not in placed)
    assert os.sched_getaffinity(replacement) == placed[victim]  # pinned before it ran a line of Python


def test_workers_are_left_to_the_kernel_with_pin_workers_off_or_fewer_than_the_cpus(tmp_path):
    def placed(pin_workers: bool) -> list[int | None]:
        settings = load_settings(environ={}, overrides={"workers": 2, "pin_workers": pin_workers})
        with socket.socket() as listener:
            return [child.cpu for child in Supervisor(Bus(), settings, listener, [], tmp_path).workers]

    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) <= 2:
        assert placed(True) == [cpus[0], cpus[1 % len(cpus)]]
    else:  # fewer workers than CPUs: pinned, they would leave CPUs to the runner alone
        assert placed(True) == [None, None]
    assert placed(False) == [None, None]


def test_a_killed_runner_gives_fast_503s_then_comes_back(workers):
    runner = pids(workers)["runner"][0]
    os.kill(runner, signal.SIGKILL)
    time.sleep(0.3)
    started = time.monotonic()
    refused = classify(workers.url)
    assert time.monotonic() - started < 1.0  # never hangs to the deadline
    assert_error(refused, 503, "model_unavailable")
    assert refused.headers["Retry-After"]
    assert workers.get("/readyz").status_code == 503
    assert workers.get("/healthz").status_code == 200  # the workers still serve HTTP
    wait_until(workers.url + "/readyz", timeout=90)
    for _ in range(20):  # answered by many threads, each of which held a connection to the dead runner
        answer = classify(workers.url)
        assert answer.status_code == 200, answer.text
    assert pids(workers)["runner"][0] != runner


def test_sighup_under_load_fails_no_request(workers):
    with Load(workers.url) as load:
        load.run_for(10)
        workers.process.send_signal(signal.SIGHUP)
        load.run_for(40)
    assert load.statuses() and set(load.statuses()) == {200}


def test_sigterm_under_load_answers_every_request_that_reached_the_server_and_exits_0(workers):
    with Load(workers.url, clients=6, fresh_connections=True) as load:
        load.run_for(10)
        workers.process.send_signal(signal.SIGTERM)
        assert workers.process.wait(60) == 0
    statuses = load.statuses()
    # Every request either got an answer (200, or 503 while draining) or never reached the server.
    assert set(statuses) <= {200, 503, "ConnectionError"}, set(statuses)
    assert statuses.count(200) > 10


def test_one_clients_rate_limit_holds_across_workers(tmp_path):
    models, labels = graphs.write_repository(tmp_path, names=("tint",))
    server = start_server(tmp_path, models, labels, env={"PINPOINT_WORKERS": "2", "PINPOINT_RATE_LIMIT_PER_S": "0.01",
                                                          "PINPOINT_RATE_LIMIT_BURST": "5"})
    try:
        # A connection per request, so both workers take some.
        statuses = [requests.get(server.url + "/v1/models", headers={"Connection": "close"}, timeout=10).status_code
                    for _ in range(12)]
        assert statuses.count(200) == 5 and statuses.count(429) == 7
    finally:
        server.process.send_signal(signal.SIGTERM)
        server.process.wait(60)


def test_the_worker_hop_carries_arrays_of_every_layout_exactly():
    """Frames of our own (pickle protocol 5, arrays out of band in one writev): what is sent is what
    arrives, whatever the arrays' order, dtype or contiguity."""
    ours, theirs = socket.socketpair()
    arrays = {"c@1": np.arange(24, dtype=np.float32).reshape(2, 3, 4), "f@1": np.asfortranarray(np.ones((5, 3))),
              "strided@1": np.arange(20)[::3], "empty@1": np.zeros((0, 96, 96, 3), np.float32),
              "big@1": np.random.default_rng(0).random((3, 300, 400))}
    sent = [("infer", (arrays, 12.5)), (True, None), [np.full(2, i % 256, np.uint8) for i in range(700)]]
    received = []
    reader = threading.Thread(target=lambda: received.extend(ipc.receive(theirs.fileno()) for _ in sent))
    reader.start()
    for message in sent:
        ipc.send(ours.fileno(), message)
    reader.join(10)
    (op, (got, deadline)), ok, many = received
    assert op == "infer" and deadline == 12.5 and ok == (True, None)
    for key, array in arrays.items():
        assert got[key].dtype == array.dtype and np.array_equal(got[key], array)
    assert [int(row[0]) for row in many] == [i % 256 for i in range(700)]
    ours.close()
    with pytest.raises(EOFError):
        ipc.receive(theirs.fileno())


def _runner_answering_its_pid(address: str, secret: bytes) -> None:
    ipc.Server(address, secret, {"whoami": os.getpid, "die": lambda: os._exit(3)}).serve_forever()


def _start_runner(address: str, secret: bytes):
    """A real process serving the hop at `address`, listening when this returns."""
    import multiprocessing

    process = multiprocessing.get_context("fork").Process(
        target=_runner_answering_its_pid, args=(address, secret), daemon=True)
    before = os.stat(address).st_ino if os.path.exists(address) else None
    process.start()
    deadline = time.monotonic() + 10
    while not (os.path.exists(address) and os.stat(address).st_ino != before
               and not os.stat(address).st_mode & 0o077):
        assert time.monotonic() < deadline, "the runner did not listen"
        time.sleep(0.01)
    return process


def test_after_a_runner_restart_a_thread_reaches_the_new_runner_at_its_first_call(tmp_path):
    """Each thread of a worker keeps its own connection; after the runner is killed and restarted,
    a thread's next call reaches the new runner instead of failing on the dead one's connection."""
    address, secret = str(tmp_path / "runner.sock"), b"s" * 32
    client = ipc.Client(address, secret)
    first = _start_runner(address, secret)
    try:
        assert client.call("whoami") == first.pid  # this thread's connection is now to the first runner
        os.kill(first.pid, signal.SIGKILL)
        first.join(5)
        os.unlink(address)
        refused = []

        def call_while_no_runner_listens():
            try:
                client.call("whoami")
            except ipc.RunnerGone as error:
                refused.append(error)

        other = threading.Thread(target=call_while_no_runner_listens)
        other.start()
        other.join(10)
        assert refused  # refused at once, not hung
        second = _start_runner(address, secret)
        try:
            assert client.call("whoami") == second.pid  # on a new connection, not an error from the old one
        finally:
            second.kill()
    finally:
        first.kill()


def test_a_call_whose_runner_dies_under_it_is_not_sent_to_the_next_runner(tmp_path):
    """The call may be what killed the runner: it fails once, and the new runner never sees it."""
    address, secret = str(tmp_path / "runner.sock"), b"s" * 32
    client = ipc.Client(address, secret)
    first = _start_runner(address, secret)
    try:
        assert client.call("whoami") == first.pid
        second = _start_runner(address, secret)  # listens at the address; the connection above still leads to the first
        try:
            with pytest.raises(ipc.RunnerGone):
                client.call("die")
            first.join(5)
            assert first.exitcode == 3
            assert client.call("whoami") == second.pid and second.is_alive()
        finally:
            second.kill()
    finally:
        first.kill()


def test_a_worker_whose_copy_was_taken_while_models_loaded_lists_them_once_they_are_ready(tmp_path):
    """/v1/config, /v1/models and /metrics list the worker's copy of the runner's state: a copy taken
    while the models were still loading is refreshed before it is listed, not up to REFRESH_S later (a
    page opened right after /readyz said 200 got no models from such a worker: 20 of 120 answers)."""
    address, secret = str(tmp_path / "runner.sock"), b"s" * 32
    state = RunnerState(ManagerState(versions={}, labels={}, policies={}, chosen={}, polled=False, policy_error="",
                                     load_failures={}), queue_depth=0)
    server = ipc.Server(address, secret, {Op.STATE: lambda: state})
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        manager = RemoteRunner(ipc.Client(address, secret), _settings(tmp_path)).manager
        manager.refresh()  # the runner is still loading; no background refresh runs here (not started)
        assert manager.snapshot() == {}
        state.manager.versions, state.manager.polled = {"tint": {1: Version(None, "tint", 1, State.AVAILABLE)}}, True
        assert [version.key for version in manager.snapshot()["tint"]] == ["tint@1"]
    finally:
        server.close()


def test_a_call_is_answered_once_by_whichever_thread_has_the_answer(tmp_path):
    """The runner's inference thread answers an `infer` itself, later, while the connection's thread is
    back to reading: one answer per call, errors travel as themselves, and an answer that comes after
    its caller gave up is dropped, never read as the answer to a later call."""
    address, secret = str(tmp_path / "runner.sock"), b"s" * 32

    def later(value, delay, reply):
        def answer():
            time.sleep(delay)
            reply.answer(("later", value))
            reply.answer(("again", value))  # a second answer to the same call goes nowhere
        threading.Thread(target=answer, daemon=True).start()

    def now(value, reply):
        reply.answer(("now", value))

    def refuse(reply):
        raise BadRequest("not like that")

    server = ipc.Server(address, secret, {"later": later, "now": now, "refuse": refuse},
                        replying=frozenset({"later", "now", "refuse"}))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        client = ipc.Client(address, secret)
        assert client.call("later", 1, 0.05) == ("later", 1)
        assert client.call("now", 2) == ("now", 2)  # not the previous call's second answer
        with pytest.raises(BadRequest, match="not like that"):
            client.call("refuse")
        with pytest.raises(ipc.RunnerGone):
            client.call("later", 3, 0.5, timeout=0.1)  # gives up; its connection is closed
        time.sleep(0.1)  # the runner's side of it too: the next one accepted gets its descriptor number
        assert client.call("now", 4) == ("now", 4)
        time.sleep(0.6)  # the abandoned call's answer comes now
        assert client.call("now", 5) == ("now", 5) and client.call("later", 6, 0) == ("later", 6)
    finally:
        server.close()


def test_a_large_answer_never_holds_the_thread_that_sends_it(tmp_path):
    """The inference thread answers a call itself: an answer too large for the socket's buffer must not
    keep it waiting for the caller to read."""
    address, secret = str(tmp_path / "runner.sock"), b"s" * 32
    took = []

    def big(reply):
        started = time.monotonic()
        reply.answer(np.arange(1 << 20, dtype=np.float32))  # 4 MB: far more than a Unix socket buffers
        took.append(time.monotonic() - started)

    server = ipc.Server(address, secret, {"big": big}, replying=frozenset({"big"}))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        with connection.Client(address, family="AF_UNIX", authkey=secret) as caller:
            ipc.send(caller.fileno(), ("big", ()))
            time.sleep(0.5)  # not reading yet
            assert took and took[0] < 0.25
            ok, answer = ipc.receive(caller.fileno())
        assert ok and np.array_equal(answer, np.arange(1 << 20, dtype=np.float32))
    finally:
        server.close()


# ---- the runner interface: one in this process, one over the hop, answering alike ----

def _settings(root: Path, **overrides):
    return load_settings(environ={}, overrides={"models": str(root / "models"), "labels": str(root / "labels"),
                                                 **overrides})


@pytest.fixture(scope="module")
def local_runner(tmp_path_factory):
    root = tmp_path_factory.mktemp("runner")
    graphs.write_repository(root, names=("tint",))
    settings = _settings(root, backend="tensorflow")  # no ONNX conversion to wait for
    with Engine.open(settings=settings) as engine:
        yield engine.runner, settings


@pytest.fixture(params=["local", "remote"])
def runner(request, local_runner, tmp_path):
    """The runner in this process, or the same one in the model runner's place, called over a real hop."""
    local, settings = local_runner
    if request.param == "local":
        yield local
        return
    address, secret = str(tmp_path / "runner.sock"), os.urandom(32)
    server = serve(local, address, secret)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    remote = RemoteRunner(ipc.Client(address, secret), settings)
    remote.manager.refresh()
    try:
        yield remote
    finally:
        server.close()


def red(crops: int) -> np.ndarray:
    rows = np.zeros((crops, 8, 8, 3), np.float32)
    rows[..., 0] = 1.0
    return rows


def test_a_call_holds_its_versions_only_until_it_is_answered(runner, local_runner):
    """Over the hop the answer comes from the inference thread, after the connection's thread has moved
    on: the lease that keeps the versions loaded is let go by then all the same."""
    truth = local_runner[0].manager  # the runner's own manager, whichever way it was called
    for _ in range(3):
        runner.infer({"tint@1": red(1)}, time.monotonic() + 10)
        assert truth.versions["tint"][1].in_flight == 0


def test_the_runner_in_this_process_and_over_the_hop_answer_every_call_alike(runner):
    assert isinstance(runner, Runner)
    state = runner.state()
    assert state.manager.polled and state.queue_depth == 0
    assert {number: entry.state for number, entry in state.manager.versions["tint"].items()} == {1: State.AVAILABLE}

    outcome = runner.infer({"tint@1": red(2)}, time.monotonic() + 10)
    assert outcome.errors == {} and outcome.outputs["tint@1"].shape == (2, 3)
    assert outcome.outputs["tint@1"].argmax(axis=1).tolist() == [0, 0]  # red
    with pytest.raises(StaleVersions):  # a version that is not there (any more): look again
        runner.infer({"tint@2": red(1)}, time.monotonic() + 10)

    # Requests resolve versions through the runner's manager and run them through its runtime.
    with runner.manager.acquire([ModelRef("tint")]) as lease:
        assert [version.key for version in lease.versions] == ["tint@1"]
        assert runner.manager.runtime.infer({"tint@1": red(1)}, time.monotonic() + 10).outputs["tint@1"].shape == (1, 3)

    compared = state.manager.versions["tint"][1].shadow.get("red", [0, 0])[1]
    assert runner.shadow("tint@1", red(3), ["red"] * 3) is None  # queued, run when the runtime is idle
    deadline = time.monotonic() + 10
    while runner.state().manager.versions["tint"][1].shadow.get("red", [0, 0])[1] != compared + 3:
        assert time.monotonic() < deadline, "the shadow run was not counted"
        time.sleep(0.02)

    assert runner.poll() is None
    assert list(runner.state().manager.versions["tint"]) == [1]
    with pytest.raises(NotFound) as unknown:
        runner.web("nope", 1)
    assert unknown.value.message == "model 'nope' has no version 1"


# ---- errors: raised in the runner, raised again in the worker as the same class ----

ERROR_CLASSES = [cls for cls in vars(errors).values()
                 if isinstance(cls, type) and issubclass(cls, PinpointError) and cls is not PinpointError]


@pytest.fixture
def hop(tmp_path):
    """A runner-side server whose `fail` op raises what the test puts in `raising`, and its client."""
    address, secret = str(tmp_path / "runner.sock"), b"s" * 32
    raising: list[BaseException] = []

    def fail():
        raise raising[0]

    server = ipc.Server(address, secret, {"fail": fail})
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield raising, ipc.Client(address, secret)
    server.close()


def test_every_error_class_travels_under_a_code_of_its_own():
    assert set(failures.CLASSES.values()) == {*ERROR_CLASSES, StaleVersions}  # no two share a code


@pytest.mark.parametrize("error", [
    *(cls(f"a {cls.__name__} in the runner", retry_after=2.5) for cls in ERROR_CLASSES),
    StaleVersions("color@2: no longer AVAILABLE", retry_after=1),
    PinpointError("PUT is not allowed here; use GET", code="method_not_allowed"),
], ids=lambda error: type(error).__name__)
def test_an_error_raised_in_the_runner_is_raised_in_the_worker_as_the_same_class(hop, error):
    raising, client = hop
    raising.append(error)
    with pytest.raises(PinpointError) as raised:
        client.call("fail")
    assert type(raised.value) is type(error)
    assert (raised.value.code, raised.value.message, raised.value.retry_after) == \
        (error.code, error.message, error.retry_after)


def test_a_subclass_of_its_own_arrives_as_its_declared_parent_and_a_bug_as_an_internal_error(hop):
    raising, client = hop
    raising.append(NotForTheBrowser("its input is encoded JPEG bytes"))
    with pytest.raises(NotFound) as raised:
        client.call("fail")
    assert type(raised.value) is NotFound and raised.value.message == "its input is encoded JPEG bytes"
    raising[0] = ZeroDivisionError("a bug")
    with pytest.raises(PinpointError) as raised:
        client.call("fail")
    assert (raised.value.code, raised.value.message) == ("internal_error", "the model runner failed: ZeroDivisionError")


def test_a_shadow_run_that_fails_in_the_runner_never_fails_the_answer(tmp_path):
    address, secret = str(tmp_path / "runner.sock"), b"s" * 32

    def broken_shadow(key, rows, served):
        raise KeyError(key)  # a bug in the runner: a 500 for the call

    server = ipc.Server(address, secret, {Op.SHADOW: broken_shadow})
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        remote = RemoteRunner(ipc.Client(address, secret), _settings(tmp_path))
        with pytest.raises(PinpointError):
            remote.shadow("tint@1", red(1), ["red"])
        assert remote.manager.shadow(Version(None, "tint", 1, State.AVAILABLE), red(1), ["red"]) is None
    finally:
        server.close()


def test_the_process_modules_import_one_another_without_a_cycle():
    """Counting imports inside functions, which would only hide one."""
    import ast

    package = Path(__file__).parent.parent / "service" / "processes"
    imports = {}
    for path in package.glob("*.py"):
        named = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module == "service.processes":
                named |= {alias.name for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("service.processes."):
                named.add(node.module.rsplit(".", 1)[1])
            elif isinstance(node, ast.Import):
                named |= {alias.name.rsplit(".", 1)[1] for alias in node.names
                          if alias.name.startswith("service.processes.")}
        imports[path.stem] = named

    def reaches(start, module, seen=()):
        return any(found == start or (found not in seen and reaches(start, found, (*seen, found)))
                   for found in imports.get(module, ()))

    assert [module for module in imports if reaches(module, module)] == []

"""Running Pinpoint as production does: a daemon, graceful reload and shutdown, readiness, and
replicas that share rate limits (through a real Redis) and stored images."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import requests

import graphs
from fixtures import free_port, pinpoint, scrape, split_image, start_server, value, wait_until
from service.config import usable_cpus


def classify(url, query="x=10&y=10&models=tint", **kwargs):
    return requests.post(f"{url}/v1/classify?{query}", data=split_image(), headers={"Content-Type": "image/png"},
                         timeout=30, **kwargs)


def test_daemon_starts_classifies_reloads_and_stops_cleanly(tmp_path):
    models, labels = graphs.write_repository(tmp_path, names=("tint",))
    port = free_port()
    flags = ["--models", str(models), "--labels", str(labels), "--port", str(port)]
    env = {"PINPOINT_UPLOAD_DIR": str(tmp_path / "uploads")}
    pidfile = tmp_path / "var" / "pinpoint.pid"

    started = pinpoint("start", *flags, cwd=tmp_path, env=env)
    assert started.returncode == 0, started.stdout + started.stderr
    url = f"http://127.0.0.1:{port}"
    assert f"on {url}/, models ready in " in started.stdout
    assert requests.get(url + "/readyz", timeout=5).status_code == 200  # `start && curl` works: it waited
    assert classify(url).json()["predictions"][0]["results"]["tint"][0]["label"] == "red"
    pid = int(pidfile.read_text())
    for written in (pidfile, tmp_path / "var" / "pinpoint.log"):  # the daemon keeps the caller's umask
        assert written.stat().st_mode & 0o022 == 0, oct(written.stat().st_mode)
    status = pinpoint("status", cwd=tmp_path, env=env)
    assert status.returncode == 0 and f"running (pid {pid}) on {url}/" in status.stdout
    assert status.stdout.count("API worker (pid") == usable_cpus() and "model runner (pid" in status.stdout
    again = pinpoint("start", *flags, cwd=tmp_path, env=env)
    assert again.returncode == 0 and int(pidfile.read_text()) == pid
    assert f"already running (pid {pid}) on {url}/; not starting another" in again.stdout
    elsewhere = pinpoint("start", *flags[:-1], str(free_port()), cwd=tmp_path, env=env)
    assert elsewhere.returncode == 1 and f"already running (pid {pid}) on {url}/, not on port " in elsewhere.stderr
    assert "`pinpoint restart --port " in elsewhere.stderr
    (tmp_path / "other.toml").write_text("threads = 4\n")
    other = pinpoint("reload", "--config", str(tmp_path / "other.toml"), cwd=tmp_path, env=env)
    assert other.returncode == 1 and f"pinpoint (pid {pid}) was started with no --config" in other.stderr
    assert f"not reloading. `pinpoint restart --config {tmp_path / 'other.toml'}`" in other.stderr
    taken = pinpoint("serve", *flags, cwd=tmp_path, env=env)  # the daemon holds the port: say so
    assert taken.returncode == 2
    assert f"the Pinpoint daemon (pid {pid}, {pidfile}) listens there: `pinpoint status`" in taken.stderr

    shutil.copytree(models / "tint" / "1", models / "tint" / "2")  # a new version appears
    assert pinpoint("reload", cwd=tmp_path, env=env).returncode == 0
    deadline = time.monotonic() + 60
    while requests.get(url + "/v1/models/tint", timeout=5).json()["model_version_status"][0]["version"] != "2":
        assert time.monotonic() < deadline, "the new version was never served"
        assert classify(url).status_code == 200  # served throughout the reload
        time.sleep(0.1)
    assert int(pidfile.read_text()) == pid  # reloaded in place, not restarted

    stopped = pinpoint("stop", cwd=tmp_path, env=env)
    assert stopped.returncode == 0, stopped.stderr
    assert not pidfile.exists()
    assert pinpoint("status", cwd=tmp_path, env=env).returncode == 3
    log = (tmp_path / "var" / "pinpoint.log").read_text()
    assert "Bus EXITED" in log and "Traceback" not in log and '"reloaded"' in log


@pytest.mark.parametrize("host, loopback, wait", [("::", "[::1]", True), ("0.0.0.0", "127.0.0.1", False)])
def test_a_daemon_on_every_interface_is_polled_on_loopback_and_warns_in_its_log(tmp_path, host, loopback, wait):
    models, labels = graphs.write_repository(tmp_path, names=("tint",))
    port = free_port()
    flags = ["--host", host, "--port", str(port), "--models", str(models), "--labels", str(labels)]
    env = {"PINPOINT_UPLOAD_DIR": str(tmp_path / "uploads")}
    started_at = time.monotonic()
    started = pinpoint("start", *flags, *([] if wait else ["--no-wait"]), cwd=tmp_path, env=env)
    try:
        assert started.returncode == 0, started.stdout + started.stderr
        url = f"http://{loopback}:{port}"
        if wait:
            assert "pinpoint started (pid " in started.stdout and f"on {url}/" in started.stdout
            assert time.monotonic() - started_at < 60
        else:  # --no-wait: back once the daemon runs, while its models may still load
            assert "pinpoint is starting (pid " in started.stdout and "not waiting" in started.stdout
        wait_until(url + "/readyz")
        log = (tmp_path / "var" / "pinpoint.log").read_text()
        assert '"listening_beyond_loopback_without_auth"' in log  # written after the fork, so it is kept
    finally:
        pinpoint("stop", cwd=tmp_path, env=env)


def test_start_notices_at_once_that_the_daemon_died_and_says_why(tmp_path):
    models, labels = graphs.write_repository(tmp_path, names=("tint",))
    (tmp_path / "logs-here").mkdir()  # a log_file that is a directory: the daemon dies right after forking
    env = {"PINPOINT_UPLOAD_DIR": str(tmp_path / "uploads"), "PINPOINT_LOG_FILE": str(tmp_path / "logs-here")}
    started_at = time.monotonic()
    done = pinpoint("start", "--port", str(free_port()), "--models", str(models), "--labels", str(labels),
                    cwd=tmp_path, env=env)
    assert done.returncode == 1 and time.monotonic() - started_at < 20
    assert "pinpoint exited while starting: IsADirectoryError: [Errno 21] Is a directory" in done.stderr
    assert pinpoint("status", cwd=tmp_path, env=env).returncode == 3


def test_start_notices_at_once_that_the_daemon_was_killed(tmp_path):
    models, labels = graphs.write_repository(tmp_path, names=("tint", "slow"))
    env = {**os.environ, "PINPOINT_UPLOAD_DIR": str(tmp_path / "uploads"), "PINPOINT_HOME": str(tmp_path)}
    starting = subprocess.Popen([sys.executable, "-m", "service", "start", "--port", str(free_port()), "--models",
                                 str(models), "--labels", str(labels)], cwd=tmp_path, env=env, text=True,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    pidfile = tmp_path / "var" / "pinpoint.pid"
    deadline = time.monotonic() + 30
    while not pidfile.exists() or not pidfile.read_text().strip():
        assert time.monotonic() < deadline and starting.poll() is None, starting.communicate()
        time.sleep(0.02)
    pid = int(pidfile.read_text())
    os.kill(pid, signal.SIGKILL)  # while its models load
    killed_at = time.monotonic()
    out, err = starting.communicate(timeout=30)
    assert starting.returncode == 1 and time.monotonic() - killed_at < 3, out + err
    assert f"pinpoint exited while starting (pid {pid}): it logged no error (killed?)" in err
    # Its model runner and API workers do not serve on as orphans: they notice and stop.
    deadline = time.monotonic() + 30
    while any(_serves(tmp_path, other) for other in os.listdir("/proc") if other.isdigit()):
        left = [(pid, Path(f"/proc/{pid}/environ").read_bytes().count(b"PINPOINTD_ROLE=worker"))
                for pid in os.listdir("/proc") if pid.isdigit() and _serves(tmp_path, pid)]
        assert time.monotonic() < deadline, f"the killed daemon's runner and workers are still running: {left}"
        time.sleep(0.2)


def _serves(tmp_path, pid: str) -> bool:
    """Whether process `pid` is a Pinpoint of this test's repository."""
    try:
        return str(tmp_path / "models").encode() in Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False


def test_stale_pidfile_is_noticed(tmp_path):
    (tmp_path / "var").mkdir()
    (tmp_path / "var" / "pinpoint.pid").write_text("999999\n")
    status = pinpoint("status", cwd=tmp_path)
    assert status.returncode == 1 and "stale" in status.stdout
    assert pinpoint("stop", cwd=tmp_path).returncode == 0


@pytest.fixture
def slow_server(tmp_path):
    models, labels = graphs.write_repository(tmp_path, names=("tint", "slow"))
    server = start_server(tmp_path, models, labels, env={"PINPOINT_MAX_BATCH": "1", "PINPOINT_RATE_LIMIT_PER_S": "0",
                                                         "PINPOINT_DRAIN_DELAY_S": "1.5"})
    yield server
    if server.process.poll() is None:
        server.process.kill()


def test_sigterm_during_a_burst_loses_no_accepted_request(slow_server):
    answers = []

    def one():
        answers.append(classify(slow_server.url, "x=10&y=10&models=slow").status_code)

    threads = [threading.Thread(target=one) for _ in range(8)]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + 30  # a loaded machine may take a while to get all 8 in
    while value(scrape(slow_server), "pinpoint_in_flight_requests") < 9:  # 8 + this scrape, all accepted
        assert time.monotonic() < deadline
    slow_server.process.send_signal(signal.SIGTERM)
    for thread in threads:
        thread.join(30)
    assert answers == [200] * 8
    assert slow_server.process.wait(30) == 0


def test_readiness_is_503_while_draining_and_work_still_completes(slow_server):
    assert slow_server.get("/readyz").status_code == 200
    slow_server.process.send_signal(signal.SIGTERM)
    time.sleep(0.3)
    draining = slow_server.get("/readyz")
    assert draining.status_code == 503 and draining.json()["ready"] is False
    assert classify(slow_server.url).status_code == 200  # still serving during the drain delay
    assert slow_server.process.wait(30) == 0


def test_readiness_is_503_until_the_models_are_warm(tmp_path):
    models, labels = graphs.write_repository(tmp_path, names=("tint", "slow"))
    # On TensorFlow, whose import alone takes seconds: a load long enough to be seen from outside.
    config = models / "slow" / "1" / "model.toml"
    config.write_text(config.read_text().replace('graph = "frozen_graph.pb"\n',
                                                 'graph = "frozen_graph.pb"\nbackend = "tensorflow"\n', 1))
    port = free_port()
    process = subprocess.Popen([sys.executable, "-m", "service", "serve", "--port", str(port), "--models",
                                str(models), "--labels", str(labels)], stderr=subprocess.DEVNULL,
                               env={**os.environ, "PINPOINT_UPLOAD_DIR": str(tmp_path / "up")})
    try:
        url, first_ready = f"http://127.0.0.1:{port}", None
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if requests.get(url + "/healthz", timeout=1).status_code == 200:
                    first_ready = requests.get(url + "/readyz", timeout=5)
                    break
            except (requests.ConnectionError, requests.Timeout):  # not listening yet; or bound, workers starting
                time.sleep(0.02)
        assert first_ready is not None and first_ready.status_code == 503
        assert first_ready.json()["code"] == "model_unavailable"
        # A model still loading is refused (versions load independently: a ready one may already answer).
        early = classify(url, "x=10&y=10&models=slow")
        assert early.json().get("code") == "model_unavailable" or requests.get(url + "/readyz").status_code == 200
        wait_until(url + "/readyz")
    finally:
        process.terminate()
        process.wait(30)


@pytest.fixture(scope="module")
def redis_url(tmp_path_factory):
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.skip("redis-server is not installed (.ci/run installs it)")
    port = free_port()
    process = subprocess.Popen([binary, "--port", str(port), "--save", "", "--appendonly", "no",
                                "--dir", str(tmp_path_factory.mktemp("redis"))], stdout=subprocess.DEVNULL)
    import redis
    client = redis.Redis(port=port)
    deadline = time.monotonic() + 10
    while True:
        try:
            client.ping()
            break
        except redis.ConnectionError:
            assert time.monotonic() < deadline, "redis-server did not start"
            time.sleep(0.05)
    yield f"redis://127.0.0.1:{port}/0"
    process.terminate()
    process.wait(10)


@pytest.fixture(scope="module")
def replicas(tmp_path_factory, redis_url):
    """Two Pinpoint processes sharing one Redis and one upload directory, as behind a load balancer."""
    tmp = tmp_path_factory.mktemp("replicas")
    models, labels = graphs.write_repository(tmp, names=("tint",))
    env = {"PINPOINT_RATE_LIMIT_BACKEND": redis_url, "PINPOINT_RATE_LIMIT_PER_S": "0.01",
           "PINPOINT_RATE_LIMIT_BURST": "4", "PINPOINT_UPLOAD_DIR": str(tmp / "shared-uploads"),
           "PINPOINT_TRUSTED_PROXIES": '["127.0.0.1/32"]'}
    servers = [start_server(tmp, models, labels, env=env) for _ in range(2)]
    yield servers
    for server in servers:
        server.process.terminate()
        server.process.wait(30)


def test_one_clients_limit_holds_across_replicas(replicas):
    statuses = [replicas[i % 2].get("/v1/models").status_code for i in range(10)]
    assert statuses.count(200) == 4 and statuses.count(429) == 6  # one bucket of 4, shared


def test_an_image_stored_on_one_replica_is_classified_on_the_other(replicas):
    first, second = replicas
    me = {"X-Forwarded-For": "203.0.113.20"}  # another client (the replicas trust loopback as a proxy)
    stored = first.post("/v1/images", data=split_image(), headers={"Content-Type": "image/png", **me})
    assert stored.status_code == 201, stored.text
    answer = second.post("/v1/classify", json={"image_id": stored.json()["image_id"], "x": 190, "y": 50},
                         headers=me)
    assert answer.status_code == 200
    assert answer.json()["predictions"][0]["results"]["tint"][0]["label"] == "blue"


@pytest.mark.parametrize("fail_open, expected", [("true", 200), ("false", 429)])
def test_an_unreachable_redis_fails_open_or_closed_as_configured(tmp_path, fail_open, expected):
    models, labels = graphs.write_repository(tmp_path, names=("tint",))
    server = start_server(tmp_path, models, labels, env={
        "PINPOINT_RATE_LIMIT_BACKEND": f"redis://127.0.0.1:{free_port()}/0",  # nothing listens there
        "PINPOINT_RATE_LIMIT_FAIL_OPEN": fail_open})
    try:
        assert server.get("/v1/models").status_code == expected
        assert value(scrape(server), "pinpoint_rate_limit_backend_errors_total") >= 1
        assert '"rate_limit_backend_unreachable"' in server.log()
    finally:
        server.process.terminate()
        server.process.wait(30)

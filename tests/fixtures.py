"""Shared test helpers, one home for them (as datasette's tests/fixtures.py): images, a real server
on a free port, waiting for it, the CLI as a subprocess, the contract's error shape and metrics."""

from __future__ import annotations

import contextlib
import io
import os
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
import zlib
from pathlib import Path

import requests
from PIL import Image

RED, GREEN, BLUE = (220, 30, 30), (30, 200, 30), (30, 30, 220)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def split_image(size=(200, 100), left=RED, right=BLUE, fmt="PNG", **save) -> bytes:
    """Left half one colour, right half another: a test knows what each point should say."""
    image = Image.new("RGB", size, left)
    image.paste(right, (size[0] // 2, 0, size[0], size[1]))
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **save)
    return buffer.getvalue()


def decompression_bomb(width=50_000, height=50_000) -> bytes:
    """A tiny PNG whose header claims width x height pixels."""
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    rows = zlib.compress(b"\0" * (width * 3 + 1) * 8)  # a few rows; the decoder never gets that far
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", rows) + chunk(b"IEND", b"")


def assert_error(response, status, code):
    """The contract's error: the status, a JSON body with code and message, a request id, no traceback."""
    assert response.status_code == status, response.text
    assert response.headers["Content-Type"].startswith("application/json")
    body = response.json()
    assert body["code"] == code and body["error"]
    assert "Traceback" not in response.text
    assert response.headers.get("X-Request-ID")
    return body


class Client:
    """What a test asks a server through: `get`, `post`, `delete` of a path, with `requests`, at `url`.
    The server is a subprocess (Server, below) or the application in the test process (inprocess.py)."""

    url: str

    def get(self, path, **kwargs):
        kwargs.setdefault("timeout", 30)
        return requests.get(self.url + path, **kwargs)

    def post(self, path, **kwargs):
        kwargs.setdefault("timeout", 30)
        return requests.post(self.url + path, **kwargs)

    def delete(self, path, **kwargs):
        kwargs.setdefault("timeout", 30)
        return requests.delete(self.url + path, **kwargs)


class Server(Client):
    """`pinpoint serve` as a process: for what a process is about (signals, workers, its pid and memory)."""

    def __init__(self, url: str, process: subprocess.Popen, log_path: Path):
        self.url, self.process, self.log_path = url, process, log_path

    def log(self) -> str:
        return self.log_path.read_text()

    def alive(self) -> bool:
        return self.process.poll() is None


def wait_until(url: str, status: int = 200, timeout: float = 90, process: subprocess.Popen | None = None,
               log_path: Path | None = None) -> requests.Response:
    """Poll `url` until it answers `status`; fail early (with the log) if the process exits."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            log = log_path.read_text() if log_path else ""
            raise RuntimeError(f"server exited with {process.returncode}:\n{log}")
        try:
            response = requests.get(url, timeout=2)
            if response.status_code == status:
                return response
        except (requests.ConnectionError, requests.Timeout):
            pass  # not listening yet, or too busy loading to answer within 2 s
        time.sleep(0.05)
    raise AssertionError(f"{url} did not answer {status} within {timeout:.0f} s")


def start_server(tmp: Path, models: Path, labels: Path, *args: str, env: dict | None = None,
                 wait_ready: bool = True) -> Server:
    """`pinpoint serve` on a free port, as a real process; returns once /readyz says 200."""
    port = free_port()
    log_path = tmp / f"server-{port}.log"
    environment = {**os.environ, "PINPOINT_UPLOAD_DIR": str(tmp / "uploads"), "PINPOINT_LOG_FORMAT": "json",
                   "PINPOINT_FEEDBACK_DB": str(tmp / "feedback.db"), **(env or {})}
    with open(log_path, "wb") as log:  # the server writes to its own copy of the descriptor
        process = subprocess.Popen(
            [sys.executable, "-m", "service", "serve", "--port", str(port), "--models", str(models),
             "--labels", str(labels), *args],
            stdout=subprocess.DEVNULL, stderr=log, env=environment)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until(url + ("/readyz" if wait_ready else "/healthz"), process=process, log_path=log_path)
    except AssertionError:
        kill(process)
        raise
    return Server(url, process, log_path)


def start_grpc_server(tmp: Path, models: Path, labels: Path, env: dict | None = None) -> Server:
    """start_server with gRPC on a free port too (`server.grpc` is its "127.0.0.1:PORT") and no rate limit."""
    grpc_port = free_port()
    server = start_server(tmp, models, labels, env={"PINPOINT_GRPC_PORT": str(grpc_port),
                                                    "PINPOINT_RATE_LIMIT_PER_S": "0", **(env or {})})
    server.grpc = f"127.0.0.1:{grpc_port}"
    return server


def stop_server(server: Server) -> None:
    server.process.send_signal(signal.SIGTERM)
    try:
        server.process.wait(30)
    except subprocess.TimeoutExpired:
        kill(server.process)


def api_worker_maps(server: Server) -> dict[int, str]:
    """Each API worker's /proc/<pid>/maps (the shared libraries it has loaded), by pid: what shows that
    the workers never load TensorFlow or ONNX Runtime."""
    from service.processes.roles import children

    return {pid: Path(f"/proc/{pid}/maps").read_text() for role, pid in children(server.process.pid)
            if role == "worker"}


def demo_engine():
    """An in-process Engine of the shipped demo models (models/, labels/), as `pinpoint serve` runs them,
    their ONNX conversions in the session's cache (tests/conftest.py): converted once per test session,
    and found there by the servers later tests start, not once more into the checkout's var/."""
    from service.config import load_settings
    from service.engine import Engine

    repo = Path(__file__).resolve().parents[1]
    settings = load_settings(environ={}, overrides={"models": str(repo / "models"), "labels": str(repo / "labels"),
                                                    "onnx_cache": os.environ["PINPOINT_ONNX_CACHE"]})
    return Engine.open(settings=settings)


def kill(process: subprocess.Popen) -> None:
    """SIGKILL a server and its model runner and API workers (they would outlive a killed supervisor)."""
    from service.processes.roles import children

    for _, pid in children(process.pid):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    process.kill()
    process.wait(10)


def pinpoint(*args, cwd, env=None, timeout=120) -> subprocess.CompletedProcess:
    """The `pinpoint` command line, as a user runs it; in a directory of its own (cwd), that directory is
    its `home` too (its var/ and default paths), unless env says otherwise."""
    home = {"PINPOINT_HOME": str(cwd)} if cwd is not None else {}
    return subprocess.run([sys.executable, "-m", "service", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=timeout, env={**os.environ, **home, **(env or {})}, stdin=subprocess.DEVNULL)


def scrape(server) -> dict:
    """Every sample of /metrics, keyed by (name, sorted labels)."""
    from prometheus_client.parser import text_string_to_metric_families

    response = server.get("/metrics")
    assert response.status_code == 200 and response.headers["Content-Type"].startswith("text/plain")
    samples = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def value(samples, name, **labels):
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


class Clients:
    """Threads asking a server all the time while a with-block runs (clients under load in the
    lifecycle and worker tests); a subclass's `_client()` loops until `self.stopping` is set."""

    def __init__(self, clients: int):
        self.stopping = threading.Event()
        self.threads = [threading.Thread(target=self._client) for _ in range(clients)]
        self.answers: list = []  # what each call gave, as the subclass records it

    def _client(self) -> None:
        raise NotImplementedError

    def answered(self) -> int:
        """How many answers (or failures) the clients have had so far."""
        return len(self.answers)

    def run_for(self, answers: int, timeout: float = 60.0) -> None:
        """Wait until the clients have had `answers` more answers: load that has really run, however
        slow the machine is today (a fixed sleep is too short on a loaded machine, too long on an idle one)."""
        target, deadline = self.answered() + answers, time.monotonic() + timeout
        while self.answered() < target:
            assert time.monotonic() < deadline, f"the clients had {self.answered()} of {target} answers"
            time.sleep(0.01)

    def __enter__(self):
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *exc):
        self.stopping.set()
        for thread in self.threads:
            thread.join(30)

"""One real Pinpoint server per test session, on a free port, serving tiny generated graphs."""

from __future__ import annotations

import io
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests
from PIL import Image

sys.path.insert(0, str(Path(__file__).parent))
import graphs  # noqa: E402

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


@pytest.fixture(scope="session")
def repository(tmp_path_factory) -> tuple[Path, Path]:
    return graphs.write_repository(tmp_path_factory.mktemp("repo"))


@pytest.fixture(scope="session")
def image_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("images")
    (root / "split.png").write_bytes(split_image())
    (root / "nested").mkdir()
    (root / "nested" / "split.jpg").write_bytes(split_image(fmt="JPEG", quality=95))
    (root / "notes.txt").write_text("not an image: secret words")
    outside = tmp_path_factory.mktemp("outside")
    (outside / "secret.png").write_bytes(split_image())
    (root / "escape.png").symlink_to(outside / "secret.png")
    (root / "inside-link.png").symlink_to(root / "split.png")
    return root


class Server:
    def __init__(self, url: str, process: subprocess.Popen, log_path: Path):
        self.url, self.process, self.log_path = url, process, log_path

    def get(self, path, **kwargs):
        kwargs.setdefault("timeout", 30)
        return requests.get(self.url + path, **kwargs)

    def post(self, path, **kwargs):
        kwargs.setdefault("timeout", 30)
        return requests.post(self.url + path, **kwargs)

    def delete(self, path, **kwargs):
        kwargs.setdefault("timeout", 30)
        return requests.delete(self.url + path, **kwargs)

    def log(self) -> str:
        return self.log_path.read_text()


def start_server(tmp: Path, models: Path, labels: Path, *args: str, env: dict | None = None) -> Server:
    port = free_port()
    log_path = tmp / f"server-{port}.log"
    environment = {**os.environ, "PINPOINT_UPLOAD_DIR": str(tmp / "uploads"), "PINPOINT_LOG_FORMAT": "json",
                   **(env or {})}
    process = subprocess.Popen(
        [sys.executable, "-m", "service", "serve", "--port", str(port), "--models", str(models),
         "--labels", str(labels), *args],
        stdout=subprocess.DEVNULL, stderr=open(log_path, "wb"), env=environment)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode}:\n{log_path.read_text()}")
        try:
            if requests.get(url + "/readyz", timeout=2).status_code == 200:
                return Server(url, process, log_path)
        except requests.ConnectionError:
            pass
        time.sleep(0.2)
    process.kill()
    raise RuntimeError(f"server not ready in time:\n{log_path.read_text()}")


def stop_server(server: Server) -> None:
    server.process.send_signal(signal.SIGTERM)
    try:
        server.process.wait(30)
    except subprocess.TimeoutExpired:
        server.process.kill()


@pytest.fixture(scope="session")
def server(tmp_path_factory, repository, image_root) -> Server:
    models, labels = repository
    tmp = tmp_path_factory.mktemp("server")
    running = start_server(tmp, models, labels, "--image-root", str(image_root),
                           env={"PINPOINT_MAX_BODY_BYTES": str(2_000_000), "PINPOINT_RATE_LIMIT_PER_S": "0"})
    yield running
    stop_server(running)

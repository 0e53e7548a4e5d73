"""The session's shared servers, on free ports, serving tiny generated graphs: the application in this
process for the HTTP tests (tests/inprocess.py), and `pinpoint serve` as a process for the few about one."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
import graphs  # noqa: E402
from browser_page import browser, page  # noqa: E402,F401 (fixtures of the page tests)
from fixtures import Server, split_image, start_grpc_server, start_server, stop_server  # noqa: E402
from inprocess import InProcessServer, stop_running  # noqa: E402


@pytest.fixture(scope="session", autouse=True)
def onnx_cache(tmp_path_factory) -> Path:
    """One conversion cache for every server and engine of the run (PINPOINT_ONNX_CACHE reaches the
    subprocesses too), so the tiny graphs convert once, not per test, and the repository's var/ stays
    untouched."""
    import os

    cache = tmp_path_factory.mktemp("onnx-cache")
    os.environ["PINPOINT_ONNX_CACHE"] = str(cache)
    yield cache
    os.environ.pop("PINPOINT_ONNX_CACHE", None)


@pytest.fixture(scope="session", autouse=True)
def in_process_bus():
    """At the session's end, whichever in-process server runs stops and CherryPy's bus ends."""
    yield
    stop_running()


@pytest.fixture(scope="session")
def repository(tmp_path_factory) -> tuple[Path, Path]:
    return graphs.write_repository(tmp_path_factory.mktemp("repo"))


@pytest.fixture(scope="session")
def onnx_repository(tmp_path_factory) -> tuple[Path, Path]:
    """`tint` and `bright` alone: both run on ONNX Runtime, so a server of them starts without importing
    TensorFlow (the `jpeg` graph's DecodeJpeg keeps it on TensorFlow: ~3 s more per server started). For
    the process tests that never ask the jpeg model."""
    return graphs.write_repository(tmp_path_factory.mktemp("onnx-repo"), names=("tint", "bright"))


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


SHARED_ENV = {"PINPOINT_MAX_BODY_BYTES": str(2_000_000), "PINPOINT_RATE_LIMIT_PER_S": "0"}


@pytest.fixture(scope="session")
def server(tmp_path_factory, repository, image_root) -> InProcessServer:
    """The shared server of the HTTP tests: the application in this process (tests/inprocess.py)."""
    models, labels = repository
    return InProcessServer(tmp_path_factory.mktemp("server"), models, labels, env=SHARED_ENV,
                           image_root=str(image_root)).start()  # stopped by in_process_bus, at the end


@pytest.fixture(scope="session")
def process_server(tmp_path_factory, repository, image_root) -> Server:
    """The same server as `pinpoint serve` runs it, a process (API workers and a runner by default), for
    the tests about a process, the browser tests and the fuzz suite."""
    models, labels = repository
    tmp = tmp_path_factory.mktemp("process-server")
    running = start_server(tmp, models, labels, "--image-root", str(image_root), env=SHARED_ENV)
    yield running
    stop_server(running)


@pytest.fixture(scope="module")
def served(saved, tmp_path_factory) -> Server:
    """For a test module whose `saved` fixture writes a SavedModel repository (the model, models/, labels/):
    `pinpoint serve` of it with 2 API workers and gRPC on a free port (a module's own `served` wins)."""
    _, models, labels = saved
    server = start_grpc_server(tmp_path_factory.mktemp("server"), models, labels, env={"PINPOINT_WORKERS": "2"})
    yield server
    stop_server(server)


"""A peer server in a child process on a free port, run from .bench-venv: started, waited for until it
answers its readiness route, measured like Pinpoint's (every process of its tree: CPU from /proc/<pid>/stat,
RSS from /proc/<pid>/status), and stopped with every process it started."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import requests

from service.tools.bench.peers import common, venv
from service.tools.bench.server import ServerProcess, free_port, signal_all

# name -> (how it is started, given port and manifest; the route that answers 200 once it serves)
COMMANDS = {
    "litserve": (lambda port, manifest: [str(venv.python()), "-m", "service.tools.bench.peers.litserve_app",
                                         "--port", str(port), "--manifest", str(manifest)], "/health"),
    "bentoml": (lambda port, manifest: [str(venv.tool("bentoml")), "serve",
                                        "service.tools.bench.peers.bentoml_app:Classify", "--working-dir",
                                        str(venv.ROOT), "--host", "127.0.0.1", "--port", str(port)], "/readyz"),
    "fastapi": (lambda port, manifest: [str(venv.python()), "-m", "uvicorn",
                                        "service.tools.bench.peers.fastapi_app:app", "--host", "127.0.0.1",
                                        "--port", str(port), "--log-level", "warning"], "/health"),
}


def descendants(pid: int) -> list[int]:
    """Every process below `pid`, from the parent ids in /proc."""
    parents: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue  # gone meanwhile
            parents.setdefault(ppid, []).append(int(entry.name))
    found, todo = [], [pid]
    while todo:
        children = parents.get(todo.pop(), [])
        found += children
        todo += children
    return found


class PeerProcess(ServerProcess):
    """A peer with ServerProcess's measuring methods (cpu_seconds, rss_mb over pids())."""

    def __init__(self, name: str, workdir: Path, manifest: Path, ready_timeout: float = 180):
        command, ready = COMMANDS[name]
        self.name = name
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = workdir / f"{name}-{self.port}.log"
        home = workdir / f"{name}-home"
        home.mkdir(exist_ok=True)
        environment = {**os.environ, "PYTHONPATH": str(venv.ROOT), common.MANIFEST_ENV: str(manifest),
                       "BENTOML_HOME": str(home), "BENTOML_DO_NOT_TRACK": "true", "PYTHONUNBUFFERED": "1"}
        # The cwd is a scratch directory: LitServe and BentoML write files of their own where they run.
        # The child writes to its own copy of the descriptor: this process's copy may close at once.
        with open(self.log_path, "wb") as log_file:
            self.process = subprocess.Popen(command(self.port, manifest), cwd=home, env=environment,
                                            stdout=log_file, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + ready_timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"{name} exited:\n{self.log_path.read_text()[-3000:]}")
            try:
                if requests.get(self.url + ready, timeout=2).status_code == 200:
                    return
            except (requests.ConnectionError, requests.Timeout):
                pass  # not listening yet
            time.sleep(0.3)
        self.stop()
        raise RuntimeError(f"{name} was not ready in {ready_timeout:.0f} s:\n{self.log_path.read_text()[-3000:]}")

    def pids(self) -> list[int]:
        return [self.process.pid, *descendants(self.process.pid)]

    def roles(self) -> dict[int, str]:
        return {pid: self.name for pid in self.pids()}

    def stop(self) -> None:
        """SIGTERM to the server (each framework stops its own processes), then SIGKILL to any left."""
        started = self.pids()
        signal_all(started, signal.SIGCONT)  # resumed first, if the driver paused it and was interrupted
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(20)
        except subprocess.TimeoutExpired:
            pass
        for pid in started:
            try:
                # Still one of ours (a pid freed meanwhile could be another program's by now)?
                if str(venv.VENV).encode() in Path(f"/proc/{pid}/cmdline").read_bytes():
                    os.kill(pid, signal.SIGKILL)
            except (OSError, ProcessLookupError):
                pass  # stopped by its parent, as it should
        self.process.wait(10)

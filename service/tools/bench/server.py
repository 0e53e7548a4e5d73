"""A Pinpoint server in a child process, on a free port, for the benchmark."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import requests

from service.processes.address import socket_inodes, tcp_sockets
from service.processes.roles import children


def established_connections(pid: int, port: int) -> int:
    """Connections to `port` that process `pid` holds open, read from /proc as `ss -tnp` reads them."""
    held = socket_inodes(pid)
    return sum(1 for inode, _, local_port, state in tcp_sockets(f"/proc/{pid}/net")
               if local_port == port and state == "01" and inode in held)


def signal_all(pids: list[int], number: int) -> None:
    """`number` to each process; one that ended meanwhile is skipped."""
    for pid in pids:
        try:
            os.kill(pid, number)
        except ProcessLookupError:
            pass


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class ServerProcess:
    def __init__(self, workdir: Path, env: dict[str, str], args: list[str]):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = workdir / f"server-{self.port}.log"
        # Measured as served: rate limiting on (with a limit the load never reaches), a log line per
        # request, metrics and the feedback log, as the defaults have them.
        environment = {**os.environ, "PINPOINT_RATE_LIMIT_PER_S": "1000000", "PINPOINT_RATE_LIMIT_BURST": "1000000",
                       "PINPOINT_UPLOAD_DIR": str(workdir / "uploads"), **env}
        # The child writes to its own copy of the descriptor: this process's copy may close at once.
        with open(self.log_path, "wb") as log_file:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "service", "serve", "--port", str(self.port), *args],
                stdout=subprocess.DEVNULL, stderr=log_file, env=environment)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"the server exited:\n{self.log_path.read_text()}")
            try:
                if requests.get(self.url + "/readyz", timeout=2).status_code == 200:
                    return
            except (requests.ConnectionError, requests.Timeout):
                pass  # not listening yet, or busy loading
            time.sleep(0.2)
        self.stop()
        raise RuntimeError("the server was not ready in 120 s")

    def pids(self) -> list[int]:
        """The server's processes: the one `pinpoint serve`, and its runner and workers if it has them."""
        return [self.process.pid, *(pid for _, pid in children(self.process.pid))]

    def roles(self) -> dict[int, str]:
        """pid -> supervisor, runner or worker (or `server` for a single process)."""
        found = dict((pid, role) for role, pid in children(self.process.pid))
        return {self.process.pid: "supervisor" if found else "server", **found}

    def connections_per_worker(self) -> list[int]:
        """Connections each API worker holds now (empty for a server of one process)."""
        return [established_connections(pid, self.port) for role, pid in children(self.process.pid)
                if role == "worker"]

    def rss_mb(self, field: str = "VmRSS", pid: int | None = None) -> float:
        """A process's resident memory; without a pid, the whole server's."""
        if pid is None:
            return sum(self.rss_mb(field, each) for each in self.pids())
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith(field + ":"):
                    return int(line.split()[1]) / 1024
        except OSError:
            pass
        return 0.0

    def cpu_seconds(self) -> float:
        """CPU time the server has used so far: every process, every thread, user and system."""
        total = 0
        for pid in self.pids():
            try:
                fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
                total += int(fields[11]) + int(fields[12])
            except (OSError, IndexError):
                pass
        return total / os.sysconf("SC_CLK_TCK")

    def stop(self) -> None:
        signal_all(self.pids(), signal.SIGCONT)  # resumed first, if a bench paused it and was interrupted
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(30)
        except subprocess.TimeoutExpired:
            self.process.kill()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()

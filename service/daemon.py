"""`pinpoint start | stop | status | restart | reload`: the server as a background daemon.

`start` runs `pinpoint serve --daemonize` (CherryPy's Daemonizer and PIDFile plugins: the process
forks and detaches before TensorFlow is touched) and waits until it answers /healthz. The others find
it through its pidfile. Exit codes follow the LSB init-script conventions.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import requests

from service.config import Settings

# LSB: status 0 running, 1 dead but pidfile exists, 3 not running; other actions 0 ok, 1 failed, 7 not running.
RUNNING, DEAD_WITH_PIDFILE, NOT_RUNNING = 0, 1, 3
FAILED, NOT_RUNNING_FOR_ACTION = 1, 7


def running_pid(pidfile: Path) -> int | None:
    """The daemon's pid when its pidfile names a live Pinpoint process, else None."""
    try:
        pid = int(pidfile.read_text().strip())
    except (OSError, ValueError):
        return None
    try:
        os.kill(pid, 0)
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except (ProcessLookupError, PermissionError, FileNotFoundError):
        return None
    return pid if b"service" in cmdline or b"pinpoint" in cmdline else None


def status(settings: Settings) -> int:
    pid = running_pid(settings.pidfile)
    if pid is not None:
        print(f"pinpoint is running (pid {pid})")
        return RUNNING
    if settings.pidfile.exists():
        print(f"pinpoint is not running, but {settings.pidfile} exists (stale)")
        return DEAD_WITH_PIDFILE
    print("pinpoint is not running")
    return NOT_RUNNING


def start(settings: Settings, serve_args: list[str], timeout: float = 90) -> int:
    pid = running_pid(settings.pidfile)
    if pid is not None:
        print(f"pinpoint is already running (pid {pid}); not starting another")
        return 0  # LSB: starting a running service succeeds
    settings.pidfile.unlink(missing_ok=True)  # stale
    settings.pidfile.parent.mkdir(parents=True, exist_ok=True)
    settings.log_file.parent.mkdir(parents=True, exist_ok=True)
    launcher = subprocess.run([sys.executable, "-m", "service", "serve", "--daemonize", *serve_args],
                              stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=60)
    if launcher.returncode != 0:
        print(f"pinpoint failed to start:\n{launcher.stderr.strip()}", file=sys.stderr)
        return FAILED
    deadline = time.monotonic() + timeout
    url = f"http://{settings.host}:{settings.port}/healthz"
    while time.monotonic() < deadline:
        pid = running_pid(settings.pidfile)
        if pid is not None:
            try:
                if requests.get(url, timeout=1).status_code == 200:
                    print(f"pinpoint started (pid {pid}) on http://{settings.host}:{settings.port}/;"
                          f" log: {settings.log_file}")
                    return 0
            except requests.RequestException:
                pass
        time.sleep(0.2)
    print(f"pinpoint did not answer within {timeout:.0f} s; see {settings.log_file}", file=sys.stderr)
    return FAILED


def stop(settings: Settings) -> int:
    pid = running_pid(settings.pidfile)
    if pid is None:
        settings.pidfile.unlink(missing_ok=True)
        print("pinpoint is not running")
        return 0  # LSB: stopping a stopped service succeeds
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + settings.drain_delay_s + settings.drain_timeout_s + 30
    while time.monotonic() < deadline:
        if running_pid(settings.pidfile) is None and not _alive(pid):
            print(f"pinpoint stopped (pid {pid})")
            return 0
        time.sleep(0.1)
    print(f"pinpoint (pid {pid}) did not stop in time", file=sys.stderr)
    return FAILED


def reload(settings: Settings) -> int:
    pid = running_pid(settings.pidfile)
    if pid is None:
        print("pinpoint is not running")
        return NOT_RUNNING_FOR_ACTION
    os.kill(pid, signal.SIGHUP)  # CherryPy's "graceful": settings and models are re-read
    print(f"pinpoint (pid {pid}) is reloading its settings and models")
    return 0


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie still answers kill(0): it has exited, its parent has not collected it yet.
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except (FileNotFoundError, IndexError):
        return False

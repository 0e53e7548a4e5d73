"""`pinpoint start | stop | status | restart | reload`: the server as a background daemon.

`start` checks the address first (service.processes.address), runs `pinpoint serve --daemonize` (CherryPy's
Daemonizer and PIDFile plugins: the process forks and detaches before TensorFlow is touched) and
waits until /readyz answers 200, i.e. every model is loaded and warm (`--no-wait`: only until the
daemon has written its pidfile). A daemon that dies meanwhile is noticed at once, with the first error
it logged. The others find it through its pidfile. Exit codes follow the LSB init-script conventions.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import requests

from service.config import Settings
from service.processes import address, roles
from service.processes.pidfile import alive, pid_in, running_pid

# LSB: status 0 running, 1 dead but pidfile exists, 3 not running; other actions 0 ok, 1 failed, 7 not running.
RUNNING, DEAD_WITH_PIDFILE, NOT_RUNNING = 0, 1, 3
FAILED, NOT_RUNNING_FOR_ACTION = 1, 7
PIDFILE_WITHIN_S = 30  # the daemon writes its pidfile right after forking; without one by then, it failed
EXITED = "ENGINE Bus EXITED"  # CherryPy's last line, however the process ends


def keep_umask(bus, log_file: Path) -> None:
    """CherryPy's Daemonizer sets umask 0 in the daemon, so its pidfile, log, uploads and databases
    would be world-writable: the log (which it opens while its umask is 0) is created here first, and
    the umask `pinpoint start` ran with is put back right after the fork (65), before the pidfile (70)."""
    umask = os.umask(0)
    os.umask(umask)
    log_file.parent.mkdir(parents=True, exist_ok=True)
    log_file.touch()
    bus.subscribe("start", lambda: os.umask(umask), priority=66)


def where(pid: int) -> str:
    """The URLs a daemon listens on, as read from /proc (its settings may not be the caller's)."""
    bound = address.listening_on(pid)
    return ", ".join(f"http://{address.display(host, port)}/" for host, port in bound) or "an unknown address"


def status(settings: Settings) -> int:
    pid = running_pid(settings.pidfile)
    if pid is not None:
        print(f"pinpoint is running (pid {pid}) on {where(pid)}")
        for role, child in _children(pid):
            print(f"  {role} (pid {child})")
        return RUNNING
    if settings.pidfile.exists():
        print(f"pinpoint is not running, but {settings.pidfile} exists (stale)")
        return DEAD_WITH_PIDFILE
    print("pinpoint is not running")
    return NOT_RUNNING


def _children(pid: int) -> list[tuple[str, int]]:
    return [("model runner" if role == "runner" else "API worker", child) for role, child in roles.children(pid)]


def start(settings: Settings, serve_args: list[str], wait: bool = True, timeout: float = 90,
          port_given: bool = False) -> int:
    """Raises address.AddressError when the address is unusable (the caller exits 2)."""
    pid = running_pid(settings.pidfile)
    if pid is not None:
        ports = {port for _, port in address.listening_on(pid)}
        if port_given and ports and settings.port not in ports:
            print(f"pinpoint is already running (pid {pid}) on {where(pid)}, not on port {settings.port}; not "
                  f"starting another: `pinpoint restart --port {settings.port}` moves it", file=sys.stderr)
            return FAILED
        print(f"pinpoint is already running (pid {pid}) on {where(pid)}; not starting another")
        return 0  # LSB: starting a running service succeeds
    address.check(settings.host, settings.port, settings.pidfile)
    settings.pidfile.unlink(missing_ok=True)  # stale
    settings.pidfile.parent.mkdir(parents=True, exist_ok=True)
    settings.log_file.parent.mkdir(parents=True, exist_ok=True)
    log_offset = settings.log_file.stat().st_size if settings.log_file.is_file() else 0
    started = time.monotonic()
    # Returns once the daemon has forked and its stdio points at the log (or once it has died).
    launcher = subprocess.run([sys.executable, "-m", "service", "serve", "--daemonize", *serve_args],
                              stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=60)
    if launcher.returncode != 0:
        print(f"pinpoint failed to start: {first_error(launcher.stderr) or launcher.stderr.strip()}",
              file=sys.stderr)
        return FAILED

    def died(pid: int | None) -> str | None:
        """Why the daemon is gone, or None while it lives."""
        text = launcher.stderr + _read_from(settings.log_file, log_offset)
        if (pid is not None and not alive(pid)) or EXITED in text:
            return first_error(text) or "it logged no error (killed?)"
        if pid is None and time.monotonic() - started > PIDFILE_WITHIN_S:
            return f"it wrote no pidfile ({settings.pidfile}) within {PIDFILE_WITHIN_S} s"
        return None

    url = address.local_url(settings.host, settings.port)
    session = requests.Session()
    session.trust_env = False  # a proxy from the environment must not stand between us and loopback
    deadline = started + timeout
    pid, last = None, "no answer yet"
    while time.monotonic() < deadline:
        pid = pid_in(settings.pidfile) or pid  # written by this daemon (a stale one was removed above)
        reason = died(pid)
        if reason is not None:
            print(f"pinpoint exited while starting{f' (pid {pid})' if pid else ''}: {reason}\n"
                  f"log: {settings.log_file}", file=sys.stderr)
            return FAILED
        if pid is not None and not wait:
            print(f"pinpoint is starting (pid {pid}) on {url}/; not waiting for it to be ready "
                  f"(`pinpoint status`, {url}/readyz); log: {settings.log_file}")
            return 0
        if pid is not None:
            try:
                answer = session.get(url + "/readyz", timeout=2)
                if answer.status_code == 200:
                    print(f"pinpoint started (pid {pid}) on {url}/, models ready in "
                          f"{time.monotonic() - started:.1f} s; log: {settings.log_file}")
                    return 0
                last = answer.json().get("error", answer.text[:200])
            except (requests.RequestException, ValueError) as error:
                last = f"no answer from {url}/readyz ({type(error).__name__})"
        time.sleep(0.2)
    print(f"pinpoint (pid {pid}) is not ready after {timeout:.0f} s ({last}); it is still running: "
          f"`pinpoint stop` stops it; log: {settings.log_file}", file=sys.stderr)
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
        if running_pid(settings.pidfile) is None and not alive(pid):
            print(f"pinpoint stopped (pid {pid})")
            return 0
        time.sleep(0.1)
    print(f"pinpoint (pid {pid}) did not stop in time", file=sys.stderr)
    return FAILED


def started_with_config(pid: int) -> Path | None:
    """The settings file a daemon was started with (its `--config`), read from its command line."""
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace").split("\0")
    except OSError:
        return None
    for i, arg in enumerate(argv):
        if arg == "--config" and i + 1 < len(argv):
            return Path(argv[i + 1])
        if arg.startswith("--config="):
            return Path(arg.split("=", 1)[1])
    return None


def reload(settings: Settings, config: str | None = None) -> int:
    """SIGHUP: the daemon re-reads the settings file it was started with. A different --config here
    only names the pidfile, so a reload that would silently keep the old file is refused instead."""
    pid = running_pid(settings.pidfile)
    if pid is None:
        print("pinpoint is not running")
        return NOT_RUNNING_FOR_ACTION
    if config is not None:
        kept = started_with_config(pid)
        if kept is None or kept.resolve() != Path(config).resolve():
            print(f"pinpoint (pid {pid}) was started with {f'--config {kept}' if kept else 'no --config'}, and a "
                  f"reload re-reads that: not reloading. `pinpoint restart --config {config}` serves with "
                  f"{config}; `pinpoint reload{f' --config {kept}' if kept else ''}` re-reads its own",
                  file=sys.stderr)
            return FAILED
    os.kill(pid, signal.SIGHUP)  # CherryPy's "graceful": settings and models are re-read
    print(f"pinpoint (pid {pid}) is reloading its settings and models")
    return 0


_EXCEPTION_LINE = re.compile(r"^[A-Za-z_][\w.]*(Error|Exception|Failures|Exit)\b.*")


def first_error(text: str) -> str | None:
    """The first error in a daemon's output (JSON log lines, or plain tracebacks before logging was
    set up): the exception line of its traceback, else its message. The first, because what follows
    is the shutdown it caused (CherryPy wraps it again as ChannelFailures)."""
    for line in text.splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            record = None
        if isinstance(record, dict):
            message = "\n".join(str(record.get(key, "")) for key in ("event", "exception"))
            if "Traceback" not in message and record.get("level") not in ("error", "critical"):
                continue
            exceptions = [part.strip() for part in message.splitlines() if _EXCEPTION_LINE.match(part.strip())]
            return exceptions[-1] if exceptions else str(record.get("event", "")).splitlines()[0]
        if _EXCEPTION_LINE.match(line.strip()):
            return line.strip()
    return None


def _read_from(path: Path, offset: int) -> str:
    try:
        with open(path, "rb") as handle:
            handle.seek(offset)
            return handle.read(1 << 20).decode("utf-8", errors="replace")
    except OSError:
        return ""

"""The daemon's pidfile, as the other commands read it: the pid it names, and whether that is a live
Pinpoint process (read from /proc, Linux) rather than a stale file or a pid reused by another program.
Used by `pinpoint start | stop | status | reload` (service/processes/daemon.py) and by the address
check, which names the daemon when it is what holds the port (service/processes/address.py).
"""

from __future__ import annotations

import os
from pathlib import Path


def pid_in(pidfile: Path) -> int | None:
    try:
        return int(pidfile.read_text().strip())
    except (OSError, ValueError):
        return None


def running_pid(pidfile: Path) -> int | None:
    """The daemon's pid when its pidfile names a live Pinpoint process, else None."""
    pid = pid_in(pidfile)
    if pid is None:
        return None
    try:
        os.kill(pid, 0)
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except (ProcessLookupError, PermissionError, FileNotFoundError):
        return None
    return pid if (b"service" in cmdline or b"pinpoint" in cmdline) and alive(pid) else None


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie still answers kill(0): it has exited, its parent has not collected it yet.
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False

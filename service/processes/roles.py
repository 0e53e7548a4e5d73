"""Which process is which when `pinpoint serve` runs with workers: the environment the supervisor gives
each child (its role, the runner's socket and the secret they share, the supervisor's pid), and a
supervisor's children as /proc shows them (Linux).

Nothing is imported here, so anything may ask (`pinpoint status`, the request-id signer, the gRPC
server) without loading the supervisor.
"""

from __future__ import annotations

import os
from pathlib import Path

ROLE_ENV, RUNNER_ENV, SECRET_ENV = "PINPOINTD_ROLE", "PINPOINTD_RUNNER", "PINPOINTD_SECRET"
SUPERVISOR_ENV = "PINPOINTD_SUPERVISOR"  # its pid: a child whose parent is another process is orphaned
WORKER_ENV = "PINPOINTD_WORKER"  # an API worker's place, 0 to N-1 (its replacement takes the same)
WORKERS_ENV = "PINPOINTD_WORKERS"  # N, as the supervisor started them


def role() -> str | None:
    """"runner" or "worker" in a supervisor's child; None in the supervisor or a server of one process."""
    return os.environ.get(ROLE_ENV)


def children(pid: int) -> list[tuple[str, int]]:
    """(role, pid) of a supervisor's model runner and API workers, read from /proc (Linux)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1]) != pid:
                continue
            environ = (entry / "environ").read_bytes().split(b"\0")
        except (OSError, IndexError, ValueError):
            continue  # gone meanwhile, or not ours to read
        prefix = ROLE_ENV.encode() + b"="
        role = next((item[len(prefix):].decode() for item in environ if item.startswith(prefix)), None)
        if role:
            found.append((role, int(entry.name)))
    return sorted(found)

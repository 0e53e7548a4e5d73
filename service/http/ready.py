"""The one line `pinpoint serve` prints when it is ready: where, which models, how many processes.

A thread started with the server asks its own /readyz (on loopback, as `pinpoint start` does) until it
answers 200, then prints, e.g.

    pinpoint ready on http://127.0.0.1:8080/: models color v1, pattern v1, theme v2; 2 API workers, 1 model runner

on stdout (a foreground server; a daemon's stdout is its log) and logs it as the event `ready`. A server
whose models never all load prints nothing; /readyz and /v1/models say why.
"""

from __future__ import annotations

import sys
import threading
import time

import structlog

from service.observe import PROBE_HEADER
from service.processes import address

log = structlog.get_logger("pinpoint.ready")


def line(url: str, versions: dict[str, int | None], workers: int) -> str:
    models = ", ".join(f"{name} v{version}" if version is not None else name
                       for name, version in sorted(versions.items())) or "none"
    processes = f"{workers} API worker{'s' if workers != 1 else ''}, 1 model runner" if workers \
        else "one process"
    return f"pinpoint ready on {url}/: models {models}; {processes}"


def announce_when_ready(bus, settings, daemonize: bool) -> None:
    """Subscribe to the bus's start: from then on, wait for readiness and announce it once."""

    def watch():
        import requests

        url = address.local_url(settings.host, settings.port)
        shown = f"http://{address.display(settings.host, settings.port)}"
        session = requests.Session()
        session.trust_env = False
        while bus.state in (bus.states.STARTING, bus.states.STARTED):
            try:
                answer = session.get(url + "/readyz", timeout=2, headers={PROBE_HEADER: "ready"})
                if answer.status_code == 200:
                    body = answer.json()
                    versions = body.get("versions") or {name: None for name in body.get("models", {})}
                    text = line(shown, versions, settings.workers)
                    log.info("ready", url=shown + "/", models=versions, workers=settings.workers)
                    if not daemonize:
                        print(text, file=sys.stdout, flush=True)
                    return
            except (requests.RequestException, ValueError):
                pass
            time.sleep(0.2)

    bus.subscribe("start", lambda: threading.Thread(target=watch, name="pinpoint-ready", daemon=True).start(),
                  priority=90)

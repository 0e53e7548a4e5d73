"""`pinpoint serve` with `workers = N`: a supervisor, one model runner, N API workers.

    pinpoint serve (supervisor: binds the port, starts and restarts the others, passes signals)
      ├─ model runner   the manager, the graphs, the inference thread, batching across every worker
      └─ API worker × N HTTP on the supervisor's listening socket, limits, auth, decoding, cropping, JSON

The supervisor binds the port once and hands every worker that socket as file descriptor 3 with
LISTEN_PID set: the systemd socket-activation convention, so a worker serves a socket it never bound.
Which worker takes a new connection is theirs to settle (service/processes/connection_share.py: the
one holding the fewest). Workers never import TensorFlow; they reach the runner over a Unix socket
(service/processes/hop.py). All three are CherryPy buses, so daemonizing, the pidfile and signals work
as in one process: SIGHUP reloads everything, SIGTERM drains the workers, then stops the runner, then
exits 0.
"""

from __future__ import annotations

import os
import secrets
import selectors
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import cherrypy
import structlog
from cherrypy.process import plugins

from service.config import Settings, allowed_cpus
from service.processes import daemon
from service.processes.hop import Client
from service.processes.roles import ROLE_ENV, RUNNER_ENV, SECRET_ENV, SUPERVISOR_ENV, WORKER_ENV, WORKERS_ENV, role
from service.processes.runner_client import RemoteRunner

log = structlog.get_logger("pinpoint.supervisor")
METRICS_ENV = "PROMETHEUS_MULTIPROC_DIR"
LISTEN_FD = 3  # systemd's first passed descriptor, where cheroot looks when LISTEN_PID is set
BACKOFF_S = (0.5, 1, 2, 4, 8, 16, 30)


def remote_runner(settings: Settings) -> RemoteRunner:
    """An API worker's runner: the model runner's process, at the socket the supervisor gave it."""
    return RemoteRunner(Client(os.environ[RUNNER_ENV], bytes.fromhex(os.environ[SECRET_ENV])), settings)


class Child:
    """One supervised process: how to start it, and how often it had to be restarted."""

    def __init__(self, name: str, command: list[str], env: dict[str, str], pass_fd: int | None = None,
                 cpu: int | None = None):
        self.name, self.command, self.env, self.pass_fd, self.cpu = name, command, env, pass_fd, cpu
        self.process: subprocess.Popen | None = None
        self.restarts = 0
        self.next_start = 0.0
        self.started_at = 0.0

    def start(self) -> None:
        fd, keep = self.pass_fd, ()
        if fd is not None:
            # The child finds its socket at LISTEN_FD (3, the socket-activation convention). Popen closes
            # every descriptor not in pass_fds after preexec_fn has run, so LISTEN_FD is kept too; it must
            # be open here for that (whatever is there is replaced by the dup2 in the child).
            keep = (fd,) if fd == LISTEN_FD else (fd, LISTEN_FD)
            if fd != LISTEN_FD and not _is_open(LISTEN_FD):
                os.dup2(fd, LISTEN_FD, inheritable=False)
        dup = fd is not None and fd != LISTEN_FD
        cpu = self.cpu

        def before_exec() -> None:  # in the child, between fork and exec
            if dup:
                os.dup2(fd, LISTEN_FD)
            if cpu is not None:
                # Before exec, so every thread the worker starts inherits it (pinning after Popen returns
                # can come after an import has started threads of its own).
                try:
                    os.sched_setaffinity(0, {cpu})
                except OSError:
                    pass  # that CPU is no longer ours (a cpuset changed): left to the kernel

        self.process = subprocess.Popen(
            self.command, env=self.env, stdin=subprocess.DEVNULL, pass_fds=keep,
            preexec_fn=before_exec if dup or cpu is not None else None)
        self.started_at = time.monotonic()
        log.info("process_started", process=self.name, pid=self.process.pid,
                 **({"cpu": self.cpu} if self.cpu is not None else {}))

    def signal(self, number: int) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(number)


def worker_cpus(workers: int) -> list[int | None]:
    """The CPU each worker is kept on: the CPUs this process may use, in turn, when there are at least as
    many workers as CPUs (one per core, `workers = "auto"`). Kept on one CPU, a worker keeps its caches and
    is not moved between cores at each wake-up (3 processes' threads take turns on 2 cores): +8–12%
    answers per second at c=8 and c=32 on 2 cores (docs/benchmarks.md). With fewer workers than CPUs
    (or where the system cannot say which CPUs, as on macOS) they are left to the kernel: pinned, they
    would leave CPUs to the runner alone."""
    allowed = allowed_cpus()
    if not allowed or workers < len(allowed):
        return [None] * workers
    return [allowed[i % len(allowed)] for i in range(workers)]


def _is_open(fd: int) -> bool:
    try:
        os.fstat(fd)
    except OSError:
        return False
    return True


class Supervisor(plugins.SimplePlugin):
    def __init__(self, bus, settings: Settings, listener: socket.socket, argv: list[str], run_dir: Path):
        super().__init__(bus)
        self.settings, self.listener = settings, listener
        self.run_dir, self.metrics_dir = run_dir, run_dir / "metrics"
        self.stopping = False
        base = {**os.environ, RUNNER_ENV: str(self.run_dir / "runner.sock"), SECRET_ENV: secrets.token_hex(32),
                METRICS_ENV: str(self.metrics_dir)}
        command = [sys.executable, "-m", "service", *[a for a in argv if a != "--daemonize"]]
        self.runner = Child("runner", command, {**base, ROLE_ENV: "runner"})
        cpus = worker_cpus(settings.workers) if settings.pin_workers else [None] * settings.workers
        self.workers = [Child(f"worker-{i + 1}", command,
                              {**base, ROLE_ENV: "worker", WORKER_ENV: str(i), WORKERS_ENV: str(settings.workers),
                               "LISTEN_PID": "1", "LISTEN_FDS": "1"},
                              pass_fd=listener.fileno(), cpu=cpus[i])
                        for i in range(settings.workers)]
        self.watch = plugins.Monitor(bus, self._check, frequency=0.2, name="supervise")

    def subscribe(self):
        super().subscribe()
        self.watch.subscribe()

    def start(self):
        # After the Daemonizer's fork: the pid the children must have as their parent.
        for child in [self.runner, *self.workers]:
            child.env[SUPERVISOR_ENV] = str(os.getpid())
        self.runner.start()
        for worker in self.workers:
            worker.start()
        log.info("serving", url=f"http://{self.settings.host}:{self.settings.port}/", workers=len(self.workers),
                 runner_pid=self.runner.process.pid, worker_pids=[w.process.pid for w in self.workers])

    start.priority = 75  # after the Daemonizer (65): children belong to the daemon

    def _check(self):
        """Restart whoever died (with backoff), unless we are stopping."""
        if self.stopping:
            return
        for child in [self.runner, *self.workers]:
            code = child.process.poll() if child.process is not None else None
            if code is None:
                continue
            now = time.monotonic()
            if child.next_start == 0.0:
                # A child that ran a while before dying starts again at once; one that keeps dying waits longer.
                steady = now - child.started_at > 60
                child.restarts = 0 if steady else child.restarts + 1
                delay = 0.0 if steady else BACKOFF_S[min(child.restarts - 1, len(BACKOFF_S) - 1)]
                child.next_start = now + delay
                log.error("process_died", process=child.name, pid=child.process.pid, exit_code=code,
                          restart_in_s=delay)
                _count_restart(child.name, child.process.pid)
            if now >= child.next_start:
                child.next_start = 0.0
                child.start()

    def graceful(self):
        """SIGHUP: every process re-reads the settings; the runner re-reads the model repository too."""
        for child in [self.runner, *self.workers]:
            child.signal(signal.SIGHUP)

    def stop(self):
        """Drain the workers (they finish what they hold), then stop the runner."""
        self.stopping = True
        for worker in self.workers:
            worker.signal(signal.SIGTERM)
        limit = self.settings.drain_delay_s + self.settings.drain_timeout_s + 10
        _wait([w.process for w in self.workers if w.process], limit)
        self.runner.signal(signal.SIGTERM)
        # Connections keep arriving until the socket closes: answer them (503) while the runner stops,
        # then once more, then close, so the window in which one could be reset is a few microseconds.
        # Answered connections close once their clients have closed theirs (_close_lingering), meanwhile.
        lingering: list[socket.socket] = []
        answered, deadline = 0, time.monotonic() + 30

        def answer_backlog(listener: socket.socket, within_s: float = 0.1) -> int:
            new = _answer_backlog(listener, within_s)
            lingering.extend(new)
            return len(new)

        while self.runner.process and self.runner.process.poll() is None and time.monotonic() < deadline:
            answered += answer_backlog(self.listener)
            lingering[:] = _close_lingering(lingering, 0.02)  # the loop's pause
        _wait([self.runner.process] if self.runner.process else [], 0)
        answered += answer_backlog(self.listener, within_s=1.0)  # all of it: what is left is reset by close
        self.listener.close()
        for conn in _close_lingering(lingering, 0.3):
            conn.close()
        if answered:
            log.info("backlog_answered", connections=answered, status=503)
        shutil.rmtree(self.run_dir, ignore_errors=True)
        log.info("stopped")

    stop.priority = 40

    def statuses(self) -> list[tuple[str, int | None]]:
        return [(c.name, c.process.pid if c.process else None) for c in [self.runner, *self.workers]]


_UNAVAILABLE = (b'{"error": "the server is shutting down; retry on another replica or shortly", '
                b'"code": "model_unavailable"}')


def _answer_backlog(listener: socket.socket, within_s: float = 0.1) -> list[socket.socket]:
    """Connections that reached the listen backlog after the last worker stopped accepting: answer each
    503 with Connection: close, rather than let them be reset when the socket closes. The answer is sent
    at once, without waiting for the request (a slow client queued ahead must not hold the others up
    until the socket closes on them); what the client still sends is read by the lingering close
    (_close_lingering), which the caller runs after it has closed the listener. Returns when the
    backlog is empty, or after `within_s` while clients keep connecting (the caller has other things to
    watch), with the connections answered."""
    listener.setblocking(False)
    answered: list[socket.socket] = []
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        try:
            conn, _ = listener.accept()
        except (BlockingIOError, OSError):
            break
        answered.append(conn)
        conn.settimeout(0.05)  # the answer fits the socket's buffer; a send never waits on the client
        try:
            head = (f"HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json; charset=utf-8\r\n"
                    f"Content-Length: {len(_UNAVAILABLE)}\r\nRetry-After: 1\r\n"
                    f"X-Request-ID: {secrets.token_hex(16)}\r\n"
                    "Connection: close\r\n\r\n")
            conn.sendall(head.encode() + _UNAVAILABLE)
            conn.shutdown(socket.SHUT_WR)
        except OSError:
            pass
    return answered


def _close_lingering(connections: list[socket.socket], linger_s: float) -> list[socket.socket]:
    """Close each answered connection once its client has closed its side, reading and dropping what it
    still sends meanwhile (a lingering close, as HTTP servers do): a socket closed while its client's
    request is still arriving (a client slower than recv's 50 ms, seen on a busy machine) is reset, and
    the client loses the 503 it was sent. Waits at most `linger_s`; returns those still open."""
    deadline = time.monotonic() + linger_s
    with selectors.DefaultSelector() as waiting:
        for conn in connections:
            conn.setblocking(False)
            waiting.register(conn, selectors.EVENT_READ)
        while waiting.get_map() and (left := deadline - time.monotonic()) > 0:
            for key, _ in waiting.select(left):
                try:
                    if key.fileobj.recv(65536):
                        continue  # more of a request: dropped
                except BlockingIOError:
                    continue
                except OSError:
                    pass
                waiting.unregister(key.fileobj)  # the client closed (or is gone): nothing can be reset
                key.fileobj.close()
        return [key.fileobj for key in waiting.get_map().values()]


def _wait(processes: list[subprocess.Popen], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    for process in processes:
        try:
            process.wait(max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            log.error("process_did_not_stop", pid=process.pid)
            process.kill()
            process.wait()


def _count_restart(name: str, pid: int) -> None:
    from prometheus_client import multiprocess

    from service.http.metrics import restarts

    multiprocess.mark_process_dead(pid)  # its live gauges (requests in flight) stop counting
    restarts().labels(name.split("-")[0]).inc()


def listen(settings: Settings) -> socket.socket:
    """A listening socket set up as cheroot sets up its own (it skips that for a socket it inherits):
    above all TCP_NODELAY, which accepted connections inherit; without it every small answer waits
    ~40 ms for Nagle and the client's delayed ACK."""
    family, kind, proto, _, address = socket.getaddrinfo(settings.host, settings.port, type=socket.SOCK_STREAM,
                                                         flags=socket.AI_PASSIVE)[0]
    listener = socket.socket(family, kind, proto)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    if family == socket.AF_INET6 and settings.host in ("::", "::0", "::0.0.0.0"):
        listener.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)  # dual stack, as cheroot does
    listener.bind(address)
    listener.listen(512)
    listener.set_inheritable(True)
    return listener


def supervise(settings: Settings, daemonize: bool) -> None:
    # Before prometheus-client is first imported (it picks its storage then): every process of this
    # server writes its samples here, new and empty at every start, so no stale counter survives.
    run_dir = Path(tempfile.mkdtemp(prefix="pinpoint-"))
    (run_dir / "metrics").mkdir()
    os.environ[METRICS_ENV] = str(run_dir / "metrics")
    from prometheus_client import values  # may already be imported (with in-memory values): switch it

    values.ValueClass = values.MultiProcessValue()
    listener = listen(settings)  # one for every worker; the supervisor's copy answers 503 once they have stopped
    bus = _bus()
    if daemonize:
        plugins.Daemonizer(bus, stdout=str(settings.log_file), stderr=str(settings.log_file)).subscribe()
        daemon.keep_umask(bus, Path(settings.log_file))
        plugins.PIDFile(bus, str(settings.pidfile)).subscribe()
    supervisor = Supervisor(bus, settings, listener, sys.argv[1:], run_dir)
    supervisor.subscribe()
    from service.http.ready import announce_when_ready

    announce_when_ready(bus, settings, daemonize)
    _signals(bus)
    bus.start()
    bus.block()
    _exit_now()  # "Bus EXITED" is logged (what `pinpoint start` watches for); nothing is left to wait for


def run_runner(settings: Settings, reread_settings) -> None:
    """The model runner: the engine's plugin (models, poller) and the worker hop's server."""
    from service.engine import Engine
    from service.http.metrics import runner_metrics
    from service.http.plugin import EnginePlugin
    from service.processes.runner import serve

    engine = Engine(settings)
    runner_metrics(engine)
    bus = _bus()
    EnginePlugin(bus, engine, reread_settings).subscribe()
    server = serve(engine.runner, os.environ[RUNNER_ENV], bytes.fromhex(os.environ[SECRET_ENV]))
    bus.subscribe("start", lambda: _thread(server.serve_forever), priority=80)
    bus.subscribe("stop", server.close, priority=30)
    follow_supervisor(bus)
    _signals(bus)
    bus.start()
    bus.block()


def _exit_now() -> None:
    import logging

    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


def follow_supervisor(bus) -> None:
    """A runner or worker whose supervisor is gone (SIGKILLed, crashed) stops, gracefully, within a
    second: orphans would otherwise serve on, holding the port, models and memory, until killed by hand."""
    supervisor = int(os.environ[SUPERVISOR_ENV])  # not getppid(): it may have died before we got here

    def check():
        if os.getppid() != supervisor:
            log.error("supervisor_gone", supervisor_pid=supervisor, role=role())
            os.kill(os.getpid(), signal.SIGTERM)  # the bus's own signal handler drains and exits

    plugins.Monitor(bus, check, frequency=1, name="follow-supervisor").subscribe()
    # Once a bus that had started has exited, everything is stopped (the engine wrote what it holds, the
    # HTTP server drained); what is left is joining threads and the interpreter tearing down TensorFlow
    # or ONNX Runtime: seconds that would count against SIGTERM's deadline (drain_timeout_s + 1 s). A
    # bus whose start failed exits as CherryPy has it (status 70).
    started = threading.Event()
    bus.subscribe("start", started.set, priority=100)
    bus.subscribe("exit", lambda: started.is_set() and _exit_now(), priority=100)


def serve_inherited_socket(server) -> None:
    """A worker's HTTP server stops without waiting for the port to be free: the supervisor keeps the
    socket bound, so CherryPy's wait would only time out (and log a traceback) at every shutdown."""

    def stop():
        if server.running:
            server.httpserver.stop()
            server.running = False
            server.bus.log(f"HTTP Server {server.httpserver} shut down")

    stop.priority = 25  # as CherryPy's own: requests finish before the engine stops (40)
    server.unsubscribe()
    server.stop = stop
    server.subscribe()


def _thread(target) -> None:
    import threading

    threading.Thread(target=target, name="pinpoint-ipc-accept", daemon=True).start()


def _bus():
    """CherryPy's bus for a process that serves no HTTP itself: no autoreload (it would restart the
    process whenever a file changes), no config checker, logs through ours."""
    cherrypy.config.update({"engine.autoreload.on": False, "checker.on": False, "log.screen": False,
                            "log.access_file": "", "log.error_file": ""})
    cherrypy.server.unsubscribe()
    return cherrypy.engine


def _signals(bus) -> None:
    if hasattr(bus, "signal_handler"):
        # CherryPy re-executes the whole process on SIGHUP; a reload here is the graceful one instead.
        bus.signal_handler.handlers["SIGHUP"] = bus.graceful
        bus.signal_handler.subscribe()

"""A real PostgreSQL server for tests: Debian's package (`apt-get install postgresql`, as .ci/run does),
a fresh cluster in a temporary directory, on a free port, stopped and removed afterwards. PostgreSQL
refuses to run as root, so under root (CI containers) it runs as the package's `postgres` user."""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

from fixtures import free_port

USER, DATABASE = "pinpoint", "pinpoint"


def binary(name: str) -> str | None:
    """`initdb` and `postgres` live in /usr/lib/postgresql/<major>/bin on Debian, off the PATH."""
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"), key=lambda p: int(p.split("/")[4]))
    return found[-1] if found else shutil.which(name)


def missing() -> str | None:
    """Why PostgreSQL cannot be started here (a skip reason naming the tool), or None."""
    for name in ("initdb", "postgres"):
        if binary(name) is None:
            return f"{name} (PostgreSQL) is not installed: apt-get install postgresql (.ci/run does)"
    if os.geteuid() == 0:
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            return "running as root and there is no postgres user to run PostgreSQL as"
    return None


class Postgres:
    def __init__(self):
        self.directory = Path(tempfile.mkdtemp(prefix="pinpoint-pg-"))
        self.port = free_port()
        self.process: subprocess.Popen | None = None
        self.url = f"postgresql://{USER}@127.0.0.1:{self.port}/{DATABASE}"

    def _as_owner(self, command: list[str]) -> list[str]:
        if os.geteuid() == 0:
            # setpriv execs the command itself (no forked session as su's), so signals reach PostgreSQL.
            return ["setpriv", "--reuid=postgres", "--regid=postgres", "--clear-groups", "--", *command]
        return command

    def start(self) -> Postgres:
        data = self.directory / "data"
        if os.geteuid() == 0:
            account = pwd.getpwnam("postgres")
            os.chown(self.directory, account.pw_uid, account.pw_gid)
        subprocess.run(self._as_owner([binary("initdb"), "-D", str(data), "-U", USER, "--auth=trust", "-E", "UTF8",
                                       "--no-sync"]), check=True, capture_output=True)
        with open(self.directory / "server.log", "wb") as log:  # PostgreSQL writes to its own copy of the descriptor
            self.process = subprocess.Popen(self._as_owner([
                binary("postgres"), "-D", str(data), "-p", str(self.port), "-k", str(self.directory),
                "-c", "listen_addresses=127.0.0.1", "-c", "fsync=off", "-c", "synchronous_commit=off",
                "-c", "full_page_writes=off", "-c", "max_connections=200"]), stdout=log, stderr=subprocess.STDOUT)
        self._wait()
        import psycopg

        with psycopg.connect(f"host=127.0.0.1 port={self.port} user={USER} dbname=postgres", autocommit=True) as db:
            db.execute(f"CREATE DATABASE {DATABASE}")
        return self

    def _wait(self, timeout: float = 30) -> None:
        import psycopg

        deadline = time.monotonic() + timeout
        while True:
            if self.process.poll() is not None:
                raise RuntimeError("PostgreSQL exited:\n" + (self.directory / "server.log").read_text())
            try:
                psycopg.connect(f"host=127.0.0.1 port={self.port} user={USER} dbname=postgres",
                                connect_timeout=2).close()
                return
            except psycopg.OperationalError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)

    def count(self, table: str) -> int:
        import psycopg

        with psycopg.connect(f"host=127.0.0.1 port={self.port} user={USER} dbname={DATABASE}") as db:
            return db.execute(f"SELECT count(*) FROM {table}").fetchone()[0]

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)  # "fast" shutdown: clients still connected are cut off
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        shutil.rmtree(self.directory, ignore_errors=True)

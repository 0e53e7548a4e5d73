"""Run wrk (a C load generator: little CPU of its own) with a Lua script, and read its summary."""

from __future__ import annotations

import dataclasses
import json
import shutil
import subprocess
import tempfile
from pathlib import Path

# The request is built once per connection, from files, so wrk sends the exact bytes a client would.
LUA = r"""
local function read(path)
  local handle = assert(io.open(path, "rb")); local data = handle:read("*all"); handle:close(); return data
end
wrk.method = "{method}"
wrk.path = read("{path_file}")
wrk.body = read("{body_file}")
wrk.headers["Content-Type"] = read("{type_file}")
done = function(summary, latency, requests)
  local out = string.format(
    '{{"requests": %d, "seconds": %f, "non2xx": %d, "socket_errors": %d, "p50": %f, "p90": %f, "p99": %f, "mean": %f}}',
    summary.requests, summary.duration / 1e6, summary.errors.status,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout,
    latency:percentile(50) / 1000, latency:percentile(90) / 1000, latency:percentile(99) / 1000,
    latency.mean / 1000)
  io.write("PINPOINT-RESULT " .. out .. "\n")
end
"""


@dataclasses.dataclass
class Result:
    requests: int
    seconds: float
    non2xx: int
    socket_errors: int
    p50: float  # milliseconds
    p90: float
    p99: float
    mean: float

    @property
    def throughput(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0


def available() -> bool:
    return shutil.which("wrk") is not None


def version() -> str:
    """wrk's own first line ("wrk 4.1.0 [epoll] ..."), or "" where it is not installed."""
    if not available():
        return ""
    lines = subprocess.run(["wrk", "-v"], capture_output=True, text=True).stdout.splitlines()
    return lines[0].strip() if lines else ""


def run(url: str, path: str, body: bytes, content_type: str, connections: int, seconds: float,
        threads: int = 1, method: str = "POST") -> Result:
    with tempfile.TemporaryDirectory() as tmp:
        files = {"path_file": Path(tmp) / "path", "body_file": Path(tmp) / "body", "type_file": Path(tmp) / "type"}
        files["path_file"].write_text(path)
        files["body_file"].write_bytes(body)
        files["type_file"].write_text(content_type)
        script = Path(tmp) / "request.lua"
        script.write_text(LUA.format(method=method, **{k: str(v) for k, v in files.items()}))
        done = subprocess.run(
            ["wrk", f"-t{min(threads, connections)}", f"-c{connections}", f"-d{max(1, round(seconds))}s",
             "--timeout", "10s", "-s", str(script), url],
            capture_output=True, text=True, timeout=seconds + 60)
    for line in done.stdout.splitlines():
        if line.startswith("PINPOINT-RESULT "):
            return Result(**json.loads(line.removeprefix("PINPOINT-RESULT ")))
    raise RuntimeError(f"wrk printed no result:\n{done.stdout}\n{done.stderr}")

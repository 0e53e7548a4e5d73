"""Where a loaded Pinpoint spends its time, per process: py-spy samples each API worker and the model
runner while wrk sends the multipart upload of one point, and the top entries of each are printed.

`python -m service.tools.bench.profile [--seconds 10] [--connections 32] [--image 640x360|12mp]`

py-spy (from .bench-venv: `python -m service.tools.bench.peers --setup` installs it) runs `record --format
raw` on every process but the supervisor (which only watches), for the same seconds, while wrk loads the
server; it needs ptrace (root, or CAP_SYS_PTRACE). Its raw output, one line per distinct stack and its
sample count, is kept beside the printout (--out) and summed here the way `py-spy top` does: "own" is the
share of samples a function was the innermost frame of, "total" the share it was anywhere on the stack.
Idle threads (waiting in a syscall py-spy knows as a wait) are left out unless --idle; a wait it does not
know (a socket read that blocks, say) counts as time in the function that waits: read it as rough.
"""

from __future__ import annotations

import argparse
import collections
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

from service.tools.bench import inputs, wrk
from service.tools.bench.peers import venv
from service.tools.bench.server import ServerProcess

IMAGES = {"640x360": (640, 360), "12mp": (4000, 3000)}


def read_raw(path: Path) -> tuple[collections.Counter, collections.Counter, int]:
    """(own samples per function, total samples per function, samples) from py-spy's raw output."""
    own, total, samples = collections.Counter(), collections.Counter(), 0
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        frames = stack.split(";")
        samples += int(count)
        own[frames[-1]] += int(count)
        for frame in set(frames):  # once per sample however deep the recursion
            total[frame] += int(count)
    return own, total, samples


# Frames on every thread's stack, which say nothing about where the time goes.
PLUMBING = ("(threading.py)",)


def top(path: Path, count: int, rate: int) -> list[str]:
    own, total, samples = read_raw(path)
    if not samples:
        return ["  no samples (the process was idle, or py-spy could not attach)"]
    lines = [f"  {samples} samples ({samples / rate:.1f} thread-seconds not idle)",
             f"  {'own':>6} {'total':>6}  function (file)"]
    for frame, n in own.most_common(count):
        lines.append(f"  {n / samples:6.1%} {total[frame] / samples:6.1%}  {frame}")
    lines.append("  by total (anywhere on the stack; threading's own frames left out):")
    for frame, n in [(f, n) for f, n in total.most_common() if not f.endswith(PLUMBING)][:count]:
        lines.append(f"  {own[frame] / samples:6.1%} {n / samples:6.1%}  {frame}")
    return lines


def profile(work: Path, out: Path, image: str, connections: int, seconds: float, rate: int, idle: bool,
            env: dict[str, str], gil: bool = False) -> dict[str, Path]:
    """Sample every worker and the runner of a server under wrk load; {"role pid": raw file}. `gil`: only
    the thread holding the GIL is sampled (the interpreter's own time, no waits; native code that
    releases the GIL, such as decoding or ONNX Runtime, is then missing)."""
    data = inputs.photo(IMAGES[image])
    request = inputs.request("multipart", data, f"{image}.jpg", IMAGES[image], 1)
    spy = venv.tool("py-spy")
    if not spy.exists():
        raise RuntimeError(f"no py-spy in {venv.VENV} (python -m service.tools.bench.peers --setup)")
    with ServerProcess(work, env, []) as server:
        wrk.run(server.url, *request, connections, 2)  # warm every worker
        roles = {pid: role for pid, role in server.roles().items() if role != "supervisor"}
        load = threading.Thread(target=wrk.run, args=(server.url, *request, connections, seconds + 2))
        load.start()
        recorders, files = [], {}
        for pid, role in sorted(roles.items(), key=lambda item: item[1]):
            path = out / f"{role}-{pid}.raw.txt"
            files[f"{role} {pid}"] = path
            command = [str(spy), "record", "--pid", str(pid), "--duration", str(round(seconds)), "--rate", str(rate),
                       "--format", "raw", "--output", str(path), "--nolineno", "--nonblocking",
                       *(["--idle"] if idle else []), *(["--gil"] if gil else [])]
            recorders.append(subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE))
        for recorder in recorders:
            _, errors = recorder.communicate(timeout=seconds + 60)
            if recorder.returncode:
                print(f"py-spy failed ({recorder.returncode}): {errors.decode(errors='replace')[-500:]}",
                      file=sys.stderr)
        load.join()
    return files


def section(work: Path, seconds: float = 10.0, connections: int = 32, image: str = "640x360", rate: int = 200,
            count: int = 12) -> list[str]:
    """The profile as a section of docs/benchmarks.md (for the main bench)."""
    out = work / "profile"
    out.mkdir(exist_ok=True)
    files = profile(work, out, image, connections, seconds, rate, False, {})
    lines = ["## Where the time goes (py-spy)", "",
             f"py-spy `record --format raw`, {seconds:g} s at {rate} Hz on each process while wrk sends the {image} "
             f"upload of one point at c={connections}. own: the innermost frame; total: anywhere on the stack. Idle "
             "threads are left out, but a wait py-spy does not know as one counts as time in the waiting function.",
             ""]
    for name, path in files.items():
        lines += [f"{name}:", "", "```", *(top(path, count, rate) if path.exists() else ["no output"]), "```", ""]
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m service.tools.bench.profile", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=10.0, help="seconds of sampling under load")
    parser.add_argument("--connections", type=int, default=32, help="wrk's connections")
    parser.add_argument("--image", choices=sorted(IMAGES), default="640x360")
    parser.add_argument("--rate", type=int, default=200, help="samples per second per process")
    parser.add_argument("--top", type=int, default=15, help="entries per process")
    parser.add_argument("--idle", action="store_true", help="count idle threads' samples too")
    parser.add_argument("--gil", action="store_true",
                        help="only the thread holding the GIL: where the interpreter's time goes, waits excluded")
    parser.add_argument("--workers", help="PINPOINT_WORKERS for the server (default: its own setting)")
    parser.add_argument("--out", type=Path, help="keep py-spy's raw files in this directory")
    args = parser.parse_args(argv)
    if not wrk.available():
        print("the profile needs wrk (Debian package `wrk`)", file=sys.stderr)
        return 2
    env = {"PINPOINT_WORKERS": args.workers} if args.workers else {}
    with tempfile.TemporaryDirectory(prefix="pinpoint-profile-") as tmp:
        out = args.out or Path(tmp)
        out.mkdir(parents=True, exist_ok=True)
        files = profile(Path(tmp), out, args.image, args.connections, args.seconds, args.rate, args.idle, env,
                        args.gil)
        print(f"py-spy, {args.seconds:g} s at {args.rate} Hz, {args.image} upload of one point, "
              f"wrk c={args.connections}"
              f"{', idle threads included' if args.idle else ''}{', GIL holder only' if args.gil else ''}:")
        for name, path in files.items():
            print(f"\n{name}:")
            print("\n".join(top(path, args.top, args.rate) if path.exists() else ["  no output"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())

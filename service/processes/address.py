"""Where the server listens: checked before anything starts (the host resolves, the port is free, and
if not, who holds it), the URL a client on this machine uses, and what a process listens on.

No CherryPy and no TensorFlow here: `pinpoint serve` and `pinpoint start` refuse a bad address in
a fraction of a second. Finding who holds a port reads /proc (Linux), as the daemon's pidfile checks do
(service/processes/pidfile.py).
"""

from __future__ import annotations

import errno
import ipaddress
import os
import socket
from pathlib import Path

from service.processes.pidfile import running_pid

WILDCARDS = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}


class AddressError(Exception):
    """The server cannot listen where it is told to; the message says why and what to do."""


def bracketed(host: str) -> str:
    """A host as it goes in a URL: IPv6 literals in brackets."""
    try:
        return f"[{host}]" if ipaddress.ip_address(host).version == 6 else host
    except ValueError:
        return host  # a name


def display(host: str, port: int) -> str:
    return f"{bracketed(host)}:{port}"


def local_url(host: str, port: int) -> str:
    """The URL to reach a server bound to host:port from this machine (a wildcard host: loopback)."""
    return f"http://{bracketed(WILDCARDS.get(host, host))}:{port}"


def check(host: str, port: int, pidfile: Path | None = None) -> None:
    """Refuse plainly, before TensorFlow loads, an address the server could not listen on: a host that
    does not resolve or is not this machine's, a port that is taken (saying who holds it) or needs root."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
    except socket.gaierror as error:
        raise AddressError(f"host: cannot resolve {host!r} ({error.strerror}); give an address such as "
                           "127.0.0.1, 0.0.0.0 or ::, or a name this machine resolves") from None
    with socket.socket(family, kind, proto) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as cheroot binds
        try:
            probe.bind(address)
        except OSError as error:
            where = f"cannot listen on {display(host, port)}"
            if error.errno == errno.EADDRINUSE:
                raise AddressError(f"{where}: the address is in use; {who_holds(port, pidfile)}") from None
            if error.errno == errno.EACCES:
                raise AddressError(f"{where}: permission denied (ports below 1024 need root or "
                                   "CAP_NET_BIND_SERVICE); choose another with --port") from None
            if error.errno == errno.EADDRNOTAVAIL:
                raise AddressError(f"{where}: {host} is not an address of this machine; choose one with "
                                   "--host (0.0.0.0 or :: for every interface)") from None
            raise AddressError(f"{where}: {error.strerror}") from None


def who_holds(port: int, pidfile: Path | None) -> str:
    """The hint for a taken port: the Pinpoint daemon of this pidfile, another process, or unknown."""
    holder = holder_of(port)
    daemon = running_pid(pidfile) if pidfile is not None else None
    if daemon is not None and holder in (None, daemon):
        return (f"the Pinpoint daemon (pid {daemon}, {pidfile}) listens there: `pinpoint status` shows it, "
                "`pinpoint stop` stops it; or choose another port with --port")
    if holder is not None:
        return (f"process {holder} ({command_of(holder)}) listens there; stop it or choose another port "
                "with --port")
    return "another process listens there; choose another port with --port"


# ---- listening sockets, from /proc ----

def tcp_sockets(proc_net: str = "/proc/net"):
    """(inode, local address, local port, state) of every TCP socket in this network namespace, as the
    kernel lists them (state "0A": listening, "01": established)."""
    for table in (f"{proc_net}/tcp", f"{proc_net}/tcp6"):
        try:
            rows = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for row in rows:
            fields = row.split()
            if len(fields) < 10:
                continue
            hex_address, hex_port = fields[1].split(":")
            raw = bytes.fromhex(hex_address)
            # The kernel prints each 32-bit word in host (little-endian) order.
            raw = b"".join(raw[i:i + 4][::-1] for i in range(0, len(raw), 4))
            yield int(fields[9]), str(ipaddress.ip_address(raw)), int(hex_port, 16), fields[3]


def _listening_inodes() -> dict[int, tuple[str, int]]:
    """inode -> (address, port) of every listening TCP socket in this network namespace."""
    return {inode: (address, port) for inode, address, port, state in tcp_sockets() if state == "0A"}


def socket_inodes(pid: int) -> set[int]:
    inodes = set()
    try:
        for fd in os.scandir(f"/proc/{pid}/fd"):
            try:
                target = os.readlink(fd.path)
            except OSError:
                continue
            if target.startswith("socket:["):
                inodes.add(int(target[8:-1]))
    except OSError:
        pass
    return inodes


def listening_on(pid: int) -> list[tuple[str, int]]:
    """The (address, port) pairs process `pid` listens on (empty when /proc does not tell)."""
    listening = _listening_inodes()
    return sorted({listening[inode] for inode in socket_inodes(pid) if inode in listening})


def holder_of(port: int) -> int | None:
    """The pid of a process listening on `port`, when /proc shows one this user may see."""
    inodes = {inode for inode, (_, bound) in _listening_inodes().items() if bound == port}
    if not inodes:
        return None
    for entry in os.scandir("/proc"):
        if entry.name.isdigit() and socket_inodes(int(entry.name)) & inodes:
            return int(entry.name)
    return None


def command_of(pid: int) -> str:
    try:
        words = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return "?"
    words = [word.decode(errors="replace") for word in words if word]
    for i, word in enumerate(words):  # how the user ran it: `pinpoint serve`, not `python -m service serve`
        if word == "service" and i and words[i - 1] == "-m" or word.rsplit("/", 1)[-1] == "pinpoint":
            words = ["pinpoint", *words[i + 1:]]
            break
    text = " ".join(" ".join(words).split())
    return text if len(text) <= 80 else text[:77] + "..."

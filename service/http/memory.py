"""Memory: glibc keeps freed heap unless told otherwise, so a worker's RSS would stay at its peak after
an upload storm. Large allocations are mapped and unmapped instead, and the heap is trimmed after a
large body (service/http/connection.py) and once more when the storm is over (service/http/server.py).
"""

from __future__ import annotations

import ctypes
import ctypes.util

_libc = None


def return_large_allocations() -> None:
    """Pin glibc's mmap threshold at 256 KB: buffers that large (bodies, decoded images) are mapped and
    unmapped, rather than left in a heap that only grows (the threshold otherwise rises to 32 MB)."""
    global _libc
    try:
        _libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        _libc.mallopt(-3, 256 * 1024)  # M_MMAP_THRESHOLD
        _libc.mallopt(-1, 1 << 20)  # M_TRIM_THRESHOLD
        _libc.mallopt(-8, 4)  # M_ARENA_MAX: fewer per-thread heaps, less memory stranded between them
    except (OSError, AttributeError):
        _libc = None  # not glibc: nothing to tune


def trim() -> None:
    if _libc is not None:
        try:
            _libc.malloc_trim(0)
        except AttributeError:
            pass

"""Memory: glibc keeps freed heap unless told otherwise, so a worker's RSS would stay at its peak after
an upload storm. Large allocations are mapped and unmapped instead, and the heap is trimmed after a
large body (service/http/connection.py) and once more when the storm is over (service/http/server.py).
"""

from __future__ import annotations

import ctypes
import ctypes.util

_libc = None


MMAP_THRESHOLD = 4 << 20
TRIM_THRESHOLD = 4 << 20


def return_large_allocations() -> None:
    """Pin glibc's mmap threshold at MMAP_THRESHOLD (4 MB): buffers that large (big bodies, decoded photos)
    are mapped and unmapped, rather than left in a heap that only grows (the threshold otherwise rises to
    32 MB). Not lower: a mapping costs a page fault per 4 KB page each time it is touched, and at 256 KB
    every decoded 640x360 image (675 KB, and its array copy) was mapped afresh per request; below 4 MB
    the heap reuses them. For the same reason free memory at the heap's top is handed back by itself only
    past TRIM_THRESHOLD (4 MB; at 1 MB a freed image at the top was returned and faulted in again by the
    next request). A loaded API worker took 226 page faults per request with both at their old values,
    106 with this mmap threshold, none with both (perf stat; the fault path was ~8% of its CPU,
    docs/profile-notes.md). After a large body the heap is trimmed whole anyway (trim())."""
    global _libc
    try:
        _libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        _libc.mallopt(-3, MMAP_THRESHOLD)  # M_MMAP_THRESHOLD
        _libc.mallopt(-1, TRIM_THRESHOLD)  # M_TRIM_THRESHOLD
        _libc.mallopt(-8, 4)  # M_ARENA_MAX: fewer per-thread heaps, less memory stranded between them
    except (OSError, AttributeError):
        _libc = None  # not glibc: nothing to tune


def trim() -> None:
    if _libc is not None:
        try:
            _libc.malloc_trim(0)
        except AttributeError:
            pass

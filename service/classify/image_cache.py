"""Decoded images of server-side files (`path`, `image_id`), kept so many points cost one decode.

Keyed by the file's identity (device, inode, size, modification time) and by the crops asked for
(they decide the decode scale), so a replaced file is never served stale. Bounded in bytes of
decoded pixels; the least recently used go first.
"""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from collections.abc import Hashable

from service.classify.imaging import DecodedImage


def file_identity(stat: os.stat_result) -> tuple:
    return stat.st_dev, stat.st_ino, stat.st_size, stat.st_mtime_ns


class DecodedCache:
    def __init__(self, max_bytes: int):
        self.max_bytes = max_bytes
        self._entries: OrderedDict[Hashable, DecodedImage] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()

    def get(self, key: Hashable) -> DecodedImage | None:
        with self._lock:
            image = self._entries.get(key)
            if image is not None:
                self._entries.move_to_end(key)
            return image

    def put(self, key: Hashable, image: DecodedImage) -> None:
        if image.nbytes > self.max_bytes:
            return  # larger than the whole cache: keeping it would only evict everything else
        with self._lock:
            previous = self._entries.pop(key, None)
            if previous is not None:
                self._bytes -= previous.nbytes
            self._entries[key] = image
            self._bytes += image.nbytes
            while self._bytes > self.max_bytes:
                _, evicted = self._entries.popitem(last=False)
                self._bytes -= evicted.nbytes

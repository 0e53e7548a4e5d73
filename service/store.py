"""Stored images for the two-step flow: upload once (POST /v1/images), classify by image_id later.

Each image is one file named by its id in the upload directory, which several replicas may share.
Ids are random (144 bits) and checked against a strict pattern before they touch the filesystem, so
an id never becomes a path by itself. The directory is bounded: images expire after the retention
period, and the oldest are removed when the total passes the size cap.
"""

from __future__ import annotations

import os
import re
import secrets
import tempfile
import threading
import time
from pathlib import Path

import structlog

from service.errors import NotFound

log = structlog.get_logger("pinpoint.store")
ID_PATTERN = re.compile(r"^[A-Za-z0-9_-]{24}$")


class ImageStore:
    def __init__(self, directory: Path, max_total_bytes: int, retention_s: float):
        self.directory = directory
        self.max_total_bytes = max_total_bytes
        self.retention_s = retention_s
        self._lock = threading.Lock()

    def put(self, data: bytes) -> str:
        self.directory.mkdir(parents=True, exist_ok=True)
        image_id = secrets.token_urlsafe(18)
        # Write then rename, so a reader (on any replica) never sees half a file.
        fd, temporary = tempfile.mkstemp(dir=self.directory, prefix=".upload-")
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
            os.replace(temporary, self.directory / image_id)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise
        self.sweep()
        return image_id

    def path(self, image_id: str) -> Path:
        """The file of a stored, unexpired image (NotFound otherwise)."""
        path = self._path(image_id)
        try:
            if time.time() - path.stat().st_mtime > self.retention_s:
                path.unlink(missing_ok=True)
                raise FileNotFoundError
        except FileNotFoundError:
            raise NotFound(f"no stored image {image_id!r}") from None
        return path

    def delete(self, image_id: str) -> None:
        try:
            self._path(image_id).unlink()
        except FileNotFoundError:
            raise NotFound(f"no stored image {image_id!r}") from None

    def sweep(self) -> int:
        """Remove expired images, then the oldest ones while over the size cap. Returns how many went."""
        with self._lock:
            try:
                entries = [(entry.stat().st_mtime, entry.stat().st_size, Path(entry.path))
                           for entry in os.scandir(self.directory)
                           if entry.is_file() and ID_PATTERN.match(entry.name)]
            except FileNotFoundError:
                return 0
            entries.sort()
            now, removed = time.time(), 0
            total = sum(size for _, size, _ in entries)
            for mtime, size, path in entries:
                if now - mtime <= self.retention_s and total <= self.max_total_bytes:
                    break
                path.unlink(missing_ok=True)
                total -= size
                removed += 1
            if removed:
                log.info("stored_images_removed", count=removed, bytes_kept=total)
            return removed

    def _path(self, image_id: str) -> Path:
        if not isinstance(image_id, str) or not ID_PATTERN.match(image_id):
            raise NotFound("no stored image with that id")
        return self.directory / image_id

"""Stored images for the two-step flow: upload once (POST /v1/images), classify by image_id later.

Each image is one file named by its id in the upload directory, which several replicas may share.
Ids are random (144 bits) and checked against a strict pattern before they touch the filesystem, so
an id never becomes a path by itself. The directory is bounded: images expire after the retention
period, and the oldest are removed when the total passes the size cap.

With API keys, an image belongs to the key that stored it: it is kept in that key's own directory
(`key-<digest of the key's name>/<id>`), so another key looking for the same id finds nothing there, the
same 404 as for an id that never existed. Images stored without a key (auth off) are at the top level
and belong to no key: any caller finds them.

A full disk (ENOSPC, EDQUOT) is InsufficientStorage (507), not an internal error; the next upload tries
again, so storing recovers as soon as there is room.
"""

from __future__ import annotations

import errno
import hashlib
import os
import re
import secrets
import tempfile
import threading
import time
from pathlib import Path

import structlog

from service.errors import NotFound, PinpointError

log = structlog.get_logger("pinpoint.store")
ID_PATTERN = re.compile(r"^[A-Za-z0-9_-]{24}$")
OWNER_PATTERN = re.compile(r"^key-[0-9a-f]{32}$")
NO_SPACE = (errno.ENOSPC, errno.EDQUOT)


class InsufficientStorage(PinpointError):
    code = "insufficient_storage"


def owner_directory(owner: str | None) -> str | None:
    """The directory name of an API key's images (its name's digest: any name, never a path)."""
    return None if owner is None else "key-" + hashlib.sha256(owner.encode("utf-8", "surrogatepass")).hexdigest()[:32]


class ImageStore:
    def __init__(self, directory: Path, max_total_bytes: int, retention_s: float):
        self.directory = directory
        self.max_total_bytes = max_total_bytes
        self.retention_s = retention_s
        self._lock = threading.Lock()

    def put(self, data: bytes, owner: str | None = None) -> str:
        """Store the image for `owner` (an API key's name; None without keys); returns its new id."""
        image_id = secrets.token_urlsafe(18)
        folder = self._folder(owner)
        temporary = None
        try:
            folder.mkdir(parents=True, exist_ok=True)
            # Write then rename, so a reader (on any replica) never sees half a file.
            fd, temporary = tempfile.mkstemp(dir=folder, prefix=".upload-")
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
            os.replace(temporary, folder / image_id)
        except OSError as error:
            if temporary is not None:
                Path(temporary).unlink(missing_ok=True)
            if error.errno in NO_SPACE:
                log.error("stored_image_no_space", directory=str(self.directory), bytes=len(data))
                raise InsufficientStorage("the server has no room to store the image now; try again later, "
                                          "or send the image with each classify request", retry_after=30) from None
            raise
        except BaseException:
            if temporary is not None:
                Path(temporary).unlink(missing_ok=True)
            raise
        self.sweep()
        return image_id

    def path(self, image_id: str, owner: str | None = None) -> Path:
        """The file of a stored, unexpired image of `owner` (NotFound otherwise: another key's image too)."""
        path = self._path(image_id, owner)
        try:
            if time.time() - path.stat().st_mtime > self.retention_s:
                path.unlink(missing_ok=True)
                raise FileNotFoundError
        except FileNotFoundError:
            raise NotFound(f"no stored image {image_id!r}") from None
        return path

    def delete(self, image_id: str, owner: str | None = None) -> None:
        try:
            self._path(image_id, owner).unlink()
        except FileNotFoundError:
            raise NotFound(f"no stored image {image_id!r}") from None

    def sweep(self) -> int:
        """Remove expired images, then the oldest ones while over the size cap. Returns how many went."""
        with self._lock:
            try:
                folders = [self.directory] + [
                    Path(entry.path) for entry in os.scandir(self.directory)
                    if entry.is_dir(follow_symlinks=False) and OWNER_PATTERN.match(entry.name)]
            except FileNotFoundError:
                return 0
            entries = []
            for folder in folders:
                try:
                    entries += [(entry.stat().st_mtime, entry.stat().st_size, Path(entry.path))
                                for entry in os.scandir(folder)
                                if entry.is_file(follow_symlinks=False) and ID_PATTERN.match(entry.name)]
                except FileNotFoundError:
                    continue
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

    def _path(self, image_id: str, owner: str | None = None) -> Path:
        if not isinstance(image_id, str) or not ID_PATTERN.match(image_id):
            raise NotFound("no stored image with that id")
        own = self._folder(owner) / image_id
        if owner is not None and not own.exists() and (self.directory / image_id).exists():
            return self.directory / image_id  # stored while auth was off: no key's, so anyone's
        return own

    def _folder(self, owner: str | None) -> Path:
        name = owner_directory(owner)
        return self.directory if name is None else self.directory / name

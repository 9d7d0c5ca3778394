"""Atomic writes: a reader sees the old file or folder, or the new one, never half of one.

Model folders are hot-reloaded by running services and dataset folders are read by other
jobs, so everything sessionrec saves is written under a temporary name beside its
destination, flushed to disk, then renamed into place.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def fsync_file(path: Path) -> None:
    """Flush a written file's data to disk (a rename alone may outlive unwritten data)."""
    with path.open("rb") as handle:
        os.fsync(handle.fileno())


@contextmanager
def atomic_file(target: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path to write ``target``'s content to; on success, rename it over.

    The temporary file is created empty with normal permissions (not mkstemp's 0600), so
    the final file has the same mode as one written directly.
    """
    final = Path(target)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = final.parent / f".{final.name}.{uuid.uuid4().hex[:12]}.tmp"
    os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
    try:
        yield tmp
        fsync_file(tmp)
        os.replace(tmp, final)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


@contextmanager
def atomic_folder(target: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield an empty temporary folder; on success, it replaces ``target`` in one rename.

    Every file written into it is fsynced first. An existing ``target`` is moved aside,
    then deleted once the new folder is in place; the caller decides beforehand whether
    replacing it is allowed.
    """
    final = Path(target)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = final.parent / f".{final.name}.tmp-{uuid.uuid4().hex[:8]}"
    tmp.mkdir()
    try:
        yield tmp
        for path in tmp.rglob("*"):
            if path.is_file():
                fsync_file(path)
        old = None
        if final.exists():
            old = final.parent / f".{final.name}.old-{uuid.uuid4().hex[:8]}"
            os.replace(final, old)
        os.replace(tmp, final)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise

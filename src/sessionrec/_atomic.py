"""Atomic writes: a reader sees the old file or folder, or the new one, never half of one.

Model folders are hot-reloaded by running services and dataset folders are read by other
jobs, so everything sessionrec saves is written under a temporary name beside its
destination, flushed to disk, then renamed into place.

A destination that cannot be written (its parent is a file, a read-only or virtual file
system) is a :class:`~sessionrec._errors.ConfigError` naming the path, not an ``OSError``:
:func:`check_output` finds it before any work starts (the command line runs it on every
output option), and the two context managers raise the same error if it happens anyway.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sessionrec._errors import ConfigError


def output_error(target: str | os.PathLike[str], exc: OSError) -> ConfigError:
    """The error for an output that cannot be written: the path and the system's reason."""
    reason = exc.strerror or type(exc).__name__
    where = f" ({exc.filename})" if exc.filename and str(exc.filename) != str(target) else ""
    return ConfigError(f"cannot write {target}: {reason}{where}")


def _nearest_existing(path: Path) -> Path:
    """``path`` or its closest ancestor that exists (``.`` for a relative path)."""
    for candidate in (path, *path.parents):
        if os.path.lexists(candidate):
            return candidate
    return Path(".")


def check_output(target: str | os.PathLike[str], *, folder: bool) -> None:
    """Raise :class:`ConfigError` when ``target`` (a file, or a ``folder``) cannot be written.

    Checked without creating anything: the target must not be a folder where a file goes
    (or a file where a folder goes), the closest existing ancestor of its parent must be a
    folder, and a probe file must be creatable (and is removed) there, which also catches
    read-only and virtual file systems such as ``/proc``.
    """
    final = Path(target)
    if str(target) == "":
        raise ConfigError("the output path is empty")
    if final.is_dir() and not folder:
        raise ConfigError(f"cannot write {final}: it is a folder, a file is expected")
    if final.exists() and folder and not final.is_dir():
        raise ConfigError(f"cannot write {final}: it is a file, a folder is expected")
    anchor = _nearest_existing(final.parent)
    if not anchor.is_dir():
        raise ConfigError(f"cannot write {final}: {anchor} is a file, not a folder")
    probe = anchor / f".sessionrec-probe-{uuid.uuid4().hex[:12]}"
    try:
        os.close(os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise ConfigError(
            f"cannot write {final}: cannot create files in {anchor} ({reason})"
        ) from None
    probe.unlink(missing_ok=True)


def _make_parent(final: Path) -> None:
    try:
        final.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise output_error(final, exc) from None


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
    _make_parent(final)
    tmp = final.parent / f".{final.name}.{uuid.uuid4().hex[:12]}.tmp"
    try:
        os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
    except OSError as exc:
        raise output_error(final, exc) from None
    try:
        yield tmp
        fsync_file(tmp)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    try:
        os.replace(tmp, final)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise output_error(final, exc) from None


@contextmanager
def atomic_folder(target: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield an empty temporary folder; on success, it replaces ``target`` in one rename.

    Every file written into it is fsynced first. An existing ``target`` is moved aside,
    then deleted once the new folder is in place; the caller decides beforehand whether
    replacing it is allowed.
    """
    final = Path(target)
    _make_parent(final)
    tmp = final.parent / f".{final.name}.tmp-{uuid.uuid4().hex[:8]}"
    try:
        tmp.mkdir()
    except OSError as exc:
        raise output_error(final, exc) from None
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

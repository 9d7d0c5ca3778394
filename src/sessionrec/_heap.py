"""Keep freed memory in the process heap while a loop allocates large arrays over and over.

Why: glibc's malloc serves every request above its mmap threshold (at most 32 MiB) with a
fresh ``mmap`` and returns it to the kernel on ``free``. Each page of a new mapping then costs
a page fault and a zero-fill on first touch. Full-softmax training and full-ranking
evaluation allocate several ``[batch, n_items]`` score arrays per step (88 MiB each for
Diginetica's 43,097 items at batch 512). On this project's machines the page faults cost
STAMP (one thread) 78 s of system time beside 122 s of user time (BENCHMARKS.md, "Host
memory reuse").

:func:`reuse_freed_memory` tells glibc to serve large blocks from the heap and not to trim
it while the block runs, so a freed score array is handed out again to the next step
without a page fault; on the way out it returns the free heap to the kernel
(``malloc_trim``). Memory freed inside the block below a still-live allocation stays in the
heap as a free chunk (its pages handed back by ``malloc_trim``), so a large request after
the block may still be served from there, without a new mapping. Elsewhere (musl, macOS,
Windows) it does nothing.
``SESSIONREC_REUSE_FREED_MEMORY=0`` turns it off (for A/B measurements).

What stays after the first block, for the rest of the process: by default glibc moves its
mmap threshold up to the size of each mapped block freed (up to 32 MiB; the trim threshold
follows at twice that), so a loop of blocks up to 32 MiB soon runs from the heap. The first
``mallopt`` of a threshold turns that dynamic rule off for good, and glibc has no call to
turn it back on. So the block does not put back the static defaults (a 128 KiB mmap
threshold would make every later block above 128 KiB a fresh mapping); it leaves the
thresholds where the dynamic rule tops out: mmap threshold 32 MiB, trim threshold 64 MiB.
Blocks up to 32 MiB keep coming from the heap (already the first one, where a fresh process
maps that one), larger blocks are fresh mappings again, and up to 64 MiB of free heap top
may stay resident between the blocks.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import platform
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

# mallopt parameter numbers from glibc's <malloc.h>
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
_M_MMAP_MAX = -4
# glibc's default number of mappings, restored on the way out
_DEFAULT_MMAP_MAX = 65536
# Where glibc's dynamic mmap threshold tops out (DEFAULT_MMAP_THRESHOLD_MAX: 32 MiB on 64-bit,
# 512 KiB on 32-bit) and the trim threshold it sets beside it: left in place on the way out,
# since mallopt cannot turn the dynamic rule back on.
_DYNAMIC_MMAP_THRESHOLD_MAX = 32 * 2**20 if ctypes.sizeof(ctypes.c_void_p) == 8 else 512 * 1024
_DYNAMIC_TRIM_THRESHOLD_MAX = 2 * _DYNAMIC_MMAP_THRESHOLD_MAX
# the largest value mallopt accepts (an int): free heap above 2 GiB is still trimmed
_NO_TRIM = 2**31 - 1

_lock = threading.Lock()
_depth = 0
_libc: Any = None


def _glibc() -> Any:
    """The C library when it is glibc with ``mallopt`` and ``malloc_trim``, else None."""
    global _libc
    if _libc is None:
        _libc = False
        if platform.system() == "Linux" and platform.libc_ver()[0] == "glibc":
            try:
                lib = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
            except OSError:
                return None
            if hasattr(lib, "mallopt") and hasattr(lib, "malloc_trim"):
                lib.mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
                lib.malloc_trim.argtypes = [ctypes.c_size_t]
                _libc = lib
    return _libc or None


def enabled() -> bool:
    """Whether :func:`reuse_freed_memory` changes anything in this process."""
    return os.environ.get("SESSIONREC_REUSE_FREED_MEMORY", "1") != "0" and _glibc() is not None


@contextmanager
def reuse_freed_memory() -> Iterator[None]:
    """Serve large blocks from the heap and keep freed ones for reuse inside the block.

    Nested and concurrent blocks share one setting: it ends with the last block, which
    leaves the thresholds where glibc's dynamic rule tops out (see the module docstring).
    """
    global _depth
    libc = _glibc() if enabled() else None
    if libc is None:
        yield
        return
    with _lock:
        if _depth == 0:
            libc.mallopt(_M_MMAP_MAX, 0)
            libc.mallopt(_M_TRIM_THRESHOLD, _NO_TRIM)
        _depth += 1
    try:
        yield
    finally:
        with _lock:
            _depth -= 1
            if _depth == 0:
                libc.mallopt(_M_MMAP_MAX, _DEFAULT_MMAP_MAX)
                libc.mallopt(_M_MMAP_THRESHOLD, _DYNAMIC_MMAP_THRESHOLD_MAX)
                libc.mallopt(_M_TRIM_THRESHOLD, _DYNAMIC_TRIM_THRESHOLD_MAX)
                libc.malloc_trim(0)

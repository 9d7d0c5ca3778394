"""reuse_freed_memory: large blocks freed inside it are reused without new page faults.

Page faults are counted with getrusage (minor faults), not timed: a 64 MiB block touched
once is 16,384 pages, so the counts differ by orders of magnitude between the two cases.
The blocks come from the C library's own malloc, so numpy's and torch's allocators (which
may ask for huge pages) do not change what is counted.

Each count is taken in a fresh interpreter. In a long-lived process (the test suite) an
earlier test may have left a large free chunk in the heap below a live allocation; glibc
then serves later large requests from that chunk, without a new mapping, whatever the
setting, and the "outside" counts would say nothing about this module.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator

import pytest

from sessionrec import _heap
from sessionrec._heap import reuse_freed_memory

pytestmark = pytest.mark.skipif(_heap._glibc() is None, reason="needs glibc's mallopt")

BLOCK = 64 * 2**20  # above glibc's mmap threshold, however far that has moved
PAGES = BLOCK // 4096
# Below the 32 MiB ceiling of glibc's dynamic mmap threshold: by default only the first such
# block is a fresh mapping, the next ones come from the heap.
MEDIUM = 4 * 2**20
MEDIUM_PAGES = MEDIUM // 4096

# Defines faults_per_block() in the child; each scenario below appends its steps.
_CHILD_PRELUDE = f"""
import ctypes, json, resource
from sessionrec import _heap
from sessionrec._heap import reuse_freed_memory

libc = _heap._glibc()
libc.malloc.restype = ctypes.c_void_p
libc.malloc.argtypes = [ctypes.c_size_t]
libc.free.argtypes = [ctypes.c_void_p]


def one_round(size):
    pointer = libc.malloc(size)
    assert pointer
    ctypes.memset(pointer, 1, size)
    libc.free(pointer)


def faults_per_block(rounds=4, size={BLOCK}, warm_up=1):
    for _ in range(warm_up):
        one_round(size)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(rounds):
        one_round(size)
    return (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) / rounds


counts = {{}}
"""


def run_child(steps: str, **env: str) -> dict[str, float]:
    """Run ``steps`` after the prelude in a fresh interpreter; return its ``counts``."""
    script = _CHILD_PRELUDE + textwrap.dedent(steps) + "\nprint(json.dumps(counts))\n"
    done = subprocess.run(
        [sys.executable, "-c", script],
        env={**os.environ, **env},  # the fixture below has cleared the switch unless a test set it
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    counts: dict[str, float] = json.loads(done.stdout.splitlines()[-1])
    return counts


@pytest.fixture(autouse=True)
def enabled(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.delenv("SESSIONREC_REUSE_FREED_MEMORY", raising=False)
    yield
    assert _heap._depth == 0


def test_freed_blocks_are_reused_inside_and_returned_after() -> None:
    counts = run_child("""
        counts["before"] = faults_per_block()
        with reuse_freed_memory():
            counts["inside"] = faults_per_block()
        counts["after"] = faults_per_block()
    """)
    assert counts["before"] > PAGES / 2  # glibc's default: a fresh mapping every time
    assert counts["inside"] < PAGES / 50
    assert counts["after"] > PAGES / 2  # defaults restored


def test_blocks_below_32_mib_still_reuse_the_heap_after_the_block() -> None:
    # Bug 6: any mallopt of the thresholds turns glibc's dynamic mmap threshold off for the
    # rest of the process. Restoring the static defaults (128 KiB) then made every later
    # block above 128 KiB a fresh mapping, where a process that never entered the block
    # serves repeated blocks of up to 32 MiB from the heap.
    # Two warm-up rounds: by default the first block is a fresh mapping (its free moves the
    # threshold up) and the second grows the heap.
    never_entered = run_child(f"""
        counts["medium"] = faults_per_block(size={MEDIUM}, warm_up=2)
    """)
    after = run_child(f"""
        with reuse_freed_memory():
            pass
        counts["medium"] = faults_per_block(size={MEDIUM}, warm_up=2)
        counts["large"] = faults_per_block()
    """)
    assert never_entered["medium"] < MEDIUM_PAGES / 50
    assert after["medium"] < MEDIUM_PAGES / 50
    # blocks above the ceiling are fresh mappings again, as in a process that never entered it
    assert after["large"] > PAGES / 2


def test_nested_blocks_keep_the_setting_until_the_outer_one_ends() -> None:
    counts = run_child("""
        with reuse_freed_memory():
            with reuse_freed_memory():
                pass
            counts["inner ended"] = faults_per_block()
        counts["outer ended"] = faults_per_block()
    """)
    assert counts["inner ended"] < PAGES / 50
    assert counts["outer ended"] > PAGES / 2


def test_works_as_a_decorator_and_restores_after_an_exception() -> None:
    @reuse_freed_memory()
    def fails() -> None:
        assert _heap._depth == 1
        raise ValueError("inside")

    with pytest.raises(ValueError, match="inside"):
        fails()
    assert _heap._depth == 0

    counts = run_child("""
        @reuse_freed_memory()
        def fails():
            raise ValueError("inside")

        try:
            fails()
        except ValueError:
            counts["depth"] = _heap._depth
        counts["after"] = faults_per_block()
    """)
    assert counts["depth"] == 0
    assert counts["after"] > PAGES / 2


def test_the_environment_variable_turns_it_off(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SESSIONREC_REUSE_FREED_MEMORY", "0")
    assert not _heap.enabled()
    with reuse_freed_memory():
        assert _heap._depth == 0

    counts = run_child(
        """
        with reuse_freed_memory():
            counts["depth"] = _heap._depth
            counts["inside"] = faults_per_block()
        """,
        SESSIONREC_REUSE_FREED_MEMORY="0",
    )
    assert counts["depth"] == 0
    assert counts["inside"] > PAGES / 2


def test_a_large_free_chunk_left_below_a_live_block_serves_later_requests() -> None:
    # Why the counts above are taken in a fresh interpreter, and what the block leaves behind:
    # memory freed inside it below a still-live allocation stays in the heap (malloc_trim
    # hands its pages back to the kernel) and serves later large requests from there.
    counts = run_child("""
        def resident_mib():
            return int(open("/proc/self/statm").read().split()[1]) * 4096 / 2**20

        counts["resident before"] = resident_mib()
        with reuse_freed_memory():
            big = libc.malloc(4 * 64 * 2**20)
            ctypes.memset(big, 1, 4 * 64 * 2**20)
            above = libc.malloc(8 * 2**20)  # lands above big, so big cannot be trimmed away
            libc.free(big)
        counts["resident after"] = resident_mib()
        counts["faults after"] = faults_per_block()
        libc.free(above)
    """)
    assert counts["faults after"] < PAGES / 50
    # the 256 MiB freed inside were handed back to the kernel on the way out
    assert counts["resident after"] - counts["resident before"] < 32


def test_training_and_evaluation_loops_run_inside_it() -> None:
    import numpy as np

    from sessionrec.data.sessions import SessionData
    from sessionrec.evaluation.protocol import evaluate
    from sessionrec.models.base import SessionBatch
    from sessionrec.models.popular import Pop

    pytest.importorskip("torch")  # the training loop's module imports it
    from sessionrec.models.neural import trainer

    depths: list[int] = []

    def run_epoch(epoch: int) -> tuple[float, int]:
        depths.append(_heap._depth)
        return 1.0, 1

    trainer.train_epochs(model="m", n_epochs=2, run_epoch=run_epoch)
    data = SessionData.from_sequences([[1, 2, 3], [2, 3, 1]])
    model = Pop().fit(data)
    score = model.score

    def recorded(batch: SessionBatch) -> np.ndarray:
        depths.append(_heap._depth)
        return score(batch)

    model.score = recorded  # type: ignore[method-assign]
    evaluate(model, data, cutoffs=(1,))
    assert depths == [1, 1, 1] and _heap._depth == 0

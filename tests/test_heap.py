"""reuse_freed_memory: large blocks freed inside it are reused without new page faults.

Page faults are counted with getrusage (minor faults), not timed: a 64 MiB block touched
once is 16,384 pages, so the counts differ by orders of magnitude between the two cases.
The blocks come from the C library's own malloc, so numpy's and torch's allocators (which
may ask for huge pages) do not change what is counted.
"""

from __future__ import annotations

import ctypes
import resource
from collections.abc import Iterator

import pytest

from sessionrec import _heap
from sessionrec._heap import reuse_freed_memory

pytestmark = pytest.mark.skipif(_heap._glibc() is None, reason="needs glibc's mallopt")

BLOCK = 64 * 2**20
PAGES = BLOCK // 4096


def faults_per_block(rounds: int = 4) -> float:
    """Minor page faults per malloc-touch-free round of one 64 MiB block, after a warm-up."""
    libc = _heap._glibc()
    libc.malloc.restype = ctypes.c_void_p
    libc.malloc.argtypes = [ctypes.c_size_t]
    libc.free.argtypes = [ctypes.c_void_p]

    def one_round() -> None:
        pointer = libc.malloc(BLOCK)
        assert pointer
        ctypes.memset(pointer, 1, BLOCK)
        libc.free(pointer)

    one_round()
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(rounds):
        one_round()
    return (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) / rounds


@pytest.fixture(autouse=True)
def enabled(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.delenv("SESSIONREC_REUSE_FREED_MEMORY", raising=False)
    yield
    assert _heap._depth == 0


def test_freed_blocks_are_reused_inside_and_returned_after() -> None:
    assert faults_per_block() > PAGES / 2  # glibc's default: a fresh mapping every time
    with reuse_freed_memory():
        assert faults_per_block() < PAGES / 50
    assert faults_per_block() > PAGES / 2  # defaults restored


def test_nested_blocks_keep_the_setting_until_the_outer_one_ends() -> None:
    with reuse_freed_memory():
        with reuse_freed_memory():
            pass
        assert faults_per_block() < PAGES / 50
    assert faults_per_block() > PAGES / 2


def test_works_as_a_decorator_and_restores_after_an_exception() -> None:
    @reuse_freed_memory()
    def fails() -> None:
        assert _heap._depth == 1
        raise ValueError("inside")

    with pytest.raises(ValueError, match="inside"):
        fails()
    assert _heap._depth == 0
    assert faults_per_block() > PAGES / 2


def test_the_environment_variable_turns_it_off(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SESSIONREC_REUSE_FREED_MEMORY", "0")
    assert not _heap.enabled()
    with reuse_freed_memory():
        assert _heap._depth == 0
        assert faults_per_block() > PAGES / 2


def test_training_and_evaluation_loops_run_inside_it() -> None:
    import numpy as np

    from sessionrec.data.sessions import SessionData
    from sessionrec.evaluation.protocol import evaluate
    from sessionrec.models.base import SessionBatch
    from sessionrec.models.popular import Pop

    trainer = pytest.importorskip("sessionrec.models.neural.trainer")
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

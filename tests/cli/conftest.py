"""What the command-line tests share: a tiny benchmark folder."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

TRAIN = ["1 2 3", "2 3 4", "1 2 3 4", "3 4", "2 3", "1 2"]
TEST = ["1 2 3", "2 3 9", "4 1"]


def write_benchmark(folder: Path, train: list[str], test: list[str]) -> Path:
    """A benchmark folder of sessions-txt files (one session per line)."""
    folder.mkdir()
    (folder / "train_sessions.txt").write_text("\n".join(train) + "\n")
    (folder / "test_sessions.txt").write_text("\n".join(test) + "\n")
    return folder


@pytest.fixture
def make_benchmark(tmp_path: Path) -> Callable[[str, list[str], list[str]], Path]:
    """``make_benchmark(name, train, test)``: a benchmark folder under the test's tmp_path."""
    return lambda name, train, test: write_benchmark(tmp_path / name, train, test)


@pytest.fixture
def bench(make_benchmark: Callable[[str, list[str], list[str]], Path]) -> Path:
    return make_benchmark("bench", TRAIN, TEST)

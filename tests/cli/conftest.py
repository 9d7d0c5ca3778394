"""What the command-line tests share: a tiny benchmark folder."""

from __future__ import annotations

from pathlib import Path

import pytest

TRAIN = ["1 2 3", "2 3 4", "1 2 3 4", "3 4", "2 3", "1 2"]
TEST = ["1 2 3", "2 3 9", "4 1"]


@pytest.fixture
def bench(tmp_path: Path) -> Path:
    folder = tmp_path / "bench"
    folder.mkdir()
    (folder / "train_sessions.txt").write_text("\n".join(TRAIN) + "\n")
    (folder / "test_sessions.txt").write_text("\n".join(TEST) + "\n")
    return folder

"""Session data with a perfectly learnable next item, shared by the model tests."""

from __future__ import annotations

from typing import Any

import numpy as np


def successor_sessions(
    n: int, n_items: int, seed: int, *, longest: int, label: str | None = None
) -> list[list[Any]]:
    """``n`` sessions of 2 to ``longest`` clicks walking ``i -> i + 1 (mod n_items)`` from a
    random start: every next click follows from the last one, so a model can learn all of
    them. Items are ints, or ``label.format(i)`` strings."""
    rng = np.random.default_rng(seed)
    sessions: list[list[Any]] = []
    for _ in range(n):
        start, length = int(rng.integers(n_items)), int(rng.integers(2, longest + 1))
        sessions.append([(start + k) % n_items for k in range(length)])
    if label is None:
        return sessions
    return [[label.format(i) for i in session] for session in sessions]

"""Exact top-k selection and target ranking with one tie rule, shared by serving, evaluation
and validation.

Order: score descending, then internal index ascending. ``-inf`` (and NaN) marks items
without evidence: they are never returned, so a list can be shorter than ``k`` (never
padded).

``drop_boundary_ties`` serves evaluation with pessimistic ties: when the tie group at the
k-th place continues past ``k``, the whole group is dropped, so that "the target is in the
list" is exactly "the target's pessimistic rank is at most k". The lists then never present
an arbitrary order of tied items as a ranking at the cut-off.

The kernel is one Numba pass per row keeping the best ``k + 1`` entries in a small sorted
buffer. ``numpy.partition`` would be the obvious tool, but it degrades badly on rows full of
equal values, which is exactly what sparse models produce (``-inf`` everywhere but a few
hundred items): measured 1.5 s for 778 x 43k scores, against milliseconds here.
"""

from __future__ import annotations

import numba
import numpy as np


@numba.njit(cache=True, nogil=True)
def _top_k_rows(
    scores: np.ndarray, kk: int, drop_boundary_ties: bool
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:  # pragma: no cover - compiled
    n, m = scores.shape
    cap = kk + 1  # one extra place tells whether the tie group at place k continues
    out_idx = np.empty((n, kk), dtype=np.int64)
    out_val = np.empty((n, kk), dtype=scores.dtype)
    out_n = np.zeros(n, dtype=np.int64)
    buf_i = np.empty(cap, dtype=np.int64)
    buf_v = np.empty(cap, dtype=scores.dtype)
    for r in range(n):
        count = 0
        for j in range(m):
            v = scores[r, j]
            if not v > -np.inf:  # -inf or NaN: no evidence
                continue
            if count == cap:
                if v <= buf_v[cap - 1]:  # an equal score at a higher index ranks lower
                    continue
                pos = cap - 1
            else:
                pos = count
                count += 1
            while pos > 0 and buf_v[pos - 1] < v:
                buf_v[pos] = buf_v[pos - 1]
                buf_i[pos] = buf_i[pos - 1]
                pos -= 1
            buf_v[pos] = v
            buf_i[pos] = j
        take = min(count, kk)
        if drop_boundary_ties and count > kk and buf_v[kk - 1] == buf_v[kk]:
            boundary = buf_v[kk]
            while take > 0 and buf_v[take - 1] == boundary:
                take -= 1
        out_n[r] = take
        out_idx[r, :take] = buf_i[:take]
        out_val[r, :take] = buf_v[:take]
    return out_idx, out_val, out_n


def select_top_k(
    scores: np.ndarray, k: int, drop_boundary_ties: bool = False
) -> list[tuple[np.ndarray, np.ndarray]]:
    """Per row of ``scores`` ``[n, m]``: (indices int64, scores) of the best ``k`` items."""
    n, m = scores.shape
    kk = min(k, m)
    if n == 0 or kk == 0:
        empty = (np.zeros(0, np.int64), np.zeros(0, scores.dtype))
        return [empty for _ in range(n)]
    if scores.dtype not in (np.float32, np.float64):
        scores = scores.astype(np.float64)
    idx, val, counts = _top_k_rows(np.ascontiguousarray(scores), kk, drop_boundary_ties)
    return [(idx[r, : counts[r]], val[r, : counts[r]]) for r in range(n)]


@numba.njit(cache=True, nogil=True)
def _count_above_and_tied(
    scores: np.ndarray, targets: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:  # pragma: no cover - compiled
    """Per row: how many items score above the target, and how many others tie with it."""
    n, m = scores.shape
    above = np.zeros(n, dtype=np.int64)
    tied = np.zeros(n, dtype=np.int64)
    for r in range(n):
        t = targets[r]
        if t < 0:
            continue
        s = scores[r, t]
        a = 0
        e = 0
        for j in range(m):
            v = scores[r, j]
            if v > s:
                a += 1
            elif v == s:
                e += 1
        above[r] = a
        tied[r] = e - 1
    return above, tied


def rank_targets(scores: np.ndarray, targets: np.ndarray, ties: str) -> np.ndarray:
    """1-based ranks of ``targets`` in each row of ``scores``; ``inf`` for a miss.

    One compiled pass per row: two numpy comparisons over the whole score matrix cost
    twice the memory traffic of the model's own scoring.
    """
    targets = np.asarray(targets, dtype=np.int64)
    if scores.dtype not in (np.float32, np.float64):
        scores = scores.astype(np.float64)
    above, tied = _count_above_and_tied(np.ascontiguousarray(scores), targets)
    ranks = 1.0 + above.astype(np.float64)
    if ties == "pessimistic":
        ranks += tied
    elif ties == "average":
        ranks += tied / 2.0
    known = targets >= 0
    target_scores = np.full(targets.shape, -np.inf)
    target_scores[known] = scores[np.flatnonzero(known), targets[known]]
    ranks[~(target_scores > -np.inf)] = np.inf  # unknown target, -inf or NaN score: a miss
    return ranks

"""Exact top-k selection with one tie rule, shared by serving and evaluation.

Order: score descending, then internal index ascending. ``-inf`` marks items without
evidence: they are never returned, so a list can be shorter than ``k`` (never padded).

``drop_boundary_ties`` serves evaluation with pessimistic ties: when the tie group at the
k-th place continues past ``k``, the whole group is dropped, so that "the target is in the
list" is exactly "the target's pessimistic rank is at most k". The lists then never present
an arbitrary order of tied items as a ranking at the cut-off.
"""

from __future__ import annotations

import numpy as np

_LOWEST = np.finfo(np.float32).min


def select_top_k(
    scores: np.ndarray, k: int, drop_boundary_ties: bool = False
) -> list[tuple[np.ndarray, np.ndarray]]:
    """Per row of ``scores`` ``[n, m]``: (indices int64, scores) of the best ``k`` items."""
    n, m = scores.shape
    kk = min(k, m)
    if n == 0 or kk == 0:
        empty = (np.zeros(0, np.int64), np.zeros(0, scores.dtype))
        return [empty for _ in range(n)]
    # The k-th best score of each row: one O(m) partition instead of a sort.
    kth = np.partition(scores, m - kk, axis=1)[:, m - kk] if kk < m else scores.min(axis=1)
    # Rows with fewer than k finite scores: keep every finite one (-inf is never a candidate).
    kth = np.where(kth == -np.inf, _LOWEST, kth).astype(scores.dtype)
    rows, cols = np.nonzero(scores >= kth[:, None])
    vals = scores[rows, cols]
    counts = np.bincount(rows, minlength=n)
    over = counts > kk  # the tie group at the k-th place continues past k
    if over.any():
        tied = vals == kth[rows]
        # 0-based position of each tied entry among its row's tied entries (cols ascend).
        tied_before = np.cumsum(tied) - tied
        row_start = np.concatenate([[0], np.cumsum(counts)[:-1]])
        tie_rank = tied_before - tied_before[row_start][rows]
        above = counts - np.bincount(rows, weights=tied, minlength=n).astype(np.int64)
        if drop_boundary_ties:
            keep = ~over[rows] | ~tied
        else:
            keep = ~tied | (tie_rank < (kk - above)[rows])
        rows, cols, vals = rows[keep], cols[keep], vals[keep]
        counts = np.bincount(rows, minlength=n)
    order = np.lexsort((cols, -vals, rows))
    cols, vals = cols[order].astype(np.int64), vals[order]
    bounds = np.cumsum(counts)[:-1]
    return list(zip(np.split(cols, bounds), np.split(vals, bounds), strict=True))

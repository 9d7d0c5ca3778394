"""Exact top-k over a large item table, found through an int8 copy of the table.

Scoring one live session against every item is a matrix-vector product that reads the whole
``[n_items, d]`` float32 output table: 88 MB for a 512-unit model of Diginetica's 43k items,
about 12 ms of memory traffic on one core, whatever the arithmetic costs. Serving needs only
the best ``k`` items, so :class:`QuantizedTable` keeps an int8 copy of the rows that can be
returned at all (a quarter of the bytes, one scale per row) and finds them in two passes:

1. Approximate every score from the int8 rows, with a bound on its error. A row is rounded
   to ``q = round(w / s)`` with ``s = max|w| / 127``, so each weight is off by at most
   ``s / 2`` and the dot product with ``h`` by at most ``s * ||h||_1 / 2``; a small extra
   term covers float32 rounding in both passes.
2. Let ``L`` be the ``k``-th largest lower bound. An item whose upper bound is below ``L``
   cannot be in the top ``k`` (``k`` items score at least ``L``), so only the remaining
   candidates are scored again from the float32 rows, and the best ``k`` of them are the
   exact answer.

The result equals the dense top-k (up to float32 summation order in the last bit, which
only matters for exact ties). When the bound prunes too little (a flat score distribution),
the caller falls back to the dense product; either way the answer is exact.
"""

from __future__ import annotations

import numba
import numpy as np

ROUNDING_SLACK = 2.0**-22
"""Relative float32 rounding allowance per summed term (generous: 2 ulps)."""

MAX_CANDIDATE_SHARE = 0.125
"""Above this share of the catalog as candidates, the dense product is cheaper."""


_FLOOR = np.float32(-np.finfo(np.float32).max)
"""Stands for "no bound yet" in the kernel, which assumes finite numbers (fastmath)."""


# fastmath lets the inner loop vectorise; every number it sees is finite (only rows with a
# finite bias are kept, and the heap starts at a finite floor).
@numba.njit(cache=True, nogil=True, fastmath=True)
def _bounds(
    rows: np.ndarray,
    scales: np.ndarray,
    error_per_l1: np.ndarray,
    bias: np.ndarray,
    h: np.ndarray,
    k: int,
    upper: np.ndarray,
) -> float:  # pragma: no cover - compiled
    """Fill the upper bound of every row's score; return the ``k``-th largest lower bound
    (:data:`_FLOOR` when there are fewer than ``k`` rows)."""
    n, d = rows.shape
    l1 = np.float32(0.0)
    for j in range(d):
        l1 += abs(h[j])
    l1 *= np.float32(1.0 + 2 * d * ROUNDING_SLACK)  # the norm itself is rounded
    heap = np.full(k, _FLOOR, dtype=np.float32)  # min-heap of the k largest lower bounds
    for r in range(n):
        acc = np.float32(0.0)
        for j in range(d):
            acc += np.float32(rows[r, j]) * h[j]
        approx = acc * scales[r] + bias[r]
        # The last term covers rounding of the scale multiplication and the bias addition.
        error = error_per_l1[r] * l1 + np.float32(ROUNDING_SLACK) * (abs(approx) + abs(bias[r]))
        upper[r] = approx + error
        low = approx - error
        if low > heap[0]:
            heap[0] = low
            i = 0
            while True:  # sift down
                left = 2 * i + 1
                if left >= k:
                    break
                child = left + 1 if left + 1 < k and heap[left + 1] < heap[left] else left
                if heap[child] >= heap[i]:
                    break
                heap[i], heap[child] = heap[child], heap[i]
                i = child
    return heap[0]


class QuantizedTable:
    """An int8 copy of the servable rows of ``weights @ h + bias`` for exact top-k.

    ``weights`` ``[n, d]`` float32, ``bias`` ``[n]`` with ``-inf`` for items never to
    return (they are left out of the copy). One scale per row.
    """

    def __init__(self, weights: np.ndarray, bias: np.ndarray) -> None:
        weights = np.asarray(weights, dtype=np.float32)
        bias = np.asarray(bias, dtype=np.float32)
        if weights.ndim != 2 or bias.shape != weights.shape[:1]:
            raise ValueError(
                f"expected weights [n, d] and bias [n], got {weights.shape}, {bias.shape}"
            )
        self.index = np.flatnonzero(np.isfinite(bias))  # table row -> item
        kept = np.ascontiguousarray(weights[self.index])
        largest = np.abs(kept).max(axis=1) if kept.size else np.zeros(0, np.float32)
        self.scales = np.where(largest > 0, largest / 127.0, 1.0).astype(np.float32)
        self.rows = np.rint(kept / self.scales[:, None]).clip(-127, 127).astype(np.int8)
        self.bias = np.ascontiguousarray(bias[self.index])
        self.d = weights.shape[1]
        # Per-row error of a dot product with h, divided by ||h||_1: rounding of the weights
        # (s / 2) plus float32 summation in both passes over d terms of size <= 127 s |h_j|.
        self._error_per_l1 = (self.scales * (0.5 + 2 * self.d * 127 * ROUNDING_SLACK)).astype(
            np.float32
        )

    @property
    def nbytes(self) -> int:
        arrays = (self.rows, self.scales, self.bias, self.index, self._error_per_l1)
        return int(sum(a.nbytes for a in arrays))

    def candidates(
        self, h: np.ndarray, k: int, exclude: np.ndarray | None = None
    ) -> np.ndarray | None:
        """Items that may hold the top ``k`` of ``weights @ h + bias``; ``None`` if too many.

        Never returns an item with a ``-inf`` bias or one of ``exclude``; always returns
        every item of the exact top ``k`` of the others.
        """
        h = np.ascontiguousarray(h, dtype=np.float32)
        excluded = np.unique(np.asarray(exclude, dtype=np.int64)) if exclude is not None else None
        # With e items excluded, the (k + e)-th lower bound still has k allowed items above.
        wanted = k + (excluded.size if excluded is not None else 0)
        if self.index.size <= wanted:  # all servable items are candidates
            return self._allowed(self.index, excluded)
        upper = np.empty(self.rows.shape[0], dtype=np.float32)
        kth_lower = _bounds(self.rows, self.scales, self._error_per_l1, self.bias, h, wanted, upper)
        found = self._allowed(self.index[upper >= kth_lower], excluded)
        if found.size > MAX_CANDIDATE_SHARE * self.index.size:
            return None
        return found

    @staticmethod
    def _allowed(items: np.ndarray, excluded: np.ndarray | None) -> np.ndarray:
        if excluded is None or not excluded.size:
            return items
        return items[~np.isin(items, excluded)]

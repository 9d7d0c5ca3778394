"""The arithmetic of the ensemble (:mod:`sessionrec.models.ensemble`): normalising a
member's scores per session, the weight grid, and ranking validation targets among
candidate items under a weight vector."""

from __future__ import annotations

import itertools

import numpy as np

from sessionrec._errors import ConfigError
from sessionrec.models.topk import select_top_k

NORMALIZATIONS = ("minmax", "rank")
"""How a member's scores are made comparable, per session (see the module docstring)."""

RANK_OFFSET = 60.0
"""The constant of reciprocal-rank fusion (Cormack, Clarke and Buettcher, SIGIR 2009)."""

DENSE_SHARE = 0.25
"""A member whose rows are finite beyond this share is normalised densely."""

CANDIDATES = 50
"""Best items per member kept per validation case for the weight search."""


def simplex_grid(n_members: int, steps: int) -> np.ndarray:
    """Every weight vector of ``n_members`` non-negative multiples of ``1/steps`` summing to 1,
    from ``(1, 0, ...)`` in lexicographically decreasing order: ``[points, n_members]``."""
    points = [
        (*cuts, steps - sum(cuts))
        for cuts in itertools.product(range(steps, -1, -1), repeat=n_members - 1)
        if sum(cuts) <= steps
    ]
    return np.asarray(points, dtype=np.float64).reshape(-1, n_members) / steps


def normalise(scores: np.ndarray, method: str) -> tuple[np.ndarray, np.ndarray]:
    """Per row of ``scores`` ``[n, items]``: the normalised scores (float64, 0 where there is
    no evidence) and the evidence mask (finite scores); the dense form of
    :func:`normalise_sparse`, faster when most scores are finite (a neural member)."""
    scores = np.asarray(scores, dtype=np.float64)
    evidence = np.isfinite(scores)
    if method == "minmax":
        low = np.where(evidence, scores, np.inf).min(axis=1, initial=np.inf)[:, None]
        high = np.where(evidence, scores, -np.inf).max(axis=1, initial=-np.inf)[:, None]
        spread = high - low
        safe = np.where(spread > 0, spread, 1.0)
        out = np.where(spread > 0, (scores - low) / safe, 1.0)
    elif method == "rank":
        # rank = 1 + the number of items scored strictly higher (ties share the best rank);
        # only the finite scores are sorted: a sparse member has a few hundred per row
        out = np.zeros(scores.shape, dtype=np.float64)
        for row in range(scores.shape[0]):
            where = np.flatnonzero(evidence[row])
            values = scores[row, where]
            higher = values.size - np.searchsorted(np.sort(values), values, side="right")
            out[row, where] = (RANK_OFFSET + 1.0) / (RANK_OFFSET + 1.0 + higher)
    else:
        raise ConfigError(f"unknown normalization {method!r}; choose one of {NORMALIZATIONS}")
    return np.where(evidence, out, 0.0), evidence


def normalise_sparse(
    scores: np.ndarray, method: str, finite: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The normalised scores of the finite entries of ``scores`` ``[n, items]`` only, as
    ``(rows, columns, values)`` (row-major order; values float64). Every other entry has no
    evidence. A session-kNN or rule member has a few hundred finite scores in a row of
    10^4-10^5 items, so this is what the ensemble sums (dense rows cost 10x more).

    ``minmax``: ``(s - low) / (high - low)`` over the row's finite scores (1 when they are
    all equal); ``rank``: ``(c + 1) / (c + rank)``, rank = 1 + the number of finite scores
    strictly higher (ties share the best rank), ``c`` = :data:`RANK_OFFSET`. ``finite``:
    ``np.isfinite(scores)`` when the caller has it already.
    """
    scores = np.asarray(scores)
    rows, cols = np.nonzero(np.isfinite(scores) if finite is None else finite)
    values = scores[rows, cols].astype(np.float64)
    counts = np.bincount(rows, minlength=scores.shape[0])
    starts = np.concatenate(([0], np.cumsum(counts)[:-1]))
    present = counts > 0
    if method == "minmax":
        low = np.zeros(scores.shape[0])
        high = np.zeros(scores.shape[0])
        if values.size:
            low[present] = np.minimum.reduceat(values, starts[present])
            high[present] = np.maximum.reduceat(values, starts[present])
        spread = (high - low)[rows]
        safe = np.where(spread > 0, spread, 1.0)
        out = np.where(spread > 0, (values - low[rows]) / safe, 1.0)
    elif method == "rank":
        # row by row: one sort per row, whether it holds a few hundred finite scores or
        # every item's (a lexsort of all the batch's entries is far slower on dense members)
        out = np.empty(values.size, dtype=np.float64)
        for start, count in zip(starts[present].tolist(), counts[present].tolist(), strict=True):
            row_values = values[start : start + count]
            ascending = np.sort(row_values)
            higher = count - np.searchsorted(ascending, row_values, side="right")
            out[start : start + count] = (RANK_OFFSET + 1.0) / (RANK_OFFSET + 1.0 + higher)
    else:
        raise ConfigError(f"unknown normalization {method!r}; choose one of {NORMALIZATIONS}")
    return rows, cols, out


def normalise_at(
    scores: np.ndarray, columns: np.ndarray, method: str
) -> tuple[np.ndarray, np.ndarray]:
    """:func:`normalise` at ``columns`` ``[n, width]`` of each row only (``-1``: a pad, 0 and
    no evidence): what the weight search needs, without normalising whole rows."""
    rows = np.arange(scores.shape[0])[:, None]
    present = columns >= 0
    picked = scores[rows, np.maximum(columns, 0)].astype(np.float64)
    evidence = present & np.isfinite(picked)
    finite = np.isfinite(scores)
    if method == "minmax":
        low = np.where(finite, scores, np.inf).min(axis=1, initial=np.inf)[:, None]
        high = np.where(finite, scores, -np.inf).max(axis=1, initial=-np.inf)[:, None]
        spread = (high - low).astype(np.float64)
        safe = np.where(spread > 0, spread, 1.0)
        out = np.where(spread > 0, (picked - low) / safe, 1.0)
    elif method == "rank":
        ascending = np.sort(scores, axis=1)  # -inf first: never counted as higher
        higher = np.empty(picked.shape, dtype=np.float64)
        for row in range(scores.shape[0]):
            higher[row] = scores.shape[1] - np.searchsorted(
                ascending[row], scores[row, np.maximum(columns[row], 0)], side="right"
            )
        out = (RANK_OFFSET + 1.0) / (RANK_OFFSET + 1.0 + higher)
    else:
        raise ConfigError(f"unknown normalization {method!r}; choose one of {NORMALIZATIONS}")
    return np.where(evidence, out, 0.0), evidence


def candidate_columns(scores: list[np.ndarray], targets: np.ndarray) -> np.ndarray:
    """Per case: the target, then the union of every member's best :data:`CANDIDATES`
    items (finite scores), each once; ``-1`` pads. int64 ``[cases, 1 + CANDIDATES x M]``."""
    n = len(targets)
    columns = np.full((n, 1 + CANDIDATES * len(scores)), -1, dtype=np.int64)
    columns[:, 0] = targets
    for j, raw in enumerate(scores):
        for row, (idx, _) in enumerate(select_top_k(raw, CANDIDATES)):
            columns[row, 1 + j * CANDIDATES : 1 + j * CANDIDATES + idx.size] = idx
    rest = columns[:, 1:]
    rest[rest == targets[:, None]] = -1
    rest.sort(axis=1)
    rest[:, 1:][rest[:, 1:] == rest[:, :-1]] = -1
    columns[:, 0] = np.where(targets >= 0, targets, -1)
    return columns


def candidate_ranks(
    normalised: np.ndarray,
    evidence: np.ndarray,
    weights: np.ndarray,
    supported_cache: dict[tuple[bool, ...], np.ndarray] | None = None,
) -> np.ndarray:
    """Pessimistic rank of each case's target (column 0) among its candidates under
    ``weights``; ``inf`` when no weighted member has evidence for the target.
    ``supported_cache`` keeps the evidence of each set of weighted members between calls."""
    combined = normalised @ weights.astype(np.float32)  # [cases, width]
    pattern = tuple((weights > 0).tolist())
    supported = None if supported_cache is None else supported_cache.get(pattern)
    if supported is None:
        supported = np.asarray(evidence[:, :, weights > 0].any(axis=2))
        if supported_cache is not None:
            supported_cache[pattern] = supported
    combined = np.where(supported, combined, -np.inf)
    target = combined[:, :1]
    ahead = ((combined[:, 1:] >= target) & supported[:, 1:]).sum(axis=1)
    return np.where(np.isfinite(target[:, 0]), 1.0 + ahead, np.inf)

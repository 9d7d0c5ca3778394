"""Accuracy and beyond-accuracy metrics as pure functions.

Accuracy metrics take ``ranks``: the 1-based rank of each case's target among all items,
``inf`` for a miss (target unknown to the model or without a score). Each case has exactly
one relevant item, so HR@K equals Recall@K and the ideal DCG is 1.

List metrics take the recommended lists: an int array ``[n_cases, K]`` of internal item
indices, padded with -1 where a list is shorter than K.
"""

from __future__ import annotations

import numpy as np

LENGTH_BINS: tuple[tuple[str, int, float], ...] = (
    ("1", 1, 1),
    ("2", 2, 2),
    ("3", 3, 3),
    ("4-5", 4, 5),
    ("6-10", 6, 10),
    (">10", 11, np.inf),
)
"""Session-prefix length groups for the breakdown: (label, lowest, highest) inclusive."""


def hit_rate(ranks: np.ndarray, k: int) -> float:
    """HR@k: the share of cases whose target ranks within the first ``k``."""
    ranks = np.asarray(ranks, dtype=np.float64)
    return float(np.mean(ranks <= k)) if ranks.size else 0.0


def mrr(ranks: np.ndarray, k: int) -> float:
    """MRR@k: mean reciprocal rank, counting 0 for a target below ``k``."""
    ranks = np.asarray(ranks, dtype=np.float64)
    if not ranks.size:
        return 0.0
    return float(np.mean(np.where(ranks <= k, 1.0 / ranks, 0.0)))


def ndcg(ranks: np.ndarray, k: int) -> float:
    """NDCG@k with one relevant item: mean of 1 / log2(rank + 1) within ``k``."""
    ranks = np.asarray(ranks, dtype=np.float64)
    if not ranks.size:
        return 0.0
    return float(np.mean(np.where(ranks <= k, 1.0 / np.log2(ranks + 1.0), 0.0)))


def truncate_lists(lists: np.ndarray, scores: np.ndarray, k: int) -> np.ndarray:
    """Cut recommended lists to ``k`` without splitting a tie group at the cut.

    A tie group that straddles position ``k`` is removed whole, so the truncated lists obey
    the same rule as lists computed directly for ``k`` (see :mod:`sessionrec.models.topk`).
    """
    cut = lists[:, :k].copy()
    if lists.shape[1] <= k:
        return cut
    boundary = scores[:, k]
    straddle = (lists[:, k] >= 0) & (scores[:, k - 1] == boundary)
    tied = (scores[:, :k] == boundary[:, None]) & straddle[:, None]
    cut[tied] = -1
    return cut


def coverage(lists: np.ndarray, n_items: int) -> float:
    """Catalog coverage: the share of the catalog that appears in at least one list."""
    if n_items <= 0:
        return 0.0
    shown = np.unique(lists[lists >= 0])
    return float(shown.size / n_items)


def popularity(lists: np.ndarray, item_counts: np.ndarray) -> float:
    """Popularity bias: mean over non-empty lists of the mean of count / max count.

    1.0 means every list shows only the most clicked item; lower is less popularity-biased.
    """
    valid = lists >= 0
    per_list = valid.sum(axis=1)
    nonempty = per_list > 0
    if not nonempty.any() or item_counts.max() <= 0:
        return 0.0
    normalised = item_counts.astype(np.float64) / float(item_counts.max())
    values = np.where(valid, normalised[np.where(valid, lists, 0)], 0.0)
    return float(np.mean(values.sum(axis=1)[nonempty] / per_list[nonempty]))


def by_length(ranks: np.ndarray, prefix_lengths: np.ndarray, k: int) -> dict[str, dict[str, float]]:
    """HR@k and MRR@k (fractions) and case counts per prefix-length group."""
    out: dict[str, dict[str, float]] = {}
    for label, low, high in LENGTH_BINS:
        mask = (prefix_lengths >= low) & (prefix_lengths <= high)
        out[label] = {
            "n_cases": int(mask.sum()),
            f"hr@{k}": hit_rate(ranks[mask], k),
            f"mrr@{k}": mrr(ranks[mask], k),
        }
    return out


def cutoff_curves(ranks: np.ndarray, max_k: int) -> dict[str, list[float]]:
    """HR@K, MRR@K and NDCG@K (fractions) for every K = 1..``max_k``, from the functions above.

    Entry ``i`` of each list is the metric at K = ``i + 1``. The report draws these as
    curves; computing them with the same functions as single cutoffs keeps a curve's point
    at K equal to the number ``evaluate`` prints for K.
    """
    if max_k <= 0:
        raise ValueError(f"max_k must be positive, got {max_k}")
    ks = range(1, max_k + 1)
    return {
        "hr": [hit_rate(ranks, k) for k in ks],
        "mrr": [mrr(ranks, k) for k in ks],
        "ndcg": [ndcg(ranks, k) for k in ks],
    }


def percentiles(values: np.ndarray, qs: tuple[float, ...] = (50.0, 90.0, 99.0)) -> dict[str, float]:
    """``{"p50": ..., "p90": ..., "p99": ...}`` by linear interpolation (numpy's default).

    Used for latency distributions; an empty sample has no percentiles and raises.
    """
    values = np.asarray(values, dtype=np.float64)
    if not values.size:
        raise ValueError("percentiles of an empty sample")
    return {f"p{q:g}": float(np.percentile(values, q)) for q in qs}

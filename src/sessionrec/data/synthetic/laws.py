"""The click model's laws: what it reads from a catalog, and many discrete laws sampled fast."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl

from sessionrec._errors import DataError

_SWITCH_SHARE_FOCUSED = 0.05  # share of a focused session's jumps that leave the intent
_SWITCH_SHARE_MULTI = 0.40  # same for a multi-intent session
_NEIGHBOUR_BOOST = (4.0, 2.0)  # weight of categories 1 and 2 steps away in the intent


@dataclass(frozen=True)
class CatalogStructure:
    """What the click model needs from a catalog, as numpy arrays over catalog rows."""

    n_cats: int
    cat_weight: np.ndarray  # (C,) traffic share of each category (sums to 1)
    cat_intent: np.ndarray  # (C,) intent index of each category
    by_rank: np.ndarray  # catalog rows sorted by (category, popularity)
    block_end: np.ndarray  # (C,) end of each category's block in by_rank


def catalog_structure(catalog: pl.DataFrame) -> CatalogStructure:
    """Categories, intents and popularity order of a catalog (ours or a caller's)."""
    for column in ("item_id", "category", "intent"):
        if column not in catalog.columns:
            raise DataError(f"catalog has no '{column}' column (has {catalog.columns})")
    if catalog.height == 0:
        raise DataError("catalog is empty")
    if catalog["item_id"].null_count() or catalog["item_id"].n_unique() != catalog.height:
        raise DataError("catalog item_id values must be unique and not null")
    if catalog["category"].null_count() or catalog["intent"].null_count():
        raise DataError("every catalog item needs a category and an intent")
    pairs = catalog.select("category", "intent").unique(maintain_order=True)
    if pairs["category"].n_unique() != pairs.height:
        raise DataError("every catalog category must belong to exactly one intent")
    cat_names = pairs["category"]
    intent_names = pairs["intent"].unique(maintain_order=True)
    cat_code = {name: i for i, name in enumerate(cat_names.cast(pl.String).to_list())}
    cat = (
        catalog["category"]
        .cast(pl.String)
        .replace_strict(cat_code, return_dtype=pl.Int32)
        .to_numpy()
    )
    intent_code = {name: i for i, name in enumerate(intent_names.cast(pl.String).to_list())}
    cat_intent = (
        pairs["intent"].cast(pl.String).replace_strict(intent_code, return_dtype=pl.Int32)
    ).to_numpy()
    if "popularity_rank" in catalog.columns:
        popularity = catalog["popularity_rank"].cast(pl.Float64).fill_null(np.inf).to_numpy()
    else:
        popularity = np.zeros(catalog.height)
    by_rank = np.lexsort((np.arange(catalog.height), popularity, cat))
    sizes = np.bincount(cat, minlength=pairs.height)
    return CatalogStructure(
        n_cats=pairs.height,
        cat_weight=sizes / sizes.sum(),
        cat_intent=cat_intent,
        by_rank=by_rank,
        block_end=np.cumsum(sizes),
    )


class DiscreteLaws:
    """Many discrete laws stored in one array, sampled in O(1) expected time per draw.

    Law ``r`` owns entries ``start[r]:start[r + 1]``. Tens of millions of draws make
    ``np.searchsorted`` (a branchy binary search over the whole array) a bottleneck, so
    each law gets a guide table (the cutpoint method of Chen and Asau, one bucket per
    entry): bucket ``b`` of a law with ``n`` entries knows the range of entries whose
    cumulative probability crosses ``[b / n, (b + 1) / n)``. Most ranges hold one or two
    entries; a vectorised bisection settles the rest, in few passes even for steep laws.
    """

    def __init__(self, weights: np.ndarray, start: np.ndarray) -> None:
        sizes = np.diff(start)
        if (sizes <= 0).any():
            raise ValueError("every law needs at least one entry")
        law = np.repeat(np.arange(sizes.size), sizes)
        cum = np.cumsum(weights, dtype=np.float64)
        before = np.concatenate([[0.0], cum[start[1:-1] - 1]])
        total = cum[start[1:] - 1] - before
        if (total <= 0).any():
            raise ValueError("every law needs a positive total weight")
        # Entry j of law r holds r + P(X <= j): one sorted array for all laws, and the
        # last entry of each law is exactly r + 1, so every search ends inside its law.
        cdf = (cum - before[law]) / total[law]
        last = start[1:] - 1
        cdf[last] = 1.0
        self.cdf = cdf + law
        self.start = start.astype(np.int64)
        cut = law + (np.arange(law.size) - self.start[law]) / sizes[law]
        self.lo = np.searchsorted(self.cdf, cut, side="right")
        self.hi = np.empty_like(self.lo)
        self.hi[:-1] = self.lo[1:]
        self.hi[last] = last

    def sample(self, law: np.ndarray, u: np.ndarray) -> np.ndarray:
        """Flat entry index of one draw of law ``law[i]`` per uniform ``u[i]``."""
        first = self.start[law]
        size = self.start[law + 1] - first
        bucket = (u * size).astype(np.int64)
        np.minimum(bucket, size - 1, out=bucket)
        bucket += first
        lo = self.lo[bucket]
        hi = self.hi[bucket]
        del bucket, first, size
        # The answer (first entry above law + u) lies in [lo, hi]: bisect where lo < hi.
        todo = np.flatnonzero(lo < hi)
        target = law[todo] + u[todo]
        while todo.size:
            low, high = lo[todo], hi[todo]
            mid = (low + high) >> 1
            right = self.cdf[mid] <= target
            low = np.where(right, mid + 1, low)
            high = np.where(right, high, mid)
            lo[todo], hi[todo] = low, high
            open_ = low < high
            todo, target = todo[open_], target[open_]
        return lo


def zipf_laws(st: CatalogStructure, exponent: float) -> DiscreteLaws:
    """Per category, the law of the popularity position of a clicked item: ``rank**-a``."""
    sizes = np.diff(st.block_end, prepend=0)
    start = np.concatenate([[0], st.block_end]).astype(np.int64)
    rank = np.arange(st.by_rank.size) - np.repeat(start[:-1], sizes) + 1
    return DiscreteLaws(rank.astype(np.float64) ** -exponent, start)


def jump_laws(st: CatalogStructure) -> DiscreteLaws:
    """The category Markov chain: law ``t * C + c`` is where a jump from category ``c`` goes.

    ``t`` is 1 for multi-intent sessions, 0 for focused ones. Mostly to a related category
    of the same intent, weighted by traffic and boosted when near ``c`` in the taxonomy
    order; with a small (focused) or large (multi-intent) share, to any category of
    another intent. Never to ``c`` itself (staying is a separate action).
    """
    n = st.n_cats
    same = st.cat_intent[:, None] == st.cat_intent[None, :]
    # Position of each category within its intent, and the intent's size, for ring distance.
    local = np.zeros(n, dtype=np.int64)
    count = np.zeros(int(st.cat_intent.max()) + 1, dtype=np.int64)
    for c in range(n):
        local[c] = count[st.cat_intent[c]]
        count[st.cat_intent[c]] += 1
    size = count[st.cat_intent]
    diff = np.abs(local[:, None] - local[None, :])
    ring = np.minimum(diff, size[:, None] - diff)
    boost = np.ones((n, n))
    for step, factor in enumerate(_NEIGHBOUR_BOOST, start=1):
        boost[ring == step] = factor
    within = np.where(same & ~np.eye(n, dtype=bool), st.cat_weight[None, :] * boost, 0.0)
    across = np.where(~same, st.cat_weight[None, :], 0.0)
    within = _normalise_rows(within, fallback=np.eye(n))
    across = _normalise_rows(across, fallback=within)
    rows = [
        (1.0 - share) * within + share * across
        for share in (_SWITCH_SHARE_FOCUSED, _SWITCH_SHARE_MULTI)
    ]
    return DiscreteLaws(np.concatenate(rows).ravel(), np.arange(2 * n + 1, dtype=np.int64) * n)


def _normalise_rows(matrix: np.ndarray, fallback: np.ndarray) -> np.ndarray:
    """Rows scaled to sum to 1; an all-zero row (nowhere to go) takes ``fallback``'s row."""
    total = matrix.sum(axis=1, keepdims=True)
    return np.where(total > 0, matrix / np.where(total > 0, total, 1.0), fallback)

"""Live updates of a session-kNN index: finished sessions appended as the newest neighbours.

A fitted index (:func:`sessionrec.models.knn_index.build_index`) keeps, per item, the
``sample_size`` most recent sessions containing it. Appending sessions that are more recent
than every indexed one therefore only needs the old index and the new sessions: the last
``sample_size`` entries of (old truncated list ++ new list) are the last ``sample_size`` of
(full old list ++ new list). :func:`merge_index` does that with whole-array operations and
gives exactly the index that fitting on the concatenated sessions gives, as long as nothing is
evicted: the posting lists, the session store (sessions no list refers to are dropped, the
rest renumbered in recency order), every session's age, the IDF (from the per-item session
counts kept in :class:`IndexCounts`) and the training-session numbers.

``max_sessions`` bounds the store for a service that appends for days: the oldest kept
sessions beyond it are evicted (with their posting entries), which a refit would not do; that
is the only departure, and only when the bound is reached.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from sessionrec._errors import ModelError
from sessionrec.data.sessions import SessionData, gather_ranges
from sessionrec.models.knn_kernels import KnnIndex


@dataclass(frozen=True)
class IndexCounts:
    """What the IDF and the session numbering need beyond the (truncated) index.

    ``item_df``: sessions containing each item, before truncation (int64 per item);
    ``n_sessions``: sessions indexed so far, empty ones included (the numbering of
    ``session_source``); ``n_nonempty``: those with at least one click (the IDF's ``N``).
    """

    item_df: np.ndarray
    n_sessions: int
    n_nonempty: int

    @classmethod
    def of(cls, data: SessionData) -> IndexCounts:
        """The counts of ``data``'s sessions (distinct (session, item) pairs per item)."""
        n_items = data.n_items
        pairs = np.unique(data.session_index() * n_items + data.items.astype(np.int64))
        return cls(
            item_df=np.bincount(pairs % max(n_items, 1), minlength=n_items).astype(np.int64),
            n_sessions=data.n_sessions,
            n_nonempty=int((data.lengths > 0).sum()),
        )

    def as_array(self) -> np.ndarray:
        """The two session counts, as the model folder saves them."""
        return np.array([self.n_sessions, self.n_nonempty], dtype=np.int64)

    @classmethod
    def from_state(cls, item_df: np.ndarray, totals: np.ndarray, n_items: int) -> IndexCounts:
        """Counts read back from a model folder, checked."""
        df = np.asarray(item_df)
        sizes = np.asarray(totals)
        if df.shape != (n_items,) or df.dtype.kind not in "iu" or (df.size and df.min() < 0):
            raise ModelError(f"model state: item_df must hold {n_items} counts >= 0")
        if sizes.shape != (2,) or sizes.dtype.kind not in "iu" or not 0 <= sizes[1] <= sizes[0]:
            raise ModelError("model state: index_counts must hold sessions >= non-empty ones")
        if df.size and df.max() > sizes[1]:
            raise ModelError("model state: an item_df count exceeds the non-empty sessions")
        return cls(df.astype(np.int64), int(sizes[0]), int(sizes[1]))

    def plus(self, other: IndexCounts) -> IndexCounts:
        """These counts followed by ``other``'s (over at least as many items)."""
        df = other.item_df.copy()
        df[: self.item_df.size] += self.item_df
        sessions = self.n_sessions + other.n_sessions
        return IndexCounts(df, sessions, self.n_nonempty + other.n_nonempty)

    def idf(self) -> np.ndarray:
        """``log(N / N_i)`` per item, 0 for items in no session (as a fit computes it)."""
        df = self.item_df
        with np.errstate(divide="ignore"):
            return np.where(df > 0, np.log(self.n_nonempty / np.maximum(df, 1)), 0.0)


@dataclass(frozen=True)
class MergedIndex:
    """The result of :func:`merge_index`: the new index, the training-session number behind
    every kept session, the counts, and how many sessions the bound evicted."""

    index: KnnIndex
    session_source: np.ndarray
    counts: IndexCounts
    evicted: int


def merge_index(
    old: KnnIndex,
    old_source: np.ndarray,
    old_counts: IndexCounts,
    new: KnnIndex,
    new_source: np.ndarray,
    new_counts: IndexCounts,
    sample_size: int,
    timed: bool,
    max_sessions: int | None = None,
) -> MergedIndex:
    """``old`` with ``new``'s sessions appended as the most recent ones.

    ``new`` is :func:`build_index` of the new sessions alone over the (possibly larger) item
    space of the result (``old``'s items first); ``new_source`` numbers its kept sessions
    within the new batch. ``timed``: the new sessions have click times, so (as in a fit) an
    empty one ranks as the oldest session and does not age the indexed ones.
    ``max_sessions``: keep at most this many sessions (the oldest go).
    """
    n_items = new.idf.size
    n_old_items = old.idf.size
    if n_items < n_old_items:
        raise ModelError("the appended sessions' index must cover every indexed item")
    k_old = old.sess_age.size

    # Posting lists: per item, the last sample_size of (old list ++ new list).
    old_len = np.zeros(n_items, dtype=np.int64)
    old_len[:n_old_items] = np.diff(old.post_indptr)
    old_end = np.zeros(n_items, dtype=np.int64)
    old_end[:n_old_items] = old.post_indptr[1:]
    new_len = np.diff(new.post_indptr)
    take_old = np.maximum(np.minimum(old_len, sample_size - new_len), 0)
    lengths = take_old + new_len
    indptr = np.zeros(n_items + 1, dtype=np.int64)
    np.cumsum(lengths, out=indptr[1:])
    from_old = gather_ranges(old_end - take_old, take_old)
    to_old = gather_ranges(indptr[:-1], take_old)
    to_new = gather_ranges(indptr[:-1] + take_old, new_len)
    post_sessions = np.empty(int(indptr[-1]), dtype=np.int64)
    post_positions = np.empty(int(indptr[-1]), dtype=np.int32)
    post_sessions[to_old] = old.post_sessions[from_old]
    post_positions[to_old] = old.post_positions[from_old]
    post_sessions[to_new] = new.post_sessions.astype(np.int64) + k_old
    post_positions[to_new] = new.post_positions

    # Sessions some list still refers to; beyond the bound, the oldest of them go.
    k_all = k_old + new.sess_age.size
    referenced = np.zeros(k_all, dtype=bool)
    referenced[post_sessions] = True
    evicted = 0
    if max_sessions is not None and int(referenced.sum()) > max_sessions:
        kept_numbers = np.flatnonzero(referenced)
        evicted = kept_numbers.size - max_sessions
        referenced[kept_numbers[:evicted]] = False
        alive = referenced[post_sessions]
        entry_item = np.repeat(np.arange(n_items, dtype=np.int64), lengths)[alive]
        post_sessions, post_positions = post_sessions[alive], post_positions[alive]
        np.cumsum(np.bincount(entry_item, minlength=n_items), out=indptr[1:])
    number = np.cumsum(referenced) - 1

    # The session store: the referenced old sessions, then the referenced new ones.
    keep_old, keep_new = np.flatnonzero(referenced[:k_old]), np.flatnonzero(referenced[k_old:])
    starts = np.concatenate([old.sess_indptr[keep_old], new.sess_indptr[keep_new]])
    sizes = np.concatenate(
        [
            old.sess_indptr[keep_old + 1] - old.sess_indptr[keep_old],
            new.sess_indptr[keep_new + 1] - new.sess_indptr[keep_new],
        ]
    )
    n_old_entries = int(sizes[: keep_old.size].sum())
    rows_old = gather_ranges(starts[: keep_old.size], sizes[: keep_old.size])
    rows_new = gather_ranges(starts[keep_old.size :], sizes[keep_old.size :])
    sess_indptr = np.zeros(starts.size + 1, dtype=np.int64)
    np.cumsum(sizes, out=sess_indptr[1:])
    assert rows_old.size == n_old_entries

    counts = old_counts.plus(new_counts)
    # Every old session grows older by the sessions of the batch that rank after it: all of
    # them by position, the non-empty ones by time (a fit ranks a session without clicks,
    # which has no end time, before every other).
    aging = new_counts.n_nonempty if timed else new_counts.n_sessions
    index = KnnIndex(
        post_indptr=indptr,
        post_sessions=number[post_sessions].astype(np.int32),
        post_positions=post_positions,
        sess_indptr=sess_indptr,
        sess_items=np.concatenate([old.sess_items[rows_old], new.sess_items[rows_new]]),
        sess_positions=np.concatenate([old.sess_positions[rows_old], new.sess_positions[rows_new]]),
        sess_age=np.concatenate([old.sess_age[keep_old] + aging, new.sess_age[keep_new]]),
        idf=counts.idf(),
        sess_types=np.concatenate([_types(old)[rows_old], _types(new)[rows_new]]).astype(np.int8),
    )
    source = np.concatenate(
        [old_source[keep_old], np.asarray(new_source)[keep_new] + old_counts.n_sessions]
    ).astype(np.int64)
    return MergedIndex(index, source, counts, evicted)


def _types(index: KnnIndex) -> np.ndarray:
    """The stored items' event types (all views for an index built without them)."""
    if index.sess_types.size == index.sess_items.size:
        return index.sess_types
    return np.zeros(index.sess_items.size, dtype=np.int8)

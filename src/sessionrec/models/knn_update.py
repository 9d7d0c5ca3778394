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
from numba import njit

from sessionrec._errors import ModelError
from sessionrec.data.sessions import SessionData
from sessionrec.models.knn_index import session_idf
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
        return session_idf(self.item_df, self.n_nonempty)


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
    n_items, n_old_items = new.idf.size, old.idf.size
    if n_items < n_old_items:
        raise ModelError("the appended sessions' index must cover every indexed item")
    k_old, k_new = old.sess_age.size, new.sess_age.size
    indptr, sessions, positions = _merged_postings(
        old.post_indptr,
        old.post_sessions,
        old.post_positions,
        new.post_indptr,
        new.post_sessions,
        new.post_positions,
        k_old,
        int(sample_size),
    )
    referenced = _referenced(sessions, k_old + k_new)
    evicted = 0
    if max_sessions is not None:
        kept = int(referenced.sum())
        if kept > max_sessions:  # the oldest referenced sessions go, with their entries
            evicted = kept - max_sessions
            referenced[np.flatnonzero(referenced)[:evicted]] = False
    number = np.cumsum(referenced) - 1
    post_indptr, post_sessions, post_positions = _kept_postings(
        indptr, sessions, positions, referenced, number
    )
    keep_old = np.flatnonzero(referenced[:k_old])
    keep_new = np.flatnonzero(referenced[k_old:])
    sess_indptr, sess_items, sess_positions, sess_types = _kept_store(
        old.sess_indptr,
        old.sess_items,
        old.sess_positions,
        _types(old),
        keep_old,
        new.sess_indptr,
        new.sess_items,
        new.sess_positions,
        _types(new),
        keep_new,
    )
    counts = old_counts.plus(new_counts)
    # Every old session grows older by the sessions of the batch that rank after it: all of
    # them by position, the non-empty ones by time (a fit ranks a session without clicks,
    # which has no end time, before every other).
    aging = new_counts.n_nonempty if timed else new_counts.n_sessions
    index = KnnIndex(
        post_indptr=post_indptr,
        post_sessions=post_sessions,
        post_positions=post_positions,
        sess_indptr=sess_indptr,
        sess_items=sess_items,
        sess_positions=sess_positions,
        sess_age=np.concatenate([old.sess_age[keep_old] + aging, new.sess_age[keep_new]]),
        idf=counts.idf(),
        sess_types=sess_types,
    )
    source = np.concatenate(
        [old_source[keep_old], np.asarray(new_source)[keep_new] + old_counts.n_sessions]
    ).astype(np.int64)
    return MergedIndex(index, source, counts, evicted)


# The kernels below copy the index arrays once each, without the GIL (a service keeps
# answering while its index grows in a background thread).


@njit(cache=True, nogil=True)
def _merged_postings(
    old_indptr: np.ndarray,
    old_sessions: np.ndarray,
    old_positions: np.ndarray,
    new_indptr: np.ndarray,
    new_sessions: np.ndarray,
    new_positions: np.ndarray,
    k_old: int,
    sample_size: int,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per item, the last ``sample_size`` entries of (old list ++ new list); new sessions
    numbered after the ``k_old`` old ones."""
    n_items, n_old = new_indptr.size - 1, old_indptr.size - 1
    take_old = np.zeros(n_items, dtype=np.int64)
    indptr = np.zeros(n_items + 1, dtype=np.int64)
    for i in range(n_items):
        new_len = new_indptr[i + 1] - new_indptr[i]
        if i < n_old:
            take_old[i] = max(min(old_indptr[i + 1] - old_indptr[i], sample_size - new_len), 0)
        indptr[i + 1] = indptr[i] + take_old[i] + new_len
    sessions = np.empty(indptr[n_items], dtype=np.int64)
    positions = np.empty(indptr[n_items], dtype=np.int32)
    for i in range(n_items):
        out = indptr[i]
        if take_old[i]:
            first = old_indptr[i + 1] - take_old[i]
            for j in range(first, old_indptr[i + 1]):
                sessions[out] = old_sessions[j]
                positions[out] = old_positions[j]
                out += 1
        for j in range(new_indptr[i], new_indptr[i + 1]):
            sessions[out] = new_sessions[j] + k_old
            positions[out] = new_positions[j]
            out += 1
    return indptr, sessions, positions


@njit(cache=True, nogil=True)
def _referenced(sessions: np.ndarray, n_sessions: int) -> np.ndarray:
    """Which sessions some posting entry refers to."""
    referenced = np.zeros(n_sessions, dtype=np.bool_)
    for j in range(sessions.size):
        referenced[sessions[j]] = True
    return referenced


@njit(cache=True, nogil=True)
def _kept_postings(
    indptr: np.ndarray,
    sessions: np.ndarray,
    positions: np.ndarray,
    referenced: np.ndarray,
    number: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The entries of referenced sessions, renumbered (``number``: new number by old)."""
    n_items = indptr.size - 1
    out_indptr = np.zeros(n_items + 1, dtype=np.int64)
    out_sessions = np.empty(sessions.size, dtype=np.int32)
    out_positions = np.empty(sessions.size, dtype=np.int32)
    out = 0
    for i in range(n_items):
        for j in range(indptr[i], indptr[i + 1]):
            if referenced[sessions[j]]:
                out_sessions[out] = number[sessions[j]]
                out_positions[out] = positions[j]
                out += 1
        out_indptr[i + 1] = out
    return out_indptr, out_sessions[:out].copy(), out_positions[:out].copy()


@njit(cache=True, nogil=True)
def _kept_store(
    old_indptr: np.ndarray,
    old_items: np.ndarray,
    old_positions: np.ndarray,
    old_types: np.ndarray,
    keep_old: np.ndarray,
    new_indptr: np.ndarray,
    new_items: np.ndarray,
    new_positions: np.ndarray,
    new_types: np.ndarray,
    keep_new: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The stored items of the kept old sessions, then of the kept new ones."""
    n_kept = keep_old.size + keep_new.size
    indptr = np.zeros(n_kept + 1, dtype=np.int64)
    for r in range(keep_old.size):
        s = keep_old[r]
        indptr[r + 1] = indptr[r] + old_indptr[s + 1] - old_indptr[s]
    for r in range(keep_new.size):
        s = keep_new[r]
        row = keep_old.size + r
        indptr[row + 1] = indptr[row] + new_indptr[s + 1] - new_indptr[s]
    items = np.empty(indptr[n_kept], dtype=np.int32)
    positions = np.empty(indptr[n_kept], dtype=np.int32)
    types = np.empty(indptr[n_kept], dtype=np.int8)
    out = 0
    for r in range(keep_old.size):
        s = keep_old[r]
        for j in range(old_indptr[s], old_indptr[s + 1]):
            items[out], positions[out], types[out] = old_items[j], old_positions[j], old_types[j]
            out += 1
    for r in range(keep_new.size):
        s = keep_new[r]
        for j in range(new_indptr[s], new_indptr[s + 1]):
            items[out], positions[out], types[out] = new_items[j], new_positions[j], new_types[j]
            out += 1
    return indptr, items, positions, types


def _types(index: KnnIndex) -> np.ndarray:
    """The stored items' event types (all views for an index built without them)."""
    if index.sess_types.size == index.sess_items.size:
        return index.sess_types
    return np.zeros(index.sess_items.size, dtype=np.int8)

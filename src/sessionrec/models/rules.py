"""Rule models scored from the last item of the session: Markov chain and Sequential Rules.

Both learn a sparse item-to-item matrix ``W`` (row = the item just clicked, column = an item
that may come next) and score a session by the row of its last item. An item outside that
row has no evidence and scores ``-inf``; an empty session scores ``-inf`` everywhere (no
fallback: combine with ``pop`` in the serving layer when a list must never be empty).

:class:`LastItemModel` holds that shared part (state layout, scoring, pruning); the item
k-nearest-neighbour model in :mod:`sessionrec.models.itemknn` uses it too.

References:
    Ludewig & Jannach (2018), "Evaluation of session-based recommendation algorithms",
    User Modeling and User-Adapted Interaction 28(4-5): the ``MC`` and ``SR`` baselines.
    Kamehkhosh, Jannach & Ludewig (2017), "A comparison of frequent pattern techniques and a
    deep learning method for session-based recommendation", TempRec workshop at RecSys:
    where Sequential Rules were introduced.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from scipy import sparse

from sessionrec._errors import ModelError
from sessionrec.data.sessions import SessionData
from sessionrec.models.base import Reason, Recommender, SessionBatch
from sessionrec.models.params import check_choice, check_int

WEIGHTINGS: dict[str, Callable[[int], float]] = {
    "div": lambda d: 1.0 / d,
    "same": lambda d: 1.0,
    "linear": lambda d: max(0.0, 1.0 - 0.1 * d),
    "quadratic": lambda d: 1.0 / (d * d),
    "log": lambda d: 1.0 / float(np.log10(d + 1.7)),
}
"""Weight of a rule ``a -> b`` whose items are ``d`` clicks apart (session-rec's names)."""


def keep_top_per_row(matrix: sparse.csr_matrix, n: int) -> sparse.csr_matrix:
    """The ``n`` largest entries of every row of a CSR matrix, ties by lower column index.

    ``n >= 1``. Vectorised: only the entries of rows longer than ``n`` are sorted. Returns a
    new matrix with sorted column indices; the input is left as it is.
    """
    matrix = matrix.tocsr(copy=True)
    matrix.sort_indices()
    lengths = np.diff(matrix.indptr)
    if lengths.size == 0 or lengths.max() <= n:
        return matrix
    n_rows = lengths.size
    row_of = np.repeat(np.arange(n_rows, dtype=np.int64), lengths)
    keep = np.ones(matrix.nnz, dtype=bool)
    long_entries = np.flatnonzero(lengths[row_of] > n)
    # Sort the entries of long rows by (row, value descending, column); rows stay grouped,
    # so an entry's position minus its row's start is its rank within the row.
    order = long_entries[
        np.lexsort(
            (
                matrix.indices[long_entries],
                -matrix.data[long_entries],
                row_of[long_entries],
            )
        )
    ]
    long_lengths = lengths[lengths > n]
    group_start = np.repeat(np.cumsum(long_lengths) - long_lengths, long_lengths)
    rank = np.arange(order.size) - group_start
    keep[order[rank >= n]] = False
    indptr = np.zeros(n_rows + 1, dtype=np.int64)
    np.cumsum(np.minimum(lengths, n), out=indptr[1:])
    return sparse.csr_matrix((matrix.data[keep], matrix.indices[keep], indptr), shape=matrix.shape)


class LastItemModel(Recommender):
    """A model whose scores for a session are one row of a sparse item-to-item matrix.

    Subclasses implement ``_fit`` and end it with :meth:`_set_matrix`. The learned state is
    the CSR triple ``indptr_`` (int64, ``n_items + 1``), ``indices_`` (int32) and ``data_``
    (float32, every stored value finite and positive).
    """

    indptr_: np.ndarray
    indices_: np.ndarray
    data_: np.ndarray

    def _set_matrix(self, matrix: sparse.csr_matrix) -> None:
        """Store a square item-to-item matrix, dropping explicit zeros."""
        csr = sparse.csr_matrix(matrix, dtype=np.float64)
        csr.sum_duplicates()
        csr.eliminate_zeros()
        csr.sort_indices()
        self.indptr_ = csr.indptr.astype(np.int64)
        self.indices_ = csr.indices.astype(np.int32)
        self.data_ = csr.data.astype(np.float32)

    def matrix(self) -> sparse.csr_matrix:
        """The learned item-to-item matrix (a scipy CSR copy, float32)."""
        self._check_fitted()
        m = self.n_items
        return sparse.csr_matrix(
            (self.data_.copy(), self.indices_.copy(), self.indptr_.copy()), shape=(m, m)
        )

    def score(self, batch: SessionBatch) -> np.ndarray:
        self._check_fitted()
        scores = np.full((len(batch), self.n_items), -np.inf, dtype=np.float32)
        last = batch.last_items()
        sessions = np.flatnonzero(last >= 0)
        starts = self.indptr_[last[sessions]]
        lengths = self.indptr_[last[sessions] + 1] - starts
        total = int(lengths.sum())
        if total:
            # Positions of the wanted CSR rows, concatenated: one scatter for the whole batch.
            shift = np.repeat(starts - (np.cumsum(lengths) - lengths), lengths)
            entries = np.arange(total, dtype=np.int64) + shift
            scores[np.repeat(sessions, lengths), self.indices_[entries]] = self.data_[entries]
        return scores

    def _explain(self, session: np.ndarray, targets: np.ndarray, top: int) -> list[Reason]:
        """The last item and its matrix weight ``W[last, target]``: the whole score.

        Only the last item's row scores the session, so it is the one contributing item;
        a target outside that row has no evidence and gets no session item.
        """
        if session.size == 0:
            return [Reason("session_items") for _ in targets]
        last = int(session[-1])
        start, end = int(self.indptr_[last]), int(self.indptr_[last + 1])
        columns = self.indices_[start:end]
        weights = np.zeros(targets.size, dtype=np.float64)
        at = start + np.searchsorted(columns, targets)  # rows are sorted by column
        inside = np.flatnonzero(at < end)
        found = inside[self.indices_[at[inside]] == targets[inside]]
        weights[found] = self.data_[at[found]]
        return self._session_reasons("session_items", np.array([last]), weights[:, None], top)

    def _get_state(self) -> dict[str, np.ndarray]:
        return {"indptr": self.indptr_, "indices": self.indices_, "data": self.data_}

    def _set_state(self, state: dict[str, np.ndarray]) -> None:
        missing = sorted({"indptr", "indices", "data"} - set(state))
        if missing:
            raise ModelError(f"model state lacks arrays {missing}")
        m = self.n_items
        indptr = np.asarray(state["indptr"])
        indices = np.asarray(state["indices"])
        data = np.asarray(state["data"])
        if indptr.dtype.kind not in "iu" or indices.dtype.kind not in "iu":
            raise ModelError("model state: indptr and indices must be integer arrays")
        if data.dtype.kind != "f":
            raise ModelError("model state: data must be a float array")
        if indptr.shape != (m + 1,) or indptr[0] != 0 or (np.diff(indptr) < 0).any():
            raise ModelError(f"model state: indptr must be non-decreasing, from 0, length {m + 1}")
        if indices.shape != (indptr[-1],) or data.shape != indices.shape:
            raise ModelError("model state: indices and data must have indptr[-1] entries")
        if indices.size and (indices.min() < 0 or indices.max() >= m):
            raise ModelError(f"model state: indices must lie in [0, {m})")
        if not np.isfinite(data).all():
            raise ModelError("model state: data must be finite")
        self.indptr_ = indptr.astype(np.int64)
        self.indices_ = indices.astype(np.int32)
        self.data_ = data.astype(np.float32)


def _pairs_at_distance(
    train: SessionData, max_distance: int
) -> list[tuple[int, np.ndarray, np.ndarray]]:
    """For d = 1..max_distance: (d, earlier items, later items) of click pairs d apart.

    Pairs never cross a session boundary. One vectorised pass per distance, none per click.
    """
    items = train.items.astype(np.int64)
    position = np.arange(train.n_events, dtype=np.int64) - np.repeat(
        train.offsets[:-1], train.lengths
    )
    out = []
    later = np.arange(train.n_events, dtype=np.int64)
    for d in range(1, max_distance + 1):
        later = later[position[later] >= d]
        if later.size == 0:
            break
        out.append((d, items[later - d], items[later]))
    return out


class Markov(LastItemModel):
    """First-order Markov chain: score(j) = number of training transitions last item -> j.

    A transition is two consecutive clicks of one session, a repeated click (i -> i)
    included. Items that never followed the last item score ``-inf``; an empty session
    scores ``-inf`` everywhere. This is the ``MC`` baseline of Ludewig & Jannach (2018),
    without its normalisation by the row maximum (ranks are the same).
    """

    name = "markov"

    def __init__(self) -> None:
        pass

    def _fit(self, train: SessionData, valid: SessionData | None) -> None:
        m = self.n_items
        pairs = _pairs_at_distance(train, 1)
        if not pairs:
            self._set_matrix(sparse.csr_matrix((m, m)))
            return
        _, prev, nxt = pairs[0]
        counts = sparse.coo_matrix((np.ones(prev.size), (prev, nxt)), shape=(m, m))
        self._set_matrix(counts.tocsr())


class SequentialRules(LastItemModel):
    """Sequential Rules (SR) of Ludewig & Jannach (2018), from Kamehkhosh et al. (2017).

    For every training session ``s`` and every position ``p``, each earlier click ``s[p - d]``
    with ``1 <= d <= steps`` adds the weight ``w(d)`` to the rule ``s[p - d] -> s[p]``.
    A session is scored by the rules of its last item only; items without a rule score
    ``-inf`` (no fallback). Weightings (session-rec's names): ``"div"`` 1/d (default),
    ``"same"`` 1, ``"linear"`` max(0, 1 - 0.1 d), ``"quadratic"`` 1/d², ``"log"``
    1/log10(d + 1.7).

    Like session-rec's ``sr.py`` we keep steps=10, weighting="div", and count the rules of
    repeated clicks (i -> i) like any other; this reproduces the reference numbers
    (SR-GNN splits, pessimistic ties, HR@20 / MRR@20: Diginetica 39.68 / 13.71,
    YooChoose 1/64 66.96 / 30.07; the often quoted 66.88 / 30.04 is what one gets when a
    prefix whose last click is unknown to training gets no recommendation instead of being
    scored from its last known click), while dropping self-rules costs YooChoose 14 points
    of HR@20 (53.08), because repeated clicks are frequent targets there.

    Deviations from session-rec's ``sr.py``:

    - ``pruning`` defaults to 0 (keep every rule) instead of 20. ``pruning=N`` keeps the N
      heaviest rules per item, ties by lower internal index (session-rec: dict order);
      fractional pruning (session-rec's ``pruning < 1``) is not offered. Note that
      ``pruning=20`` *raises* HR@20 under pessimistic ties (Diginetica 40.38) only because
      it breaks the ties at the 20th place arbitrarily, before evaluation sees them.
    - A weight of 0 creates no rule (``"linear"`` at d >= 10); session-rec stores a rule of
      weight 0 there and lets ``1 - 0.1 d`` go negative beyond d = 10.
    - Scores are the raw summed weights in float32, not divided by the row maximum, and
      items without a rule get ``-inf`` rather than 0 (ranks are the same under
      pessimistic ties).
    - No ``last_n_days`` window: train on the sessions you want counted.
    """

    name = "sr"

    def __init__(self, steps: int = 10, weighting: str = "div", pruning: int = 0) -> None:
        check_int("steps", steps, minimum=1)
        check_choice("weighting", weighting, tuple(WEIGHTINGS))
        check_int("pruning", pruning, minimum=0)
        self.steps = steps
        self.weighting = weighting
        self.pruning = pruning

    def _fit(self, train: SessionData, valid: SessionData | None) -> None:
        m = self.n_items
        weight = WEIGHTINGS[self.weighting]
        rows, cols, vals = [], [], []
        for d, prev, nxt in _pairs_at_distance(train, int(self.steps)):
            w = weight(d)
            if w > 0:
                rows.append(prev)
                cols.append(nxt)
                vals.append(np.full(prev.size, w))
        if rows:
            coo = sparse.coo_matrix(
                (np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))),
                shape=(m, m),
            )
            rules = coo.tocsr()  # sums the weights of repeated (a, b) pairs, in float64
        else:
            rules = sparse.csr_matrix((m, m))
        if self.pruning > 0:
            rules = keep_top_per_row(rules, int(self.pruning))
        self._set_matrix(rules)

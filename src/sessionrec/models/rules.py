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
from sessionrec.models.knn_objective import (
    CART,
    OBJECTIVE_SHARES,
    PURCHASE,
    canonical_codes,
    check_objective_data,
    check_type_params,
)
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


def _pair_events(train: SessionData, max_distance: int) -> list[tuple[int, np.ndarray]]:
    """For d = 1..max_distance: (d, event indices of the later clicks of pairs d apart).

    The earlier click of each pair is the event ``d`` before. Pairs never cross a session
    boundary. One vectorised pass per distance, none per click.
    """
    position = np.arange(train.n_events, dtype=np.int64) - np.repeat(
        train.offsets[:-1], train.lengths
    )
    out = []
    later = np.arange(train.n_events, dtype=np.int64)
    for d in range(1, max_distance + 1):
        later = later[position[later] >= d]
        if later.size == 0:
            break
        out.append((d, later))
    return out


def strongest_later_type(train: SessionData, codes: np.ndarray) -> np.ndarray:
    """Per event, the strongest canonical type code (view < cart < purchase) of the same
    item in the same session at this event or after it: what the item became later."""
    session = np.repeat(np.arange(train.n_sessions, dtype=np.int64), train.lengths)
    _, group = np.unique(
        np.stack([session, train.items.astype(np.int64)], axis=1), axis=0, return_inverse=True
    )
    group = group.reshape(-1)
    position = np.arange(train.n_events, dtype=np.int64)
    strongest = np.zeros(train.n_events, dtype=np.int8)
    for code in (CART, PURCHASE):  # ascending: a later purchase overrides a later cart
        last = np.full(int(group.max(initial=-1)) + 1, -1, dtype=np.int64)
        at_least = np.flatnonzero(codes >= code)
        np.maximum.at(last, group[at_least], position[at_least])
        strongest[last[group] >= position] = code
    return strongest


class RuleTypes:
    """How event types weigh a rule ``a -> b`` (see :class:`Markov` and
    :class:`SequentialRules`): the source click ``a`` by its own type
    (``type_weight_cart``, ``type_weight_purchase``; a view counts 1), the target ``b`` by
    the share of the ``objective`` (:data:`~sessionrec.models.knn_objective.OBJECTIVE_SHARES`)
    for the strongest type the item reached from that click on in the session."""

    objective: str
    type_weight_cart: float
    type_weight_purchase: float

    def _set_type_params(
        self, objective: str, type_weight_cart: float, type_weight_purchase: float
    ) -> None:
        check_type_params(objective, type_weight_cart, type_weight_purchase)
        self.objective = objective
        self.type_weight_cart = type_weight_cart
        self.type_weight_purchase = type_weight_purchase

    def recommends_repeats(self) -> bool:
        """True for a cart or purchase objective: an item the visitor viewed or carted is a
        likely later cart or purchase, so serving must not exclude the session's items."""
        return self.objective != "click"

    def event_factors(self, train: SessionData) -> tuple[np.ndarray, np.ndarray] | None:
        """(source weight, target share) per training event, or None when types change
        nothing (the defaults: every rule then counts as it did before event types)."""
        codes = canonical_codes(train.types, train.event_types)
        check_objective_data(self.objective, codes)
        weights = (1.0, float(self.type_weight_cart), float(self.type_weight_purchase))
        if codes is None or (self.objective == "click" and weights == (1.0, 1.0, 1.0)):
            return None
        source = np.asarray(weights, dtype=np.float64)[codes]
        shares = np.asarray(OBJECTIVE_SHARES[self.objective], dtype=np.float64)
        return source, shares[strongest_later_type(train, codes)]


class Markov(RuleTypes, LastItemModel):
    """First-order Markov chain: score(j) = number of training transitions last item -> j.

    A transition is two consecutive clicks of one session, a repeated click (i -> i)
    included. Items that never followed the last item score ``-inf``; an empty session
    scores ``-inf`` everywhere. This is the ``MC`` baseline of Ludewig & Jannach (2018),
    without its normalisation by the row maximum (ranks are the same).

    Event types (:class:`RuleTypes`; the defaults leave every count as above): a transition
    counts ``type_weight_cart`` / ``type_weight_purchase`` when its source click is a cart /
    purchase, times the ``objective``'s share of the type its target item reached later in
    the session (``click``: 1 for every type).
    """

    name = "markov"

    def __init__(
        self,
        objective: str = "click",
        type_weight_cart: float = 1.0,
        type_weight_purchase: float = 1.0,
    ) -> None:
        self._set_type_params(objective, type_weight_cart, type_weight_purchase)

    def _fit(self, train: SessionData, valid: SessionData | None) -> None:
        m = self.n_items
        factors = self.event_factors(train)
        pairs = _pair_events(train, 1)
        if not pairs:
            self._set_matrix(sparse.csr_matrix((m, m)))
            return
        _, later = pairs[0]
        items = train.items.astype(np.int64)
        prev, nxt = items[later - 1], items[later]
        values = np.ones(prev.size)
        if factors is not None:
            source, share = factors
            values = source[later - 1] * share[later]
        counts = sparse.coo_matrix((values, (prev, nxt)), shape=(m, m))
        self._set_matrix(counts.tocsr())


class SequentialRules(RuleTypes, LastItemModel):
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

    Event types (:class:`RuleTypes`, as for :class:`Markov`; the defaults change nothing):
    a rule's weight ``w(d)`` is multiplied by its source click's type weight and by the
    ``objective``'s share of the type its target item reached later in the session.
    """

    name = "sr"

    def __init__(
        self,
        steps: int = 10,
        weighting: str = "div",
        pruning: int = 0,
        objective: str = "click",
        type_weight_cart: float = 1.0,
        type_weight_purchase: float = 1.0,
    ) -> None:
        check_int("steps", steps, minimum=1)
        check_choice("weighting", weighting, tuple(WEIGHTINGS))
        check_int("pruning", pruning, minimum=0)
        self._set_type_params(objective, type_weight_cart, type_weight_purchase)
        self.steps = steps
        self.weighting = weighting
        self.pruning = pruning

    def _fit(self, train: SessionData, valid: SessionData | None) -> None:
        m = self.n_items
        weight = WEIGHTINGS[self.weighting]
        factors = self.event_factors(train)
        items = train.items.astype(np.int64)
        rows, cols, vals = [], [], []
        for d, later in _pair_events(train, int(self.steps)):
            w = weight(d)
            if w > 0:
                rows.append(items[later - d])
                cols.append(items[later])
                if factors is None:
                    vals.append(np.full(later.size, w))
                else:
                    source, share = factors
                    vals.append(w * source[later - d] * share[later])
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

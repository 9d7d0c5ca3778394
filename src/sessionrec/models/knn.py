"""Session-based k-nearest neighbours: ``sknn``, ``vsknn``, ``stan``, ``vstan``, ``vmisknn``.

All five recommend the items of the training sessions most similar to the current one. They
share one index and one Numba pipeline (:mod:`sessionrec.models._knn_kernels`) and differ
in how they weight things:

=========  ===================  ============================  ================================
model      session item weight  similarity                    item score of neighbour ``n``
=========  ===================  ============================  ================================
sknn       1                    cosine (or jaccard, dot)      sim(s, n)
vsknn      decay by position    dot product / distinct items  sim · decay(match) · (1 + λ·idf)
stan       exp(-d / λ1)         cosine · exp(-age(n) / λ2)    sim · exp(-|p(i,n) - p*| / λ3)
vstan      exp(-d / λ_spw)      cosine · exp(-age(n) / λ_snh) stan · exp(-d* / λ_ipw) · (1+λ·idf)
vmisknn    position / length    dot product                   sim · linear(match) · idf
=========  ===================  ============================  ================================

Definitions shared by every model (and every docstring below):

- ``d``: clicks between an item's last click in the current session and the session's last
  click (0 for the last click); a repeated item keeps the weight of its last click.
- **candidates**: the ``sample_size`` most recent training sessions that share at least one
  item with the current session ("recent" sampling of session-rec). **Neighbours**: the ``k``
  candidates with the highest positive similarity; ties go to the more recent session.
- **recency** of a training session: its order by last click time when the training data has
  timestamps, otherwise its position in the data (sessions are stored chronologically). The
  **age** of a training session is the number of training sessions more recent than it.
- **match** of a neighbour: the most recent click of the current session whose item the
  neighbour contains; ``step`` is its position counted back from the last click (1 = last),
  ``d* = step - 1``. ``p(i, n)`` is the position (1-based, last click) of item ``i`` in
  neighbour ``n``, and ``p*`` the last position in ``n`` of an item it shares with the session.
- **idf** of an item: ``log(N / N_i)``, with ``N`` training sessions of which ``N_i``
  contain the item.

Every item of a neighbour (the session's own items included) gets a score; all other items
score ``-inf`` ("no evidence"). A session for which no item gets a score (it is empty, made
only of unknown items, or shares nothing usable with the training data) falls back to global
popularity (training clicks per item), for every item; :meth:`SessionKNN.fallback_mask` tells
which sessions of a batch did, so a service can label those lists "popular" rather than
"personalised".

Scoring touches only the session's candidates: each item's posting list (the training sessions
containing it) is read from its most recent end, and lists are truncated at fit time to their
``sample_size`` most recent sessions, which loses nothing (the ``m`` most recent sessions of a
union of lists are among the ``m`` most recent of each list). :meth:`SessionKNN.top_k` selects
the best items straight from the sparse scores, and :meth:`SessionKNN.target_ranks` ranks
evaluation targets without dense rows; both agree exactly with :meth:`SessionKNN.score`.

Deviations shared by all five models, relative to the papers and the session-rec reference
implementations (rn5l/session-rec, ``algorithms/knn``):

- Time-aware parts (STAN's λ2, VSTAN's λ_snh) measure a neighbour's age in training sessions
  rather than seconds or days: the benchmark files have no timestamps, and an ordinal age
  works the same with and without them. ``SessionBatch.times`` is therefore never needed and
  is ignored; the current session counts as younger than every training session.
- Only "recent" candidate sampling (session-rec's default); no "random" sampling, which would
  make recommendations non-deterministic.
- The session's own items are always eligible (session-rec's ``remind=True``); callers that do
  not want them pass ``exclude_seen=True`` to ``recommend``.
- Neighbour ties are broken by recency (session-rec: by the order of a Python ``set``).
- ``session-rec``'s ``extend`` (adding test sessions to the index while evaluating), dwelling
  times, ``last_n_days`` and the final division by the maximum score (``normalize``, rank
  invariant) are not provided.
"""

from __future__ import annotations

import abc
from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar, Literal

import numpy as np

from sessionrec._errors import DataError, ModelError
from sessionrec.data.sessions import SessionData, gather_ranges
from sessionrec.models import _knn_kernels as kernels
from sessionrec.models._knn_kernels import KernelConfig, KnnIndex, KnnWeights
from sessionrec.models.base import Reason, Recommender, SessionBatch, TopK, check_k, ranked_rows
from sessionrec.models.params import check_choice, check_float, check_int, check_param

POSITION_WEIGHTS: dict[str, int] = {
    "same": kernels.W_SAME,
    "linear": kernels.W_LINEAR,
    "div": kernels.W_DIV,
    "quadratic": kernels.W_QUADRATIC,
    "log": kernels.W_LOG,
}
"""Session item weights by ``d`` (clicks back from the last click, ``L`` clicks in all):
``same`` 1, ``linear`` max(0, 1 - 0.1 d), ``div`` (L - d) / L, ``quadratic`` ((L - d) / L)²,
``log`` 1 / log10(d + 1.7). Names and shapes of session-rec's ``weighting``, except that
``linear`` counts back from the last click as the V-SKNN paper describes (session-rec counts
from the first click, a bug for sessions longer than ten clicks)."""

MATCH_DECAYS: dict[str, int] = {
    "same": kernels.D_SAME,
    "linear": kernels.D_LINEAR,
    "div": kernels.D_DIV,
    "quadratic": kernels.D_QUADRATIC,
    "log": kernels.D_LOG,
}
"""Neighbour decays by the ``step`` of its match (1 = last click): ``same`` 1, ``linear``
max(0, 1 - 0.1 step), ``div`` 1 / step, ``quadratic`` 1 / step², ``log`` 1 / log10(step + 1.7):
session-rec's ``weighting_score`` functions, clipped at 0 (session-rec's and Serenade's
linear decay turns negative after ten clicks)."""

SIMILARITIES: dict[str, int] = {
    "vec": kernels.SIM_VEC,
    "cosine": kernels.SIM_COSINE,
    "jaccard": kernels.SIM_JACCARD,
}
"""``vec``: dot product of the weighted session with the neighbour's item set, divided by the
number of distinct session items; ``cosine``: the dot product divided by the norms of both
vectors (weighted session, binary neighbour); ``jaccard``: shared / (union of item sets), on
unweighted items."""


def check_sampling(k: object, sample_size: object) -> None:
    """``k >= 1`` neighbours among ``sample_size >= k`` candidate sessions."""
    check_int("k", k, minimum=1)
    check_int("sample_size", sample_size, minimum=1)
    check_param(
        "sample_size",
        sample_size,
        sample_size >= k,  # type: ignore[operator]
        f"expected at least k={k} candidate sessions to choose {k} neighbours from",
    )


def check_decay(name: str, value: object) -> None:
    """A decay constant λ of ``exp(-x / λ)``: a finite number > 0 (large = no decay)."""
    check_float(name, value, minimum=0.0, strict_min=True)


@dataclass(frozen=True)
class Scoring:
    """What a model class decides: the kernel's switches and the factors of :class:`KnnWeights`.

    ``recency_lambda`` and ``position_lambda`` of 0 switch those decays off; ``idf`` is
    ``"add"`` for ``(1 + idf_lambda · idf)`` (V-SKNN, VSTAN) or ``"mul"`` for ``idf``
    (VMIS-kNN).
    """

    weighting: int
    similarity: int
    weighting_lambda: float = 1.0
    match_decay: int = kernels.D_SAME
    match_lambda: float = 1.0
    recency_lambda: float = 0.0
    position_lambda: float = 0.0
    idf: Literal["none", "add", "mul"] = "none"
    idf_lambda: float = 0.0


def make_weights(index: KnnIndex, scoring: Scoring) -> KnnWeights:
    """The precomputed per-session, per-item and per-distance factors (vectorised)."""
    session = np.ones(index.sess_age.size, dtype=np.float64)
    if scoring.recency_lambda > 0:
        session *= np.exp(-index.sess_age / scoring.recency_lambda)
    if scoring.similarity == kernels.SIM_COSINE:
        session /= np.sqrt(np.maximum(np.diff(index.sess_indptr), 1))
    item = np.ones(index.idf.size, dtype=np.float64)
    if scoring.idf == "add":
        item += scoring.idf_lambda * index.idf
    elif scoring.idf == "mul":
        item = index.idf.copy()
    entry = item[index.sess_items]  # read in order while scoring, not scattered by item
    longest = int(index.sess_positions.max()) if index.sess_positions.size else 0
    distance = np.ones(longest + 1, dtype=np.float64)
    if scoring.position_lambda > 0:
        distance = np.exp(-np.arange(longest + 1) / scoring.position_lambda)
    return KnnWeights(session=session, entry=entry, distance=distance)


def build_index(train: SessionData, sample_size: int) -> tuple[KnnIndex, np.ndarray]:
    """The posting lists and session store of ``train`` (vectorised, no loop per click).

    Returns the index and, for every kept session number, the index of that session in
    ``train`` (a session is kept when some truncated posting list still refers to it).
    """
    n_items, n_sessions = train.n_items, train.n_sessions
    lengths = train.lengths
    if train.times is not None:
        end = np.nan_to_num(train.end_times(), nan=-np.inf)
        by_recency = np.lexsort((np.arange(n_sessions), end))
    else:
        by_recency = np.arange(n_sessions)
    rank = np.empty(n_sessions, dtype=np.int64)
    rank[by_recency] = np.arange(n_sessions)

    click_rank = rank[train.session_index()]
    position = np.arange(train.n_events, dtype=np.int64) - np.repeat(train.offsets[:-1], lengths)
    position += 1
    items = train.items.astype(np.int64)

    # One pair per (session, item): the item's last click, sorted by (recency, item).
    key = click_rank * n_items + items
    by_key = np.lexsort((position, key))
    key_sorted = key[by_key]
    last = np.ones(by_key.size, dtype=bool)
    last[:-1] = key_sorted[1:] != key_sorted[:-1]
    pairs = by_key[last]
    pair_rank, pair_item, pair_pos = click_rank[pairs], items[pairs], position[pairs]

    # Posting lists, oldest first, truncated to the sample_size most recent sessions.
    by_item = np.lexsort((pair_rank, pair_item))
    df = np.bincount(pair_item, minlength=n_items).astype(np.int64)
    from_end = np.cumsum(df)[pair_item[by_item]] - 1 - np.arange(by_item.size)
    kept = by_item[from_end < sample_size]
    post_indptr = np.zeros(n_items + 1, dtype=np.int64)
    np.cumsum(np.minimum(df, sample_size), out=post_indptr[1:])

    # Keep only the sessions some list refers to, renumbered in recency order.
    referenced = np.zeros(n_sessions, dtype=bool)
    referenced[pair_rank[kept]] = True
    number = np.cumsum(referenced) - 1  # by rank
    kept_ranks = np.flatnonzero(referenced)
    in_store = referenced[pair_rank]
    sess_indptr = np.zeros(kept_ranks.size + 1, dtype=np.int64)
    np.cumsum(
        np.bincount(number[pair_rank[in_store]], minlength=kept_ranks.size),
        out=sess_indptr[1:],
    )
    n_nonempty = int((lengths > 0).sum())
    with np.errstate(divide="ignore"):
        idf = np.where(df > 0, np.log(n_nonempty / np.maximum(df, 1)), 0.0)
    index = KnnIndex(
        post_indptr=post_indptr,
        post_sessions=number[pair_rank[kept]].astype(np.int32),
        post_positions=pair_pos[kept].astype(np.int32),
        sess_indptr=sess_indptr,
        sess_items=pair_item[in_store].astype(np.int32),
        sess_positions=pair_pos[in_store].astype(np.int32),
        sess_age=(n_sessions - 1 - kept_ranks).astype(np.float64),
        idf=idf.astype(np.float64),
    )
    return index, by_recency[kept_ranks].astype(np.int64)


class SessionKNN(Recommender):
    """Shared machinery of the session-kNN models; subclasses define :meth:`_scoring`.

    Learned state: ``index_`` (a :class:`KnnIndex`), ``session_source_`` (the training session
    behind every kept session number) and ``popularity_`` (training clicks per item, for the
    fallback). ``config_`` and ``weights_`` are derived from them and the hyperparameters.
    """

    artifact_version: ClassVar[int] = 1
    k: int
    sample_size: int
    last_n_clicks: int  # every member of the family takes these three hyperparameters

    index_: KnnIndex
    session_source_: np.ndarray
    popularity_: np.ndarray
    config_: KernelConfig
    weights_: KnnWeights

    @abc.abstractmethod
    def _scoring(self) -> Scoring:
        """How this model's hyperparameters set up the shared pipeline."""

    def _prepare(self) -> None:
        """Derive the kernel settings and precomputed factors (after fit or load)."""
        scoring = self._scoring()
        self.config_ = KernelConfig(
            k=int(self.k),
            sample_size=int(self.sample_size),
            last_n=int(self.last_n_clicks),
            weighting=int(scoring.weighting),
            weighting_lambda=float(scoring.weighting_lambda),
            similarity=int(scoring.similarity),
            match_decay=int(scoring.match_decay),
            match_lambda=float(scoring.match_lambda),
        )
        self.weights_ = make_weights(self.index_, scoring)

    # ------------------------------------------------------------------- fit
    def _fit(self, train: SessionData, valid: SessionData | None) -> None:
        # ``valid`` is unused: a neighbourhood model has no epochs to select.
        self.index_, self.session_source_ = build_index(train, int(self.sample_size))
        self._set_popularity(train.item_counts())
        self._prepare()

    def _set_popularity(self, popularity: np.ndarray) -> None:
        self.popularity_ = popularity.astype(np.int64)
        values = self.popularity_.astype(np.float32)
        self._pop_scores = values
        # Best first, ties by lower index: the fallback's top-k list.
        self._pop_order = np.lexsort((np.arange(values.size), -values)).astype(np.int64)
        # Pessimistic rank of every item in the fallback row: items scoring >= it.
        ascending = np.sort(values)
        self._pop_rank = (values.size - np.searchsorted(ascending, values, side="left")).astype(
            np.float64
        )

    # --------------------------------------------------------------- scoring
    def _batch_arrays(self, batch: SessionBatch) -> tuple[np.ndarray, np.ndarray]:
        """Validated CSR arrays: the kernels index without bounds checks."""
        self._check_fitted()
        offsets = np.ascontiguousarray(batch.offsets, dtype=np.int64)
        items = np.ascontiguousarray(batch.items, dtype=np.int32)
        if items.size and (items.min() < 0 or items.max() >= self.n_items):
            raise DataError(f"session items must be internal indices in [0, {self.n_items})")
        if offsets.size == 0 or offsets[0] != 0 or offsets[-1] != items.size:
            raise DataError("batch offsets must start at 0 and end at the number of items")
        return offsets, items

    def score(self, batch: SessionBatch) -> np.ndarray:
        offsets, items = self._batch_arrays(batch)
        out = np.full((len(batch), self.n_items), -np.inf, dtype=np.float32)
        kernels.score_dense(
            offsets, items, self.config_, self.index_, self.weights_, self._pop_scores, out
        )
        return out

    def top_k(
        self,
        batch: SessionBatch,
        k: int,
        exclude: Sequence[np.ndarray] | None = None,
    ) -> list[TopK]:
        """Exact top-``k`` from the sparse scores (equals the dense default)."""
        k = check_k(k)
        offsets, items = self._batch_arrays(batch)
        extra = max((len(e) for e in exclude), default=0) if exclude is not None else 0
        n = min(k + extra, self.n_items)
        best, scores, counts, _ = kernels.top_n(
            offsets,
            items,
            self.config_,
            self.index_,
            self.weights_,
            self._pop_scores,
            self._pop_order,
            n,
        )
        results: list[TopK] = []
        for row in range(len(batch)):
            idx, vals = best[row, : counts[row]], scores[row, : counts[row]]
            if exclude is not None and len(exclude[row]):
                keep = ~np.isin(idx, np.asarray(exclude[row], dtype=np.int64))
                idx, vals = idx[keep], vals[keep]
            results.append((idx[:k], vals[:k]))
        return results

    def target_ranks(self, batch: SessionBatch, targets: np.ndarray) -> np.ndarray:
        """Pessimistic 1-based rank of each session's target (internal index); inf = miss.

        Equal to ranking the target in :meth:`score`'s row with pessimistic ties (as the
        evaluation protocol does) without materialising dense rows: the fast path that
        tuning uses. A target < 0 (unknown) is a miss.
        """
        offsets, items = self._batch_arrays(batch)
        targets = np.ascontiguousarray(targets, dtype=np.int64)
        if targets.shape != (len(batch),):
            raise DataError(f"expected one target per session ({len(batch)}), got {targets.shape}")
        if targets.size and targets.max() >= self.n_items:
            raise DataError(f"targets must be internal indices below {self.n_items}")
        return kernels.target_ranks(
            offsets, items, targets, self.config_, self.index_, self.weights_, self._pop_rank
        )

    def fallback_mask(self, batch: SessionBatch) -> np.ndarray:
        """True for every session whose scores are the popularity fallback (no neighbour)."""
        offsets, items = self._batch_arrays(batch)
        return kernels.fallback_flags(offsets, items, self.config_, self.index_, self.weights_)

    def neighbors(self, session: Sequence[int] | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The neighbours of one session (internal item indices), most recent first.

        Returns the neighbours' indices in the training data and their similarities; for
        explanations ("people who viewed these also viewed") and tests.
        """
        batch = SessionBatch.from_sequences([np.asarray(session, dtype=np.int32)])
        _, items = self._batch_arrays(batch)
        sessions, sims, _, _ = kernels.neighbors(items, self.config_, self.index_, self.weights_)
        return self.session_source_[sessions], sims

    # ---------------------------------------------------------- explanations
    def _explain(self, session: np.ndarray, targets: np.ndarray, top: int) -> list[Reason]:
        """Exact shares of each target's score, by neighbour and by session item.

        Neighbour ``n`` adds ``c_n = sim(s, n) · decay(step_n) · f_n(i)`` to item ``i`` (the
        factors of the module docstring). Its similarity is a sum over the session items it
        shares, each weighing its position weight ``w_j`` (1 for Jaccard), so session item
        ``j`` is credited ``Σ_n c_n · w_j / Σ_{j' shared with n} w_j'``: the session items'
        weights add up to the score, and so do the neighbours'. Neighbour ties go to the
        more recent session, session item ties to the more recent click. A session that
        takes the popularity fallback gets kind ``"popular"``.
        """
        clicks = np.ascontiguousarray(session, dtype=np.int32)
        cfg, index, weights = self.config_, self.index_, self.weights_
        sessions, sims, steps, pstar = kernels.neighbors(clicks, cfg, index, weights)
        base = sims * kernels.match_decays(steps, cfg.match_decay, cfg.match_lambda)
        live = np.flatnonzero(base != 0.0)  # the kernel skips the others too
        if live.size == 0:
            return [Reason("popular") for _ in targets]
        sessions, base, pstar = sessions[live].astype(np.int64), base[live], pstar[live]
        profile, item_weights, _, _ = kernels.session_profile(clicks, cfg)

        # Every stored (neighbour, item) entry, neighbours in the kernel's order.
        starts = index.sess_indptr[sessions]
        lengths = index.sess_indptr[sessions + 1] - starts
        entries = gather_ranges(starts, lengths)
        owner = np.repeat(np.arange(sessions.size), lengths)
        entry_items = index.sess_items[entries].astype(np.int64)

        # c[t, n]: what neighbour n adds to the score of distinct target t (a session stores
        # each of its items once, so every (t, n) cell is written at most once).
        distinct, target_row = np.unique(targets, return_inverse=True)
        row = np.searchsorted(distinct, entry_items).clip(0, distinct.size - 1)
        hit = np.flatnonzero(distinct[row] == entry_items)
        n, entry = owner[hit], entries[hit]
        distance = np.abs(index.sess_positions[entry].astype(np.int64) - pstar[n])
        contributions = np.zeros((distinct.size, sessions.size), dtype=np.float64)
        contributions[row[hit], n] = base[n] * weights.distance[distance] * weights.entry[entry]

        # share[n, j]: the part of neighbour n's similarity due to session item j (every
        # neighbour shares at least one item with the session, so the profile is not empty).
        by_item = np.argsort(profile, kind="stable")
        found = np.searchsorted(profile[by_item], entry_items).clip(0, profile.size - 1)
        shared = profile[by_item][found] == entry_items
        column = by_item[found[shared]]
        share = np.zeros((sessions.size, profile.size), dtype=np.float64)
        share[owner[shared], column] = item_weights[column]
        totals = share.sum(axis=1, keepdims=True)
        share = np.divide(share, totals, out=np.zeros_like(share), where=totals > 0)
        item_credit = contributions @ share  # [distinct targets, q], profile: most recent first

        # The kernel lists neighbours most recent first: stable sorts keep that among ties.
        by_items = self._session_reasons("neighbours", profile, item_credit, top)
        by_neighbours = ranked_rows(self.session_source_[sessions], contributions, top)
        return [
            Reason("neighbours", by_items[row].session_items, by_neighbours[row])
            for row in target_row.tolist()
        ]

    # ----------------------------------------------------------- persistence
    def _get_state(self) -> dict[str, np.ndarray]:
        state = {name: np.asarray(value) for name, value in self.index_._asdict().items()}
        state["session_source"] = self.session_source_
        state["popularity"] = self.popularity_
        return state

    def _set_state(self, state: dict[str, np.ndarray]) -> None:
        missing = sorted((set(KnnIndex._fields) | {"session_source", "popularity"}) - set(state))
        if missing:
            raise ModelError(f"model state lacks arrays {missing}")
        m = self.n_items
        dtypes = {
            "post_indptr": np.int64,
            "post_sessions": np.int32,
            "post_positions": np.int32,
            "sess_indptr": np.int64,
            "sess_items": np.int32,
            "sess_positions": np.int32,
            "sess_age": np.float64,
            "idf": np.float64,
        }
        arrays = {}
        for name, dtype in dtypes.items():
            value = np.asarray(state[name])
            if value.ndim != 1 or value.dtype.kind not in ("f" if dtype is np.float64 else "iu"):
                raise ModelError(f"model state: {name} must be a 1-d {np.dtype(dtype)} array")
            arrays[name] = np.ascontiguousarray(value, dtype=dtype)
        index = KnnIndex(**arrays)
        n_kept = index.sess_age.size
        _check_csr("post", index.post_indptr, m, index.post_sessions, n_kept)
        _check_csr("sess", index.sess_indptr, n_kept, index.sess_items, m)
        if index.post_positions.shape != index.post_sessions.shape or (
            index.sess_positions.shape != index.sess_items.shape
        ):
            raise ModelError("model state: positions must align with their CSR entries")
        if index.idf.shape != (m,) or not np.isfinite(index.idf).all():
            raise ModelError(f"model state: idf must hold {m} finite values")
        source = np.asarray(state["session_source"])
        popularity = np.asarray(state["popularity"])
        if source.shape != (n_kept,) or source.dtype.kind not in "iu":
            raise ModelError(f"model state: session_source must hold {n_kept} integers")
        if popularity.shape != (m,) or popularity.dtype.kind not in "iu":
            raise ModelError(f"model state: popularity must hold {m} integers")
        self.index_ = index
        self.session_source_ = source.astype(np.int64)
        self._set_popularity(popularity)
        self._prepare()


def _check_csr(name: str, indptr: np.ndarray, rows: int, values: np.ndarray, bound: int) -> None:
    """A saved CSR structure: the kernels trust it, so a damaged file must fail here."""
    if indptr.shape != (rows + 1,) or indptr[0] != 0 or (np.diff(indptr) < 0).any():
        raise ModelError(
            f"model state: {name}_indptr must be non-decreasing from 0, {rows + 1} long"
        )
    if indptr[-1] != values.size:
        raise ModelError(f"model state: {name}_indptr must end at the number of entries")
    if values.size and (values.min() < 0 or values.max() >= bound):
        raise ModelError(f"model state: {name} entries must lie in [0, {bound})")


class SKNN(SessionKNN):
    """Session-based kNN (``sknn``): Jannach & Ludewig (2017), "When recurrent neural networks
    meet the neighborhood for session-based recommendation", RecSys, section 2 ("SKNN").

    Sessions are binary item vectors; ``score(i) = Σ_{n ∈ N(s)} sim(s, n) · 1[i ∈ n]`` over the
    ``k`` nearest of the ``sample_size`` most recent candidate sessions (module docstring).

    Parameters:
        k: neighbours.
        sample_size: candidate sessions (the most recent sharing an item); at least ``k``.
        similarity: ``cosine`` (default), ``jaccard`` or ``vec`` (see :data:`SIMILARITIES`).
        last_n_clicks: use only the session's last clicks (0 = all; session-rec's
            ``last_n_clicks``).

    Deviations: those of the module docstring; defaults ``k=100``, ``sample_size=500`` (the
    neighbourhood of this project's V-SKNN yardstick) instead of session-rec's required ``k``
    and ``sample_size=1000``; cosine by default (the paper's choice; session-rec's ``sknn``
    defaults to Jaccard).
    """

    name = "sknn"

    def __init__(
        self,
        k: int = 100,
        sample_size: int = 500,
        similarity: str = "cosine",
        last_n_clicks: int = 0,
    ) -> None:
        check_sampling(k, sample_size)
        check_choice("similarity", similarity, SIMILARITIES)
        check_int("last_n_clicks", last_n_clicks, minimum=0)
        self.k = k
        self.sample_size = sample_size
        self.similarity = similarity
        self.last_n_clicks = last_n_clicks

    def _scoring(self) -> Scoring:
        return Scoring(weighting=kernels.W_SAME, similarity=SIMILARITIES[self.similarity])


class VSKNN(SessionKNN):
    """Vector multiplication session-based kNN (``vsknn``, V-SKNN): Jannach & Ludewig (2017),
    "When recurrent neural networks meet the neighborhood for session-based recommendation",
    RecSys, section 2 ("V-SKNN"); options of Ludewig & Jannach (2018), "Evaluation of
    session-based recommendation algorithms", UMUAI 28(4-5).

    The current session is a real-valued vector: the last click weighs 1 and earlier items
    decay with their distance ``d`` to it (``weighting``). With ``similarity="vec"`` the
    similarity is the dot product with the neighbour's (binary) item set divided by the number
    of distinct session items. ``score(i) = Σ_n sim(s, n) · decay(step_n) · (1 + λ_idf ·
    idf(i)) · 1[i ∈ n]`` with ``decay = weighting_score`` of the neighbour's match.

    Parameters:
        k, sample_size, last_n_clicks: as for :class:`SKNN`.
        weighting: session item weights by position (:data:`POSITION_WEIGHTS`).
        similarity: ``vec`` (default) or ``cosine``.
        weighting_score: neighbour decay by its match (:data:`MATCH_DECAYS`); ``same`` = none.
        idf_weighting: λ_idf >= 0 (0 = no IDF).

    Defaults: the paper's V-SKNN as configured for this project's yardstick (HR@20 / MRR@20
    49.08 / 17.42 on Diginetica, 63.81 / 25.70 on YooChoose 1/64): 100 neighbours among the
    500 most recent candidates, linear decay ``max(0, 1 - 0.1 d)``, dot product / distinct
    items, no score decay, no IDF. Deviations: those of the module docstring; ``linear``
    counts ``d`` back from the last click (session-rec's ``linear`` counts from the first
    click and weighs every item after the tenth 0); IDF uses sessions containing the item
    (session-rec: its clicks).
    """

    name = "vsknn"

    def __init__(
        self,
        k: int = 100,
        sample_size: int = 500,
        weighting: str = "linear",
        similarity: str = "vec",
        weighting_score: str = "same",
        idf_weighting: float = 0.0,
        last_n_clicks: int = 0,
    ) -> None:
        check_sampling(k, sample_size)
        check_choice("weighting", weighting, POSITION_WEIGHTS)
        check_choice("similarity", similarity, ("vec", "cosine"))
        check_choice("weighting_score", weighting_score, MATCH_DECAYS)
        check_float("idf_weighting", idf_weighting, minimum=0.0)
        check_int("last_n_clicks", last_n_clicks, minimum=0)
        self.k = k
        self.sample_size = sample_size
        self.weighting = weighting
        self.similarity = similarity
        self.weighting_score = weighting_score
        self.idf_weighting = idf_weighting
        self.last_n_clicks = last_n_clicks

    def _scoring(self) -> Scoring:
        return Scoring(
            weighting=POSITION_WEIGHTS[self.weighting],
            similarity=SIMILARITIES[self.similarity],
            match_decay=MATCH_DECAYS[self.weighting_score],
            idf="add" if self.idf_weighting > 0 else "none",
            idf_lambda=float(self.idf_weighting),
        )


class STAN(SessionKNN):
    """Sequence and time aware neighbourhood (``stan``): Garg, Gupta, Dasgupta, Padmanabhan &
    Bhatia (2019), "Sequence and time aware neighborhood for session-based recommendations:
    STAN", SIGIR.

    Three decays on top of SKNN:

    1. item ``i`` of the current session weighs ``w1 = exp(-d / λ1)`` (``lambda_spw``);
    2. the similarity of neighbour ``n`` (cosine of the weighted session with the binary
       neighbour) is multiplied by ``w2 = exp(-age(n) / λ2)`` (``lambda_snh``), and the
       ``k`` neighbours are chosen by that product;
    3. item ``i`` of neighbour ``n`` scores ``sim(s, n) · exp(-|p(i, n) - p*| / λ3)``
       (``lambda_inh``): items close to where the neighbour met the session count more.

    Parameters:
        k, sample_size, last_n_clicks: as for :class:`SKNN`.
        lambda_spw, lambda_snh, lambda_inh: λ1, λ2, λ3, each > 0; a huge value switches the
            decay off.

    Defaults: λ1 = 1.02 and λ3 = 2.05 as in session-rec's STAN, ``sample_size=5000`` (its
    default), ``k=100``. Deviations: those of the module docstring; λ2 counts training
    sessions, not days, so session-rec's default of 5 days has no portable equivalent (it is
    about 6,000 Diginetica sessions, and costs 7 points of HR@20 there): the default
    ``lambda_snh=100000`` lies between the values tuned on Diginetica and YooChoose 1/64;
    the similarity's norm of the session is the
    weighted norm rather than ``sqrt(l(s))`` (a per-session constant: same neighbours, same
    ranking); ``p*`` is the last position in ``n`` of any item shared with the session, as in
    session-rec and RecPack.
    """

    name = "stan"

    def __init__(
        self,
        k: int = 100,
        sample_size: int = 5000,
        lambda_spw: float = 1.02,
        lambda_snh: float = 100_000.0,
        lambda_inh: float = 2.05,
        last_n_clicks: int = 0,
    ) -> None:
        check_sampling(k, sample_size)
        check_decay("lambda_spw", lambda_spw)
        check_decay("lambda_snh", lambda_snh)
        check_decay("lambda_inh", lambda_inh)
        check_int("last_n_clicks", last_n_clicks, minimum=0)
        self.k = k
        self.sample_size = sample_size
        self.lambda_spw = lambda_spw
        self.lambda_snh = lambda_snh
        self.lambda_inh = lambda_inh
        self.last_n_clicks = last_n_clicks

    def _scoring(self) -> Scoring:
        return Scoring(
            weighting=kernels.W_EXP,
            weighting_lambda=float(self.lambda_spw),
            similarity=kernels.SIM_COSINE,
            recency_lambda=float(self.lambda_snh),
            position_lambda=float(self.lambda_inh),
        )


class VSTAN(SessionKNN):
    """STAN with V-SKNN's extras (``vstan``): Ludewig, Latifi, Mauro & Jannach (2021),
    "Empirical analysis of session-based recommendation algorithms", UMUAI 31(1), section 3
    ("VSTAN").

    STAN's three decays (λ_spw, λ_snh, λ_inh, see :class:`STAN`) plus, per neighbour, the
    V-SKNN decay by its match ``exp(-d* / λ_ipw)`` and, per item, IDF weighting
    ``(1 + λ_idf · idf(i))``.

    Parameters:
        k, sample_size, last_n_clicks: as for :class:`SKNN`.
        similarity: ``cosine`` (default) or ``vec``.
        lambda_spw, lambda_snh, lambda_inh, lambda_ipw: decay constants, each > 0.
        lambda_idf: IDF weight >= 0 (0 = none).

    Defaults: session-rec's VSTAN (``sample_size=5000``, λ_spw 1.02, λ_inh 2.05, λ_ipw
    1.02, λ_idf 5), ``k=500`` and λ_snh in sessions as for :class:`STAN`. Deviations: those
    of :class:`STAN` and the module docstring; IDF uses sessions containing the item
    (session-rec: its clicks).
    """

    name = "vstan"

    def __init__(
        self,
        k: int = 500,
        sample_size: int = 5000,
        similarity: str = "cosine",
        lambda_spw: float = 1.02,
        lambda_snh: float = 100_000.0,
        lambda_inh: float = 2.05,
        lambda_ipw: float = 1.02,
        lambda_idf: float = 5.0,
        last_n_clicks: int = 0,
    ) -> None:
        check_sampling(k, sample_size)
        check_choice("similarity", similarity, ("cosine", "vec"))
        for name, value in (
            ("lambda_spw", lambda_spw),
            ("lambda_snh", lambda_snh),
            ("lambda_inh", lambda_inh),
            ("lambda_ipw", lambda_ipw),
        ):
            check_decay(name, value)
        check_float("lambda_idf", lambda_idf, minimum=0.0)
        check_int("last_n_clicks", last_n_clicks, minimum=0)
        self.k = k
        self.sample_size = sample_size
        self.similarity = similarity
        self.lambda_spw = lambda_spw
        self.lambda_snh = lambda_snh
        self.lambda_inh = lambda_inh
        self.lambda_ipw = lambda_ipw
        self.lambda_idf = lambda_idf
        self.last_n_clicks = last_n_clicks

    def _scoring(self) -> Scoring:
        return Scoring(
            weighting=kernels.W_EXP,
            weighting_lambda=float(self.lambda_spw),
            similarity=SIMILARITIES[self.similarity],
            recency_lambda=float(self.lambda_snh),
            match_decay=kernels.D_EXP,
            match_lambda=float(self.lambda_ipw),
            position_lambda=float(self.lambda_inh),
            idf="add" if self.lambda_idf > 0 else "none",
            idf_lambda=float(self.lambda_idf),
        )


class VMISKNN(SessionKNN):
    """Vector-multiplication indexed session kNN (``vmisknn``, VMIS-kNN): Kersbergen,
    Sprangers & Schelter (2022), "Serenade - Low-latency session-based recommendation in
    e-commerce at scale", SIGMOD.

    The index keeps, per item, only the ``sample_size`` (the paper's ``m``) most recent
    sessions containing it, built once at fit time; scoring reads only that index. The
    session's items weigh their position over the session length (``div``: the last click
    1); the similarity is the plain dot product; the ``k`` most similar of the ``m`` most
    recent candidates are the neighbours, ties to the more recent; item ``i`` scores
    ``Σ_n sim(s, n) · linear(step_n) · idf(i)``.

    Parameters:
        k: neighbours; sample_size: ``m``; last_n_clicks: as for :class:`SKNN` (Serenade's
            ``max_items_in_session``).
        weighting: session item weights (:data:`POSITION_WEIGHTS`), default ``div``.
        weighting_score: neighbour decay by its match (:data:`MATCH_DECAYS`), default
            ``linear``.
        idf: multiply by the item's IDF (default on, as in the paper).

    Defaults: Serenade's configuration (``k=500``, ``m=500``, every click of the session).
    Deviations: those of the module docstring; the similarity is ``Σ p / L`` over the shared
    items divided by the number ``q`` of distinct session items, Serenade's ``Σ p / q`` (a
    per-session factor ``L`` apart: same neighbours, same ranking);
    the linear decay is clipped at 0 instead of turning negative; IDF is
    ``log(N / N_i)`` over sessions (Serenade divides the number of (session, item) pairs);
    Serenade's serving code drops the session's last item from the list, which we leave to
    the caller (``exclude``), as 9-15 % of benchmark next clicks repeat the last item.
    """

    name = "vmisknn"

    def __init__(
        self,
        k: int = 500,
        sample_size: int = 500,
        weighting: str = "div",
        weighting_score: str = "linear",
        idf: bool = True,
        last_n_clicks: int = 0,
    ) -> None:
        check_sampling(k, sample_size)
        check_choice("weighting", weighting, POSITION_WEIGHTS)
        check_choice("weighting_score", weighting_score, MATCH_DECAYS)
        check_param("idf", idf, isinstance(idf, (bool, np.bool_)), "expected true or false")
        check_int("last_n_clicks", last_n_clicks, minimum=0)
        self.k = k
        self.sample_size = sample_size
        self.weighting = weighting
        self.weighting_score = weighting_score
        self.idf = idf
        self.last_n_clicks = last_n_clicks

    def _scoring(self) -> Scoring:
        return Scoring(
            weighting=POSITION_WEIGHTS[self.weighting],
            similarity=kernels.SIM_VEC,
            match_decay=MATCH_DECAYS[self.weighting_score],
            idf="mul" if self.idf else "none",
        )

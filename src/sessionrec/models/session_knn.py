"""The estimator shared by the session-kNN models (:mod:`sessionrec.models.knn`): fit builds
the index, scoring runs the Numba pipeline, persistence saves the index arrays.

A subclass only says how its hyperparameters set up the pipeline (:meth:`SessionKNN._scoring`).
Every member also takes the event-type hyperparameters of
:mod:`sessionrec.models.knn_objective` (``objective``, ``type_weight_cart``,
``type_weight_purchase``, and the objective's shares ``share_view`` / ``share_other``); with
their defaults, types are never read and the scores are those of a model without them.
"""

from __future__ import annotations

import abc
import copy
from collections.abc import Sequence
from typing import ClassVar, Self

import numpy as np

from sessionrec._errors import ConfigError, DataError, ModelError
from sessionrec.data.sessions import SessionData, gather_ranges
from sessionrec.models import knn_kernels as kernels
from sessionrec.models.base import Reason, Recommender, SessionBatch, TopK, check_k, ranked_rows
from sessionrec.models.knn_index import Scoring, build_index, index_from_state, make_weights
from sessionrec.models.knn_kernels import KernelConfig, KnnIndex, KnnWeights
from sessionrec.models.knn_objective import (
    OBJECTIVES,
    canonical_codes,
    check_objective_data,
    objective_shares,
)
from sessionrec.models.knn_update import IndexCounts, merge_index
from sessionrec.models.params import check_choice
from sessionrec.models.vocab_growth import chained_fingerprint, extended_counts, extended_vocab

LIVE_FINGERPRINT = "live"
"""Joined to the training-data fingerprint of a model that :meth:`SessionKNN.update` grew: it
was trained on more than any benchmark's training file."""

NO_TYPES = np.zeros(0, dtype=np.int8)
"""What the kernels get for a batch whose event types the model does not read."""


class SessionKNN(Recommender):
    """Shared machinery of the session-kNN models; subclasses define :meth:`_scoring`.

    Learned state: ``index_`` (a :class:`KnnIndex`), ``session_source_`` (the training session
    behind every kept session number), ``popularity_`` (training clicks per item, for the
    fallback) and ``counts_`` (per-item session counts for the IDF and :meth:`update`; None
    for a folder saved before they were kept). ``config_`` and ``weights_`` are derived from
    them and the hyperparameters.
    """

    artifact_version: ClassVar[int] = 1
    k: int
    sample_size: int
    last_n_clicks: int  # every member of the family takes these three hyperparameters
    objective: str  # ... and these three (sessionrec.models.knn_objective)
    type_weight_cart: float
    type_weight_purchase: float
    share_view: float
    share_other: float

    index_: KnnIndex
    session_source_: np.ndarray
    popularity_: np.ndarray
    counts_: IndexCounts | None
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
            objective=OBJECTIVES[self.objective],
        )
        type_weight = (1.0, float(self.type_weight_cart), float(self.type_weight_purchase))
        shares = objective_shares(self.objective, self.share_view, self.share_other)
        self.weights_ = make_weights(self.index_, scoring, shares, type_weight)
        # Types are read only where they change a score: the click path stays as it was.
        self._reads_types = self.objective != "click" or type_weight != (1.0, 1.0, 1.0)

    # ------------------------------------------------------------------- fit
    def _fit(self, train: SessionData, valid: SessionData | None) -> None:
        # ``valid`` is unused: a neighbourhood model has no epochs to select.
        codes = canonical_codes(train.types, train.event_types)
        check_objective_data(self.objective, codes)
        self.index_, self.session_source_ = build_index(train, int(self.sample_size), codes)
        self.counts_ = IndexCounts.of(train)
        self._set_popularity(train.item_counts())
        self._prepare()

    def update(self, sessions: SessionData, max_sessions: int | None = None) -> Self:
        """Append finished sessions to the neighbour index, as the most recent ones.

        Live learning without a refit: the sessions become neighbours, and items the model
        has never seen join the vocabulary (appended, so every old item keeps its index) and
        become recommendable. The result is exactly the model ``fit`` gives on the training
        sessions followed by ``sessions`` (same index, scores and recommendations), for the
        same reasons a refit is: posting lists keep their ``sample_size`` most recent
        sessions, every older session ages by the batch, the IDF counts them all.

        ``sessions``: any vocabulary (ids are matched to the model's; a model with integer
        ids refuses text ids), event types read as at fit time; they count as more recent
        than everything indexed, ordered among themselves by end time when they have times.
        ``max_sessions``: keep at most this many sessions in the index, evicting the oldest
        (a refit would keep them: the one departure, for a service that appends for days).
        The model is changed in place (its arrays are replaced, never modified, so a copy
        made before keeps serving the old index). Returns the model.
        """
        self._check_fitted()
        if not isinstance(sessions, SessionData):
            raise DataError(f"update expects SessionData, got {type(sessions).__name__}")
        if max_sessions is not None and (
            isinstance(max_sessions, bool) or not isinstance(max_sessions, int) or max_sessions < 1
        ):
            raise ConfigError(f"max_sessions must be an integer >= 1, got {max_sessions!r}")
        if self.counts_ is None:
            raise ModelError(
                "this model folder was saved without the per-item session counts that a live "
                "update needs (saved by an older sessionrec, or fitted from a Spark index): "
                "fit it again to update it"
            )
        vocab = extended_vocab(self.vocab_, sessions)
        batch = sessions.with_vocab(vocab)
        codes = canonical_codes(batch.types, batch.event_types)
        new_index, new_source = build_index(batch, int(self.sample_size), codes)
        merged = merge_index(
            self.index_,
            self.session_source_,
            self.counts_,
            new_index,
            new_source,
            IndexCounts.of(batch),
            int(self.sample_size),
            timed=batch.times is not None,
            max_sessions=max_sessions,
        )
        popularity = extended_counts(self.popularity_, len(vocab)) + batch.item_counts()
        self.vocab_ = vocab
        self.index_, self.session_source_ = merged.index, merged.session_source
        self.counts_ = merged.counts
        self.evicted_sessions_ = getattr(self, "evicted_sessions_", 0) + merged.evicted
        fingerprint = getattr(self, "data_fingerprint_", None) or ""
        if not fingerprint.endswith(LIVE_FINGERPRINT):
            self.data_fingerprint_ = chained_fingerprint(fingerprint, LIVE_FINGERPRINT)
        self.__dict__["_twins"] = {}  # objective twins hold the old index: derive them again
        self.training_counts_ = popularity
        self._set_popularity(popularity)
        self._prepare()
        return self

    def learns_live(self) -> bool:
        return True

    def updated(self, sessions: SessionData, max_sessions: int | None = None) -> SessionKNN:
        """A copy that :meth:`update` grew; this model keeps its index (update replaces the
        arrays, never writes into them, so the copy shares nothing it changes)."""
        return copy.copy(self).update(sessions, max_sessions)

    def fit_index(self, train: SessionData, index: KnnIndex, session_source: np.ndarray) -> Self:
        """Fit with an index built elsewhere (on Spark: :mod:`sessionrec.models.vmis_spark`).

        The index goes through the checks of a loaded model folder, so a wrong array fails
        here rather than inside the kernels; the model is then the one ``fit(train)`` gives.
        """
        state = {name: np.asarray(value) for name, value in index._asdict().items()}
        state["session_source"] = np.asarray(session_source)
        state["popularity"] = train.item_counts()
        check_objective_data(self.objective, np.asarray(index.sess_types))
        self.vocab_ = train.vocab
        self.data_fingerprint_ = train.fingerprint()
        counts = IndexCounts.of(train)
        state["item_df"], state["index_counts"] = counts.item_df, counts.as_array()
        try:
            self._set_state(state)
        except BaseException:
            self._forget()
            raise
        return self

    def _set_popularity(self, popularity: np.ndarray) -> None:
        self.popularity_ = popularity.astype(np.int64)
        values = self.popularity_.astype(np.float32)
        self._pop_scores = values
        # Best first, ties by lower index: the fallback's top-k list.
        self._pop_order = np.argsort(-values, kind="stable").astype(np.int64)
        # Pessimistic rank of every item in the fallback row: items scoring >= it.
        ascending = np.sort(values)
        self._pop_rank = (values.size - np.searchsorted(ascending, values, side="left")).astype(
            np.float64
        )

    # --------------------------------------------------------------- scoring
    def _batch_arrays(self, batch: SessionBatch) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Validated CSR arrays and the canonical event types the model reads (empty when it
        reads none or the batch has none): the kernels index without bounds checks."""
        self._check_fitted()
        offsets = np.ascontiguousarray(batch.offsets, dtype=np.int64)
        items = np.ascontiguousarray(batch.items, dtype=np.int32)
        if items.size and (items.min() < 0 or items.max() >= self.n_items):
            raise DataError(f"session items must be internal indices in [0, {self.n_items})")
        if offsets.size == 0 or offsets[0] != 0 or offsets[-1] != items.size:
            raise DataError("batch offsets must start at 0 and end at the number of items")
        types = NO_TYPES
        if self._reads_types and batch.types is not None:
            codes = canonical_codes(batch.types, batch.event_types)
            assert codes is not None
            if codes.shape != items.shape:
                raise DataError("batch types must have one value per click")
            types = np.ascontiguousarray(codes, dtype=np.int8)
        return offsets, items, types

    def score(self, batch: SessionBatch) -> np.ndarray:
        offsets, items, types = self._batch_arrays(batch)
        out = np.full((len(batch), self.n_items), -np.inf, dtype=np.float32)
        kernels.score_dense(
            offsets, items, types, self.config_, self.index_, self.weights_, self._pop_scores, out
        )
        return out

    def top_k(
        self,
        batch: SessionBatch,
        k: int,
        exclude: Sequence[np.ndarray] | None = None,
    ) -> list[TopK]:
        """Exact top-``k`` from the sparse scores (equals the dense default)."""
        return self.top_k_with_fallback(batch, k, exclude)[0]

    def top_k_with_fallback(
        self,
        batch: SessionBatch,
        k: int,
        exclude: Sequence[np.ndarray] | None = None,
    ) -> tuple[list[TopK], np.ndarray]:
        """:meth:`top_k` and :meth:`fallback_mask` from one neighbour search."""
        k = check_k(k)
        offsets, items, types = self._batch_arrays(batch)
        extra = max((len(e) for e in exclude), default=0) if exclude is not None else 0
        n = min(k + extra, self.n_items)
        best, scores, counts, fallback = kernels.top_n(
            offsets,
            items,
            types,
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
        return results, np.asarray(fallback, dtype=bool)

    def target_ranks(self, batch: SessionBatch, targets: np.ndarray) -> np.ndarray:
        """Pessimistic 1-based rank of each session's target (internal index); inf = miss.

        Equal to ranking the target in :meth:`score`'s row with pessimistic ties (as the
        evaluation protocol does) without materialising dense rows: the fast path that
        tuning uses. A target < 0 (unknown) is a miss.
        """
        offsets, items, types = self._batch_arrays(batch)
        targets = np.ascontiguousarray(targets, dtype=np.int64)
        if targets.shape != (len(batch),):
            raise DataError(f"expected one target per session ({len(batch)}), got {targets.shape}")
        if targets.size and targets.max() >= self.n_items:
            raise DataError(f"targets must be internal indices below {self.n_items}")
        return kernels.target_ranks(
            offsets, items, types, targets, self.config_, self.index_, self.weights_, self._pop_rank
        )

    def training_counts(self) -> np.ndarray:
        self._check_fitted()
        return self.popularity_

    def for_objective(self, objective: str) -> Recommender:
        """A twin ranking for ``objective`` that shares this model's index (only the
        per-entry weights are derived again, once per objective); refused with a DataError
        when the training data has no event of that kind."""
        if objective == self.objective:
            return self
        check_choice("objective", objective, OBJECTIVES)
        twins: dict[str, SessionKNN] = self.__dict__.setdefault("_twins", {})
        twin = twins.get(objective)
        if twin is None:
            self._check_fitted()
            check_objective_data(objective, np.asarray(self.index_.sess_types))
            twin = copy.copy(self)
            twin.__dict__["_twins"] = {}
            twin.objective = objective
            twin._prepare()
            twins[objective] = twin
        return twin

    def recommends_repeats(self) -> bool:
        """True for a cart or purchase objective: the visitor's own carted items are its best
        candidates, so serving must not exclude the session's items."""
        return self.objective != "click"

    def fallback_mask(self, batch: SessionBatch) -> np.ndarray:
        """True for every session whose scores are the popularity fallback (no neighbour)."""
        offsets, items, types = self._batch_arrays(batch)
        return kernels.fallback_flags(
            offsets, items, types, self.config_, self.index_, self.weights_
        )

    def neighbors(self, session: Sequence[int] | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The neighbours of one session (internal item indices), most recent first.

        Returns the neighbours' indices in the training data and their similarities; for
        explanations ("people who viewed these also viewed") and tests.
        """
        batch = SessionBatch.from_sequences([np.asarray(session, dtype=np.int32)])
        _, items, _ = self._batch_arrays(batch)
        sessions, sims, _, _ = kernels.neighbors(
            items, NO_TYPES, self.config_, self.index_, self.weights_
        )
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
        takes the popularity fallback gets kind ``"popular"``. Explanations get item ids
        only, so they treat every session click as a view (type weights and the carted-items
        boost of a cart or purchase objective are not reflected).
        """
        clicks = np.ascontiguousarray(session, dtype=np.int32)
        cfg, index, weights = self.config_, self.index_, self.weights_
        sessions, sims, steps, pstar = kernels.neighbors(clicks, NO_TYPES, cfg, index, weights)
        base = sims * kernels.match_decays(steps, cfg.match_decay, cfg.match_lambda)
        live = np.flatnonzero(base != 0.0)  # the kernel skips the others too
        if live.size == 0:
            return [Reason("popular") for _ in targets]
        sessions, base, pstar = sessions[live].astype(np.int64), base[live], pstar[live]
        profile, item_weights, _, _ = kernels.session_profile(
            clicks, NO_TYPES, cfg, weights.type_weight
        )

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
        if self.counts_ is not None:
            state["item_df"] = self.counts_.item_df
            state["index_counts"] = self.counts_.as_array()
        return state

    def _set_state(self, state: dict[str, np.ndarray]) -> None:
        index = index_from_state(state, self.n_items)
        n_kept, m = index.sess_age.size, self.n_items
        source = np.asarray(state["session_source"])
        popularity = np.asarray(state["popularity"])
        if source.shape != (n_kept,) or source.dtype.kind not in "iu":
            raise ModelError(f"model state: session_source must hold {n_kept} integers")
        if popularity.shape != (m,) or popularity.dtype.kind not in "iu":
            raise ModelError(f"model state: popularity must hold {m} integers")
        counts = None
        if "item_df" in state or "index_counts" in state:
            if "item_df" not in state or "index_counts" not in state:
                raise ModelError("model state: item_df and index_counts go together")
            counts = IndexCounts.from_state(state["item_df"], state["index_counts"], m)
        self.index_ = index
        self.session_source_ = source.astype(np.int64)
        self.counts_ = counts
        self._set_popularity(popularity)
        self._prepare()

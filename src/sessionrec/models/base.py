"""The model contract every recommender follows (``docs/architecture.md``, "The model contract").

- ``__init__`` stores keyword hyperparameters unchanged and rejects values out of range.
- ``fit(train, valid=None)`` learns from :class:`SessionData` and returns ``self``; learned
  state ends in ``_``.
- :meth:`Recommender.score` is the one scoring hook over internal indices. Evaluation and
  serving both go through it (or through :meth:`Recommender.top_k`, which a model may
  override with a faster exact search), so offline numbers describe the served model.
- :meth:`Recommender.recommend` speaks external ids, is batched and stateless; a fitted model
  is read-only and may be shared between threads.
- ``save`` (and :func:`sessionrec.models.registry.load_model`) write and read a JSON manifest
  and ``.npz`` arrays, never pickles.
- What callers may ask beyond scoring is declared here with a default, never probed with
  ``getattr``: :meth:`Recommender.target_ranks` (the fast path of validation),
  :meth:`Recommender.fallback_mask` (which sessions got the model's own popularity
  fallback), :meth:`Recommender.training_history` (per-epoch figures of trained models),
  :meth:`Recommender.training_counts` (the training clicks per item, kept by every model
  from :meth:`Recommender.fit` and saved in its folder) and
  :meth:`Recommender.recommends_repeats` (whether serving should keep the session's items).
- :meth:`Recommender.explain` gives one :class:`Reason` per recommended item. It is a
  separate, slower path (the default scores the session once per distinct item), never
  called by ``recommend``/``score``.
"""

from __future__ import annotations

import abc
import inspect
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, NamedTuple, Self

import numpy as np

from sessionrec._errors import ConfigError, DataError, ModelError, NotFittedError
from sessionrec.data.sessions import UNKNOWN, ItemId, ItemVocab, SessionData
from sessionrec.models.topk import rank_targets, select_top_k


class ScoredItem(NamedTuple):
    """One recommended item: its external id and the model's score (higher is better)."""

    item_id: ItemId
    score: float


@dataclass(frozen=True)
class SessionBatch:
    """Sessions to score, as CSR arrays of *internal* indices (unknown items already removed).

    ``times`` (Unix seconds, aligned with ``items``) is given when the caller knows the click
    times; time-aware models use it and fall back to a documented default otherwise.
    ``types`` (int8 codes into ``event_types``, aligned with ``items``, as in
    :class:`SessionData`) is given when the caller knows the event types; models that use
    them treat a batch without types as views only.
    """

    offsets: np.ndarray
    items: np.ndarray
    times: np.ndarray | None = None
    types: np.ndarray | None = None
    event_types: tuple[str, ...] = ()

    @classmethod
    def from_sequences(
        cls,
        sessions: Sequence[np.ndarray | Sequence[int]],
        times: Sequence[Any] | None = None,
        types: Sequence[Any] | None = None,
        event_types: tuple[str, ...] = (),
    ) -> SessionBatch:
        lengths = np.fromiter((len(s) for s in sessions), dtype=np.int64, count=len(sessions))
        offsets = np.zeros(len(sessions) + 1, dtype=np.int64)
        np.cumsum(lengths, out=offsets[1:])
        items = (
            np.concatenate([np.asarray(s, dtype=np.int32) for s in sessions])
            if offsets[-1]
            else np.zeros(0, dtype=np.int32)
        )
        flat_times = None
        if times is not None:
            flat_times = (
                np.concatenate([np.asarray(t, dtype=np.float64) for t in times])
                if offsets[-1]
                else np.zeros(0, dtype=np.float64)
            )
        flat_types = None
        if types is not None:
            flat_types = (
                np.concatenate([np.asarray(t, dtype=np.int8) for t in types])
                if offsets[-1]
                else np.zeros(0, dtype=np.int8)
            )
        return cls(
            offsets=offsets,
            items=items.astype(np.int32, copy=False),
            times=flat_times,
            types=flat_types,
            event_types=tuple(event_types),
        )

    def __len__(self) -> int:
        return int(self.offsets.shape[0] - 1)

    @property
    def lengths(self) -> np.ndarray:
        return np.diff(self.offsets)

    def session(self, i: int) -> np.ndarray:
        return self.items[self.offsets[i] : self.offsets[i + 1]]

    def session_times(self, i: int) -> np.ndarray | None:
        if self.times is None:
            return None
        return self.times[self.offsets[i] : self.offsets[i + 1]]

    def session_types(self, i: int) -> np.ndarray | None:
        if self.types is None:
            return None
        return self.types[self.offsets[i] : self.offsets[i + 1]]

    def last_items(self) -> np.ndarray:
        """The last item of every session, :data:`UNKNOWN` (-1) for an empty one."""
        out = np.full(len(self), UNKNOWN, dtype=np.int64)
        nonempty = self.lengths > 0
        out[nonempty] = self.items[self.offsets[1:][nonempty] - 1]
        return out


TopK = tuple[np.ndarray, np.ndarray]
"""One session's result: internal item indices (int64) and their scores, best first."""

_ABLATION_CHUNK = 32
"""Sessions scored per call by the ablation default (bounds its memory to 32 dense rows)."""

REASON_KINDS = ("session_items", "neighbours", "embedding", "ablation", "popular", "repeat")
"""What a :class:`Reason` rests on (see :class:`Reason`)."""


@dataclass(frozen=True)
class Reason:
    """Why a model recommends one item to one session.

    ``kind``:

    - ``"session_items"``: the weights are the model's exact contributions of each session
      item to the item's score (rule and item-similarity models);
    - ``"neighbours"``: session-kNN; the session items' shares of the score and the
      training sessions (neighbours) that contributed most;
    - ``"embedding"``: the cosine similarity of session items to the recommended item in
      the model's embedding space (neural models);
    - ``"ablation"``: the drop of the item's score when a session item is removed (the
      model-agnostic default);
    - ``"popular"``: the item is recommended for its popularity, not for the session.
    - ``"repeat"``: the item is one of the session's own ("you viewed this"), recommended by
      a repeat layer (:mod:`sessionrec.models.repeat`); the weight is its repeat score.

    ``session_items``: (external item id, weight) of the session items that contributed
    most, best first. ``neighbour_sessions``: (index of the training session in the
    training data, weight), best first; empty unless ``kind == "neighbours"``.
    """

    kind: str
    session_items: tuple[tuple[ItemId, float], ...] = ()
    neighbour_sessions: tuple[tuple[int, float], ...] = ()

    def __post_init__(self) -> None:
        if self.kind not in REASON_KINDS:
            raise ModelError(f"unknown reason kind {self.kind!r}; expected one of {REASON_KINDS}")


@dataclass(frozen=True)
class TrainingHistory:
    """What a model's training did, epoch by epoch (models trained in epochs only).

    ``losses``, ``seconds`` and ``examples`` have one entry per epoch run; ``valid`` holds
    the validation metric (``valid_metric``, e.g. ``"hr@20"``, in percent) per epoch, NaN
    for an epoch without validation; ``best_epoch`` (1-based) is the epoch whose weights
    the model kept.
    """

    losses: np.ndarray
    seconds: np.ndarray
    examples: np.ndarray
    valid: np.ndarray
    valid_metric: str
    best_epoch: int


def distinct_recent_first(session: np.ndarray) -> np.ndarray:
    """The distinct items of a session (internal indices), most recently clicked first."""
    backwards = np.asarray(session, dtype=np.int64)[::-1]
    items, first = np.unique(backwards, return_index=True)
    return items[np.argsort(first, kind="stable")]


def ranked_rows(
    keys: Sequence[Any] | np.ndarray, weights: np.ndarray, top: int
) -> list[tuple[tuple[Any, float], ...]]:
    """Per row of ``weights`` ``[rows, len(keys)]``: the ``top`` (key, weight) pairs with a
    positive weight, heaviest first.

    ``keys`` come in tie-break order (e.g. most recent first): a stable sort keeps it among
    equal weights. One sort for all rows: explanations are built for k items at once.
    """
    weights = np.atleast_2d(np.asarray(weights, dtype=np.float64))
    order = np.argsort(-weights, axis=1, kind="stable")[:, :top]
    best = np.take_along_axis(weights, order, axis=1)
    keys = list(keys.tolist() if isinstance(keys, np.ndarray) else keys)
    return [
        tuple((keys[j], w) for j, w in zip(columns, values, strict=True) if w > 0)
        for columns, values in zip(order.tolist(), best.tolist(), strict=True)
    ]


class Recommender(abc.ABC):
    """Base class of every model. Subclasses implement ``_fit``, ``score`` and the state hooks."""

    name: ClassVar[str] = ""
    """Registry name (``sessionrec train --model NAME``)."""

    artifact_version: ClassVar[int] = 1
    """Version of this model's saved state layout; bump it when the layout changes."""

    oldest_artifact_version: ClassVar[int] = 1
    """The oldest saved layout this code still reads (raise it when a change drops one)."""

    trains_distributed: ClassVar[bool] = False
    """Whether ``fit`` shares the work across a ``torch.distributed`` process group
    (``torchrun``; :mod:`sessionrec.models.neural.distributed`)."""

    vocab_: ItemVocab

    training_counts_: np.ndarray | None = None
    """Training clicks per item (int64, ``n_items`` long), set by :meth:`fit` for every
    model and saved in its folder (``counts.npz``), so that serving has a popularity
    fallback without any other file. ``None`` on a model loaded from a folder written
    before counts were saved."""

    # ------------------------------------------------------------ parameters
    def get_params(self) -> dict[str, Any]:
        """The constructor's keyword arguments, as stored (scikit-learn style)."""
        signature = inspect.signature(type(self).__init__)
        return {
            name: getattr(self, name)
            for name, p in signature.parameters.items()
            if name != "self" and p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD)
        }

    def __repr__(self) -> str:
        params = ", ".join(f"{k}={v!r}" for k, v in self.get_params().items())
        return f"{type(self).__name__}({params})"

    # ------------------------------------------------------------------- fit
    def fit(self, train: SessionData, valid: SessionData | None = None) -> Self:
        """Learn from ``train`` (``valid``, cut the same way, only for model selection)."""
        if not isinstance(train, SessionData):
            raise DataError(f"fit expects SessionData, got {type(train).__name__}")
        if train.n_events == 0:
            raise DataError("cannot fit on training data without clicks")
        if valid is not None and not isinstance(valid, SessionData):
            raise DataError(f"valid must be SessionData, got {type(valid).__name__}")
        if valid is not None and valid.vocab != train.vocab:
            valid = valid.with_vocab(train.vocab)
        self._forget()  # a refit replaces the whole state, never a part of it
        self.vocab_ = train.vocab
        self.data_fingerprint_ = train.fingerprint()
        self.training_counts_ = train.item_counts()
        try:
            self._fit(train, valid)
        except BaseException:
            # A diverged or interrupted fit leaves no half-trained model behind to evaluate
            # or save: the model is unfitted again, as before its first fit.
            self._forget()
            raise
        return self

    def _forget(self) -> None:
        """Drop every learned attribute: the names ending in ``_`` that are not
        hyperparameters (``ItemKNN(lambda_=...)``)."""
        params = set(self.get_params())
        for name in [n for n in vars(self) if n.endswith("_") and n not in params]:
            delattr(self, name)

    @abc.abstractmethod
    def _fit(self, train: SessionData, valid: SessionData | None) -> None:
        """Model-specific training; ``valid`` shares ``train``'s vocabulary."""

    @property
    def is_fitted(self) -> bool:
        return hasattr(self, "vocab_")

    def _check_fitted(self) -> None:
        if not self.is_fitted:
            raise NotFittedError(f"{type(self).__name__} is not fitted: call fit() or load()")

    @property
    def n_items(self) -> int:
        self._check_fitted()
        return len(self.vocab_)

    # --------------------------------------------------------------- scoring
    @abc.abstractmethod
    def score(self, batch: SessionBatch) -> np.ndarray:
        """Scores of every item for every session: float32 ``[len(batch), n_items]``.

        Higher is better; ``-inf`` marks an item the model has no evidence for, which is
        never recommended and ranks last in evaluation. Returns a new array the caller may
        modify.
        """

    def target_ranks(self, batch: SessionBatch, targets: np.ndarray) -> np.ndarray:
        """Pessimistic 1-based rank of each session's target (internal index), ``inf`` for a
        miss (unknown target, ``-inf`` score).

        The ranks of :meth:`score`'s rows, as the evaluation protocol ranks them; models with
        sparse scores override this with an exact search that builds no dense rows.
        """
        targets = np.asarray(targets, dtype=np.int64)
        if targets.shape != (len(batch),):
            raise DataError(f"expected one target per session ({len(batch)}), got {targets.shape}")
        return rank_targets(self.score(batch), targets, "pessimistic")

    def fallback_mask(self, batch: SessionBatch) -> np.ndarray:
        """True for every session whose scores are the model's own fallback (popularity) rather
        than an answer to its clicks; serving reports those as ``fallback``.

        The default says none: models with an internal fallback override it.
        """
        return np.zeros(len(batch), dtype=bool)

    def training_history(self) -> TrainingHistory | None:
        """Per-epoch figures of the last fit; ``None`` for models not trained in epochs."""
        return None

    def training_counts(self) -> np.ndarray | None:
        """Training clicks per item (int64, ``n_items`` long): :attr:`training_counts_` by
        default, which :meth:`fit` sets for every model; composite models give their
        members'. ``None`` only for a model loaded from a folder saved before counts were
        kept. Serving ranks its popularity fallback by them unless ``--popularity`` is
        given."""
        self._check_fitted()
        return self.training_counts_

    def recommends_repeats(self) -> bool:
        """Whether the model was built to recommend the session's own items again (a repeat
        layer that validation switched on). Serving then keeps those items by default instead
        of excluding them (``exclude_seen``); the default says no."""
        return False

    def learns_live(self) -> bool:
        """Whether :meth:`updated` can append new sessions without a refit (the session-kNN
        family, and a repeat layer over one); the default says no."""
        return False

    def updated(self, sessions: SessionData, max_sessions: int | None = None) -> Recommender:
        """A new model that has also learned from ``sessions`` (more recent than everything
        it knows), new items included; this model is left as it was, so it can go on
        serving while the new one is built. Models that learn live override this (see
        :meth:`learns_live`); the others raise :class:`ModelError`.
        """
        raise ModelError(
            f"{type(self).__name__} cannot learn from new sessions without training: only the "
            "session-kNN models (sknn, vsknn, stan, vstan, vmisknn) learn live; fine-tune a "
            "neural model with `sessionrec train --init-from` (docs/fine-tuning.md)"
        )

    def top_k(
        self,
        batch: SessionBatch,
        k: int,
        exclude: Sequence[np.ndarray] | None = None,
    ) -> list[TopK]:
        """The ``k`` best items of every session, best first, ties by lower index.

        ``exclude`` gives per session the internal indices never to return. Models with a
        faster exact search override this; the result must equal this implementation's.
        """
        check_k(k)
        scores = self.score(batch)
        if exclude is not None:
            for row, items in enumerate(exclude):
                if len(items):
                    scores[row, np.asarray(items, dtype=np.int64)] = -np.inf
        return select_top_k(scores, k)

    def for_objective(self, objective: str) -> Recommender:
        """This model ranking for ``objective`` (``click``: the next item; ``cart`` /
        ``purchase``: what the visitor will cart or buy later in the session).

        A model answers for the objective it was fitted for; models that can re-weigh their
        evidence for another one (the session-kNN family) override this and return a twin
        that shares the fitted state. Raises :class:`ModelError` when the model cannot.
        """
        own = str(getattr(self, "objective", "click"))
        if objective == own:
            return self
        raise ModelError(
            f"{type(self).__name__} ranks for the {own!r} objective only; train it with "
            f"--objective {objective} or serve a session-kNN model (sknn, vsknn, stan, vstan, "
            "vmisknn), which ranks for any objective its training data has events for"
        )

    def top_k_with_fallback(
        self,
        batch: SessionBatch,
        k: int,
        exclude: Sequence[np.ndarray] | None = None,
    ) -> tuple[list[TopK], np.ndarray]:
        """:meth:`top_k` and :meth:`fallback_mask` of the same batch, together.

        Serving needs both for every answer; a model whose search finds out on the way
        whether a session had to fall back (the kNN family: no neighbour) overrides this to
        do the search once instead of twice. Must equal the two calls.
        """
        return self.top_k(batch, k, exclude), self.fallback_mask(batch)

    def encode_sessions(self, sessions: Sequence[Sequence[ItemId]]) -> SessionBatch:
        """External ids to a batch of internal indices; unknown ids are dropped."""
        self._check_fitted()
        if isinstance(sessions, (str, bytes)) or not isinstance(sessions, Sequence):
            raise DataError("sessions must be a list of sessions, each a list of item ids")
        encoded = []
        for session in sessions:
            if isinstance(session, (str, bytes)) or not isinstance(session, (Sequence, np.ndarray)):
                raise DataError(f"a session must be a list of item ids, got {session!r}")
            idx = self.vocab_.encode(session)
            encoded.append(idx[idx != UNKNOWN])
        return SessionBatch.from_sequences(encoded)

    def recommend(
        self,
        sessions: Sequence[Sequence[ItemId]],
        k: int = 10,
        exclude: Sequence[Collection[ItemId]] | None = None,
        exclude_seen: bool = False,
    ) -> list[list[ScoredItem]]:
        """Top-``k`` external ids with scores for every session, best first.

        Items the model has no evidence for are left out rather than padded, so a list may
        be shorter than ``k``. Unknown ids in a session are ignored. ``exclude`` gives per
        session external ids never to return; ``exclude_seen`` also removes the session's
        own items.
        """
        check_k(k)
        batch = self.encode_sessions(sessions)
        masks: list[np.ndarray] | None = None
        if exclude is not None or exclude_seen:
            if exclude is not None and len(exclude) != len(sessions):
                raise DataError(
                    f"exclude must have one collection per session ({len(sessions)}), "
                    f"got {len(exclude)}"
                )
            masks = []
            for i in range(len(batch)):
                parts = [batch.session(i)] if exclude_seen else []
                if exclude is not None:
                    idx = self.vocab_.encode(list(exclude[i]))
                    parts.append(idx[idx != UNKNOWN])
                masks.append(np.concatenate(parts) if parts else np.zeros(0, np.int64))
        results = self.top_k(batch, k, exclude=masks)
        return [
            [
                ScoredItem(item, float(score))
                for item, score in zip(self.vocab_.decode(idx), scores.tolist(), strict=True)
            ]
            for idx, scores in results
        ]

    # ----------------------------------------------------------- explanations
    def explain(
        self, session: Sequence[ItemId], items: Sequence[ItemId], top: int = 3
    ) -> list[Reason]:
        """One :class:`Reason` per item of ``items`` (recommended to ``session``), same order.

        Each reason names at most ``top`` session items (and neighbour sessions), best first,
        ties to the more recently clicked item. Unknown ids in the session are ignored, as
        in :meth:`recommend`; an item to explain must be in the model's vocabulary. This is
        a separate path from :meth:`recommend` and costs more: call it for the few items
        actually shown.
        """
        self._check_fitted()
        if isinstance(top, bool) or not isinstance(top, (int, np.integer)) or top <= 0:
            raise ConfigError(f"top must be a positive integer, got {top!r}")
        if isinstance(items, (str, bytes)) or not isinstance(items, (Sequence, np.ndarray)):
            raise DataError("items must be a list of item ids")
        encoded = self.encode_sessions([session]).session(0).astype(np.int64)
        targets = self.vocab_.encode(list(items)).astype(np.int64)
        unknown = [item for item, idx in zip(items, targets.tolist(), strict=True) if idx < 0]
        if unknown:
            raise DataError(f"cannot explain items not in the model's vocabulary: {unknown[:5]}")
        if targets.size == 0:
            return []
        return self._explain(encoded, targets, int(top))

    def _explain(self, session: np.ndarray, targets: np.ndarray, top: int) -> list[Reason]:
        """Reasons for internal ``targets`` given the internal ``session`` (unknowns removed).

        The model-agnostic default is leave-one-out ablation (kind ``"ablation"``): score the
        session as it is and once without each distinct item (all its clicks removed); an
        item's weight is the drop of the target's score, and only positive drops are listed.
        When removing an item leaves the target without evidence (``-inf``), its score is
        taken to fall one score range (highest minus lowest finite score of all the rows
        scored here, 1 when they are all equal) below the lowest finite score: a finite
        weight that exceeds every finite drop. A target without evidence in the full
        session is not explained. Models override this with exact contributions.
        """
        distinct = distinct_recent_first(session)
        if distinct.size == 0:
            return [Reason("ablation") for _ in targets]
        variants = [session] + [session[session != item] for item in distinct.tolist()]
        chunks, low, high = [], np.inf, -np.inf
        # In chunks: each scored row is a dense [n_items] vector, only the targets are kept.
        for start in range(0, len(variants), _ABLATION_CHUNK):
            scores = self.score(
                SessionBatch.from_sequences(variants[start : start + _ABLATION_CHUNK])
            )
            finite = scores[np.isfinite(scores)]
            if finite.size:
                low, high = min(low, float(finite.min())), max(high, float(finite.max()))
            chunks.append(scores[:, targets].astype(np.float64))
        rows = np.concatenate(chunks)  # [1 + q, n_targets]
        no_evidence = ~np.isfinite(rows[0])
        if np.isfinite(low):
            spread = high - low if high > low else 1.0
            rows[np.isneginf(rows)] = low - spread
        drops = rows[0][None, :] - rows[1:]  # [q, n_targets]
        drops[:, no_evidence] = 0.0
        drops[~np.isfinite(drops)] = 0.0  # +inf scores: no meaningful drop
        return self._session_reasons("ablation", distinct, drops.T, top)

    def _session_reasons(
        self, kind: str, items: np.ndarray, weights: np.ndarray, top: int
    ) -> list[Reason]:
        """One reason per row of ``weights`` ``[rows, len(items)]`` over internal session
        ``items`` (in tie-break order)."""
        names = self.vocab_.decode(items)
        return [Reason(kind, pairs) for pairs in ranked_rows(names, weights, top)]

    # ----------------------------------------------------------- persistence
    @abc.abstractmethod
    def _get_state(self) -> dict[str, np.ndarray]:
        """Learned state as plain numeric arrays (saved with ``allow_pickle=False``)."""

    @abc.abstractmethod
    def _set_state(self, state: dict[str, np.ndarray]) -> None:
        """Inverse of :meth:`_get_state`."""

    def _get_members(self) -> dict[str, Recommender]:
        """The fitted models this one is built on (an ensemble's members, a layer's base
        model), by name. Each is saved in ``members/NAME/`` of this model's folder and
        handed back to :meth:`_set_members` on loading, before :meth:`_set_state`."""
        return {}

    def _set_members(self, members: dict[str, Recommender]) -> None:
        """Inverse of :meth:`_get_members`; a model without members accepts none."""
        if members:
            raise ModelError(f"{type(self).__name__} has no member models, got {sorted(members)}")

    def save(self, path: str | Path, metrics: dict[str, Any] | None = None) -> Path:
        """Write the model folder atomically; returns its path."""
        from sessionrec.models.persist import save_model

        return save_model(self, path, metrics=metrics)


def check_k(k: object) -> int:
    """Reject a non-positive or non-integer ``k`` with a clear message."""
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k <= 0:
        raise ConfigError(f"k must be a positive integer, got {k!r}")
    return int(k)

"""``repeat``: repeat-aware scoring over any standalone model (issue 21).

On shop data many next clicks go back to an item of the session itself (45% of test targets
on shop logs, 20.5% on Diginetica, 26.6% on YooChoose 1/64). :class:`RepeatAware` wraps a
base model (``base``, default ``vstan``) and mixes its scores of new items with a repeat
score of the session's own items, learned on validation: the mixture and how it is learned
are described in :mod:`sessionrec.models.repeat_mixture`.

- **Fit** (the standard protocol): cut the ONE validation split
  (:func:`sessionrec.data.split.last_fraction_split`, the last ``valid_fraction`` of the
  sessions), fit the base on the first part, learn the mixture on the validation cases, then
  fit the base again on all the training sessions. With ``fit(train, valid)`` the base is
  fitted on ``train`` once and the mixture learned on ``valid``.
  :meth:`RepeatAware.wrap` does the same for a base fitted elsewhere.
- **On by default where validation says it helps**: each cell of sessions (length, repeats so
  far) switches the layer on only when it beats the base on validation; elsewhere the
  session gets the base's scores unchanged (or, where that is what validation prefers, the
  base's scores without the session's items). A mixture off everywhere is the base itself.
- **Exact serving**: :meth:`RepeatAware.top_k` equals selecting from :meth:`RepeatAware.score`;
  it asks the base for its top new items (the base's own sparse search for session-kNN) and
  adds the session's items, with the caller's exclusions (business rules) inside the search.
- **Explained**: a session item recommended by a switched-on cell gets
  ``Reason("repeat", ((item, score),))`` ("you viewed this"); other items get the base's
  reason.
- **Serving** keeps the session's items by default for a model whose layer is on
  (:meth:`RepeatAware.recommends_repeats`): excluding them would drop every repeat.
- **Saved** in the model folder: the base in ``members/base/``, the mixture as the state.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Any, ClassVar, Self

import numpy as np

from sessionrec._errors import DataError, ModelError
from sessionrec.data.sessions import SessionData
from sessionrec.data.split import last_fraction_split
from sessionrec.models.base import Reason, Recommender, SessionBatch, TopK, check_k
from sessionrec.models.knn_objective import canonical_codes
from sessionrec.models.params import (
    check_choice,
    check_fraction,
    check_int,
    check_param,
)
from sessionrec.models.repeat_mixture import (
    N_CELLS,
    Mixture,
    learn_mixture,
    session_scores,
)
from sessionrec.models.standalone import STANDALONE_MODELS, create_standalone
from sessionrec.models.topk import rank_targets


class RepeatAware(Recommender):
    """A base model with repeat-aware scoring of the session's own items.

    Hyperparameters: ``base`` (a standalone model's registry name), ``base_params`` (its
    hyperparameters, a dict, or ``None`` for its defaults), ``valid_fraction`` (the share of
    the training sessions, the most recent ones, that the mixture is learned on) and
    ``min_cases`` (the fewest validation cases a cell needs to switch on).
    """

    name: ClassVar[str] = "repeat"
    artifact_version: ClassVar[int] = 1

    base_: Recommender
    mixture_: Mixture

    def __init__(
        self,
        base: str = "vstan",
        base_params: dict[str, Any] | None = None,
        valid_fraction: float = 0.1,
        min_cases: int = 100,
    ) -> None:
        check_choice("base", base, STANDALONE_MODELS)
        check_param(
            "base_params",
            base_params,
            base_params is None or isinstance(base_params, dict),
            "expected a dict of the base model's hyperparameters or None",
        )
        check_fraction("valid_fraction", valid_fraction)
        check_int("min_cases", min_cases)
        self.base = base
        self.base_params = base_params
        self.valid_fraction = valid_fraction
        self.min_cases = min_cases
        create_standalone(base, base_params)  # unknown base hyperparameters fail here

    # ------------------------------------------------------------------- fit
    def _new_base(self) -> Recommender:
        return create_standalone(self.base, self.base_params)

    def _fit(self, train: SessionData, valid: SessionData | None) -> None:
        if valid is None:
            part, held_out = last_fraction_split(train, self.valid_fraction)
            mixture = learn_mixture(self._new_base().fit(part), held_out, self.min_cases)
            self.base_ = self._new_base().fit(train)  # the base sees the newest sessions
        else:
            self.base_ = self._new_base().fit(train)
            mixture = learn_mixture(self.base_, valid, self.min_cases)
        self.mixture_ = mixture

    @classmethod
    def wrap(cls, base: Recommender, valid: SessionData, min_cases: int = 100) -> Self:
        """The layer over an already fitted ``base``, its mixture learned on ``valid``
        (sessions the base was not trained on; for ensembles and automatic model choice)."""
        base._check_fitted()
        if not isinstance(valid, SessionData):
            raise DataError(f"valid must be SessionData, got {type(valid).__name__}")
        model = cls(base=base.name, base_params=base.get_params(), min_cases=min_cases)
        model.vocab_ = base.vocab_
        model.data_fingerprint_ = base.data_fingerprint_
        model.base_ = base
        model.mixture_ = learn_mixture(base, valid, min_cases)
        return model

    # --------------------------------------------------------------- scoring
    def _session_betas(self, batch: SessionBatch) -> list[float | None]:
        self._check_fitted()
        return [self.mixture_.session_beta(batch.session(i)) for i in range(len(batch))]

    def score(self, batch: SessionBatch) -> np.ndarray:
        betas = self._session_betas(batch)
        types = _session_types(batch)
        scores = self.base_.score(batch)
        for row, beta in enumerate(betas):
            if beta is None:
                continue
            items, repeat = self.mixture_.repeat_scores(batch.session(row), types[row])
            values = scores[row]
            values[items] = -np.inf  # new items only: their best sets the scale
            best = float(values.max()) if np.isfinite(values).any() else None
            values[items] = session_scores(beta, repeat, best)
        return scores

    def top_k(
        self,
        batch: SessionBatch,
        k: int,
        exclude: Sequence[np.ndarray] | None = None,
    ) -> list[TopK]:
        """Exact top-``k``: the base's best new items and the session items, merged."""
        k = check_k(k)
        betas = self._session_betas(batch)
        results: list[TopK | None] = [None] * len(batch)
        off = [row for row, beta in enumerate(betas) if beta is None]
        on = [row for row, beta in enumerate(betas) if beta is not None]
        if off:  # the base's own answer, with the caller's exclusions inside its search
            answers = self.base_.top_k(
                _rows(batch, off), k, None if exclude is None else [exclude[r] for r in off]
            )
            for row, answer in zip(off, answers, strict=True):
                results[row] = answer
        if on:
            types = _session_types(batch)
            repeats = [self.mixture_.repeat_scores(batch.session(row), types[row]) for row in on]
            banned = [set() if exclude is None else set(_as_index(exclude[r]).tolist()) for r in on]
            # Deep enough that k new items are left once the session's items and the caller's
            # exclusions are taken out. Filtering here rather than through the base's
            # ``exclude`` keeps the small sets in Python (numpy's isin costs ~0.1 ms a call).
            depth = k + max(
                len(items) + len(b) for (items, _), b in zip(repeats, banned, strict=True)
            )
            news = self.base_.top_k(_rows(batch, on), depth)
            for j, row in enumerate(on):
                beta = betas[row]
                assert beta is not None
                items, repeat = repeats[j]
                idx, vals = news[j]
                seen = set(items.tolist())
                new = np.fromiter((i not in seen for i in idx.tolist()), bool, idx.size)
                idx, vals = idx[new].astype(np.int64), vals[new].astype(np.float32, copy=False)
                best = float(vals[0]) if vals.size else None  # excluded or not: as in score
                idx = np.concatenate([idx, items])
                vals = np.concatenate([vals, session_scores(beta, repeat, best)])
                keep = np.isfinite(vals)
                if banned[j]:
                    keep &= np.fromiter((i not in banned[j] for i in idx.tolist()), bool, idx.size)
                idx, vals = idx[keep], vals[keep]
                order = np.lexsort((idx, -vals))[:k]  # best first, ties by lower index
                results[row] = (idx[order], vals[order])
        return [r for r in results if r is not None]

    def target_ranks(self, batch: SessionBatch, targets: np.ndarray) -> np.ndarray:
        """Pessimistic ranks: the base's own (fast) ranks for sessions whose cell is off, the
        ranks in :meth:`score`'s rows for the others."""
        targets = np.asarray(targets, dtype=np.int64)
        if targets.shape != (len(batch),):
            raise DataError(f"expected one target per session ({len(batch)}), got {targets.shape}")
        betas = self._session_betas(batch)
        ranks = np.empty(len(batch), dtype=np.float64)
        for rows, ranker in (
            ([r for r, beta in enumerate(betas) if beta is None], self.base_.target_ranks),
            ([r for r, beta in enumerate(betas) if beta is not None], self._dense_ranks),
        ):
            if rows:
                ranks[rows] = ranker(_rows(batch, rows), targets[rows])
        return ranks

    def _dense_ranks(self, batch: SessionBatch, targets: np.ndarray) -> np.ndarray:
        return rank_targets(self.score(batch), targets, "pessimistic")

    def fallback_mask(self, batch: SessionBatch) -> np.ndarray:
        """The base's fallback sessions, less those whose own items the layer scores."""
        betas = self._session_betas(batch)
        mask = self.base_.fallback_mask(batch)
        for row, beta in enumerate(betas):
            if beta is not None:
                mask[row] = False
        return mask

    def training_counts(self) -> np.ndarray | None:
        self._check_fitted()
        return self.base_.training_counts()

    def learns_live(self) -> bool:
        self._check_fitted()
        return self.base_.learns_live()

    def updated(self, sessions: SessionData, max_sessions: int | None = None) -> RepeatAware:
        """This layer over its base updated with ``sessions`` (the mixture, learned by cells
        of session length and repeats, needs no new item; the vocabulary is the base's)."""
        self._check_fitted()
        base = self.base_.updated(sessions, max_sessions)
        model = copy.copy(self)
        model.base_ = base
        model.vocab_ = base.vocab_
        model.data_fingerprint_ = base.data_fingerprint_
        model.training_counts_ = base.training_counts()
        return model

    def recommends_repeats(self) -> bool:
        """True when validation switched the layer on (``beta > 0``) for some sessions."""
        self._check_fitted()
        return self.mixture_.is_on

    # ---------------------------------------------------------- explanations
    def _explain(self, session: np.ndarray, targets: np.ndarray, top: int) -> list[Reason]:
        """``"repeat"`` naming the item itself, weighed by its score, for the session items a
        switched-on cell scores; the base's reason for every other item."""
        beta = self.mixture_.session_beta(session)
        reasons: list[Reason | None] = [None] * targets.size
        if beta is not None and beta > 0:
            scores = self.score(SessionBatch.from_sequences([session]))[0]
            items = np.unique(session)
            for t, target in enumerate(targets.tolist()):
                if target in items:
                    (name,) = self.vocab_.decode(np.array([target]))
                    reasons[t] = Reason("repeat", ((name, float(scores[target])),))
        rest = [t for t, reason in enumerate(reasons) if reason is None]
        if rest:
            delegated = self.base_._explain(session, targets[rest], top)
            for t, reason in zip(rest, delegated, strict=True):
                reasons[t] = reason
        return [r for r in reasons if r is not None]

    # ----------------------------------------------------------- persistence
    def _get_members(self) -> dict[str, Recommender]:
        return {"base": self.base_}

    def _set_members(self, members: dict[str, Recommender]) -> None:
        if set(members) != {"base"}:
            raise ModelError(f"a repeat model has one member, 'base'; got {sorted(members)}")
        if members["base"].name != self.base:
            raise ModelError(f"member 'base' is a {members['base'].name!r}, not {self.base!r}")
        self.base_ = members["base"]

    def _get_state(self) -> dict[str, np.ndarray]:
        return {
            "decay": np.array([self.mixture_.decay], dtype=np.float64),
            "power": np.array([self.mixture_.power], dtype=np.float64),
            "beta": self.mixture_.beta.astype(np.float64),
            "type_factor": self.mixture_.type_factor.astype(np.float64),
        }

    def _set_state(self, state: dict[str, np.ndarray]) -> None:
        decay, power, beta = (np.asarray(state[key]) for key in ("decay", "power", "beta"))
        if decay.shape != (1,) or power.shape != (1,) or beta.shape != (N_CELLS,):
            raise ModelError(f"model state: decay, power (one value) and beta ({N_CELLS} cells)")
        if not (0 < decay[0] <= 1 and power[0] >= 0 and (np.isnan(beta) | (beta >= 0)).all()):
            raise ModelError("model state: decay in (0, 1], power >= 0, beta >= 0 or NaN")
        # A folder saved before event types: every type factor 1.
        type_factor = np.asarray(state.get("type_factor", np.ones(3)), dtype=np.float64)
        if type_factor.shape != (3,) or not (np.isfinite(type_factor) & (type_factor > 0)).all():
            raise ModelError("model state: type_factor must hold 3 positive numbers")
        self.mixture_ = Mixture(
            float(decay[0]), float(power[0]), beta.astype(np.float64), type_factor
        )


def _rows(batch: SessionBatch, rows: list[int]) -> SessionBatch:
    """The sessions ``rows`` of ``batch`` (with their times and types) as a batch of their own."""
    if len(rows) == len(batch):  # all of them (rows are increasing): no copy
        return batch
    sessions = [batch.session(r) for r in rows]
    times = types = None
    if batch.times is not None:
        times = [batch.session_times(r) for r in rows]
    if batch.types is not None:
        types = [batch.session_types(r) for r in rows]
    return SessionBatch.from_sequences(sessions, times, types, batch.event_types)


def _session_types(batch: SessionBatch) -> list[np.ndarray | None]:
    """Per session of ``batch``, its clicks' canonical event type codes (``None``: no types)."""
    codes = canonical_codes(batch.types, batch.event_types)
    if codes is None:
        return [None] * len(batch)
    return [codes[batch.offsets[i] : batch.offsets[i + 1]] for i in range(len(batch))]


def _as_index(items: np.ndarray | None) -> np.ndarray:
    if items is None or len(items) == 0:
        return np.zeros(0, dtype=np.int64)
    return np.asarray(items, dtype=np.int64)

"""An ensemble of fitted models: the weighted sum of their score-normalised outputs.

Each member is any registered model (a session-kNN, a neural model, a layer over a model).
Its scores are normalised per session so that scales compare (``minmax``: the finite scores
mapped onto [0, 1]; ``rank``: reciprocal-rank fusion, ``(c + 1) / (c + rank)`` with the
published constant ``c = 60`` of Cormack et al., SIGIR 2009), then summed with one weight per
member. An item some member has no evidence for (``-inf``) contributes nothing from that
member, so another member can still recommend it; an item no weighted member has evidence
for stays ``-inf``.

The weights (on the simplex, a grid of ``grid_steps`` steps) and, with
``normalization="auto"``, the normalisation are chosen to maximise MRR@20 on validation
only: :func:`sessionrec.data.split.last_fraction_split` cuts the one validation split, every
member is fitted on its first part, the validation cases are scored once, and the members
with a positive weight are fitted again on all the training sessions. A member whose weight
is 0 is not scored at serving time and is not refitted (it keeps its fit on the first part).

The weight search ranks each validation target among a candidate set: the union of every
member's best :data:`CANDIDATES` items and the target, so that validation memory is ``cases x
members x CANDIDATES`` instead of dense rows. An item outside every member's best
:data:`CANDIDATES` is not counted against the target. The ranks are exact when the
candidates hold every item with evidence (small catalogues; tested against the dense
ranks); otherwise they may place a target a little too high, and only the choice of weights
rests on them: serving and test figures use the exact dense scores.

The members are saved in ``members/LABEL/`` of the model folder; the weights, the chosen
normalisation and the validation MRR are the state.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping
from typing import Any

import numpy as np

from sessionrec._errors import ConfigError, DataError, ModelError
from sessionrec.data.sessions import SessionData
from sessionrec.data.split import last_fraction_split
from sessionrec.evaluation.metrics import mrr
from sessionrec.evaluation.protocol import items_for, make_cases, prefix_batch, score_batch_size
from sessionrec.models.base import Reason, Recommender, SessionBatch
from sessionrec.models.ensemble_fusion import (
    CANDIDATES,
    NORMALIZATIONS,
    candidate_columns,
    candidate_ranks,
    normalise,
    normalise_at,
    simplex_grid,
)
from sessionrec.models.params import (
    check_choice,
    check_fraction,
    check_int,
)
from sessionrec.models.persist import MEMBER_NAME
from sessionrec.models.repeat import RepeatAware
from sessionrec.models.standalone import STANDALONE_MODELS, create_from

logger = logging.getLogger(__name__)

CUTOFF = 20
"""The weights maximise MRR at this cut-off on validation."""

MEMBER_MODELS: dict[str, type[Recommender]] = {**STANDALONE_MODELS, RepeatAware.name: RepeatAware}
"""What an ensemble's ``members`` may name: every registered model but the ensemble itself."""


def parse_members(spec: str) -> list[tuple[str, str]]:
    """``"vstan,sr:rules"`` -> ``[("vstan", "vstan"), ("sr", "rules")]``: (registry name,
    label) per member; a label names the member's folder and its ``member_params`` entry."""
    if not isinstance(spec, str) or not spec.strip():
        raise ConfigError(f"members must be a comma-separated list of model names, not {spec!r}")
    out = []
    for part in spec.split(","):
        name, _, label = part.strip().partition(":")
        name, label = name.strip(), (label.strip() or name.strip())
        if not name or not MEMBER_NAME.match(label):
            raise ConfigError(
                f"members: {part.strip()!r} is not NAME or NAME:LABEL (a plain label)"
            )
        out.append((name, label))
    labels = [label for _, label in out]
    if len(set(labels)) != len(labels):
        raise ConfigError(f"members: labels must be unique, got {labels} (use NAME:LABEL)")
    return out


class Ensemble(Recommender):
    """A weighted fusion of registered models' normalised scores, weights from validation.

    ``members``: ``"NAME[:LABEL],..."``; ``member_params``: ``{LABEL: {param: value}}``;
    ``normalization``: ``"auto"`` (chosen on validation with the weights) or one of
    :data:`NORMALIZATIONS`; ``valid_fraction``: the validation part cut from the training
    sessions when ``fit`` gets no ``valid``; ``grid_steps``: the weight grid's resolution;
    ``max_valid_cases``: validation cases used (an evenly spread subset beyond it);
    ``seed``: handed to every member that takes one and does not set its own.
    """

    name = "ensemble"

    def __init__(
        self,
        members: str = "vstan,sr",
        member_params: dict[str, dict[str, Any]] | None = None,
        normalization: str = "auto",
        valid_fraction: float = 0.1,
        grid_steps: int = 10,
        max_valid_cases: int = 20000,
        seed: int = 0,
    ) -> None:
        labels = [label for _, label in parse_members(members)]
        if member_params is not None:
            if not isinstance(member_params, dict) or not all(
                isinstance(v, dict) for v in member_params.values()
            ):
                raise ConfigError("member_params must map member labels to parameter objects")
            unknown = sorted(set(member_params) - set(labels))
            if unknown:
                raise ConfigError(f"member_params: no member labelled {unknown}; have {labels}")
        check_choice("normalization", normalization, ("auto", *NORMALIZATIONS))
        check_fraction("valid_fraction", valid_fraction)
        check_int("grid_steps", grid_steps, minimum=1)
        check_int("max_valid_cases", max_valid_cases, minimum=1)
        check_int("seed", seed, minimum=0)
        self.members = members
        self.member_params = member_params
        self.normalization = normalization
        self.valid_fraction = valid_fraction
        self.grid_steps = grid_steps
        self.max_valid_cases = max_valid_cases
        self.seed = seed

    # ------------------------------------------------------------------------ fitting
    @property
    def labels(self) -> list[str]:
        return [label for _, label in parse_members(self.members)]

    def _new_members(self) -> dict[str, Recommender]:
        out = {}
        for name, label in parse_members(self.members):
            if name == self.name:
                raise ConfigError("an ensemble cannot be a member of an ensemble")
            params = dict((self.member_params or {}).get(label, {}))
            model = create_from(MEMBER_MODELS, name, params, role="ensemble member")
            if "seed" in model.get_params() and "seed" not in params:
                model = create_from(MEMBER_MODELS, name, {**params, "seed": self.seed})
            out[label] = model
        return out

    def _fit(self, train: SessionData, valid: SessionData | None) -> None:
        members = self._new_members()
        if valid is not None:
            for label, member in members.items():
                logger.info("ensemble: fitting member %s", label)
                member.fit(train, valid)
            self.members_ = members
            self._choose_weights(valid)
            return
        first, held = last_fraction_split(train, self.valid_fraction)
        for label, member in members.items():
            logger.info("ensemble: fitting member %s on the first part", label)
            member.fit(first)
        self.members_ = members
        self._choose_weights(held)
        for label, weight in zip(self.labels, self.weights_.tolist(), strict=True):
            if weight > 0:  # a member without weight is never scored: no refit
                logger.info("ensemble: fitting member %s on all training sessions", label)
                members[label].fit(train)

    @classmethod
    def from_fitted(
        cls,
        members: Mapping[str, Recommender],
        valid: SessionData,
        normalization: str = "auto",
        grid_steps: int = 10,
        max_valid_cases: int = 20000,
    ) -> Ensemble:
        """An ensemble of already fitted ``members`` (label -> model, one vocabulary), its
        weights chosen on ``valid`` (sessions the members were not fitted on)."""
        if not members:
            raise ConfigError("from_fitted needs at least one member")
        for label, member in members.items():
            member._check_fitted()
            if not MEMBER_NAME.match(label):
                raise ConfigError(f"member label {label!r} is not a plain folder name")
        first = next(iter(members.values()))
        if any(m.vocab_ != first.vocab_ for m in members.values()):
            raise DataError("from_fitted: the members must share one vocabulary")
        model = cls(
            members=",".join(f"{m.name}:{label}" for label, m in members.items()),
            member_params={label: m.get_params() for label, m in members.items()},
            normalization=normalization,
            grid_steps=grid_steps,
            max_valid_cases=max_valid_cases,
        )
        model.vocab_ = first.vocab_
        model.data_fingerprint_ = str(getattr(first, "data_fingerprint_", "") or "")
        model.members_ = dict(members)
        if valid.vocab != model.vocab_:
            valid = valid.with_vocab(model.vocab_)
        model._choose_weights(valid)
        return model

    def _choose_weights(self, valid: SessionData) -> None:
        """Set ``weights_``, ``normalization_`` and ``valid_mrr_`` from ``valid`` alone."""
        methods = NORMALIZATIONS if self.normalization == "auto" else (self.normalization,)
        features = self._validation_features(valid, methods)
        grid = simplex_grid(len(self.members_), self.grid_steps)
        best: tuple[float, int, int, int] | None = None
        for m, method in enumerate(methods):
            normalised, evidence = features[method]
            cache: dict[tuple[bool, ...], np.ndarray] = {}
            for p, weights in enumerate(grid):
                value = mrr(candidate_ranks(normalised, evidence, weights, cache), CUTOFF)
                # ties: fewer members to score at serving time, then the grid order
                key = (value, -int((weights > 0).sum()), -m, -p)
                if best is None or key > best:
                    best = key
        assert best is not None
        self.normalization_ = methods[-best[2]]
        self.weights_ = grid[-best[3]].copy()
        self.valid_mrr_ = 100.0 * best[0]
        logger.info(
            "ensemble: %s weights %s (validation MRR@%d %.2f)",
            self.normalization_,
            dict(zip(self.labels, self.weights_.round(3).tolist(), strict=True)),
            CUTOFF,
            self.valid_mrr_,
        )

    def _validation_features(
        self, valid: SessionData, methods: tuple[str, ...]
    ) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        """Per normalisation: the normalised scores ``[cases, 1 + candidates, members]`` of
        the target (column 0) and the candidates, and their evidence mask (False pads)."""
        cases = make_cases(valid, "next")
        if len(cases) == 0:
            raise DataError("the validation sessions give no case (no session of 2+ clicks)")
        chosen = np.arange(len(cases))
        if len(cases) > self.max_valid_cases:  # evenly spread: the same subset every time
            chosen = np.unique(np.linspace(0, len(cases) - 1, self.max_valid_cases).astype(int))
        items = items_for(self, valid)
        starts, lengths = cases.starts[chosen], cases.lengths[chosen]
        targets = items[starts + lengths]
        members = list(self.members_.values())
        width = 1 + CANDIDATES * len(members)
        shape = (len(chosen), width, len(members))
        out = {m: (np.zeros(shape, np.float32), np.zeros(shape, bool)) for m in methods}
        step = score_batch_size(self.n_items)
        for lo in range(0, len(chosen), step):
            hi = min(lo + step, len(chosen))
            batch = prefix_batch(items, valid.times, starts[lo:hi], lengths[lo:hi])
            scores = [member.score(batch) for member in members]
            columns = candidate_columns(scores, targets[lo:hi])
            for method in methods:
                normalised, evidence = out[method]
                for j, raw in enumerate(scores):
                    values, finite = normalise_at(raw, columns, method)
                    normalised[lo:hi, :, j] = values
                    evidence[lo:hi, :, j] = finite
        return out

    # ------------------------------------------------------------------------ scoring
    def _weighted(self) -> Iterator[tuple[str, float, Recommender]]:
        for label, weight in zip(self.labels, self.weights_.tolist(), strict=True):
            if weight > 0:
                yield label, weight, self.members_[label]

    def member_weights(self) -> dict[str, float]:
        """The chosen weight of every member, by label."""
        self._check_fitted()
        return dict(zip(self.labels, self.weights_.tolist(), strict=True))

    def member_contributions(self, batch: SessionBatch) -> dict[str, np.ndarray]:
        """Each weighted member's term of :meth:`score`: weight x normalised score
        ``[len(batch), n_items]`` (0 where it has no evidence)."""
        self._check_fitted()
        return {
            label: weight * normalise(member.score(batch), self.normalization_)[0]
            for label, weight, member in self._weighted()
        }

    def score(self, batch: SessionBatch) -> np.ndarray:
        self._check_fitted()
        total = np.zeros((len(batch), self.n_items), dtype=np.float64)
        evidence = np.zeros((len(batch), self.n_items), dtype=bool)
        for _, weight, member in self._weighted():
            values, finite = normalise(member.score(batch), self.normalization_)
            total += weight * values
            evidence |= finite
        total[~evidence] = -np.inf
        return total.astype(np.float32)

    def fallback_mask(self, batch: SessionBatch) -> np.ndarray:
        """A session is a fallback when every weighted member answers it with its own."""
        self._check_fitted()
        mask = np.ones(len(batch), dtype=bool)
        for _, _, member in self._weighted():
            mask &= member.fallback_mask(batch)
        return mask

    def training_counts(self) -> np.ndarray | None:
        """The counts of the first weighted member that keeps them (fitted on all the
        training sessions; a member without weight was fitted on a part only)."""
        self._check_fitted()
        for _, _, member in self._weighted():
            counts = member.training_counts()
            if counts is not None:
                return counts
        return None

    # ----------------------------------------------------------------- explanations
    def _explain(self, session: np.ndarray, targets: np.ndarray, top: int) -> list[Reason]:
        """The reason of the member that contributes most to each item's score (ties to
        the member listed first), in that member's own terms."""
        batch = SessionBatch.from_sequences([session])
        weighted = list(self._weighted())
        terms = np.stack(
            [
                weight * normalise(member.score(batch), self.normalization_)[0][0, targets]
                for _, weight, member in weighted
            ]
        )  # [members, targets]
        dominant = np.argmax(terms, axis=0)
        reasons: list[Reason | None] = [None] * len(targets)
        for j, (_, _, member) in enumerate(weighted):
            mine = np.flatnonzero(dominant == j)
            if mine.size:
                for position, reason in zip(
                    mine.tolist(), member._explain(session, targets[mine], top), strict=True
                ):
                    reasons[position] = reason
        return [r if r is not None else Reason("ablation") for r in reasons]

    def explain_members(self, session: list[Any], items: list[Any]) -> list[dict[str, float]]:
        """Per item (external ids): each weighted member's share of its ensemble score."""
        self._check_fitted()
        batch = self.encode_sessions([session])
        targets = self.vocab_.encode(list(items)).astype(np.int64)
        if (targets < 0).any():
            raise DataError("cannot explain items not in the model's vocabulary")
        parts = {label: t[0, targets] for label, t in self.member_contributions(batch).items()}
        totals = np.sum(list(parts.values()), axis=0)
        safe = np.where(totals > 0, totals, 1.0)
        return [
            {label: float(values[i] / safe[i]) for label, values in parts.items()}
            for i in range(len(targets))
        ]

    # ------------------------------------------------------------------ persistence
    def _get_members(self) -> dict[str, Recommender]:
        return dict(self.members_)

    def _set_members(self, members: dict[str, Recommender]) -> None:
        if sorted(members) != sorted(self.labels):
            raise ModelError(f"ensemble members {sorted(members)} are not {sorted(self.labels)}")
        self.members_ = {label: members[label] for label in self.labels}

    def _get_state(self) -> dict[str, np.ndarray]:
        return {
            "weights": self.weights_,
            "normalization": np.asarray(NORMALIZATIONS.index(self.normalization_)),
            "valid_mrr": np.asarray(self.valid_mrr_),
        }

    def _set_state(self, state: dict[str, np.ndarray]) -> None:
        weights = np.asarray(state["weights"], dtype=np.float64)
        if weights.shape != (len(self.labels),) or not np.isfinite(weights).all():
            raise ModelError(f"ensemble weights {weights} do not fit members {self.labels}")
        self.weights_ = weights
        self.normalization_ = NORMALIZATIONS[int(state["normalization"])]
        self.valid_mrr_ = float(state["valid_mrr"])

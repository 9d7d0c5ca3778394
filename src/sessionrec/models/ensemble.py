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

Sessions of different lengths want different mixtures (one click: item-to-item evidence;
long sessions: the session's own items), so the weights are chosen per group of prefix
lengths (``length_groups="1,2"``: one click, two clicks, three or more), each on its own
validation cases, by MRR@20; a group with fewer than :data:`MIN_GROUP_CASES` cases takes
the weights chosen on all cases. With ``short_floor`` (what ``sessionrec auto`` uses), the
short groups (all but the open-ended last one) maximise MRR@20 only among the weights whose
HR@20 is at least the best single member's there, so the fusion never trades the hit rate of
its best member for rank on the short sessions the field finds hardest (a small group keeps
the overall weights only when they reach that floor). The floor costs rank: on YooChoose
1/64 with vstan, stan, sr and spop, 0.9 MRR points on the test file (E2), so it is off by
default.

The members are saved in ``members/LABEL/`` of the model folder; the weights (one row per
length group), the chosen normalisation and the validation MRR are the state.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Iterator, Mapping
from typing import Any

import numpy as np

from sessionrec._errors import ConfigError, DataError, ModelError
from sessionrec.data.sessions import SessionData
from sessionrec.data.split import last_fraction_split
from sessionrec.evaluation.protocol import items_for, make_cases, prefix_batch, score_batch_size
from sessionrec.models.base import Reason, Recommender, SessionBatch
from sessionrec.models.ensemble_fusion import (
    CANDIDATES,
    DENSE_SHARE,
    NORMALIZATIONS,
    candidate_columns,
    candidate_ranks,
    normalise,
    normalise_at,
    normalise_sparse,
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

MIN_GROUP_CASES = 100
"""A length group with fewer validation cases takes the weights chosen on all of them (fewer
choices made on few cases) when those reach the group's hit-rate floor."""

MEMBER_MODELS: dict[str, type[Recommender]] = {**STANDALONE_MODELS, RepeatAware.name: RepeatAware}
"""What an ensemble's ``members`` may name: every registered model but the ensemble itself."""


def parse_length_groups(spec: str) -> np.ndarray:
    """``"1,2"`` -> ``[1, 2]``: the last prefix length of each group but the open-ended one
    (groups: lengths <= 1, == 2, >= 3); ``""``: one group for every length."""
    if not isinstance(spec, str):
        raise ConfigError(f"length_groups must be a string such as '1,2', not {spec!r}")
    parts = [part.strip() for part in spec.split(",") if part.strip()]
    try:
        bounds = [int(part) for part in parts]
    except ValueError:
        raise ConfigError(
            f"length_groups must be increasing prefix lengths such as '1,2', got {spec!r}"
        ) from None
    if any(b < 1 for b in bounds) or any(b >= c for b, c in itertools.pairwise(bounds)):
        raise ConfigError(
            f"length_groups must be increasing prefix lengths >= 1 such as '1,2', got {spec!r}"
        )
    return np.asarray(bounds, dtype=np.int64)


def length_group(lengths: np.ndarray, bounds: np.ndarray) -> np.ndarray:
    """The group of each prefix length: the number of bounds below it."""
    return np.searchsorted(bounds, np.asarray(lengths, dtype=np.int64), side="left")


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


def reaches_floor(grid: np.ndarray, hit_sums: np.ndarray, point: int) -> bool:
    """Whether the hits of grid point ``point`` reach the best single member's (a unit
    weight vector: every member alone is on the grid)."""
    return bool(hit_sums[point] >= hit_sums[(grid == 1.0).any(axis=1)].max() - 1e-9)


def choose_point(
    grid: np.ndarray, rr_sums: np.ndarray, hit_sums: np.ndarray, floor: bool = True
) -> int:
    """The grid point of the highest MRR (with ``floor``: among those whose hits reach the
    best single member's, :func:`reaches_floor`); ties go to fewer weighted members, then to
    the grid order."""
    allowed = hit_sums >= hit_sums[(grid == 1.0).any(axis=1)].max() - 1e-9
    if not floor:
        allowed[:] = True
    n_weighted = (grid > 0).sum(axis=1)
    order = np.lexsort((np.arange(len(grid)), n_weighted, -rr_sums))  # last key first
    return int(next(p for p in order if allowed[p]))


class Ensemble(Recommender):
    """A weighted fusion of registered models' normalised scores, weights from validation.

    ``members``: ``"NAME[:LABEL],..."``; ``member_params``: ``{LABEL: {param: value}}``;
    ``normalization``: ``"auto"`` (chosen on validation with the weights) or one of
    :data:`NORMALIZATIONS`; ``valid_fraction``: the validation part cut from the training
    sessions when ``fit`` gets no ``valid``; ``grid_steps``: the weight grid's resolution;
    ``max_valid_cases``: validation cases used (an evenly spread subset beyond it);
    ``seed``: handed to every member that takes one and does not set its own;
    ``length_groups``: the prefix-length groups that get their own weights (see the module
    docstring; ``""`` for one set of weights); ``short_floor``: in the short groups, only
    weights whose validation HR@20 reaches the best member's there (what ``sessionrec auto``
    asks for; off, MRR@20 alone chooses in every group).
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
        length_groups: str = "1,2",
        short_floor: bool = False,
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
        parse_length_groups(length_groups)
        if not isinstance(short_floor, bool):
            raise ConfigError(f"short_floor must be true or false, got {short_floor!r}")
        self.members = members
        self.member_params = member_params
        self.normalization = normalization
        self.valid_fraction = valid_fraction
        self.grid_steps = grid_steps
        self.max_valid_cases = max_valid_cases
        self.seed = seed
        self.length_groups = length_groups
        self.short_floor = short_floor

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
        for label in self.weighted_labels():  # a member without weight is never scored
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
        length_groups: str = "1,2",
        short_floor: bool = False,
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
            length_groups=length_groups,
            short_floor=short_floor,
        )
        model.vocab_ = first.vocab_
        model.data_fingerprint_ = str(getattr(first, "data_fingerprint_", "") or "")
        model.members_ = dict(members)
        if valid.vocab != model.vocab_:
            valid = valid.with_vocab(model.vocab_)
        model._choose_weights(valid)
        return model

    def _choose_weights(self, valid: SessionData) -> None:
        """Set ``weights_`` ``[groups, members]``, ``normalization_`` and ``valid_mrr_`` from
        ``valid`` alone (see the module docstring for the rule)."""
        methods = NORMALIZATIONS if self.normalization == "auto" else (self.normalization,)
        features, lengths = self._validation_features(valid, methods)
        grid = simplex_grid(len(self.members_), self.grid_steps)
        n_groups = len(parse_length_groups(self.length_groups)) + 1
        groups = length_group(lengths, parse_length_groups(self.length_groups))
        best: tuple[float, int, np.ndarray] | None = None
        for m, method in enumerate(methods):
            normalised, evidence = features[method]
            cache: dict[tuple[bool, ...], np.ndarray] = {}
            rr_sums = np.zeros((len(grid), n_groups))
            hit_sums = np.zeros((len(grid), n_groups))
            for p, weights in enumerate(grid):
                ranks = candidate_ranks(normalised, evidence, weights, cache)
                hit = ranks <= CUTOFF
                rr_sums[p] = np.bincount(groups, np.where(hit, 1.0 / ranks, 0.0), n_groups)
                hit_sums[p] = np.bincount(groups, hit.astype(np.float64), n_groups)
            # with short_floor, the hit-rate floor holds in the short groups length_groups
            # names, not in the open-ended last one, where MRR alone chooses
            overall = choose_point(grid, rr_sums.sum(axis=1), hit_sums.sum(axis=1), floor=False)
            counts = np.bincount(groups, minlength=n_groups)
            points = []
            for g in range(n_groups):
                floor = self.short_floor and g < n_groups - 1
                small = counts[g] < MIN_GROUP_CASES
                if small and (not floor or reaches_floor(grid, hit_sums[:, g], overall)):
                    points.append(overall)
                else:
                    points.append(choose_point(grid, rr_sums[:, g], hit_sums[:, g], floor))
            total = float(sum(rr_sums[p, g] for g, p in enumerate(points))) / len(groups)
            if best is None or total > best[0]:  # ties: the first normalisation
                best = (total, m, grid[points].copy())
        assert best is not None
        self.normalization_ = methods[best[1]]
        self.weights_ = best[2]
        self.valid_mrr_ = 100.0 * best[0]
        logger.info(
            "ensemble: %s weights %s by length group %s (validation MRR@%d %.2f)",
            self.normalization_,
            self.weights_.round(3).tolist(),
            self.length_groups or "(one group)",
            CUTOFF,
            self.valid_mrr_,
        )

    def _validation_features(
        self, valid: SessionData, methods: tuple[str, ...]
    ) -> tuple[dict[str, tuple[np.ndarray, np.ndarray]], np.ndarray]:
        """Per normalisation: the normalised scores ``[cases, 1 + candidates, members]`` of
        the target (column 0) and the candidates, and their evidence mask (False pads); and
        the prefix length of each case."""
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
        return out, lengths

    # ------------------------------------------------------------------------ scoring
    def weighted_labels(self) -> list[str]:
        """The members with a weight in some length group: the ones scored and refitted."""
        self._check_fitted()
        used = np.asarray((self.weights_ > 0).any(axis=0), dtype=bool)
        return [label for j, label in enumerate(self.labels) if used[j]]

    def _row_weights(self, batch: SessionBatch) -> np.ndarray:
        """The weights of each session of ``batch`` (by its length group): ``[n, members]``."""
        groups = length_group(batch.lengths, parse_length_groups(self.length_groups))
        return self.weights_[np.minimum(groups, len(self.weights_) - 1)]

    def _weighted(self, batch: SessionBatch) -> Iterator[tuple[str, np.ndarray, Recommender]]:
        """Each member weighted for some session of ``batch``, with its weight per session."""
        rows = self._row_weights(batch)
        for j, label in enumerate(self.labels):
            if (rows[:, j] > 0).any():
                yield label, rows[:, j], self.members_[label]

    def member_weights(self) -> dict[str, float]:
        """The chosen weight of every member, by label, when every length group has the
        same; otherwise the mean over the groups (:meth:`group_weights` gives each)."""
        self._check_fitted()
        return dict(zip(self.labels, self.weights_.mean(axis=0).tolist(), strict=True))

    def group_weights(self) -> dict[str, dict[str, float]]:
        """The weights of each length group (``"1"``, ``"2"``, ``"3+"`` for ``"1,2"``)."""
        self._check_fitted()
        bounds = parse_length_groups(self.length_groups).tolist()
        names = [
            str(b) if b == a + 1 else f"{a + 1}-{b}" for a, b in itertools.pairwise([0, *bounds])
        ]
        names.append(f"{bounds[-1] + 1}+" if bounds else "all")
        return {
            name: dict(zip(self.labels, row.tolist(), strict=True))
            for name, row in zip(names, self.weights_, strict=True)
        }

    def member_contributions(self, batch: SessionBatch) -> dict[str, np.ndarray]:
        """Each weighted member's term of :meth:`score`: weight x normalised score
        ``[len(batch), n_items]`` (0 where it has no evidence)."""
        self._check_fitted()
        return {
            label: weight[:, None] * normalise(member.score(batch), self.normalization_)[0]
            for label, weight, member in self._weighted(batch)
        }

    def score(self, batch: SessionBatch) -> np.ndarray:
        self._check_fitted()
        total = np.zeros((len(batch), self.n_items), dtype=np.float64)
        evidence = np.zeros((len(batch), self.n_items), dtype=bool)
        for _, weight, member in self._weighted(batch):
            raw = member.score(batch)
            finite = np.isfinite(raw)
            if finite.mean() > DENSE_SHARE:
                values, finite = normalise(raw, self.normalization_)
                total += weight[:, None] * values
                evidence |= finite & (weight > 0)[:, None]
                continue
            # only the member's finite scores: (row, item) pairs are unique, so += is exact
            rows, cols, sparse = normalise_sparse(raw, self.normalization_, finite)
            keep = weight[rows] > 0
            rows, cols = rows[keep], cols[keep]
            total[rows, cols] += weight[rows] * sparse[keep]
            evidence[rows, cols] = True
        return np.where(evidence, total, -np.inf).astype(np.float32)

    def fallback_mask(self, batch: SessionBatch) -> np.ndarray:
        """A session is a fallback when every weighted member answers it with its own."""
        self._check_fitted()
        mask = np.ones(len(batch), dtype=bool)
        for _, weight, member in self._weighted(batch):
            mask &= member.fallback_mask(batch) | (weight == 0)
        return mask

    def training_counts(self) -> np.ndarray | None:
        """The counts of the first weighted member that keeps them (fitted on all the
        training sessions; a member without weight was fitted on a part only)."""
        self._check_fitted()
        for label in self.weighted_labels():
            counts = self.members_[label].training_counts()
            if counts is not None:
                return counts
        return None

    # ----------------------------------------------------------------- explanations
    def _explain(self, session: np.ndarray, targets: np.ndarray, top: int) -> list[Reason]:
        """The reason of the member that contributes most to each item's score (ties to
        the member listed first), in that member's own terms."""
        batch = SessionBatch.from_sequences([session])
        weighted = list(self._weighted(batch))
        terms = np.stack(
            [
                weight[0] * normalise(member.score(batch), self.normalization_)[0][0, targets]
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
        n_groups = len(parse_length_groups(self.length_groups)) + 1
        if weights.ndim == 1:  # saved before length groups: one row for every group
            weights = np.tile(weights, (n_groups, 1))
        if weights.shape != (n_groups, len(self.labels)) or not np.isfinite(weights).all():
            raise ModelError(
                f"ensemble weights {weights.tolist()} do not fit members {self.labels} "
                f"in {n_groups} length groups"
            )
        self.weights_ = weights
        self.normalization_ = NORMALIZATIONS[int(state["normalization"])]
        self.valid_mrr_ = float(state["valid_mrr"])

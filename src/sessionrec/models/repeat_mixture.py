"""The mixture of the repeat layer (:mod:`sessionrec.models.repeat`) and how validation
learns it.

For a session ``s`` whose cell (below) is switched on, the layer scores

- a **new item** ``i`` (not in ``s``): the base's score, unchanged (so the base's order and
  ties, exactly);
- a **session item** ``i``: ``m · beta(cell) · repeat(i)``, where ``m`` is the best base score
  of the new items (when it is positive; ``m - 1 + beta · repeat(i)`` otherwise, and
  ``beta · repeat(i)`` when no new item has a score) and
  ``repeat(i) = decay^d(i) · count(i)^power · type(i)``, divided by its largest value in the
  session (so that the most repeatable item has 1). ``d(i)``: clicks after the item's last
  click (0 for the last click, recency and position in one); ``count(i)``: its clicks
  (frequency); ``type(i)``: a factor by the item's strongest event in the session (view 1,
  cart, purchase: a carted item is a strong repeat candidate, a purchased one usually is
  not), learned where the validation data has carts or purchases, 1 otherwise and for a
  batch without event types.

In units of the best new item (``explore(i) = base(i) / m``, 1 for the best new item) a
session item scores ``beta · repeat(i)``: this is RepeatNet's split (Ren et al., AAAI 2019)
into a repeat mode over the session's items and an explore mode over new items, made
model-agnostic, and ``beta`` is the odds of repeating against the best new item. The layer
does not use the base's score of session items, which keeps the search exact and sparse
(the base's top list plus the session's items).

**Cells** (the session features ``beta`` depends on): the session length (1, 2, 3, 4-5, 6-9,
10+ clicks) and whether the session already repeats an item. Each cell is either *off*
(``beta`` is NaN: the session gets the base's scores unchanged), *on* with its ``beta > 0``,
or *no repeats* (``beta = 0``): the session items get no score at all, exactly what
``exclude_seen`` does, which validation picks where the next click never repeats and the base
ranks the session's items high anyway.
Time is not a feature yet: the benchmark files carry no times, and offline the "seconds since
the last click" at prediction time is the time until the target click (it would leak the
answer); the leak-free candidate is the gap between the session's last two clicks.

**Learning** (:func:`learn_mixture`): every next-click case of a validation split is ranked
(pessimistic ties, cut-off :data:`CUTOFF`) by the base and by every mixture of a coarse grid
(``decay`` x ``power`` x the type factors x ``beta``). Cells are disjoint sets of cases, so
per ``(decay, power, type factors)`` each cell takes its best ``beta`` or stays off, and the
setting with the best total wins. The objective is ``HR@20 + MRR@20`` (fractions) summed
over the cell's cases; a cell switches on only when it beats the base strictly and has at
least ``min_cases`` cases. By construction the mixture is never worse than the base on
validation, and it is entirely off when repeats do not help.
"""

from __future__ import annotations

import bisect
import itertools
import logging
import math
from dataclasses import dataclass, field

import numpy as np

from sessionrec.data.sessions import SessionData
from sessionrec.evaluation.protocol import items_for, make_cases, prefix_batch
from sessionrec.models.base import Recommender, SessionBatch
from sessionrec.models.knn_objective import CART, PURCHASE, canonical_codes

log = logging.getLogger("sessionrec.models")

LENGTH_EDGES = np.array([1, 2, 3, 4, 6, 10], dtype=np.int64)
"""Lower bounds of the session-length buckets: 1, 2, 3, 4-5, 6-9, 10+ clicks."""
_EDGES = LENGTH_EDGES.tolist()

N_CELLS = 2 * LENGTH_EDGES.size
"""Length bucket x (the session repeats an item already or not)."""

CELL_LABELS = tuple(
    f"{length}{kind}" for length in ("1", "2", "3", "4-5", "6-9", "10+") for kind in ("", "/rep")
)
"""The cells by name, in order: "4-5/rep" holds sessions of 4 or 5 clicks with a repeat."""

DECAYS = (0.25, 0.5, 0.75, 0.9, 1.0)
POWERS = (0.0, 0.5, 1.0)
BETAS = (0.0, 0.02, 0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0, 10.0, 100.0)
"""The grid validation searches: recency decay, frequency power, repeat odds per cell."""

CART_FACTORS = (1.0, 2.0, 5.0)
PURCHASE_FACTORS = (0.1, 0.5, 1.0)
"""The type factors validation searches (a view's is 1), on data with carts or purchases."""

CUTOFF = 20
"""The list length the objective looks at (HR@20 + MRR@20)."""

_BATCH = 2048
"""Validation cases per base call while learning."""


@dataclass(frozen=True)
class Mixture:
    """A learned mixture: ``decay``, ``power`` and ``beta`` per cell (NaN = off)."""

    decay: float
    power: float
    beta: np.ndarray  # float64 [N_CELLS]
    # float64 [3]: repeat factor by the item's strongest event type (view, cart, purchase)
    type_factor: np.ndarray = field(default_factory=lambda: np.ones(3))

    @classmethod
    def off(cls) -> Mixture:
        return cls(1.0, 0.0, np.full(N_CELLS, np.nan))

    @property
    def is_on(self) -> bool:
        """Whether some cell recommends repeats (``beta > 0``)."""
        return bool((self.beta > 0).any())

    def session_beta(self, session: np.ndarray) -> float | None:
        """The session's ``beta``, ``None`` where its cell is off (or it is empty)."""
        if session.size == 0:
            return None
        clicks = session.tolist()  # one session: Python beats numpy's per-call overhead
        bucket = bisect.bisect_right(_EDGES, len(clicks)) - 1
        beta = float(self.beta[2 * bucket + (len(set(clicks)) < len(clicks))])
        return beta if math.isfinite(beta) else None

    def repeat_scores(
        self, session: np.ndarray, types: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """The distinct items of a non-empty session (most recent first) and their
        ``repeat`` scores (float32, the largest is 1); ``types``: the clicks' canonical
        event type codes (:mod:`sessionrec.models.knn_objective`), or ``None``."""
        since: dict[int, int] = {}  # insertion order: most recent first
        counts: dict[int, int] = {}
        for position, item in enumerate(reversed(np.asarray(session).tolist())):
            since.setdefault(item, position)
            counts[item] = counts.get(item, 0) + 1
        items = np.fromiter(since, dtype=np.int64, count=len(since))
        factor: float | np.ndarray = 1.0
        if types is not None and (self.type_factor != 1.0).any():
            strongest = np.zeros(items.size, dtype=np.int64)
            order = np.argsort(items)
            at = order[np.searchsorted(items, np.asarray(session), sorter=order)]
            np.maximum.at(strongest, at, np.asarray(types, dtype=np.int64))
            factor = self.type_factor[strongest]
        raw = (
            repeat_raw(
                self.decay,
                self.power,
                np.fromiter(since.values(), dtype=np.int64, count=len(since)),
                np.fromiter((counts[i] for i in since), dtype=np.int64, count=len(since)),
            )
            * factor
        )
        return items, (raw / raw.max()).astype(np.float32)


def cell_of(lengths: np.ndarray, repeats: np.ndarray) -> np.ndarray:
    """The cell of sessions of ``lengths`` >= 1 that repeat an item already or not."""
    bucket = np.searchsorted(LENGTH_EDGES, lengths, side="right") - 1
    return (2 * bucket + np.asarray(repeats, dtype=np.int64)).astype(np.int64)


def repeat_raw(decay: float, power: float, since: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """``decay^d · count^power`` before the per-session scaling (float64)."""
    return np.power(decay, since.astype(np.float64)) * np.power(counts.astype(np.float64), power)


def explore(values: np.ndarray, best: float) -> np.ndarray:
    """Float32 base scores of new items in units of the best one, ``best`` (what learning
    compares ``beta · repeat`` with)."""
    if best > 0:
        return values / np.float32(best)
    return values - np.float32(best) + np.float32(1.0)


def session_scores(beta: float, repeat: np.ndarray, best: float | None) -> np.ndarray:
    """The layer's float32 scores of the session items given the best base score of the new
    items (``None``: no new item has one); ``-inf`` for all when ``beta`` is 0 (the cell then
    recommends no repeat)."""
    if beta == 0:
        return np.full(repeat.shape, -np.inf, dtype=np.float32)
    odds = np.float32(beta) * repeat
    if best is None:
        return odds
    if best > 0:
        return odds * np.float32(best)
    return odds + np.float32(best) - np.float32(1.0)


# ------------------------------------------------------------------------------- learning
@dataclass
class _Cases:
    """What the grid search needs of the validation cases (one row per case)."""

    cell: np.ndarray  # int64 [n]
    base_gain: np.ndarray  # float64 [n]: the base's hit + reciprocal rank at CUTOFF
    top: np.ndarray  # float32 [n, CUTOFF]: explore scores of the best new items, -inf padded
    target_explore: np.ndarray  # float32 [n]: the target's explore score, -inf if not listed
    target_entry: np.ndarray  # int64 [n]: the target's entry among the session items, -1
    owner: np.ndarray  # int64 [entries]: the case of every distinct session item
    since: np.ndarray  # int64 [entries]: clicks after its last click
    counts: np.ndarray  # int64 [entries]: its clicks
    kinds: np.ndarray  # int64 [entries]: its strongest event type (0 view, 1 cart, 2 purchase)


def gain(ranks: np.ndarray) -> np.ndarray:
    """Hit plus reciprocal rank at :data:`CUTOFF` of pessimistic 1-based ranks."""
    hit = ranks <= CUTOFF
    out = np.zeros(ranks.shape, dtype=np.float64)
    out[hit] = 1.0 + 1.0 / ranks[hit]
    return out


def _collect(base: Recommender, valid: SessionData) -> _Cases:
    """Rank every validation case by the base and keep what the grid search needs."""
    cases = make_cases(valid, "next")
    items = items_for(base, valid)

    targets_all = items[cases.starts + cases.lengths]
    parts: dict[str, list[np.ndarray]] = {k: [] for k in _Cases.__dataclass_fields__}
    n_seen = 0
    for lo in range(0, len(cases), _BATCH):
        hi = min(lo + _BATCH, len(cases))
        batch = prefix_batch(
            items, valid.times, cases.starts[lo:hi], cases.lengths[lo:hi], valid.types,
            valid.event_types,
        )  # fmt: skip
        targets = targets_all[lo:hi]
        codes = canonical_codes(batch.types, batch.event_types)
        keep = (batch.lengths > 0) & (targets >= 0)  # empty prefixes and unknown targets
        ranks = base.target_ranks(batch, np.where(targets >= 0, targets, 0))
        rows = np.flatnonzero(keep)
        sessions = [batch.session(int(r)).astype(np.int64) for r in rows]
        distinct = [np.unique(s) for s in sessions]
        tops = base.top_k(_subset(batch, rows), CUTOFF, exclude=distinct)
        top = np.full((rows.size, CUTOFF), -np.inf, dtype=np.float32)
        target_explore = np.full(rows.size, -np.inf, dtype=np.float32)
        target_entry = np.full(rows.size, -1, dtype=np.int64)
        owners, sinces, counts, kinds = [], [], [], []
        first_case = sum(p.size for p in parts["cell"])
        for j, (session, (idx, vals)) in enumerate(zip(sessions, tops, strict=True)):
            target = targets[rows[j]]
            if vals.size:
                scaled = explore(vals.astype(np.float32), float(vals[0]))
                top[j, : scaled.size] = scaled
                hit = np.flatnonzero(idx == target)
                if hit.size:
                    target_explore[j] = scaled[hit[0]]
            backwards = session[::-1]
            uniq, first, inverse, count = np.unique(
                backwards, return_index=True, return_inverse=True, return_counts=True
            )
            kind = np.zeros(uniq.size, dtype=np.int64)
            if codes is not None:
                row = int(rows[j])
                typed = codes[batch.offsets[row] : batch.offsets[row + 1]][::-1]
                np.maximum.at(kind, inverse, typed.astype(np.int64))
            where = np.flatnonzero(uniq == target)
            if where.size:
                target_entry[j] = n_seen + where[0]
            owners.append(np.full(uniq.size, first_case + j, np.int64))
            sinces.append(first)
            counts.append(count)
            kinds.append(kind)
            n_seen += uniq.size
        lengths = batch.lengths[rows]
        repeats = np.array([np.unique(s).size < s.size for s in sessions], dtype=bool)
        parts["cell"].append(cell_of(lengths, repeats))
        parts["base_gain"].append(gain(ranks[rows]))
        parts["top"].append(top)
        parts["target_explore"].append(target_explore)
        parts["target_entry"].append(target_entry)
        parts["owner"].append(np.concatenate(owners) if owners else np.zeros(0, np.int64))
        parts["since"].append(np.concatenate(sinces) if sinces else np.zeros(0, np.int64))
        parts["counts"].append(np.concatenate(counts) if counts else np.zeros(0, np.int64))
        parts["kinds"].append(np.concatenate(kinds) if kinds else np.zeros(0, np.int64))
    if not parts["cell"]:
        empty = np.zeros(0, np.int64)
        return _Cases(
            empty, np.zeros(0), np.zeros((0, CUTOFF), np.float32), np.zeros(0, np.float32),
            empty, empty, empty, empty, empty,
        )  # fmt: skip
    return _Cases(**{k: np.concatenate(v) for k, v in parts.items()})


def _subset(batch: SessionBatch, rows: np.ndarray) -> SessionBatch:
    types = None
    if batch.types is not None:
        types = [batch.session_types(int(r)) for r in rows]
    return SessionBatch.from_sequences(
        [batch.session(int(r)) for r in rows], types=types, event_types=batch.event_types
    )


def _mixture_gains(
    data: _Cases, decay: float, power: float, beta: float, factor: np.ndarray
) -> np.ndarray:
    """Hit + reciprocal rank of every case under the mixture (cell switched on)."""
    n = data.cell.size
    raw = repeat_raw(decay, power, data.since, data.counts) * factor[data.kinds]
    best = np.zeros(n, dtype=np.float64)
    np.maximum.at(best, data.owner, raw)
    repeat = (raw / best[data.owner]).astype(np.float32)
    session_odds = session_scores(beta, repeat, None)  # in units of the best new item
    value = data.target_explore.copy()
    is_session = data.target_entry >= 0
    value[is_session] = session_odds[data.target_entry[is_session]]
    above_new = (data.top >= value[:, None]).sum(axis=1)
    above_session = np.bincount(data.owner, weights=session_odds >= value[data.owner], minlength=n)
    ranks = (above_new + above_session).astype(np.float64)
    ranks[~np.isfinite(value)] = np.inf
    return gain(ranks)


def learn_mixture(base: Recommender, valid: SessionData, min_cases: int = 100) -> Mixture:
    """The mixture that validation prefers over ``base`` (fitted without ``valid``)."""
    if valid.vocab != base.vocab_:
        valid = valid.with_vocab(base.vocab_)
    data = _collect(base, valid)
    if data.cell.size == 0:
        return Mixture.off()
    per_cell = np.bincount(data.cell, minlength=N_CELLS)
    base_total = np.bincount(data.cell, weights=data.base_gain, minlength=N_CELLS)
    best: tuple[float, Mixture] = (float(base_total.sum()), Mixture.off())
    factors = [np.ones(3)]
    if np.isin(data.kinds, (CART, PURCHASE)).any():
        factors = [np.array([1.0, c, p]) for c in CART_FACTORS for p in PURCHASE_FACTORS]
    for decay, power, factor in itertools.product(DECAYS, POWERS, factors):
        totals = np.stack(
            [
                np.bincount(
                    data.cell,
                    weights=_mixture_gains(data, decay, power, beta, factor),
                    minlength=N_CELLS,
                )
                for beta in BETAS
            ]
        )  # [betas, cells]
        choice = np.argmax(totals, axis=0)  # the first (smallest) beta among equals
        top = totals[choice, np.arange(N_CELLS)]
        on = (top > base_total + 1e-9) & (per_cell >= min_cases)
        beta = np.where(on, np.asarray(BETAS)[choice], np.nan)
        total = float(np.where(on, top, base_total).sum())
        if total > best[0] + 1e-9:
            best = (total, Mixture(decay, power, beta, factor))
    n = data.cell.size
    log.info(
        "repeat layer: validation HR@%d+MRR@%d %.4f (base %.4f) over %d cases; decay %s, "
        "power %s, type factors %s, beta per cell %s",
        CUTOFF,
        CUTOFF,
        best[0] / n,
        base_total.sum() / n,
        n,
        best[1].decay,
        best[1].power,
        best[1].type_factor.tolist(),
        np.round(best[1].beta, 3).tolist(),
    )
    return best[1]

"""The OTTO protocol (Kaggle "OTTO - Multi-Objective Recommender System", 2022): per test
session, truncated at a random point, predict the next click, the items carted later and the
items purchased later; Recall@20 per event type and their weighted sum.

- **Cases**: every test session of at least two events is cut at a point drawn uniformly
  (seeded) so that at least one event is kept and at least one follows. The kept events
  (with their event types) are the model's input.
- **Targets** (over the events after the cut): ``clicks``: the item of the first ``"view"``
  event; ``carts``: the distinct items of the ``"cart"`` events; ``orders``: the distinct items
  of the ``"purchase"`` events. A session has a target of a type only when such an event
  follows the cut. Event types are read by their canonical names (``view``, ``cart``,
  ``purchase``); data without types has click targets only.
- **Recall@k** (the competition's): for clicks, hits (the next click in the top ``k``) over
  the sessions with a click target; for carts and orders,
  ``Σ_s |top_k(s) ∩ targets(s)| / Σ_s min(k, |targets(s)|)`` over the sessions with such
  targets. A target item unknown to the model counts in the denominator (a miss).
- **Score**: ``0.10 · clicks + 0.30 · carts + 0.60 · orders`` (NaN when a type has no
  target session).

Nothing is excluded from the lists: the session's own items are fair candidates (a carted
item is the likeliest purchase).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from sessionrec._errors import ConfigError, DataError
from sessionrec.data.sessions import UNKNOWN, SessionData, gather_ranges
from sessionrec.evaluation.protocol import items_for
from sessionrec.models.base import Recommender, SessionBatch, check_k

TYPE_WEIGHTS: dict[str, float] = {"clicks": 0.10, "carts": 0.30, "orders": 0.60}
"""The competition's weights of the three recalls."""

OTTO_K = 20
"""The competition's list length."""


@dataclass(frozen=True)
class OttoCases:
    """The truncated test sessions and their targets (item indices of the test data's
    vocabulary). ``sessions``: index of each case's session; ``cut``: events kept;
    ``click``: the next click's item, -1 for none; ``carts``/``orders``: per case, the
    distinct items carted / purchased after the cut (possibly empty)."""

    sessions: np.ndarray
    cut: np.ndarray
    click: np.ndarray
    carts: list[np.ndarray]
    orders: list[np.ndarray]

    def __len__(self) -> int:
        return int(self.sessions.size)


@dataclass(frozen=True)
class OttoResult:
    """Recall@k per target type, the weighted score, and how many sessions each rests on."""

    recall: dict[str, float]
    sessions_with_target: dict[str, int]
    score: float
    n_sessions: int
    k: int

    def as_dict(self) -> dict[str, Any]:
        return {
            "protocol": "otto",
            "k": self.k,
            "n_sessions": self.n_sessions,
            **{f"recall@{self.k}_{kind}": value for kind, value in self.recall.items()},
            **{f"sessions_{kind}": n for kind, n in self.sessions_with_target.items()},
            "score": self.score,
        }


def canonical_type_names(data: SessionData) -> np.ndarray:
    """Each event's canonical type name (``"view"`` for data without types)."""
    if data.types is None:
        return np.full(data.n_events, "view", dtype=object)
    names = np.asarray(list(data.event_types) or ["view"], dtype=object)
    return names[data.types]


def otto_cases(test: SessionData, seed: int = 0, cuts: np.ndarray | None = None) -> OttoCases:
    """The cases of ``test``: sessions of two events or more, each cut at a seeded random
    point, or at ``cuts`` (events kept, one per session of ``test``; 0 leaves the session
    out) when given."""
    lengths = test.lengths
    if cuts is None:
        rng = np.random.default_rng(seed)
        eligible = np.flatnonzero(lengths >= 2)
        cut = rng.integers(1, lengths[eligible])  # in [1, L - 1]: one event kept, one after
    else:
        cuts = np.asarray(cuts, dtype=np.int64)
        if cuts.shape != lengths.shape:
            raise DataError(f"expected one cut per test session ({lengths.size})")
        eligible = np.flatnonzero(cuts > 0)
        cut = cuts[eligible]
        if ((cut < 1) | (cut >= lengths[eligible])).any():
            raise DataError("a cut must keep at least one event and leave at least one after")
    names = canonical_type_names(test)
    clicks = np.full(eligible.size, -1, dtype=np.int64)
    carts, orders = [], []
    for j, (s, c) in enumerate(zip(eligible.tolist(), cut.tolist(), strict=True)):
        lo, hi = int(test.offsets[s]) + c, int(test.offsets[s + 1])
        items, kinds = test.items[lo:hi].astype(np.int64), names[lo:hi]
        views = items[kinds == "view"]
        if views.size:
            clicks[j] = views[0]
        carts.append(np.unique(items[kinds == "cart"]))
        orders.append(np.unique(items[kinds == "purchase"]))
    return OttoCases(eligible.astype(np.int64), cut.astype(np.int64), clicks, carts, orders)


def otto_recall(recommended: Sequence[np.ndarray], cases: OttoCases, k: int = OTTO_K) -> OttoResult:
    """The competition's recalls of ``recommended`` (per case, item indices in the targets'
    numbering, best first; only the first ``k`` count)."""
    k = check_k(k)
    if len(recommended) != len(cases):
        raise DataError(f"expected one list per case ({len(cases)}), got {len(recommended)}")
    hits = {"clicks": 0, "carts": 0, "orders": 0}
    totals = {"clicks": 0, "carts": 0, "orders": 0}
    for j, items in enumerate(recommended):
        top = set(np.asarray(items, dtype=np.int64)[:k].tolist())
        if cases.click[j] >= 0:
            totals["clicks"] += 1
            hits["clicks"] += int(int(cases.click[j]) in top)
        for kind, targets in (("carts", cases.carts[j]), ("orders", cases.orders[j])):
            if targets.size:
                totals[kind] += min(k, int(targets.size))
                hits[kind] += len(top.intersection(targets.tolist()))
    recall = {kind: hits[kind] / totals[kind] if totals[kind] else float("nan") for kind in hits}
    score = float(sum(TYPE_WEIGHTS[kind] * recall[kind] for kind in TYPE_WEIGHTS))
    counts = {"clicks": totals["clicks"]}
    counts["carts"] = sum(1 for t in cases.carts if t.size)
    counts["orders"] = sum(1 for t in cases.orders if t.size)
    return OttoResult(recall, counts, score, len(cases), k)


def case_batch(model: Recommender, test: SessionData, cases: OttoCases) -> SessionBatch:
    """The kept events of every case, with their event types, in the model's item indices
    (items it does not know dropped)."""
    items = items_for(model, test)
    starts = test.offsets[:-1][cases.sessions]
    click = gather_ranges(starts, cases.cut)
    kept = items[click]
    known = kept != UNKNOWN
    owner = np.repeat(np.arange(len(cases)), cases.cut)[known]
    offsets = np.zeros(len(cases) + 1, dtype=np.int64)
    np.cumsum(np.bincount(owner, minlength=len(cases)), out=offsets[1:])
    return SessionBatch(
        offsets=offsets,
        items=kept[known].astype(np.int32),
        times=None if test.times is None else test.times[click][known],
        types=None if test.types is None else test.types[click][known],
        event_types=test.event_types,
    )


def evaluate_otto(
    model: Recommender,
    test: SessionData,
    k: int = OTTO_K,
    seed: int = 0,
    batch_size: int = 1024,
) -> OttoResult:
    """The OTTO protocol's recalls of ``model``'s top-``k`` lists on ``test``."""
    k = check_k(k)
    cases = otto_cases(test, seed)
    if len(cases) == 0:
        raise ConfigError("the OTTO protocol needs test sessions of at least two events")
    batch = case_batch(model, test, cases)
    # The lists in the test data's numbering, so that unknown targets stay misses.
    to_test = np.arange(model.n_items, dtype=np.int64)
    if test.vocab != model.vocab_:
        model_index = model.vocab_.encode(test.vocab.ids).astype(np.int64)
        hit = model_index != UNKNOWN
        to_test = np.full(model.n_items, -1, dtype=np.int64)  # an item test never saw
        to_test[model_index[hit]] = np.flatnonzero(hit)
    lists: list[np.ndarray] = []
    for lo in range(0, len(cases), batch_size):
        hi = min(lo + batch_size, len(cases))
        lists.extend(to_test[idx] for idx, _ in model.top_k(_slice(batch, lo, hi), k))
    return otto_recall(lists, cases, k)


def _slice(batch: SessionBatch, lo: int, hi: int) -> SessionBatch:
    """Sessions ``lo:hi`` of ``batch`` as a batch of their own."""
    a, b = int(batch.offsets[lo]), int(batch.offsets[hi])
    return SessionBatch(
        offsets=batch.offsets[lo : hi + 1] - a,
        items=batch.items[a:b],
        times=None if batch.times is None else batch.times[a:b],
        types=None if batch.types is None else batch.types[a:b],
        event_types=batch.event_types,
    )


def typed_folder_parts(folder: str | Path) -> tuple[SessionData, SessionData] | None:
    """(training, test) sessions with their event types when ``folder`` is a prepared
    dataset folder (``sessionrec prepare``, Parquet with event types); ``None`` for a
    benchmark folder of sessions-txt files, which has no types."""
    from sessionrec.data.prepare import read_prepared

    path = Path(folder)
    if not (path / "report.json").is_file():
        return None
    prepared = read_prepared(path)
    return prepared.train_full, prepared.test

"""A pilot replayed offline: test sessions served by A/B variants under a simple behaviour
model, written as the per-session export (:mod:`sessionrec.abtest.export`).

Each test session is assigned to a variant at random (seeded, by the traffic weights). Before
every click after the first, the session's variant shows a list of ``k`` recommendations for
the clicks so far (one impression). The visitor

- *clicks* a recommendation when it is the item they visit next;
- *carts* / *buys* through the recommendations when a later cart / purchase event of theirs
  is on an item some earlier list of the session showed.

Revenue is the number of such purchases times ``prices`` (an item -> price mapping; 1.0 per
purchase without one). The model's lists never change the visitor's path: the replay
measures how often a variant's recommendations would have been where the visitor went, which
is what a real A/B test compares, without the feedback of a live shop.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from sessionrec._errors import ConfigError, DataError
from sessionrec.abtest.export import SessionLog
from sessionrec.data.sessions import SessionData
from sessionrec.evaluation.protocol import evaluate, items_for, make_cases
from sessionrec.models.base import Recommender

CART_TYPES = frozenset({"cart", "addtocart", "add_to_cart"})
PURCHASE_TYPES = frozenset({"purchase", "buy", "transaction", "order"})


def assign_variants(
    n_sessions: int, weights: Mapping[str, float], rng: np.random.Generator
) -> np.ndarray:
    """A variant name per session, drawn with probabilities proportional to ``weights``."""
    names = list(weights)
    share = np.array([weights[name] for name in names], dtype=np.float64)
    if len(names) < 2 or not np.all(share > 0) or not np.all(np.isfinite(share)):
        raise ConfigError("a pilot needs at least two variants with positive weights")
    picks = rng.choice(len(names), size=n_sessions, p=share / share.sum())
    return np.array(names, dtype=object)[picks]


def replay(
    test: SessionData,
    model: Recommender,
    k: int = 10,
    prices: Mapping[Any, float] | None = None,
) -> dict[str, np.ndarray]:
    """Per-session ``impressions``, ``clicks``, ``carts``, ``purchases`` and ``revenue`` of
    every test session served by ``model`` (see the module docstring)."""
    if k < 1:
        raise ConfigError(f"k must be a positive integer, got {k}")
    n = test.n_sessions
    out = {name: np.zeros(n, dtype=np.int64) for name in ("impressions", "clicks", "carts")}
    out["purchases"] = np.zeros(n, dtype=np.int64)
    out["revenue"] = np.zeros(n, dtype=np.float64)
    cases = make_cases(test, "next")
    if len(cases) == 0:
        return out
    lists = evaluate(model, test, cutoffs=(k,)).top_items[:, :k]
    mapped = items_for(model, test)
    targets = mapped[cases.starts + cases.lengths]
    hits = (lists == targets[:, None]).any(axis=1) & (targets >= 0)
    np.add.at(out["impressions"], cases.sessions, 1)
    np.add.at(out["clicks"], cases.sessions, hits.astype(np.int64))
    if test.types is None:
        return out
    kind = np.array([_kind(name) for name in test.event_types], dtype=object)
    conversion = kind[test.types] if test.n_events else np.zeros(0, dtype=object)
    external = test.vocab.ids
    # first list (prefix length) showing each item, per session; cases come session by session
    first_shown: dict[int, int] = {}
    current = -1
    for c in range(len(cases)):
        s = int(cases.sessions[c])
        if s != current:
            if current >= 0:
                _attribute(test, current, first_shown, conversion, mapped, external, prices, out)
            first_shown, current = {}, s
        length = int(cases.lengths[c])
        for item in lists[c]:
            if item >= 0:
                first_shown.setdefault(int(item), length)
    _attribute(test, current, first_shown, conversion, mapped, external, prices, out)
    return out


def _kind(event_type: str) -> str:
    name = event_type.strip().lower()
    return "cart" if name in CART_TYPES else "purchase" if name in PURCHASE_TYPES else "view"


def _attribute(
    test: SessionData,
    s: int,
    first_shown: dict[int, int],
    conversion: np.ndarray,
    mapped: np.ndarray,
    external: Any,
    prices: Mapping[Any, float] | None,
    out: dict[str, np.ndarray],
) -> None:
    """Count session ``s``'s carts and purchases of items shown before them."""
    lo, hi = int(test.offsets[s]), int(test.offsets[s + 1])
    for j in range(lo + 1, hi):
        what = conversion[j]
        if what == "view":
            continue
        shown = first_shown.get(int(mapped[j]))
        if shown is None or shown > j - lo:  # the list after the first L clicks precedes j
            continue
        if what == "cart":
            out["carts"][s] += 1
        else:
            out["purchases"][s] += 1
            item = external[int(test.items[j])]
            out["revenue"][s] += 1.0 if prices is None else float(prices.get(item, 0.0))


def simulate_pilot(
    test: SessionData,
    models: Mapping[str, Recommender],
    *,
    weights: Mapping[str, float] | None = None,
    k: int = 10,
    seed: int = 0,
    prices: Mapping[Any, float] | None = None,
) -> SessionLog:
    """Assign the test sessions to the variants ``models`` and replay each variant's share;
    the result is the export :func:`~sessionrec.abtest.analysis.analyze` reads."""
    if len(models) < 2:
        raise ConfigError("a pilot needs at least two variants")
    weights = dict(weights) if weights is not None else {name: 1.0 for name in models}
    if set(weights) != set(models):
        raise ConfigError("the weights must name exactly the variants")
    if test.n_sessions == 0:
        raise DataError("the test set holds no sessions")
    rng = np.random.default_rng(seed)
    variants = assign_variants(test.n_sessions, weights, rng)
    counts = {name: np.zeros(test.n_sessions, dtype=np.int64) for name in _COUNTS}
    revenue = np.zeros(test.n_sessions, dtype=np.float64)
    for name, model in models.items():
        members = np.flatnonzero(variants == name)
        if members.size == 0:
            continue
        part = replay(test.subset(members), model, k, prices)
        for field in _COUNTS:
            counts[field][members] = part[field]
        revenue[members] = part["revenue"]
    if test.times is not None:
        first_seen = test.start_times()
    else:  # no times: one session a second, in order
        first_seen = np.arange(test.n_sessions, dtype=np.float64)
    ids = test.session_ids if test.session_ids is not None else np.arange(test.n_sessions)
    return SessionLog(
        session_ids=np.array([str(i) for i in ids], dtype=object),
        variants=variants,
        impressions=counts["impressions"],
        clicks=counts["clicks"],
        carts=counts["carts"],
        purchases=counts["purchases"],
        revenue=revenue,
        first_seen=np.nan_to_num(first_seen, nan=0.0),
    )


_COUNTS = ("impressions", "clicks", "carts", "purchases")


def plant_uplift(
    log: SessionLog, variant: str, uplift: float, rng: np.random.Generator
) -> SessionLog:
    """``log`` with ``variant``'s conversion raised by the relative ``uplift`` in
    expectation: each of its non-converting sessions converts (one purchase, the variant's
    mean revenue per converting session) with probability ``uplift p / (1 - p)``, ``p`` its
    observed conversion rate. A known answer for checking the statistics."""
    mine = log.variants == variant
    if not mine.any():
        raise ConfigError(f"no session of variant {variant!r} to plant an uplift in")
    converted = log.purchases > 0
    p = float(converted[mine].mean())
    if not 0 < p < 1 or not uplift > -1 or p * (1 + uplift) >= 1:
        raise ConfigError(f"cannot plant an uplift of {uplift} on a conversion rate of {p}")
    chance = uplift * p / (1 - p)
    if chance < 0:
        raise ConfigError("only a positive uplift can be planted")
    flip = mine & ~converted & (rng.random(len(log)) < chance)
    revenue_each = float(log.revenue[mine & converted].mean())
    purchases = log.purchases.copy()
    revenue = log.revenue.copy()
    purchases[flip] = 1
    revenue[flip] += revenue_each
    return SessionLog(
        session_ids=log.session_ids,
        variants=log.variants,
        impressions=log.impressions,
        clicks=log.clicks,
        carts=log.carts,
        purchases=purchases,
        revenue=revenue,
        first_seen=log.first_seen,
    )

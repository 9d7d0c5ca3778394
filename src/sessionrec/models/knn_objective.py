"""Event types in the session-kNN models: what a model is fitted to predict (``objective``)
and how much a carted or purchased item of the current session counts (type weights).

Event types are read by their canonical names (``"view"``, ``"cart"``, ``"purchase"``, as the
data layer writes them); any other name counts as a view. Internally they become the codes
:data:`VIEW` < :data:`CART` < :data:`PURCHASE`, ordered by intent, so that the strongest
event of an item in a session is the largest code.

Objectives:

- ``click`` (default): the next item, every event counting the same (the models' behaviour
  before event types existed: scores are identical).
- ``cart`` / ``purchase``: items this visitor is likely to cart / buy later in the session. A
  neighbour session contributes each item in proportion to its strongest event there
  (:data:`OBJECTIVE_SHARES`), and the current session's carted, not yet purchased items
  rank first, most recently carted first (the visitor's cart is the best purchase
  candidate; a purchased item is usually not bought again).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from sessionrec._errors import DataError
from sessionrec.models.params import check_choice, check_float

VIEW, CART, PURCHASE = 0, 1, 2
CANONICAL_TYPES: tuple[str, ...] = ("view", "cart", "purchase")
"""The canonical event type names, by code."""

OBJECTIVES: dict[str, int] = {"click": 0, "cart": 1, "purchase": 2}
"""Objective name -> kernel code."""

OBJECTIVE_SHARES: dict[str, tuple[float, float, float]] = {
    "click": (1.0, 1.0, 1.0),
    "cart": (0.1, 1.0, 0.5),
    "purchase": (0.1, 0.5, 1.0),
}
"""Per objective, what a neighbour's item counts by its strongest event there (view, cart,
purchase): the target event fully, the neighbouring one (a purchase follows a cart) half,
a view a tenth, so that a neighbour without the target event still ranks its items, below
those with it. The session-kNN models take the two fractions as hyperparameters
(``share_view``, ``share_other``, :func:`objective_shares`) that tuning searches; these are
their defaults."""


DEFAULT_SHARE_VIEW, DEFAULT_SHARE_OTHER = 0.1, 0.5
"""The defaults of the ``share_view`` / ``share_other`` hyperparameters: the values of
:data:`OBJECTIVE_SHARES`."""


def objective_shares(
    objective: str,
    share_view: float = DEFAULT_SHARE_VIEW,
    share_other: float = DEFAULT_SHARE_OTHER,
) -> tuple[float, float, float]:
    """What a neighbour's item counts by its strongest event there (view, cart, purchase)
    for ``objective``: the target event 1, the neighbouring one ``share_other``, a view
    ``share_view`` (the defaults give :data:`OBJECTIVE_SHARES`); ``click``: 1 for all."""
    if objective == "click":
        return OBJECTIVE_SHARES["click"]
    view, other = float(share_view), float(share_other)
    return (view, 1.0, other) if objective == "cart" else (view, other, 1.0)


def check_type_params(
    objective: object,
    type_weight_cart: object,
    type_weight_purchase: object,
    share_view: object = DEFAULT_SHARE_VIEW,
    share_other: object = DEFAULT_SHARE_OTHER,
) -> None:
    """The objective is one of :data:`OBJECTIVES`; the type weights are numbers > 0; the
    shares are numbers >= 0."""
    check_choice("objective", objective, OBJECTIVES)
    check_float("type_weight_cart", type_weight_cart, minimum=0.0, strict_min=True)
    check_float("type_weight_purchase", type_weight_purchase, minimum=0.0, strict_min=True)
    check_float("share_view", share_view, minimum=0.0)
    check_float("share_other", share_other, minimum=0.0)


def canonical_codes(types: np.ndarray | None, event_types: Sequence[str]) -> np.ndarray | None:
    """``types`` (codes into ``event_types``) as :data:`VIEW`/:data:`CART`/:data:`PURCHASE`
    codes (int8); ``None`` when there are no types."""
    if types is None:
        return None
    table = np.array(
        [CANONICAL_TYPES.index(name) if name in CANONICAL_TYPES else VIEW for name in event_types]
        or [VIEW],
        dtype=np.int8,
    )
    codes = np.asarray(types, dtype=np.int64)
    if codes.size and (codes.min() < 0 or codes.max() >= table.size):
        raise DataError("event type codes must index event_types")
    return table[codes]


def check_objective_data(objective: str, codes: np.ndarray | None) -> None:
    """Refuse a ``cart``/``purchase`` objective on data without such events (fit time)."""
    if objective == "click":
        return
    wanted = {"cart": (CART, PURCHASE), "purchase": (PURCHASE, CART)}[objective]
    if codes is None or not np.isin(codes, wanted).any():
        raise DataError(
            f"objective={objective!r} needs training data with event types 'cart' or "
            "'purchase', but every event of this data is a view (or it has no event types): "
            "use objective='click'"
        )

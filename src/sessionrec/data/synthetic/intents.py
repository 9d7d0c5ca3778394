"""Planted session intents: browsing, a view -> cart -> purchase funnel, or both in turn.

Every synthetic session has an intent, drawn once and returned with its clicks, so that a
test can check a model against the answer it should find:

* ``browsing``: views only, walking the catalog as :func:`generate_clicks` describes.
* ``purchase``: a funnel in ONE category: the visitor views items of the category, then
  adds one or two of the viewed items to the cart, then buys one or both of the carted
  items (each purchase is of an item carted earlier in the session, each carted item was
  viewed before it was carted).
* ``switching``: a browsing part and a funnel part in another category, in either order
  (browse, then buy; or buy, then browse on).

A funnel needs three clicks (view, cart, purchase) and a switching session four, so a
shorter session drawn with such an intent falls back to the longest one it can hold
(``switching`` -> ``purchase`` -> ``browsing``): the shares are shares of the sessions
long enough, and about half the sessions have one or two clicks.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

SESSION_INTENTS: tuple[str, ...] = ("browsing", "purchase", "switching")
"""The planted session intents, as coded in :class:`IntentPlan` (0, 1, 2)."""

BROWSING, PURCHASE, SWITCHING = 0, 1, 2
TWO_CARTS_PROB = 0.35  # a funnel of 5+ clicks carts two viewed items with this probability
BOTH_BOUGHT_PROB = 0.5  # ... and, with 6+ clicks, buys both of them with this one
BROWSE_FIRST_PROB = 0.5  # a switching session browses first, then buys (else the reverse)


@dataclass(frozen=True)
class IntentPlan:
    """Each session's intent and the place of its funnel, per session (``n_sessions``)."""

    intent: np.ndarray  # int8 code into SESSION_INTENTS
    funnel_start: np.ndarray  # click offset of the funnel in its session
    funnel_length: np.ndarray  # clicks of the funnel (0: no funnel)
    views: np.ndarray  # funnel clicks that are views (then carts, then purchases)
    carts: np.ndarray  # 1 or 2 in a funnel
    purchases: np.ndarray  # 1..carts in a funnel


def plan_intents(
    rng: np.random.Generator,
    lengths: np.ndarray,
    purchase_share: float,
    switching_share: float,
) -> IntentPlan:
    """Draw every session's intent and lay out its funnel (vectorised over sessions)."""
    n = lengths.size
    u = rng.random((6, n))
    intent = np.where(
        u[0] < purchase_share,
        PURCHASE,
        np.where(u[0] < purchase_share + switching_share, SWITCHING, BROWSING),
    ).astype(np.int8)
    intent[(intent == SWITCHING) & (lengths < 4)] = PURCHASE
    intent[(intent == PURCHASE) & (lengths < 3)] = BROWSING
    switching = intent == SWITCHING
    # A switching session browses b >= 1 clicks and keeps >= 3 for the funnel.
    browse = np.where(switching, 1 + (u[1] * np.maximum(lengths - 3, 0)).astype(np.int64), 0)
    browse_first = switching & (u[2] < BROWSE_FIRST_PROB)
    funnel_length = np.where(intent == BROWSING, 0, lengths - browse)
    funnel_start = np.where(browse_first, browse, 0)
    carts = np.where((funnel_length >= 5) & (u[3] < TWO_CARTS_PROB), 2, 1)
    purchases = np.where((carts == 2) & (funnel_length >= 6) & (u[4] < BOTH_BOUGHT_PROB), 2, 1)
    views = funnel_length - carts - purchases  # >= carts: every cart has its own view
    return IntentPlan(
        intent=intent,
        funnel_start=funnel_start.astype(np.int64),
        funnel_length=funnel_length.astype(np.int64),
        views=np.maximum(views, 0).astype(np.int64),
        carts=carts.astype(np.int64),
        purchases=purchases.astype(np.int64),
    )


def funnel_actions(
    plan: IntentPlan,
    action: np.ndarray,
    first_click: np.ndarray,
    lengths: np.ndarray,
    session_of: np.ndarray,
) -> None:
    """Make funnels stay in one category, in place: a funnel opens the session (action 0)
    or jumps to a new category (1), and every later funnel click shows another item of that
    category (2); a browsing part after a funnel opens with a jump to another category."""
    start = first_click + plan.funnel_start
    has = plan.funnel_length > 0
    rel = np.arange(action.size, dtype=np.int64) - start[session_of]
    inside = (rel >= 0) & (rel < plan.funnel_length[session_of])
    action[inside & (rel > 0)] = 2
    opens_later = has & (plan.funnel_start > 0)
    action[start[opens_later]] = 1
    after = start + plan.funnel_length
    browse_after = has & (after < first_click + lengths)
    action[after[browse_after]] = 1


def funnel_events(
    rng: np.random.Generator,
    plan: IntentPlan,
    item_row: np.ndarray,
    first_click: np.ndarray,
    n_events: int,
) -> np.ndarray:
    """Event codes (0 view, 1 cart, 2 purchase) per click; sets the funnels' carted and
    bought items in ``item_row`` (in place) to items viewed (carted) earlier."""
    event = np.zeros(n_events, dtype=np.int8)
    sessions = np.flatnonzero(plan.funnel_length > 0)
    if sessions.size == 0:
        return event
    base = first_click[sessions] + plan.funnel_start[sessions]
    views, carts = plan.views[sessions], plan.carts[sessions]
    purchases = plan.purchases[sessions]
    u = rng.random((3, sessions.size))
    # Carts: distinct viewed positions (the second one after the first, cyclically).
    pick0 = (u[0] * views).astype(np.int64)
    pick1 = (pick0 + 1 + (u[1] * np.maximum(views - 1, 1)).astype(np.int64)) % views
    cart_click = [base + views, base + views + 1]
    cart_item = [item_row[base + pick0], item_row[base + pick1]]
    two = carts == 2
    item_row[cart_click[0]] = cart_item[0]
    event[cart_click[0]] = 1
    item_row[cart_click[1][two]] = cart_item[1][two]
    event[cart_click[1][two]] = 1
    # Purchases: one carted item (either, when two were carted) or both.
    first_bought = np.where(two & (u[2] < 0.5), 1, 0)
    bought_item = np.where(first_bought == 1, cart_item[1], cart_item[0])
    purchase_click = base + views + carts
    item_row[purchase_click] = bought_item
    event[purchase_click] = 2
    both = purchases == 2
    other = np.where(first_bought == 1, cart_item[0], cart_item[1])
    item_row[purchase_click[both] + 1] = other[both]
    event[purchase_click[both] + 1] = 2
    return event

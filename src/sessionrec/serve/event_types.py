"""The event types the service accepts: three canonical names and the aliases shops send.

A click log and a live shop name the same actions differently ("addtocart", "transaction",
"click"); the service stores and counts one canonical name per action, so that conversions
(:mod:`~sessionrec.serve.kpis`) are recognised whatever the shop's tracker calls them:

=============  =====================================================================
``view``       ``view``, ``click``, ``pageview``, ``detail`` (the default)
``cart``       ``cart``, ``carts``, ``addtocart``, ``add_to_cart``, ``add-to-cart``,
               ``basket``
``purchase``   ``purchase``, ``purchases``, ``buy``, ``order``, ``orders``,
               ``transaction``, ``checkout``
=============  =====================================================================

Names are compared without regard to case. Any other name is refused (a 422 naming the
field and the allowed values): before, the service stored any short name and counted none,
so a typo ("purchse") silently lost a conversion.
"""

from __future__ import annotations

EVENT_TYPES: tuple[str, ...] = ("view", "cart", "purchase")
"""The canonical event types, as stored and counted."""

CONVERSION_TYPES: frozenset[str] = frozenset({"cart", "purchase"})
"""Event types that are conversions (attributed to a recommendation when one showed the item)."""

EVENT_ALIASES: dict[str, str] = {
    **dict.fromkeys(("view", "click", "pageview", "detail"), "view"),
    **dict.fromkeys(("cart", "carts", "addtocart", "add_to_cart", "add-to-cart", "basket"), "cart"),
    **dict.fromkeys(
        ("purchase", "purchases", "buy", "order", "orders", "transaction", "checkout"),
        "purchase",
    ),
}
"""Every accepted name (lower case) -> its canonical event type."""


def canonical_event_type(name: str) -> str | None:
    """The canonical type of ``name`` (any case), or None when it is not accepted."""
    return EVENT_ALIASES.get(name) or EVENT_ALIASES.get(name.lower())


def allowed_event_types() -> str:
    """The accepted names for an error message: canonical first, then the aliases."""
    aliases = [name for name in EVENT_ALIASES if name not in EVENT_TYPES]
    return f"{', '.join(EVENT_TYPES)} (aliases: {', '.join(aliases)})"

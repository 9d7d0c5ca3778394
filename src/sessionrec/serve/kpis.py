"""Pilot KPIs: conversions attributed to recommendations, and the numbers per variant.

Attribution (last touch). A ``cart`` or ``purchase`` event of a session counts as a
conversion of the most recent recommendation answer *to that session* that showed the item,
if that answer was given at most ``--attribution-window`` seconds (default 3600) before the
event; the conversion then belongs to that answer's variant. Times are the service's clock
(the answer's and the event's arrival), never the client's ``timestamp``. Anything else
(the item was never shown to the session, or only longer ago) is an *unattributed*
conversion of the session's variant (its A/B hash, or the forced ``variant``): counted, never
dropped. Revenue is ``price x quantity`` of purchases (0 without a price); carts earn none.

Consent. A cart or purchase sent with ``"consent": false`` is used for its answer, not
stored, and counted only in the per-variant counters (numbers, no id): not in the session's
summary, so it is not part of the session-based rates (add-to-cart and conversion rate) nor
of the per-session export.

The store counts (:meth:`~sessionrec.serve.store.SessionStore.convert`, one script call
with Redis: the same round trip that stores the event), so the numbers are shared by every
replica and survive restarts with Redis. This process also counts what it saw in Prometheus
counters (``sessionrec_conversions_total``, ``sessionrec_revenue_total``); each scrape of
``/metrics`` copies the store's per-variant numbers into the ``sessionrec_kpi_*`` gauges
(:func:`refresh_gauges`). While the store is unreachable a conversion is counted only in
this process, with ``attribution="unknown"``.
"""

from __future__ import annotations

from typing import Any

from sessionrec.serve.deps import ServiceState
from sessionrec.serve.metrics import ServiceMetrics
from sessionrec.serve.store import Conversion, Event, StoreUnavailable, VariantKpis


async def record_conversion(
    state: ServiceState, session_id: str, variant: str, click: Event, event: Any
) -> list[Event]:
    """Store the cart or purchase ``click`` (``event``: its ``EventIn``) and count it; the
    session's events for the answer. Raises StoreUnavailable (counted as ``unknown``)."""
    revenue = event.revenue()
    try:
        events, conversion = await state.require_store().convert(
            session_id, click, variant, revenue, keep=event.consent
        )
    except StoreUnavailable:
        count(state.metrics, Conversion(click.event_type, variant, False, revenue), "unknown")
        raise
    count(state.metrics, conversion)
    return events


def count(metrics: ServiceMetrics, conversion: Conversion, attribution: str | None = None) -> None:
    """Count ``conversion`` in this process's Prometheus counters."""
    if attribution is None:
        attribution = "attributed" if conversion.attributed else "unattributed"
    metrics.conversions.labels(conversion.variant, conversion.event_type, attribution).inc()
    if conversion.revenue > 0:
        metrics.revenue.labels(conversion.variant, attribution).inc(conversion.revenue)


async def variant_kpis(state: ServiceState) -> dict[str, VariantKpis]:
    """The store's numbers per variant, every served variant included (zeros)."""
    kpis = await state.require_store().kpis()
    for name in state.require_registry().variants:
        kpis.setdefault(name, VariantKpis())
    return dict(sorted(kpis.items()))


async def refresh_gauges(state: ServiceState) -> None:
    """Copy the store's numbers into the ``sessionrec_kpi_*`` gauges (before a scrape); the
    gauges keep their last values while the store is unreachable."""
    try:
        kpis = await variant_kpis(state)
    except StoreUnavailable:
        return
    for name, numbers in kpis.items():
        state.metrics.set_kpis(name, numbers)


def kpis_payload(kpis: dict[str, VariantKpis], window: float) -> dict[str, Any]:
    """``GET /v1/admin/kpis``: the numbers and rates per variant, and the unattributed total."""
    return {
        "attribution_window": window,
        "variants": {name: numbers.to_dict() for name, numbers in kpis.items()},
        "unattributed": {
            "carts": sum(k.unattributed_carts for k in kpis.values()),
            "purchases": sum(k.unattributed_purchases for k in kpis.values()),
            "revenue": sum(k.unattributed_revenue for k in kpis.values()),
        },
    }

"""One recommendation answer: pick the A/B variant, rank with the business rules, explain,
count, and record the answer for feedback.

The handlers are ``async`` and run the model inline on the event loop: scoring one session
takes well under a millisecond, and a thread hop per request would cost about as much as
the work and contend for the GIL. One worker process per core (``--workers``) gives
parallelism. Recording the answer for feedback is queued and written to Redis in batches
(see :class:`~sessionrec.serve.store.RedisStore`), so it adds no round trip to the answer.
"""

from __future__ import annotations

import logging
import os
from typing import Any

from fastapi import Request
from fastapi.responses import Response

from sessionrec._errors import ConfigError, DataError, ModelError, SessionrecError
from sessionrec.models.base import Recommender
from sessionrec.serve.deps import ServiceState
from sessionrec.serve.errors import ApiError, json_response
from sessionrec.serve.registry import LoadedModel, Variant
from sessionrec.serve.rules import Ranked
from sessionrec.serve.schemas import Options
from sessionrec.serve.store import Event, StoreUnavailable

log = logging.getLogger("sessionrec.serve")


def event_times(events: list[Event]) -> list[float] | None:
    """Click times when every event has one (the model then sees times), else None."""
    times = [e.timestamp for e in events]
    return None if None in times else times  # type: ignore[return-value]


def pick_variant(
    state: ServiceState, request: Request, session_id: str | None, forced: str | None
) -> Variant:
    """The forced A/B variant (422 if unknown), else the session's by stable hash."""
    registry = state.require_registry()
    if forced is not None:
        try:
            variant = registry.get(forced)
        except ConfigError as exc:
            raise ApiError(422, "unknown_variant", str(exc)) from None
    else:
        variant = registry.choose(session_id)
    request.state.variant = variant.name
    return variant


def explain(
    loaded: LoadedModel, session: list[str], ranked: Ranked, model: Recommender | None = None
) -> list[Any]:
    """A reason per returned item (after the business rules: only what is shown).

    Model items are explained by the model, in one call; fallback items say where they
    came from. A model that cannot explain (a broken artifact) leaves ``reason`` null
    rather than failing the answer.
    """
    shown = [i for i, source in enumerate(ranked.sources) if source == "model"]
    reasons: list[Any] = [
        {"kind": source, "session_items": [], "neighbour_sessions": []} for source in ranked.sources
    ]
    if not shown:
        return reasons
    try:
        explained = (model or loaded.model).explain(session, [ranked.items[i] for i in shown])
    except SessionrecError as exc:
        log.warning("model %s could not explain its answer: %s", loaded.name, exc)
        for i in shown:
            reasons[i] = None
        return reasons
    for i, reason in zip(shown, explained, strict=True):
        reasons[i] = {
            "kind": reason.kind,
            "session_items": [
                {"item_id": str(item), "weight": weight} for item, weight in reason.session_items
            ],
            "neighbour_sessions": [
                {"session": neighbour, "weight": weight}
                for neighbour, weight in reason.neighbour_sessions
            ],
        }
    return reasons


def excludes_seen(opts: Options, model: Recommender) -> bool:
    """Whether the answer leaves out the session's own items: as the request (or the
    service's ``--exclude-seen`` / ``--no-exclude-seen``) says, otherwise yes unless the
    model recommends repeats (a switched-on repeat layer: excluding the session's items
    would drop what it learned to recommend)."""
    if opts.exclude_seen is not None:
        return opts.exclude_seen
    return not model.recommends_repeats()


async def answer(
    state: ServiceState,
    variant: Variant,
    loaded: LoadedModel,
    items: list[str],
    times: list[float] | None,
    opts: Options,
    degraded: bool,
    extra: dict[str, Any] | None = None,
    *,
    session_id: str | None = None,
    record: bool = True,
    types: list[str] | None = None,
) -> Response:
    """The recommendation answer for the session ``items`` (``extra`` joins the payload);
    ``types``: their event types (canonical names), which models fitted with types read.

    The answer is recorded for feedback, linked to ``session_id`` (erased with it), unless
    ``record`` is False (a click without consent leaves no trace)."""
    model = loaded.model
    if opts.objective is not None:
        try:
            model = model.for_objective(opts.objective)
        except (ModelError, DataError) as exc:
            raise ApiError(422, "objective_unsupported", str(exc)) from None
    try:
        ranked = loaded.rules.recommend(
            model,
            items,
            opts.k,
            times=times,
            types=types,
            exclude_seen=excludes_seen(opts, model),
            exclude_items=opts.exclude_items,
            filters=opts.filters,
            fallback=opts.fallback,
            trending=state.trending,
            new_item_share=state.config.new_item_share,
        )
    except ConfigError as exc:
        raise ApiError(422, "invalid_request", str(exc)) from None
    rec_id = os.urandom(16).hex()
    if opts.details:
        out_items = [
            {"item_id": i, "score": s, "source": src, **loaded.rules.details(idx, i)}
            for i, s, src, idx in zip(
                ranked.items, ranked.scores, ranked.sources, ranked.indices, strict=True
            )
        ]
    else:
        out_items = [
            {"item_id": i, "score": s, "source": src}
            for i, s, src in zip(ranked.items, ranked.scores, ranked.sources, strict=True)
        ]
    payload: dict[str, Any] = {
        "recommendation_id": rec_id,
        "model": loaded.name,
        "model_version": loaded.version,
        "variant": variant.name,
        "fallback": ranked.fallback,
        "degraded": degraded,
        "items": out_items,
    }
    if opts.explain:
        for item, reason in zip(out_items, explain(loaded, items, ranked, model), strict=True):
            item["reason"] = reason
    if extra:
        payload.update(extra)
    metrics = state.metrics
    metrics.recommendations.labels(variant.name).inc()
    if ranked.fallback:
        metrics.fallbacks.labels(variant.name).inc()
    if degraded:
        metrics.degraded.labels(variant.name).inc()
    elif record:  # the memory store records inline, Redis queues a batched write
        try:
            await state.require_store().record_recommendation(
                rec_id, variant.name, ranked.items, session_id
            )
        except StoreUnavailable:
            metrics.errors.labels("record_recommendation", "store").inc()
    return json_response(payload)


async def answer_session(
    state: ServiceState,
    variant: Variant,
    loaded: LoadedModel,
    session_id: str,
    events: list[Event],
    opts: Options,
    degraded: bool,
    record: bool = True,
) -> Response:
    """:func:`answer` for a live session from its stored events."""
    return await answer(
        state,
        variant,
        loaded,
        [e.item_id for e in events],
        event_times(events),
        opts,
        degraded,
        {"session_id": session_id, "event_count": len(events)},
        session_id=session_id,
        record=record,
        types=[e.event_type for e in events],
    )

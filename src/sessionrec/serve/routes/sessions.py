"""The recommendation endpoints: clicks of a live session, and stateless requests.

- ``POST /v1/sessions/{session_id}/events`` records one click and, unless
  ``recommend=false``, answers with recommendations in the same round trip.
- ``GET /v1/sessions/{session_id}/recommendations`` recommendations for a live session.
- ``POST /v1/recommendations`` stateless: the caller sends the session's items.
- ``DELETE /v1/sessions/{session_id}`` erases the session (right to erasure): its events and
  the recommendation records answered to it, in the store and in this worker's outage
  buffer. 204, also for an unknown session (idempotent); 503 while the store is down.

A click sent with ``"consent": false`` is used for its answer only: it is not stored, the
answer is not recorded for feedback, so nothing of it can be learned from later.

A ``cart`` or ``purchase`` event is also counted as a conversion, attributed to the answer
that showed the item (:mod:`sessionrec.serve.kpis`).

These are the hot endpoints: they parse their input themselves and reach the shared state
by a direct call of :func:`~sessionrec.serve.deps.service` (see
:mod:`sessionrec.serve.validation` for why).
"""

from __future__ import annotations

import math

from fastapi import APIRouter, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response

from sessionrec.serve import kpis
from sessionrec.serve.deps import ServiceState, service
from sessionrec.serve.errors import ApiError, json_response
from sessionrec.serve.event_types import CONVERSION_TYPES
from sessionrec.serve.recommend import answer, answer_session, pick_variant
from sessionrec.serve.schemas import (
    ERRORS,
    ErrorOut,
    EventAck,
    RecommendationOut,
    RequestModels,
    SessionEnded,
)
from sessionrec.serve.store import Event, StoreUnavailable
from sessionrec.serve.validation import (
    check_session_id,
    parse_body,
    parse_query,
    query_parameters,
    request_body,
    session_path_parameter,
)


# Record one click; answer with recommendations (or an acknowledgement).
# (No docstring: it would become the operation's OpenAPI description.)
async def post_event(request: Request) -> Response:
    state = service(request)
    session_id = check_session_id(request.path_params["session_id"], state.config.max_id_length)
    query = parse_query(state.requests.event_query, request)
    event = await parse_body(state.requests.event_in, request)
    opts = query.options()
    variant = pick_variant(state, request, session_id, opts.variant)
    loaded = variant.serving()
    click = Event(str(event.item_id), event.event_type, event.timestamp)
    degraded = False
    try:
        if click.event_type in CONVERSION_TYPES:  # stored and attributed in one store call
            events = await kpis.record_conversion(state, session_id, variant.name, click, event)
        elif event.consent:
            events = await state.require_store().append(session_id, click)
        else:  # used for this answer only: the stored clicks are read, this one is not kept
            events = [*await state.require_store().get(session_id), click]
        if not event.consent and state.live is not None:  # never learned from, either
            await state.require_store().withhold(session_id)
        state.store_answered()
    except StoreUnavailable:
        state.store_failed("events")
        events, degraded = [click], True
    if state.trending is not None and event.consent:
        state.trending.add(click.item_id)
    if not query.recommend:
        return json_response(
            {"session_id": session_id, "event_count": len(events), "degraded": degraded}
        )
    return await answer_session(
        state, variant, loaded, session_id, events, opts, degraded, record=event.consent
    )


# Recommendations for the clicks stored for a live session.
async def get_recommendations(request: Request) -> Response:
    state = service(request)
    session_id = check_session_id(request.path_params["session_id"], state.config.max_id_length)
    opts = parse_query(state.requests.session_query, request).options()
    variant = pick_variant(state, request, session_id, opts.variant)
    loaded = variant.serving()
    degraded = False
    try:
        events = await state.require_store().get(session_id)
        state.store_answered()
    except StoreUnavailable:
        state.store_failed("recommendations")
        events, degraded = [], True
    return await answer_session(state, variant, loaded, session_id, events, opts, degraded)


# Recommendations for the items the caller sends (nothing is stored).
async def post_recommendations(request: Request) -> Response:
    state = service(request)
    body = await parse_body(state.requests.recommend_in, request)
    variant = pick_variant(state, request, body.session_id, body.variant)
    loaded = variant.serving()
    items = [str(i) for i in body.items]
    return await answer(
        state,
        variant,
        loaded,
        items,
        body.timestamps,
        body.options(),
        False,
        session_id=body.session_id,
    )


# Erase a session: its events and its recommendation records (right to erasure).
async def delete_session(request: Request) -> Response:
    state = service(request)
    session_id = check_session_id(request.path_params["session_id"], state.config.max_id_length)
    refuse_input(request)
    try:
        await state.require_store().delete_session(session_id)
        state.store_answered()
    except StoreUnavailable:
        raise store_unreachable(state, "delete_session", "erased") from None
    state.metrics.erasures.inc()
    return Response(status_code=204)


# End a session: its consenting clicks are learned now (live learning) instead of after
# the idle time.
async def end_session(request: Request) -> Response:
    state = service(request)
    session_id = check_session_id(request.path_params["session_id"], state.config.max_id_length)
    refuse_input(request)
    if state.live is None:
        raise ApiError(
            409,
            "live_learning_off",
            "this service does not learn from finished sessions (start it with --live-updates)",
        )
    try:
        handed_over = await state.require_store().finish(session_id)
        state.store_answered()
    except StoreUnavailable:
        raise store_unreachable(state, "end_session", "ended") from None
    return json_response({"session_id": session_id, "handed_over": handed_over})


def store_unreachable(state: ServiceState, endpoint: str, not_done: str) -> ApiError:
    """The 503 of a session operation the store could not carry out (counted as a store
    failure of ``endpoint``), with when to retry."""
    state.store_failed(endpoint)
    return ApiError(
        503,
        "store_unavailable",
        f"the session store is unreachable: the session is not {not_done} yet; retry later",
        headers={"Retry-After": str(math.ceil(state.config.redis_retry))},
    )


def refuse_input(request: Request) -> None:
    """A 422 for a query parameter or a body: the erasure takes neither (none is ignored)."""
    errors = [
        {
            "loc": ("query", name),
            "msg": "unknown query parameter (this endpoint takes none)",
            "type": "extra_forbidden",
        }
        for name in dict.fromkeys(request.query_params)
    ]
    headers = request.headers
    length = headers.get("content-length", "0").strip()
    if "transfer-encoding" in headers or length != "0":
        # refused unread: the body-size guard reads only POST, PUT and PATCH bodies
        errors.append(
            {"loc": ("body",), "msg": "this endpoint takes no body", "type": "extra_forbidden"}
        )
    if errors:
        raise RequestValidationError(errors)


def build_router(requests: RequestModels, max_id_length: int) -> APIRouter:
    """The routes, documented with the request models of the app's limits."""
    router = APIRouter()
    session_path = session_path_parameter(max_id_length)
    router.add_api_route(
        "/v1/sessions/{session_id}/events",
        post_event,
        methods=["POST"],
        response_model=RecommendationOut | EventAck,
        responses=ERRORS,
        tags=["sessions"],
        summary="Record a click; answer with recommendations in the same round trip",
        openapi_extra={
            "parameters": [session_path, *query_parameters(requests.event_query)],
            "requestBody": request_body(requests.event_in),
        },
    )
    router.add_api_route(
        "/v1/sessions/{session_id}/recommendations",
        get_recommendations,
        methods=["GET"],
        response_model=RecommendationOut,
        responses=ERRORS,
        tags=["sessions"],
        summary="Recommendations for a live session",
        openapi_extra={"parameters": [session_path, *query_parameters(requests.session_query)]},
    )
    router.add_api_route(
        "/v1/sessions/{session_id}",
        delete_session,
        methods=["DELETE"],
        status_code=204,
        response_class=Response,
        responses={
            422: ERRORS[422],
            503: {"model": ErrorOut, "description": "Store unreachable: retry"},
        },
        tags=["sessions"],
        summary="Erase a session: its events and recommendation records (idempotent)",
        openapi_extra={"parameters": [session_path]},
    )
    router.add_api_route(
        "/v1/sessions/{session_id}/end",
        end_session,
        methods=["POST"],
        response_model=SessionEnded,
        responses={
            409: {"model": ErrorOut, "description": "Live learning is off"},
            422: ERRORS[422],
            503: {"model": ErrorOut, "description": "Store unreachable: retry"},
        },
        tags=["sessions"],
        summary="End a session: live learning takes its clicks now (--live-updates)",
        openapi_extra={"parameters": [session_path]},
    )
    router.add_api_route(
        "/v1/recommendations",
        post_recommendations,
        methods=["POST"],
        response_model=RecommendationOut,
        responses=ERRORS,
        tags=["recommendations"],
        summary="Stateless recommendations for items sent by the caller",
        openapi_extra={"requestBody": request_body(requests.recommend_in)},
    )
    return router

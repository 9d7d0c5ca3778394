"""The admin API (``Authorization: Bearer $SESSIONREC_ADMIN_TOKEN``): ``GET
/v1/admin/models``, ``POST /v1/admin/models/{variant}/reload``, ``GET /v1/admin/feedback``,
``GET /v1/admin/kpis`` (the pilot's numbers per variant, :mod:`sessionrec.serve.kpis`) and
``GET /v1/admin/kpis/sessions`` (the per-session summaries as JSONL, the export that
``sessionrec abtest report`` reads).

(The handlers carry comments, not docstrings: a docstring would become the operation's
OpenAPI description.) No ``from __future__ import annotations``: FastAPI must see the
token dependency built in :func:`build_router` as a real object, not as a string.
"""

import asyncio
import hmac
import json
import logging
from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Path, Query
from fastapi.responses import Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from sessionrec._errors import ModelError
from sessionrec.serve import kpis
from sessionrec.serve.config import ServeConfig
from sessionrec.serve.deps import ServiceState, service
from sessionrec.serve.errors import ApiError, json_response
from sessionrec.serve.registry import CONTROL_PREFIX
from sessionrec.serve.schemas import ADMIN_ERRORS, VARIANT, ErrorOut, ReloadIn
from sessionrec.serve.store import StoreUnavailable

log = logging.getLogger("sessionrec.serve")

State = Annotated[ServiceState, Depends(service)]


def check_admin(config: ServeConfig, credentials: HTTPAuthorizationCredentials | None) -> None:
    """Raise unless the admin API is enabled and ``credentials`` carry its token."""
    token = config.admin_token()
    if token is None:
        raise ApiError(403, "admin_disabled", f"admin API disabled: set {config.admin_token_env}")
    if credentials is None:
        raise ApiError(
            401,
            "unauthorized",
            "admin endpoints need 'Authorization: Bearer <token>'",
            headers={"WWW-Authenticate": "Bearer"},
        )
    if not hmac.compare_digest(credentials.credentials.encode(), token.encode()):
        raise ApiError(403, "forbidden", "invalid admin token")


# GET /v1/admin/models
async def admin_models(state: State) -> Response:
    out = []
    for variant in state.require_registry().variants.values():
        current = variant.current
        out.append(
            {
                "variant": variant.name,
                "weight": variant.weight,
                "path": variant.path,
                "model": current.name if current else None,
                "model_version": current.version if current else None,
                "loaded_at": current.loaded_at if current else None,
                "last_error": variant.last_error,
            }
        )
    return json_response({"variants": out})


# POST /v1/admin/models/{variant}/reload: load in a thread, swap atomically, publish the
# path for the other replicas.
async def admin_reload(
    variant: Annotated[str, Path(pattern=VARIANT)],
    state: State,
    body: Annotated[ReloadIn | None, Body()] = None,
) -> Response:
    registry = state.require_registry()
    if variant not in registry.variants:
        raise ApiError(404, "unknown_variant", f"unknown variant {variant!r}")
    previous = registry.variants[variant].current
    path = body.path if body is not None else None
    try:
        loaded = await asyncio.to_thread(registry.reload, variant, path)
    except ModelError as exc:
        raise ApiError(
            422,
            "model_rejected",
            f"{exc}; the previous model keeps serving",
        ) from None
    published = True
    try:
        await state.require_store().set_control(CONTROL_PREFIX + variant, loaded.path)
    except StoreUnavailable:
        published = False
        log.warning("reload of %s not published: store unavailable", variant)
    return json_response(
        {
            "variant": variant,
            "model": loaded.name,
            "model_version": loaded.version,
            "previous_version": previous.version if previous else None,
            "path": loaded.path,
            "published": published,
        }
    )


# GET /v1/admin/feedback: impressions, clicks and CTR per variant
async def admin_feedback(state: State) -> Response:
    degraded = False
    try:
        counts = await state.require_store().counts()
    except StoreUnavailable:
        counts, degraded = {}, True
    out = {
        name: {"impressions": c.impressions, "clicks": c.clicks, "ctr": c.ctr}
        for name, c in sorted(counts.items())
    }
    for name in state.require_registry().variants:
        out.setdefault(name, {"impressions": 0, "clicks": 0, "ctr": 0.0})
    return json_response({"variants": out, "degraded": degraded})


# GET /v1/admin/kpis: sessions, impressions, clicks, conversions, revenue and rates per variant
async def admin_kpis(state: State) -> Response:
    try:
        numbers = await kpis.variant_kpis(state)
    except StoreUnavailable:
        raise ApiError(
            503, "store_unavailable", "the session store is unreachable; retry later"
        ) from None
    return json_response(kpis.kpis_payload(numbers, state.config.attribution_window))


MAX_EXPORT = 1_000_000


# GET /v1/admin/kpis/sessions: one JSON object per session (sessionrec.abtest.export fields)
async def admin_kpi_sessions(
    state: State,
    limit: Annotated[int, Query(ge=1, le=MAX_EXPORT, description="Most sessions")] = 100_000,
) -> Response:
    try:
        summaries = await state.require_store().session_summaries(limit)
    except StoreUnavailable:
        raise ApiError(
            503, "store_unavailable", "the session store is unreachable; retry later"
        ) from None
    text = "".join(json.dumps(s.to_dict()) + "\n" for s in summaries)
    return Response(text, media_type="application/x-ndjson")


def build_router(admin_token_env: str) -> APIRouter:
    """The admin routes behind a bearer token (named ``$admin_token_env`` in the schema)."""
    bearer = HTTPBearer(auto_error=False, description="The token in $" + admin_token_env)

    async def require_admin(
        credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
        state: State,
    ) -> None:
        check_admin(state.config, credentials)

    router = APIRouter(tags=["admin"], dependencies=[Depends(require_admin)])
    router.add_api_route("/v1/admin/models", admin_models, methods=["GET"], responses=ADMIN_ERRORS)
    router.add_api_route(
        "/v1/admin/models/{variant}/reload",
        admin_reload,
        methods=["POST"],
        responses={
            **ADMIN_ERRORS,
            404: {"model": ErrorOut, "description": "Unknown variant"},
            422: {"model": ErrorOut, "description": "Broken artifact; old model serves"},
        },
        summary="Load a model folder in the background and swap it in atomically",
    )
    router.add_api_route(
        "/v1/admin/feedback", admin_feedback, methods=["GET"], responses=ADMIN_ERRORS
    )
    unavailable: dict[int | str, dict[str, Any]] = {
        503: {"model": ErrorOut, "description": "Store unreachable: retry"}
    }
    router.add_api_route(
        "/v1/admin/kpis",
        admin_kpis,
        methods=["GET"],
        responses={**ADMIN_ERRORS, **unavailable},
        summary="Pilot KPIs per variant: CTR, add-to-cart and conversion rates, revenue",
    )
    router.add_api_route(
        "/v1/admin/kpis/sessions",
        admin_kpi_sessions,
        methods=["GET"],
        responses={**ADMIN_ERRORS, **unavailable},
        response_class=Response,
        summary="Per-session KPI summaries as JSONL (input of `sessionrec abtest report`)",
    )
    return router

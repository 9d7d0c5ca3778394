"""Operations: ``GET /healthz``, ``GET /readyz``, ``GET /metrics`` and ``GET /v1/info``.

(The handlers carry comments, not docstrings: a docstring would become the operation's
OpenAPI description.)
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends
from fastapi.responses import Response

from sessionrec._version import __version__
from sessionrec.serve import kpis
from sessionrec.serve.deps import ServiceState, service
from sessionrec.serve.errors import json_response

router = APIRouter(tags=["ops"])

State = Annotated[ServiceState, Depends(service)]


@router.get("/healthz", summary="Liveness: the process answers")
async def healthz() -> Response:
    return json_response({"status": "ok"})


@router.get("/readyz", summary="Readiness: models loaded; store state")
async def readyz(state: State) -> Response:
    registry = state.registry
    if registry is None or any(v.current is None for v in registry.variants.values()):
        return json_response({"status": "loading"}, 503)
    store = state.require_store()
    up = await store.ping()
    if up:
        state.store_answered()
    else:
        state.store_failed("readyz")
    # A replica without its store still answers (degraded), so it stays ready.
    return json_response(
        {
            "status": "ready" if up else "degraded",
            "store": {"kind": store.kind, "available": up},
            "variants": {v.name: v.serving().version for v in registry.variants.values()},
        }
    )


@router.get("/metrics", summary="Prometheus metrics")
async def prometheus(state: State) -> Response:
    await kpis.refresh_gauges(state)  # one store read per scrape, none per request
    return Response(state.metrics.render(), media_type=state.metrics.content_type)


@router.get("/v1/info", summary="Variants, models, limits and defaults")
async def info(state: State) -> Response:
    config, loader, store = state.config, state.loader, state.require_store()
    return json_response(
        {
            "service": "sessionrec",
            "version": __version__,
            "variants": state.require_registry().describe(),
            "store": {
                "kind": store.kind,
                "available": store.available,
                # how long each kind of record is kept, seconds (docs/privacy.md)
                "retention": store.retention(),
            },
            "rules_active": bool(loader and loader.rules_active),
            # live click counts ranked before all-time popularity in the fallback chain
            "trending": state.trending.describe() if state.trending is not None else None,
            # learning from finished sessions while serving (--live-updates), else null
            "live": state.live.describe() if state.live is not None else None,
            "kpis": {
                # seconds: conversions count for an answer this long after it (last touch)
                "attribution_window": config.attribution_window,
                "kpi_retention": config.kpi_retention,
            },
            "defaults": {
                "k": config.default_k,
                "exclude_seen": config.exclude_seen,
                "new_item_share": config.new_item_share,
            },
            "limits": {
                "max_k": config.max_k,
                "max_events": config.max_events,
                "max_session_length": config.max_session_length,
                "max_id_length": config.max_id_length,
                "max_body_bytes": config.max_body_bytes,
                "max_exclude": config.max_exclude,
                "session_ttl": config.session_ttl,
            },
        }
    )

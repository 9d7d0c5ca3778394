"""The HTTP service: ``create_app(config) -> FastAPI``.

Endpoints (JSON in, JSON out; every error is a JSON object ``{"error", "message",
"details"?}`` with a 4xx status, a 5xx only for a bug, which is logged), one router module
per resource in :mod:`sessionrec.serve.routes`:

- ``sessions``: ``POST /v1/sessions/{session_id}/events`` records one click (a ``view``,
  ``cart`` or ``purchase``: carts and purchases are counted as conversions, attributed to
  the answer that showed the item) and, unless ``recommend=false``, answers with
  recommendations for the session in the same round trip;
  ``GET /v1/sessions/{session_id}/recommendations`` recommendations for a live session;
  ``POST /v1/recommendations`` stateless: the caller sends the session's items.
- ``feedback``: ``POST /v1/feedback`` a click on a recommended item, counted per variant.
- ``ops``: ``GET /v1/info``, ``GET /healthz``, ``GET /readyz``, ``GET /metrics``.
- ``docs``: ``/docs`` (Swagger UI) and ``/redoc`` on the schema ``/openapi.json``, their
  assets served by the service itself (they work offline: :mod:`sessionrec.serve.docs`).
- ``admin`` (``Authorization: Bearer $SESSIONREC_ADMIN_TOKEN``): ``GET /v1/admin/models``,
  ``POST /v1/admin/models/{variant}/reload``, ``GET /v1/admin/feedback``,
  ``GET /v1/admin/kpis`` and ``GET /v1/admin/kpis/sessions`` (the pilot's numbers per
  variant and per session: :mod:`sessionrec.serve.kpis`, ``docs/pilot-kpis.md``).
- ``demo``: the storefront page ``/demo``.

A recommendation answer is ``{"recommendation_id", "model", "model_version", "variant",
"fallback", "degraded", "items": [{"item_id", "score", "source"}, ...]}`` (the session
endpoints add ``session_id`` and ``event_count``). With ``explain=true`` every item also
carries ``reason: {"kind", "session_items": [{"item_id", "weight"}], "neighbour_sessions":
[{"session", "weight"}]}`` (see :meth:`~sessionrec.models.base.Recommender.explain`);
without it the answer is byte for byte what it was before explanations existed.

The session's own items: answers leave them out (``exclude_seen``) unless the served model
recommends repeats (:meth:`~sessionrec.models.base.Recommender.recommends_repeats`: a
``repeat`` layer that validation switched on), for which leaving them out would drop what it
learned to recommend. ``--exclude-seen`` / ``--no-exclude-seen`` fix the default for every
model, and a request's ``exclude_seen`` wins over both.

Where the rest lives: the shared state and its dependency in :mod:`~sessionrec.serve.deps`,
the schemas (built per app from the configured limits) in :mod:`~sessionrec.serve.schemas`,
the answer itself in :mod:`~sessionrec.serve.recommend`, errors in
:mod:`~sessionrec.serve.errors`, the body-size limit and request metrics in
:mod:`~sessionrec.serve.middleware`. This module is the lifespan (load the models, open
the store, watch for new models) and the assembly.
"""

from __future__ import annotations

import asyncio
import functools
import gc
import inspect
import logging
import os
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI

from sessionrec._version import __version__
from sessionrec.serve import docs
from sessionrec.serve.config import ServeConfig
from sessionrec.serve.deps import ServiceState
from sessionrec.serve.errors import add_error_handlers
from sessionrec.serve.live import LiveLearner
from sessionrec.serve.metrics import ServiceMetrics
from sessionrec.serve.middleware import GuardMiddleware
from sessionrec.serve.registry import LoadedModel, ModelLoader, ModelRegistry
from sessionrec.serve.routes import admin, demo, feedback, ops, sessions
from sessionrec.serve.schemas import build_request_models
from sessionrec.serve.store import StoreUnavailable, open_store
from sessionrec.serve.trending import TrendingClicks

log = logging.getLogger("sessionrec.serve")


def telemetry_settings(environ: Mapping[str, str]) -> dict[str, Any]:
    """FastAPI's arguments for its native OpenTelemetry: on only where it is configured.

    FastAPI (0.16x) asks the global providers whether they are set up on every request
    (about 10 µs, measured), which a service without OpenTelemetry pays for nothing. Any
    ``OTEL_*`` variable (or ``FASTAPI_OTEL_AUTO_CONFIGURE``) keeps FastAPI's defaults:
    traces and metrics of every request go to the configured providers. Versions of
    FastAPI without native telemetry get no argument.
    """
    if "telemetry" not in inspect.signature(FastAPI.__init__).parameters:
        return {}
    configured = "FASTAPI_OTEL_AUTO_CONFIGURE" in environ
    if configured or any(name.startswith("OTEL_") for name in environ):
        return {}
    return {"telemetry": {"tracing": False, "metrics": False, "logs": False}}


def create_app(config: ServeConfig) -> FastAPI:
    """The service for ``config``; models load when the app starts (its lifespan)."""
    state = ServiceState(
        config=config, metrics=ServiceMetrics(), requests=build_request_models(config)
    )
    app = FastAPI(
        title="sessionrec",
        version=__version__,
        description=(
            "Real-time session-based recommendations: record clicks, get the next items. "
            "Errors are JSON objects {error, message, details?} with a 4xx status."
        ),
        lifespan=lifespan,
        **telemetry_settings(os.environ),
        docs_url=None,  # FastAPI's pages load their assets from a CDN: see serve.docs
        redoc_url=None,
    )
    app.state.service = state
    app.add_middleware(GuardMiddleware, max_body=config.max_body_bytes, metrics=state.metrics)
    add_error_handlers(app)
    app.include_router(sessions.build_router(state.requests, config.max_id_length))
    app.include_router(feedback.build_router(state.requests))
    app.include_router(ops.router)
    app.include_router(admin.build_router(config.admin_token_env))
    app.include_router(demo.build_router(has_catalog=config.catalog is not None))
    app.include_router(docs.build_router(app.title, app.openapi_url or "/openapi.json"))
    return app


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    """Load the models and open the store before the first request; close it at the end."""
    state: ServiceState = app.state.service
    config = state.config
    loader = await asyncio.to_thread(ModelLoader, config)
    registry = ModelRegistry(
        config.variants, loader, salt=config.ab_salt, on_reload=functools.partial(on_reload, state)
    )
    await asyncio.to_thread(registry.load_all)
    store = open_store(
        config.store,
        ttl=config.session_ttl,
        max_sessions=config.max_sessions,
        max_events=config.max_events,
        recommendation_ttl=config.recommendation_ttl,
        timeout=config.redis_timeout,
        retry_after=config.redis_retry,
        prefix=config.redis_prefix,
        outage_buffer=config.outage_buffer,
        observer=state.metrics,
        attribution_window=config.attribution_window,
        kpi_retention=config.kpi_retention,
        live_feed=config.live_feed if config.live_updates else 0,
    )
    state.loader, state.registry, state.store = loader, registry, store
    if config.trending_half_life is not None:
        state.trending = TrendingClicks(config.trending_half_life)
    up = await store.ping()
    state.store_up = up
    state.metrics.store_up.set(1 if up else 0)
    if not up:
        log.warning("session store %s unreachable at start: degraded mode", store.kind)
    else:
        try:  # follow a model folder another replica's admin already published
            await asyncio.to_thread(registry.poll, await store.get_control())
        except StoreUnavailable:
            log.warning("session store %s unreachable at start: degraded mode", store.kind)
    if config.live_updates:
        await start_learning(state)
    freeze_heap()
    if config.reload_interval > 0:
        state.watcher = asyncio.create_task(watch(state))
    log.info("serving %d variant(s) with the %s store", len(registry.variants), store.kind)
    try:
        yield
    finally:
        for task in (state.watcher, state.learner):
            if task is not None:
                task.cancel()
        await store.close()


async def start_learning(state: ServiceState) -> None:
    """Start live learning (:mod:`sessionrec.serve.live`): resume the snapshots before the
    first request; with the store down at start, from the feed's position once it answers."""
    live = LiveLearner(state)
    state.live = live
    started = await _start(live)

    async def learn() -> None:
        nonlocal started
        while not started:
            await asyncio.sleep(state.config.live_interval)
            started = await _start(live)
        await live.run()

    state.learner = asyncio.create_task(learn())
    log.info("live learning on: sessions idle %.0f s are learned", state.config.live_idle)


async def _start(live: LiveLearner) -> bool:
    try:
        await live.start()
    except StoreUnavailable:
        return False
    return True


def on_reload(
    state: ServiceState, name: str, outcome: str, loaded: LoadedModel | None, error: str | None
) -> None:
    """Count a (re)load of variant ``name``; a hot reload also re-freezes the heap."""
    state.metrics.reloads.labels(name, outcome).inc()
    if loaded is not None:
        state.metrics.set_model(name, loaded.name, loaded.version)
        if state.registry is not None:  # a hot reload, not the start-up load
            freeze_heap()


async def watch(state: ServiceState) -> None:
    """Poll for replaced model folders and for paths published by other replicas."""
    while True:
        await asyncio.sleep(state.config.reload_interval)
        control: dict[str, str] | None
        try:
            control = await state.require_store().get_control()
            state.store_answered()
        except StoreUnavailable:
            control = None
        try:
            await asyncio.to_thread(state.require_registry().poll, control)
        except Exception:
            log.exception("model watcher failed; it keeps running")


def freeze_heap() -> None:
    """Move everything allocated so far (models, vocabularies, catalogs) out of the GC's way.

    The loaded tables are millions of long-lived objects; without this, each full
    collection walks all of them and stalls a request for milliseconds (a p99 spike).
    """
    gc.collect()
    gc.freeze()


def app_from_env() -> FastAPI:
    """Uvicorn factory for worker processes: the config comes from ``$SESSIONREC_SERVE_CONFIG``."""
    config = ServeConfig.from_env()
    logging.getLogger("sessionrec").setLevel(config.log_level.upper())
    return create_app(config)

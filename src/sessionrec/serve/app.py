"""The HTTP service: ``create_app(config) -> FastAPI``.

Endpoints (JSON in, JSON out; every error is a JSON object ``{"error", "message",
"details"?}`` with a 4xx status, a 5xx only for a bug, which is logged):

- ``POST /v1/sessions/{session_id}/events`` records one click and, unless
  ``recommend=false``, answers with recommendations for the session in the same round trip.
- ``GET /v1/sessions/{session_id}/recommendations`` recommendations for a live session.
- ``POST /v1/recommendations`` stateless: the caller sends the session's items.
- ``POST /v1/feedback`` a click on a recommended item, counted per A/B variant.
- ``GET /v1/info``, ``GET /healthz``, ``GET /readyz``, ``GET /metrics``, ``/docs``.
- Admin (``Authorization: Bearer $SESSIONREC_ADMIN_TOKEN``): ``GET /v1/admin/models``,
  ``POST /v1/admin/models/{variant}/reload``, ``GET /v1/admin/feedback``.

A recommendation answer is ``{"recommendation_id", "model", "model_version", "variant",
"fallback", "degraded", "items": [{"item_id", "score", "source"}, ...]}`` (the session
endpoints add ``session_id`` and ``event_count``). With ``explain=true`` every item also
carries ``reason: {"kind", "session_items": [{"item_id", "weight"}], "neighbour_sessions":
[{"session", "weight"}]}`` (see :meth:`~sessionrec.models.base.Recommender.explain`);
without it the answer is byte for byte what it was before explanations existed.

Why the handlers look the way they do:

- They are ``async`` and run the model inline on the event loop: scoring one session takes
  well under a millisecond, and a thread hop per request would cost about as much as the
  work and contend for the GIL. One worker process per core (``--workers``) gives
  parallelism.
- Answers are serialised once with orjson into a ``Response``; the response models exist
  for the OpenAPI schema, not for per-request re-validation.
- Recording the answer for feedback is queued and written to Redis in batches (see
  :class:`~sessionrec.serve.store.RedisStore`), so it adds no round trip to the answer.
- The body-size limit and the metrics are one pure ASGI middleware; Starlette's
  ``BaseHTTPMiddleware`` would add a task and a stream per request.
- This module deliberately has no ``from __future__ import annotations``: the request
  models and parameters are built inside :func:`create_app` from the configured limits,
  and FastAPI/pydantic must see them as real objects, not strings.
"""

import asyncio
import gc
import hmac
import logging
import os
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Annotated, Any, Literal, TypeVar

from fastapi import Body, Depends, FastAPI, Path, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import (
    AfterValidator,
    BaseModel,
    Field,
    StrictInt,
    StrictStr,
    StringConstraints,
    ValidationError,
    model_validator,
)
from starlette.exceptions import HTTPException as StarletteHTTPException

from sessionrec._errors import ConfigError, ModelError, SessionrecError
from sessionrec._version import __version__
from sessionrec.serve.config import ServeConfig
from sessionrec.serve.demo_page import add_demo_page
from sessionrec.serve.metrics import ServiceMetrics
from sessionrec.serve.registry import (
    CONTROL_PREFIX,
    LoadedModel,
    ModelLoader,
    ModelRegistry,
    Variant,
)
from sessionrec.serve.rules import Filters, Ranked
from sessionrec.serve.store import (
    Event,
    SessionStore,
    StoreUnavailable,
    open_store,
)

try:
    import orjson

    def _dumps(payload: Any) -> bytes:
        return orjson.dumps(payload)

except ImportError:  # pragma: no cover - orjson is in the serve extra
    import json

    def _dumps(payload: Any) -> bytes:
        return json.dumps(payload, separators=(",", ":")).encode()


log = logging.getLogger("sessionrec.serve")

_NO_CONTROL = r"^[^\x00-\x1f\x7f]+$"
_SESSION_ID = r"^[!-.0-~]+$"  # printable ASCII without space and '/'
_VARIANT = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"
_EVENT_TYPE = r"^[A-Za-z0-9_.:-]{1,32}$"
_RECOMMENDATION_ID = r"^[A-Za-z0-9_-]{1,64}$"
MAX_TIMESTAMP = 1e11
"""Unix seconds; far beyond any real click, small enough to catch milliseconds sent as seconds."""


class ApiError(Exception):
    """An error answered as JSON with a 4xx status: ``{"error": code, "message": ...}``."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        headers: dict[str, str] | None = None,
        details: Any = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers
        self.details = details


def _json(payload: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(
        _dumps(payload), status_code=status, media_type="application/json", headers=headers
    )


def _error(
    status: int,
    code: str,
    message: str,
    details: Any = None,
    headers: dict[str, str] | None = None,
) -> Response:
    body: dict[str, Any] = {"error": code, "message": message}
    if details is not None:
        body["details"] = details
    return _json(body, status, headers)


_LIST_PARAMETERS = frozenset({"category", "exclude_category", "exclude_item"})
QueryModel = TypeVar("QueryModel", bound=BaseModel)
BodyModel = TypeVar("BodyModel", bound=BaseModel)


def _located(where: str, exc: ValidationError) -> list[dict[str, Any]]:
    """pydantic errors with their location prefixed, as FastAPI reports them."""
    return [
        {"loc": (where, *e["loc"]), "msg": e["msg"], "type": e["type"]}
        for e in exc.errors(include_url=False, include_context=False, include_input=False)
    ]


def _query_parameters(model: type[BaseModel]) -> list[dict[str, Any]]:
    """OpenAPI query parameters of a pydantic model (one per field, arrays repeated)."""
    schema = model.model_json_schema()
    out = []
    for name, prop in schema["properties"].items():
        field_schema = {k: v for k, v in prop.items() if k not in ("title", "description")}
        parameter: dict[str, Any] = {
            "name": name,
            "in": "query",
            "required": False,
            "schema": field_schema,
        }
        if "description" in prop:
            parameter["description"] = prop["description"]
        out.append(parameter)
    return out


def _request_body(model: type[BaseModel]) -> dict[str, Any]:
    return {
        "required": True,
        "content": {"application/json": {"schema": model.model_json_schema()}},
    }


def _times(events: list[Event]) -> list[float] | None:
    """Click times when every event has one (the model then sees times), else None."""
    times = [e.timestamp for e in events]
    return None if None in times else times  # type: ignore[return-value]


# ------------------------------------------------------------------ state
@dataclass
class ServiceState:
    """What the handlers share; filled by the lifespan before the first request."""

    config: ServeConfig
    metrics: ServiceMetrics
    loader: ModelLoader | None = None
    registry: ModelRegistry | None = None
    store: SessionStore | None = None
    watcher: asyncio.Task[None] | None = None


# -------------------------------------------------------------- middleware
Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


class GuardMiddleware:
    """Body-size limit plus latency/request/error metrics, as one pure ASGI layer.

    The body is read (at most ``max_body`` bytes) before the app sees it, so an oversized
    or lying request gets a 413 JSON error instead of reaching the JSON parser.
    """

    def __init__(self, app: ASGIApp, *, max_body: int, metrics: ServiceMetrics) -> None:
        self.app = app
        self.max_body = max_body
        self.metrics = metrics
        # Labelled metric children by (endpoint, variant, status): ``labels()`` takes a lock
        # and builds a tuple on every call; the label sets are few and bounded (routes x
        # variants x statuses), so they are looked up once.
        self._children: dict[tuple[str, str, int], tuple[Any, Any, Any]] = {}

    def _make_children(self, endpoint: str, variant: str, code: int) -> tuple[Any, Any, Any]:
        m = self.metrics
        errors = None
        if code >= 500:
            errors = m.errors.labels(endpoint, "server")
        elif code in (400, 413, 422):
            errors = m.errors.labels(endpoint, "validation")
        elif code >= 400:
            errors = m.errors.labels(endpoint, "client")
        return (
            m.latency.labels(endpoint, variant),
            m.requests.labels(endpoint, variant, str(code)),
            errors,
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        state = scope.setdefault("state", {})
        status = [500]

        async def send_wrapper(message: Message) -> None:
            if message["type"] == "http.response.start":
                status[0] = int(message["status"])
            await send(message)

        try:
            if scope["method"] in ("POST", "PUT", "PATCH"):
                body, problem = await self._read_body(scope, receive)
                if problem is not None:
                    await problem(scope, receive, send_wrapper)
                    return
                receive = _replay(body, receive)
            await self.app(scope, receive, send_wrapper)
        finally:
            route = scope.get("route")
            endpoint = getattr(route, "path", None) or "unmatched"
            variant = str(state.get("variant", "none"))
            code = status[0]
            key = (endpoint, variant, code)
            children = self._children.get(key)
            if children is None:
                children = self._children[key] = self._make_children(endpoint, variant, code)
            latency, requests, errors = children
            latency.observe(time.perf_counter() - started)
            requests.inc()
            if errors is not None:
                errors.inc()

    async def _read_body(self, scope: Scope, receive: Receive) -> tuple[bytes, Response | None]:
        for name, value in scope.get("headers", ()):
            if name == b"content-length":
                text = value.decode("latin-1").strip()
                if not text.isdigit():
                    return b"", _error(400, "bad_request", "invalid Content-Length header")
                if int(text) > self.max_body:
                    return b"", self._too_large()
        chunks = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                break
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body:
                return b"", self._too_large()
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        return b"".join(chunks), None

    def _too_large(self) -> Response:
        return _error(
            413,
            "body_too_large",
            f"request body exceeds {self.max_body} bytes",
            headers={"Connection": "close"},
        )


def _replay(body: bytes, receive: Receive) -> Receive:
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay


# ---------------------------------------------------------------- the app
def create_app(config: ServeConfig) -> FastAPI:
    """The service for ``config``; models load when the app starts (its lifespan)."""
    state = ServiceState(config=config, metrics=ServiceMetrics())
    metrics = state.metrics

    # --------------------------------------------------------- schemas
    IdStr = Annotated[
        StrictStr,
        StringConstraints(min_length=1, max_length=config.max_id_length, pattern=_NO_CONTROL),
    ]
    IdInt = Annotated[StrictInt, Field(ge=-(2**63), le=2**63 - 1)]
    ItemId = Annotated[
        IdStr | IdInt,
        AfterValidator(str),
        Field(description="An item id: a string, or an integer (read as its decimal string)."),
    ]
    VariantName = Annotated[str, StringConstraints(pattern=_VARIANT)]
    Timestamp = Annotated[float, Field(ge=0, le=MAX_TIMESTAMP, allow_inf_nan=False)]
    K = Annotated[int, Field(ge=1, le=config.max_k)]

    class EventIn(BaseModel):
        """One click. Only ``item_id`` is required."""

        item_id: ItemId
        event_type: Annotated[str, StringConstraints(pattern=_EVENT_TYPE)] = "view"
        timestamp: Timestamp | None = Field(
            None, description="Unix seconds of the click (client clock); optional."
        )

    class RecommendIn(BaseModel):
        """A stateless request: the session's items in click order."""

        items: list[ItemId] = Field(max_length=config.max_session_length)
        k: K = config.default_k
        session_id: IdStr | None = Field(
            None, description="Optional: assigns the A/B variant by stable hash."
        )
        timestamps: list[Timestamp] | None = Field(
            None,
            max_length=config.max_session_length,
            description="Optional click times, one per item.",
        )
        exclude_seen: bool | None = None
        exclude_items: list[ItemId] = Field([], max_length=config.max_exclude)
        categories: list[IdStr] = Field([], max_length=config.max_exclude)
        exclude_categories: list[IdStr] = Field([], max_length=config.max_exclude)
        available_only: bool = False
        fallback: bool = True
        details: bool = False
        explain: bool = Field(False, description="Add a reason to every item.")
        variant: VariantName | None = None

        @model_validator(mode="after")
        def _times_match(self) -> "RecommendIn":
            if self.timestamps is not None and len(self.timestamps) != len(self.items):
                raise ValueError("timestamps must have one value per item")
            return self

    class FeedbackIn(BaseModel):
        """A click on an item of a recommendation answer."""

        recommendation_id: Annotated[str, StringConstraints(pattern=_RECOMMENDATION_ID)]
        item_id: ItemId

    class ReloadIn(BaseModel):
        path: Annotated[str, StringConstraints(min_length=1, max_length=4096)] | None = None

    class SessionItemOut(BaseModel):
        item_id: str
        weight: float

    class NeighbourOut(BaseModel):
        session: int = Field(description="Index of the training session in the training data.")
        weight: float

    class ReasonOut(BaseModel):
        """Why the item is recommended (``explain=true``); see ``Recommender.explain``."""

        kind: Literal["session_items", "neighbours", "embedding", "ablation", "popular", "category"]
        session_items: list[SessionItemOut]
        neighbour_sessions: list[NeighbourOut]

    class ItemOut(BaseModel):
        item_id: str
        score: float
        source: Literal["model", "category", "popular"]
        category: str | None = None
        available: bool | None = None
        attributes: dict[str, Any] | None = None
        reason: ReasonOut | None = None

    class RecommendationOut(BaseModel):
        recommendation_id: str
        model: str
        model_version: str
        variant: str
        fallback: bool
        degraded: bool
        items: list[ItemOut]
        session_id: str | None = None
        event_count: int | None = None

    class EventAck(BaseModel):
        session_id: str
        event_count: int
        degraded: bool

    class ErrorOut(BaseModel):
        error: str
        message: str
        details: Any = None

    errors: dict[int | str, dict[str, Any]] = {
        422: {"model": ErrorOut, "description": "Invalid input"},
        413: {"model": ErrorOut, "description": "Body too large"},
    }

    @dataclass(frozen=True)
    class Options:
        k: int
        exclude_seen: bool
        fallback: bool
        filters: Filters
        exclude_items: tuple[str, ...]
        details: bool
        variant: str | None
        explain: bool = False

    class SessionQuery(BaseModel):
        """Query parameters of the session endpoints (one model: validated in one call)."""

        k: K = Field(config.default_k, description="How many items (at most).")
        exclude_seen: bool | None = Field(
            None,
            description=f"Never recommend the session's items (default {config.exclude_seen}).",
        )
        fallback: bool = Field(True, description="Complete short lists with popular items.")
        category: list[IdStr] = Field(
            [], max_length=config.max_exclude, description="Only these categories (repeat)."
        )
        exclude_category: list[IdStr] = Field([], max_length=config.max_exclude)
        available_only: bool = False
        exclude_item: list[IdStr] = Field([], max_length=config.max_exclude)
        details: bool = Field(False, description="Add catalog fields to the items.")
        explain: bool = Field(False, description="Add a reason to every item.")
        variant: VariantName | None = Field(None, description="Force an A/B variant (QA, replay).")

        def options(self) -> Options:
            return Options(
                k=self.k,
                exclude_seen=config.exclude_seen
                if self.exclude_seen is None
                else self.exclude_seen,
                fallback=self.fallback,
                filters=Filters(
                    include_categories=frozenset(self.category),
                    exclude_categories=frozenset(self.exclude_category),
                    available_only=self.available_only,
                ),
                exclude_items=tuple(self.exclude_item),
                details=self.details,
                variant=self.variant,
                explain=self.explain,
            )

    class EventQuery(SessionQuery):
        recommend: bool = Field(
            True, description="Answer with recommendations (else an acknowledgement)."
        )

    # ----------------------------------------------------------- helpers
    def registry() -> ModelRegistry:
        assert state.registry is not None, "the app's lifespan has not run"
        return state.registry

    def store() -> SessionStore:
        assert state.store is not None, "the app's lifespan has not run"
        return state.store

    def pick(request: Request, session_id: str | None, forced: str | None) -> Variant:
        reg = registry()
        if forced is not None:
            try:
                variant = reg.get(forced)
            except ConfigError as exc:
                raise ApiError(422, "unknown_variant", str(exc)) from None
        else:
            variant = reg.choose(session_id)
        request.state.variant = variant.name
        return variant

    async def record(rec_id: str, variant: str, items: list[str]) -> None:
        try:
            await store().record_recommendation(rec_id, variant, items)
        except StoreUnavailable:
            metrics.errors.labels("record_recommendation", "store").inc()

    def explain(loaded: LoadedModel, session: list[str], ranked: Ranked) -> list[Any]:
        """A reason per returned item (after the business rules: only what is shown).

        Model items are explained by the model, in one call; fallback items say where they
        came from. A model that cannot explain (a broken artifact) leaves ``reason`` null
        rather than failing the answer.
        """
        shown = [i for i, source in enumerate(ranked.sources) if source == "model"]
        reasons: list[Any] = [
            {"kind": source, "session_items": [], "neighbour_sessions": []}
            for source in ranked.sources
        ]
        if not shown:
            return reasons
        try:
            explained = loaded.model.explain(session, [ranked.items[i] for i in shown])
        except SessionrecError as exc:
            log.warning("model %s could not explain its answer: %s", loaded.name, exc)
            for i in shown:
                reasons[i] = None
            return reasons
        for i, reason in zip(shown, explained, strict=True):
            reasons[i] = {
                "kind": reason.kind,
                "session_items": [
                    {"item_id": str(item), "weight": weight}
                    for item, weight in reason.session_items
                ],
                "neighbour_sessions": [
                    {"session": neighbour, "weight": weight}
                    for neighbour, weight in reason.neighbour_sessions
                ],
            }
        return reasons

    async def answer(
        variant: Variant,
        loaded: LoadedModel,
        items: list[str],
        times: list[float] | None,
        opts: Options,
        degraded: bool,
        extra: dict[str, Any] | None = None,
    ) -> Response:
        try:
            ranked = loaded.rules.recommend(
                loaded.model,
                items,
                opts.k,
                times=times,
                exclude_seen=opts.exclude_seen,
                exclude_items=opts.exclude_items,
                filters=opts.filters,
                fallback=opts.fallback,
            )
        except ConfigError as exc:
            raise ApiError(422, "invalid_request", str(exc)) from None
        rec_id = os.urandom(16).hex()
        if opts.details:
            out_items = [
                {"item_id": i, "score": s, "source": src, **loaded.rules.details(idx)}
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
            for item, reason in zip(out_items, explain(loaded, items, ranked), strict=True):
                item["reason"] = reason
        if extra:
            payload.update(extra)
        metrics.recommendations.labels(variant.name).inc()
        if ranked.fallback:
            metrics.fallbacks.labels(variant.name).inc()
        if degraded:
            metrics.degraded.labels(variant.name).inc()
        if not degraded:  # the memory store records inline, Redis queues a batched write
            await record(rec_id, variant.name, ranked.items)
        return _json(payload)

    async def answer_session(
        variant: Variant,
        loaded: LoadedModel,
        session_id: str,
        events: list[Event],
        opts: Options,
        degraded: bool,
    ) -> Response:
        """:func:`answer` for a live session from its stored events."""
        return await answer(
            variant,
            loaded,
            [e.item_id for e in events],
            _times(events),
            opts,
            degraded,
            {"session_id": session_id, "event_count": len(events)},
        )

    store_up = [True]  # last state reported to the gauge (set only on transitions)

    def store_failed(endpoint: str) -> None:
        metrics.errors.labels(endpoint, "store").inc()
        if store_up[0]:
            store_up[0] = False
            metrics.store_up.set(0)

    def store_answered() -> None:
        if not store_up[0]:
            store_up[0] = True
            metrics.store_up.set(1)

    # ------------------------------------------------------------ lifespan
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        loader = await asyncio.to_thread(ModelLoader, config)
        reg = ModelRegistry(config.variants, loader, salt=config.ab_salt, on_reload=on_reload)
        await asyncio.to_thread(reg.load_all)
        st = open_store(
            config.store,
            ttl=config.session_ttl,
            max_sessions=config.max_sessions,
            max_events=config.max_events,
            recommendation_ttl=config.recommendation_ttl,
            timeout=config.redis_timeout,
            retry_after=config.redis_retry,
            prefix=config.redis_prefix,
        )
        state.loader, state.registry, state.store = loader, reg, st
        up = await st.ping()
        store_up[0] = up
        metrics.store_up.set(1 if up else 0)
        if not up:
            log.warning("session store %s unreachable at start: degraded mode", st.kind)
        else:
            try:  # follow a model folder another replica's admin already published
                await asyncio.to_thread(reg.poll, await st.get_control())
            except StoreUnavailable:
                log.warning("session store %s unreachable at start: degraded mode", st.kind)
        _freeze_heap()
        if config.reload_interval > 0:
            state.watcher = asyncio.create_task(watch())
        log.info("serving %d variant(s) with the %s store", len(reg.variants), st.kind)
        try:
            yield
        finally:
            if state.watcher is not None:
                state.watcher.cancel()
            await st.close()

    def on_reload(name: str, outcome: str, loaded: LoadedModel | None, error: str | None) -> None:
        metrics.reloads.labels(name, outcome).inc()
        if loaded is not None:
            metrics.set_model(name, loaded.name, loaded.version)
            if state.registry is not None:  # a hot reload, not the start-up load
                _freeze_heap()

    async def watch() -> None:
        """Poll for replaced model folders and for paths published by other replicas."""
        while True:
            await asyncio.sleep(config.reload_interval)
            control: dict[str, str] | None
            try:
                control = await store().get_control()
                store_answered()
            except StoreUnavailable:
                control = None
            try:
                await asyncio.to_thread(registry().poll, control)
            except Exception:
                log.exception("model watcher failed; it keeps running")

    app = FastAPI(
        title="sessionrec",
        version=__version__,
        description=(
            "Real-time session-based recommendations: record clicks, get the next items. "
            "Errors are JSON objects {error, message, details?} with a 4xx status."
        ),
        lifespan=lifespan,
    )
    app.state.service = state
    app.add_middleware(GuardMiddleware, max_body=config.max_body_bytes, metrics=metrics)

    # ------------------------------------------------------------ errors
    @app.exception_handler(ApiError)
    async def on_api_error(request: Request, exc: ApiError) -> Response:
        return _error(exc.status, exc.code, exc.message, exc.details, exc.headers)

    @app.exception_handler(RequestValidationError)
    async def on_invalid(request: Request, exc: RequestValidationError) -> Response:
        details = [
            {
                "loc": [str(part) for part in e.get("loc", ())],
                "msg": str(e.get("msg", "")),
                "type": str(e.get("type", "")),
            }
            for e in exc.errors()[:20]
        ]
        message = "; ".join(f"{'.'.join(d['loc']) or 'request'}: {d['msg']}" for d in details[:5])
        return _error(422, "invalid_request", message or "invalid request", details)

    @app.exception_handler(StarletteHTTPException)
    async def on_http(request: Request, exc: StarletteHTTPException) -> Response:
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        headers = dict(exc.headers) if exc.headers else None
        return _error(exc.status_code, code, str(exc.detail), headers=headers)

    @app.exception_handler(Exception)
    async def on_bug(request: Request, exc: Exception) -> Response:
        log.exception("internal error on %s %s", request.method, request.url.path)
        return _error(500, "internal_error", "internal error; the service log has details")

    # ------------------------------------------------------------ sessions
    # The three hot endpoints parse and validate their input themselves, with the same
    # pydantic models that document them (``openapi_extra``): FastAPI's per-parameter
    # dependency machinery cost more CPU than scoring the session (about 0.5 ms of ~1 ms
    # per request), and one ``model_validate``/``model_validate_json`` call per part does
    # the same checks in pydantic's compiled core. Errors are the same 422 JSON objects.
    session_id_rule = re.compile(_SESSION_ID)
    session_path = {
        "name": "session_id",
        "in": "path",
        "required": True,
        "description": "Any id of the visitor's session (printable ASCII, no '/').",
        "schema": {
            "type": "string",
            "minLength": 1,
            "maxLength": config.max_id_length,
            "pattern": _SESSION_ID,
        },
    }

    def check_session_id(session_id: str) -> str:
        if not 0 < len(session_id) <= config.max_id_length or not session_id_rule.match(session_id):
            raise RequestValidationError(
                [
                    {
                        "loc": ("path", "session_id"),
                        "msg": f"must be 1-{config.max_id_length} printable ASCII characters "
                        "without space or '/'",
                        "type": "string_pattern_mismatch",
                    }
                ]
            )
        return session_id

    def parse_query(model: type[QueryModel], request: Request) -> QueryModel:
        params = request.query_params
        data: dict[str, Any] = {}
        for key in params:
            if key in _LIST_PARAMETERS:
                data[key] = params.getlist(key)
            elif key in model.model_fields:
                data[key] = params[key]
        try:
            return model.model_validate(data)
        except ValidationError as exc:
            raise RequestValidationError(_located("query", exc)) from None

    async def parse_body(model: type[BodyModel], request: Request) -> BodyModel:
        try:
            return model.model_validate_json(await request.body())
        except ValidationError as exc:
            raise RequestValidationError(_located("body", exc)) from None

    @app.post(
        "/v1/sessions/{session_id}/events",
        response_model=RecommendationOut | EventAck,
        responses=errors,
        tags=["sessions"],
        summary="Record a click; answer with recommendations in the same round trip",
        openapi_extra={
            "parameters": [session_path, *_query_parameters(EventQuery)],
            "requestBody": _request_body(EventIn),
        },
    )
    async def post_event(request: Request) -> Response:
        session_id = check_session_id(request.path_params["session_id"])
        query = parse_query(EventQuery, request)
        event = await parse_body(EventIn, request)
        opts = query.options()
        variant = pick(request, session_id, opts.variant)
        loaded = variant.serving()
        click = Event(str(event.item_id), event.event_type, event.timestamp)
        degraded = False
        try:
            events = await store().append(session_id, click)
            store_answered()
        except StoreUnavailable:
            store_failed("events")
            events, degraded = [click], True
        if not query.recommend:
            return _json(
                {"session_id": session_id, "event_count": len(events), "degraded": degraded}
            )
        return await answer_session(variant, loaded, session_id, events, opts, degraded)

    @app.get(
        "/v1/sessions/{session_id}/recommendations",
        response_model=RecommendationOut,
        responses=errors,
        tags=["sessions"],
        summary="Recommendations for a live session",
        openapi_extra={"parameters": [session_path, *_query_parameters(SessionQuery)]},
    )
    async def get_recommendations(request: Request) -> Response:
        session_id = check_session_id(request.path_params["session_id"])
        opts = parse_query(SessionQuery, request).options()
        variant = pick(request, session_id, opts.variant)
        loaded = variant.serving()
        degraded = False
        try:
            events = await store().get(session_id)
            store_answered()
        except StoreUnavailable:
            store_failed("recommendations")
            events, degraded = [], True
        return await answer_session(variant, loaded, session_id, events, opts, degraded)

    @app.post(
        "/v1/recommendations",
        response_model=RecommendationOut,
        responses=errors,
        tags=["recommendations"],
        summary="Stateless recommendations for items sent by the caller",
        openapi_extra={"requestBody": _request_body(RecommendIn)},
    )
    async def post_recommendations(request: Request) -> Response:
        body = await parse_body(RecommendIn, request)
        variant = pick(request, body.session_id, body.variant)
        loaded = variant.serving()
        opts = Options(
            k=body.k,
            exclude_seen=config.exclude_seen if body.exclude_seen is None else body.exclude_seen,
            fallback=body.fallback,
            filters=Filters(
                include_categories=frozenset(body.categories),
                exclude_categories=frozenset(body.exclude_categories),
                available_only=body.available_only,
            ),
            exclude_items=tuple(str(i) for i in body.exclude_items),
            details=body.details,
            variant=body.variant,
            explain=body.explain,
        )
        items = [str(i) for i in body.items]
        return await answer(variant, loaded, items, body.timestamps, opts, False)

    # ------------------------------------------------------------ feedback
    @app.post(
        "/v1/feedback",
        responses={**errors, 404: {"model": ErrorOut, "description": "Unknown recommendation"}},
        tags=["feedback"],
        summary="A click on a recommended item (counted once per answer and item)",
    )
    async def post_feedback(request: Request, body: FeedbackIn) -> Response:
        try:
            result = await store().feedback(body.recommendation_id, str(body.item_id))
        except StoreUnavailable:
            store_failed("feedback")
            metrics.feedback.labels("unknown", "store_unavailable").inc()
            return _json(
                {
                    "recommendation_id": body.recommendation_id,
                    "item_id": str(body.item_id),
                    "counted": False,
                    "status": "store_unavailable",
                    "degraded": True,
                }
            )
        variant = result.variant or "unknown"
        request.state.variant = variant
        metrics.feedback.labels(variant, result.status).inc()
        if result.status == "unknown_recommendation":
            raise ApiError(
                404,
                "unknown_recommendation",
                f"no recommendation {body.recommendation_id!r} (unknown or expired)",
            )
        if result.status == "not_recommended":
            raise ApiError(
                422,
                "not_recommended",
                f"item {body.item_id!r} was not in recommendation {body.recommendation_id!r}",
            )
        return _json(
            {
                "recommendation_id": body.recommendation_id,
                "item_id": str(body.item_id),
                "variant": variant,
                "counted": result.status == "counted",
                "status": result.status,
                "degraded": False,
            }
        )

    # ------------------------------------------------------------ info
    @app.get("/healthz", tags=["ops"], summary="Liveness: the process answers")
    async def healthz() -> Response:
        return _json({"status": "ok"})

    @app.get("/readyz", tags=["ops"], summary="Readiness: models loaded; store state")
    async def readyz() -> Response:
        reg = state.registry
        if reg is None or any(v.current is None for v in reg.variants.values()):
            return _json({"status": "loading"}, 503)
        up = await store().ping()
        if up:
            store_answered()
        else:
            store_failed("readyz")
        # A replica without its store still answers (degraded), so it stays ready.
        return _json(
            {
                "status": "ready" if up else "degraded",
                "store": {"kind": store().kind, "available": up},
                "variants": {v.name: v.serving().version for v in reg.variants.values()},
            }
        )

    @app.get("/metrics", tags=["ops"], summary="Prometheus metrics")
    async def prometheus() -> Response:
        return Response(metrics.render(), media_type=metrics.content_type)

    @app.get("/v1/info", tags=["ops"], summary="Variants, models, limits and defaults")
    async def info() -> Response:
        loader = state.loader
        st = store()
        return _json(
            {
                "service": "sessionrec",
                "version": __version__,
                "variants": registry().describe(),
                "store": {"kind": st.kind, "available": st.available},
                "rules_active": bool(loader and loader.rules_active),
                "defaults": {"k": config.default_k, "exclude_seen": config.exclude_seen},
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

    # ------------------------------------------------------------ admin
    bearer = HTTPBearer(auto_error=False, description="The token in $" + config.admin_token_env)

    async def require_admin(
        credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
    ) -> None:
        token = config.admin_token()
        if token is None:
            raise ApiError(
                403, "admin_disabled", f"admin API disabled: set {config.admin_token_env}"
            )
        if credentials is None:
            raise ApiError(
                401,
                "unauthorized",
                "admin endpoints need 'Authorization: Bearer <token>'",
                headers={"WWW-Authenticate": "Bearer"},
            )
        if not hmac.compare_digest(credentials.credentials.encode(), token.encode()):
            raise ApiError(403, "forbidden", "invalid admin token")

    admin = [Depends(require_admin)]
    admin_errors: dict[int | str, dict[str, Any]] = {
        401: {"model": ErrorOut, "description": "No token"},
        403: {"model": ErrorOut, "description": "Wrong token or admin disabled"},
    }

    @app.get("/v1/admin/models", dependencies=admin, responses=admin_errors, tags=["admin"])
    async def admin_models() -> Response:
        out = []
        for variant in registry().variants.values():
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
        return _json({"variants": out})

    @app.post(
        "/v1/admin/models/{variant}/reload",
        dependencies=admin,
        responses={
            **admin_errors,
            404: {"model": ErrorOut, "description": "Unknown variant"},
            422: {"model": ErrorOut, "description": "Broken artifact; old model serves"},
        },
        tags=["admin"],
        summary="Load a model folder in the background and swap it in atomically",
    )
    async def admin_reload(
        variant: Annotated[str, Path(pattern=_VARIANT)],
        body: Annotated[ReloadIn | None, Body()] = None,
    ) -> Response:
        reg = registry()
        if variant not in reg.variants:
            raise ApiError(404, "unknown_variant", f"unknown variant {variant!r}")
        previous = reg.variants[variant].current
        path = body.path if body is not None else None
        try:
            loaded = await asyncio.to_thread(reg.reload, variant, path)
        except ModelError as exc:
            raise ApiError(
                422,
                "model_rejected",
                f"{exc}; the previous model keeps serving",
            ) from None
        published = True
        try:
            await store().set_control(CONTROL_PREFIX + variant, loaded.path)
        except StoreUnavailable:
            published = False
            log.warning("reload of %s not published: store unavailable", variant)
        return _json(
            {
                "variant": variant,
                "model": loaded.name,
                "model_version": loaded.version,
                "previous_version": previous.version if previous else None,
                "path": loaded.path,
                "published": published,
            }
        )

    @app.get("/v1/admin/feedback", dependencies=admin, responses=admin_errors, tags=["admin"])
    async def admin_feedback() -> Response:
        degraded = False
        try:
            counts = await store().counts()
        except StoreUnavailable:
            counts, degraded = {}, True
        out = {
            name: {"impressions": c.impressions, "clicks": c.clicks, "ctr": c.ctr}
            for name, c in sorted(counts.items())
        }
        for name in registry().variants:
            out.setdefault(name, {"impressions": 0, "clicks": 0, "ctr": 0.0})
        return _json({"variants": out, "degraded": degraded})

    add_demo_page(app, config)  # the storefront page: /demo (see demo_page.py)
    return app


def _freeze_heap() -> None:
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

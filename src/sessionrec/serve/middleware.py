"""The guard middleware: body-size limit plus latency/request/error metrics.

It is one pure ASGI layer: Starlette's ``BaseHTTPMiddleware`` would add a task and a
stream per request.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from fastapi.responses import Response

from sessionrec.serve.errors import error_response
from sessionrec.serve.metrics import ServiceMetrics

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
                receive = replay_body(body, receive)
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
                    return b"", error_response(400, "bad_request", "invalid Content-Length header")
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
        return error_response(
            413,
            "body_too_large",
            f"request body exceeds {self.max_body} bytes",
            headers={"Connection": "close"},
        )


def replay_body(body: bytes, receive: Receive) -> Receive:
    """A ``receive`` that hands the app the body already read, then the rest of the stream."""
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay

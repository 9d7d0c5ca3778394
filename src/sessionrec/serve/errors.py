"""JSON answers and JSON errors: every error the service sends is ``{"error", "message",
"details"?}`` with a 4xx status (a 5xx only for a bug, which is logged).

Answers are serialised once with orjson into a ``Response``; the response models in
:mod:`sessionrec.serve.schemas` exist for the OpenAPI schema, not for per-request
re-validation.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from starlette.exceptions import HTTPException as StarletteHTTPException

try:
    import orjson

    def dumps(payload: Any) -> bytes:
        """``payload`` as compact JSON bytes."""
        return orjson.dumps(payload)

except ImportError:  # pragma: no cover - orjson is in the serve extra
    import json

    def dumps(payload: Any) -> bytes:
        """``payload`` as compact JSON bytes."""
        return json.dumps(payload, separators=(",", ":")).encode()


log = logging.getLogger("sessionrec.serve")


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


def json_response(
    payload: Any, status: int = 200, headers: dict[str, str] | None = None
) -> Response:
    """``payload`` serialised once, as an ``application/json`` response."""
    return Response(
        dumps(payload), status_code=status, media_type="application/json", headers=headers
    )


def error_response(
    status: int,
    code: str,
    message: str,
    details: Any = None,
    headers: dict[str, str] | None = None,
) -> Response:
    """The JSON error object ``{"error", "message", "details"?}`` with ``status``."""
    body: dict[str, Any] = {"error": code, "message": message}
    if details is not None:
        body["details"] = details
    return json_response(body, status, headers)


async def on_api_error(request: Request, exc: Exception) -> Response:
    """An :class:`ApiError` raised by a handler."""
    assert isinstance(exc, ApiError)
    return error_response(exc.status, exc.code, exc.message, exc.details, exc.headers)


async def on_invalid_request(request: Request, exc: Exception) -> Response:
    """Invalid input: a 422 with the first 20 problems in ``details``, five in ``message``."""
    assert isinstance(exc, RequestValidationError)
    details = [
        {
            "loc": [str(part) for part in e.get("loc", ())],
            "msg": str(e.get("msg", "")),
            "type": str(e.get("type", "")),
        }
        for e in exc.errors()[:20]
    ]
    message = "; ".join(f"{'.'.join(d['loc']) or 'request'}: {d['msg']}" for d in details[:5])
    return error_response(422, "invalid_request", message or "invalid request", details)


async def on_http_error(request: Request, exc: Exception) -> Response:
    """Starlette's own errors (unknown path, wrong method) in the service's JSON shape."""
    assert isinstance(exc, StarletteHTTPException)
    code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
    headers = dict(exc.headers) if exc.headers else None
    return error_response(exc.status_code, code, str(exc.detail), headers=headers)


async def on_bug(request: Request, exc: Exception) -> Response:
    """Anything else is a bug: logged with its traceback, answered without one."""
    # The route's template unless debugging: a path holds a session id (docs/privacy.md).
    debug = log.isEnabledFor(logging.DEBUG)
    route = getattr(request.scope.get("route"), "path", "unmatched")
    log.exception("internal error on %s %s", request.method, request.url.path if debug else route)
    return error_response(500, "internal_error", "internal error; the service log has details")


def add_error_handlers(app: FastAPI) -> None:
    """Answer every error of ``app`` as a JSON error object."""
    app.add_exception_handler(ApiError, on_api_error)
    app.add_exception_handler(RequestValidationError, on_invalid_request)
    app.add_exception_handler(StarletteHTTPException, on_http_error)
    app.add_exception_handler(Exception, on_bug)

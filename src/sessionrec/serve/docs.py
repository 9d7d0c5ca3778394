"""The API documentation pages, ``/docs`` (Swagger UI) and ``/redoc``, served offline.

FastAPI's own pages load Swagger UI and ReDoc from a CDN (and a favicon from FastAPI's
site), so on a machine without internet they are blank. Here the same pages are built with
FastAPI's ``get_swagger_ui_html`` / ``get_redoc_html`` pointing at assets the service
serves itself, from ``/docs/static/``. The assets come from the ``fastapi-offline``
package (a dependency of the ``serve`` extra, pinned: its version fixes the Swagger UI and
ReDoc versions); nothing is vendored into this repository. Only a fixed list of files is
served, so no request path reaches the disk.
"""

from __future__ import annotations

import functools
from importlib import resources

from fastapi import APIRouter, Request
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import HTMLResponse, Response

from sessionrec.serve.errors import ApiError

ASSETS_PACKAGE = "fastapi_offline"
"""The installed package whose ``static/`` folder ships the Swagger UI and ReDoc builds."""

STATIC_PREFIX = "/docs/static/"

ASSETS: dict[str, str] = {
    "swagger-ui-bundle.js": "text/javascript; charset=utf-8",
    "swagger-ui.css": "text/css; charset=utf-8",
    "redoc.standalone.js": "text/javascript; charset=utf-8",
    "favicon.png": "image/png",
}
"""The files under ``/docs/static/`` and their content types."""

SWAGGER_UI_PARAMETERS = {"validatorUrl": None}
"""Swagger UI would send the schema to an online validator for its badge: switched off."""

REDOC_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; font-src 'self' data:; connect-src 'self'; worker-src blob:; "
    "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
"""ReDoc's bundle shows Redocly's logo from their CDN (hidden when it fails to load): this
policy makes the browser refuse it, so the page asks no other host for anything."""

_HEADERS = {"Cache-Control": "public, max-age=3600", "X-Content-Type-Options": "nosniff"}


@functools.cache
def asset(name: str) -> bytes:
    """One asset file, read once: package data never changes while the service runs."""
    return (resources.files(ASSETS_PACKAGE) / "static" / name).read_bytes()


def build_router(title: str, openapi_url: str) -> APIRouter:
    """``/docs``, ``/redoc`` and ``/docs/static/{name}`` (left out of the schema)."""

    def url(request: Request, path: str) -> str:
        return str(request.scope.get("root_path", "")) + path

    # (Comments, not docstrings: the routes are out of the schema anyway.)
    async def swagger_ui(request: Request) -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url=url(request, openapi_url),
            title=f"{title} - Swagger UI",
            swagger_js_url=url(request, STATIC_PREFIX + "swagger-ui-bundle.js"),
            swagger_css_url=url(request, STATIC_PREFIX + "swagger-ui.css"),
            swagger_favicon_url=url(request, STATIC_PREFIX + "favicon.png"),
            swagger_ui_parameters=SWAGGER_UI_PARAMETERS,
        )

    async def redoc(request: Request) -> HTMLResponse:
        page = get_redoc_html(
            openapi_url=url(request, openapi_url),
            title=f"{title} - ReDoc",
            redoc_js_url=url(request, STATIC_PREFIX + "redoc.standalone.js"),
            redoc_favicon_url=url(request, STATIC_PREFIX + "favicon.png"),
            with_google_fonts=False,
        )
        page.headers["Content-Security-Policy"] = REDOC_POLICY
        return page

    async def static(name: str) -> Response:
        if name not in ASSETS:
            raise ApiError(404, "not_found", f"no documentation file {name!r}")
        return Response(asset(name), media_type=ASSETS[name], headers=_HEADERS)

    router = APIRouter(include_in_schema=False)
    router.add_api_route("/docs", swagger_ui, methods=["GET"])
    router.add_api_route("/redoc", redoc, methods=["GET"])
    router.add_api_route(STATIC_PREFIX + "{name}", static, methods=["GET"])
    return router

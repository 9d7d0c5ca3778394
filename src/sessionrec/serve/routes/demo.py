"""The demo storefront: ``GET /demo``, its static files and a read-only catalog listing.

The page (``static/demo.html``, ``demo.css``, ``demo.js``) is plain HTML, CSS and
JavaScript, shipped as package data and served by the service itself: no build step, no
CDN, nothing fetched from another host (the Content-Security-Policy header makes the
browser refuse any such request). It talks only to the public API: ``GET /v1/info`` for the
A/B variants, ``POST /v1/sessions/{id}/events`` for each click, and
``GET /demo/catalog.json`` for the products to show.

``/demo/catalog.json`` exists only when the service has a catalog (``--catalog``): it lists
the categories in catalog order, each with its best-selling items first (the catalog's
``popularity`` or ``popularity_rank`` column when it has one, else row order). Without a
catalog the page still loads and says what is missing.

The routes are left out of the OpenAPI schema: they are a demo, not part of the API
contract that clients (and the schema fuzz tests) rely on.
"""

from __future__ import annotations

import functools
import logging
from importlib import resources
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query
from fastapi.responses import Response

from sessionrec.serve.catalog import Catalog
from sessionrec.serve.deps import ServiceState, service
from sessionrec.serve.errors import ApiError, json_response

log = logging.getLogger("sessionrec.serve")

STATIC_FILES: dict[str, str] = {
    "demo.css": "text/css; charset=utf-8",
    "demo.js": "text/javascript; charset=utf-8",
}
"""The files under ``/demo/static/``: a fixed list, so no request path reaches the disk."""

NAME_COLUMNS = ("name", "title")
"""Catalog attributes used as a product's display name (else its id)."""
GROUP_COLUMNS = ("intent", "department")
"""Catalog attributes that group categories on the page, when the catalog has one."""
MAX_PER_CATEGORY = 200

# Only this service's own origin: the page must work offline and leak nothing.
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "no-cache",
}


@functools.cache
def static_file(name: str) -> bytes:
    """A file of ``static/``, read once: it is package data and never changes while serving."""
    return (resources.files("sessionrec.serve") / "static" / name).read_bytes()


def catalog_listing(catalog: Catalog) -> list[dict[str, Any]]:
    """Categories in order of first appearance, each with every item, best sellers first."""
    attributes = catalog.attribute_columns
    names = next((attributes[c] for c in NAME_COLUMNS if c in attributes), None)
    groups = next((attributes[c] for c in GROUP_COLUMNS if c in attributes), None)
    prices = attributes.get("price")
    rows: list[int] = list(range(len(catalog)))
    if catalog.popularity is not None:
        popularity = catalog.popularity
        rows = sorted(rows, key=lambda r: -float(popularity[r]))  # stable: ties keep row order
    by_code: dict[int, list[int]] = {}
    first_row: dict[int, int] = {}
    for row in rows:
        code = int(catalog.category[row])
        by_code.setdefault(code, []).append(row)
        first_row[code] = min(first_row.get(code, row), row)
    listing = []
    for code in sorted(by_code, key=first_row.__getitem__):
        items = []
        for row in by_code[code]:
            item: dict[str, Any] = {
                "item_id": catalog.ids[row],
                "name": str(names[row]) if names and names[row] is not None else catalog.ids[row],
                "available": bool(catalog.available[row]),
            }
            if prices is not None and isinstance(prices[row], (int, float)):
                item["price"] = float(prices[row])
            items.append(item)
        group = groups[first_row[code]] if groups is not None else None
        listing.append(
            {
                "name": catalog.category_names[code] if code >= 0 else None,
                "group": None if group is None else str(group),
                "count": len(items),
                "items": items,
            }
        )
    return listing


# The handlers carry comments, not docstrings (the routes are out of the schema anyway).
async def demo_page() -> Response:
    return Response(
        static_file("demo.html"), media_type="text/html; charset=utf-8", headers=_HEADERS
    )


async def demo_static(name: str) -> Response:
    if name not in STATIC_FILES:
        raise ApiError(404, "not_found", f"no demo file {name!r}")
    return Response(static_file(name), media_type=STATIC_FILES[name], headers=_HEADERS)


# The catalog's categories, best sellers first; the listing is built on first use, after
# the lifespan has loaded the catalog.
async def demo_catalog(
    state: Annotated[ServiceState, Depends(service)],
    per_category: Annotated[int, Query(ge=1, le=MAX_PER_CATEGORY)] = 12,
) -> Response:
    if not state.demo_catalog:
        loader = state.loader
        if loader is None or loader.catalog is None:  # pragma: no cover - lifespan ran
            raise ApiError(503, "loading", "the catalog is not loaded yet")
        state.demo_catalog = catalog_listing(loader.catalog)
    categories = [
        {**category, "items": category["items"][:per_category]} for category in state.demo_catalog
    ]
    total = sum(category["count"] for category in categories)
    return json_response(
        {"items": total, "categories": categories}, headers={"Cache-Control": "no-cache"}
    )


def build_router(has_catalog: bool) -> APIRouter:
    """``/demo``, ``/demo/static/*`` and (with a catalog) ``/demo/catalog.json``."""
    router = APIRouter(include_in_schema=False)
    router.add_api_route("/demo/", demo_page, methods=["GET"])
    router.add_api_route("/demo", demo_page, methods=["GET"])
    router.add_api_route("/demo/static/{name}", demo_static, methods=["GET"])
    if has_catalog:
        router.add_api_route("/demo/catalog.json", demo_catalog, methods=["GET"])
    return router

"""Input parsing of the three hot endpoints, and the OpenAPI text that documents it.

The hot endpoints parse and validate their input themselves, with the same pydantic
models that document them (``openapi_extra``): FastAPI's per-parameter dependency
machinery cost more CPU than scoring the session (about 0.5 ms of ~1 ms per request), and
one ``model_validate``/``model_validate_json`` call per part does the same checks in
pydantic's compiled core. Errors are the same 422 JSON objects FastAPI would give.
"""

from __future__ import annotations

import re
from typing import Any, TypeVar

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ValidationError

from sessionrec.serve.schemas import SESSION_ID

LIST_PARAMETERS = frozenset({"category", "exclude_category", "exclude_item"})
"""Query parameters given once per value (``?category=a&category=b``)."""

QueryModel = TypeVar("QueryModel", bound=BaseModel)
BodyModel = TypeVar("BodyModel", bound=BaseModel)

_SESSION_ID_RULE = re.compile(SESSION_ID)


def located(where: str, exc: ValidationError) -> list[dict[str, Any]]:
    """pydantic errors with their location prefixed, as FastAPI reports them."""
    return [
        {"loc": (where, *e["loc"]), "msg": e["msg"], "type": e["type"]}
        for e in exc.errors(include_url=False, include_context=False, include_input=False)
    ]


def check_session_id(session_id: str, max_length: int) -> str:
    """``session_id`` if it is 1 to ``max_length`` printable ASCII characters, else a 422."""
    if not 0 < len(session_id) <= max_length or not _SESSION_ID_RULE.match(session_id):
        raise RequestValidationError(
            [
                {
                    "loc": ("path", "session_id"),
                    "msg": f"must be 1-{max_length} printable ASCII characters "
                    "without space or '/'",
                    "type": "string_pattern_mismatch",
                }
            ]
        )
    return session_id


def parse_query(model: type[QueryModel], request: Request) -> QueryModel:
    """The request's query parameters validated by ``model`` (unknown ones ignored)."""
    params = request.query_params
    data: dict[str, Any] = {}
    for key in params:
        if key in LIST_PARAMETERS:
            data[key] = params.getlist(key)
        elif key in model.model_fields:
            data[key] = params[key]
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise RequestValidationError(located("query", exc)) from None


async def parse_body(model: type[BodyModel], request: Request) -> BodyModel:
    """The request's JSON body validated by ``model``."""
    try:
        return model.model_validate_json(await request.body())
    except ValidationError as exc:
        raise RequestValidationError(located("body", exc)) from None


# ------------------------------------------------------------------ OpenAPI
def session_path_parameter(max_id_length: int) -> dict[str, Any]:
    """The OpenAPI description of the ``session_id`` path parameter."""
    return {
        "name": "session_id",
        "in": "path",
        "required": True,
        "description": "Any id of the visitor's session (printable ASCII, no '/').",
        "schema": {
            "type": "string",
            "minLength": 1,
            "maxLength": max_id_length,
            "pattern": SESSION_ID,
        },
    }


def query_parameters(model: type[BaseModel]) -> list[dict[str, Any]]:
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


def request_body(model: type[BaseModel]) -> dict[str, Any]:
    """The OpenAPI request body of a JSON body validated by ``model``."""
    return {
        "required": True,
        "content": {"application/json": {"schema": model.model_json_schema()}},
    }

"""Reading the per-session KPI summaries (``{prefix}k:{session_id}`` hashes) out of Redis.

Only admin requests and ``sessionrec abtest report --store`` read them, never a visitor's
request: by ``SCAN`` (a cursor, :data:`SCAN_COUNT` keys a step, so Redis never blocks on a
``KEYS``), each step's hashes in one pipeline, and at most ``limit`` of them.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from typing import Any

from sessionrec.serve.store.base import SessionKpis

SCAN_COUNT = 500
"""Keys asked for per ``SCAN`` step."""


def summary_keys(prefix: str) -> str:
    """What the summary keys of a service with key prefix ``prefix`` start with."""
    return f"{prefix}k:"


Call = Callable[[Callable[[], Awaitable[Any]]], Awaitable[Any]]
"""Runs one round trip under the store's timeout and circuit breaker (``RedisStore._call``)."""


async def read_summaries(client: Any, key_prefix: str, limit: int, call: Call) -> list[SessionKpis]:
    """At most ``limit`` summaries of the keys ``{key_prefix}{session_id}``."""
    out: list[SessionKpis] = []
    cursor: int = 0
    pattern = key_prefix + "*"
    while len(out) < limit:
        step = functools.partial(client.scan, cursor, match=pattern, count=SCAN_COUNT)
        cursor, keys = await call(step)
        keys = keys[: limit - len(out)]
        if keys:
            rows = await call(functools.partial(read_hashes, client, keys))
            for key, row in zip(keys, rows, strict=True):
                fields = {text(k): text(v) for k, v in row.items()}
                if "variant" in fields:  # not expired between SCAN and HGETALL
                    out.append(summary(text(key)[len(key_prefix) :], fields))
        if int(cursor) == 0:
            break
    return out


async def read_hashes(client: Any, keys: list[Any]) -> list[dict[Any, Any]]:
    """Every hash of ``keys``, in one pipeline."""
    async with client.pipeline(transaction=False) as pipe:
        for key in keys:
            pipe.hgetall(key)
        return list(await pipe.execute())


def text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def summary(session_id: str, fields: dict[str, str]) -> SessionKpis:
    """A session's summary from its hash (the fields the RECORD/FEEDBACK/CONVERT scripts write;
    ``first_seen`` is kept in milliseconds)."""
    return SessionKpis(
        session_id=session_id,
        variant=fields["variant"],
        impressions=int(fields.get("impressions", 0)),
        clicks=int(fields.get("clicks", 0)),
        carts=int(fields.get("carts", 0)),
        purchases=int(fields.get("purchases", 0)),
        revenue=float(fields.get("revenue", 0.0)),
        first_seen=int(fields.get("first_seen", 0)) / 1000,
    )

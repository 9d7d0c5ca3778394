"""Where the service keeps live sessions, issued recommendations and A/B counters.

One asynchronous interface, :class:`SessionStore`, two implementations:

- :class:`MemoryStore`: a per-process LRU of sessions with an idle timeout and a cap on the
  events kept per session. The embedded default: no dependency, sub-microsecond, but each
  worker process has its own sessions (use ``--workers 1`` with it, or Redis).
- :class:`RedisStore`: a real Redis server, so that several processes or replicas share one
  view of a visitor's session, of feedback and of the variant counters. Clicks it cannot
  write while Redis is down wait in a bounded per-worker buffer and are written back, in
  order and once each, when Redis answers again (:mod:`~sessionrec.serve.store.buffer`).

Both erase a session on request (:meth:`SessionStore.delete_session`: its events and the
recommendation records answered to it) and keep nothing longer than their idle timeouts;
``docs/privacy.md`` lists what is kept where.

Everything that several replicas must agree on lives here (sessions, recommendation ids for
feedback, impression and click counters, the model folder an admin asked for), so a service
process keeps no state that another one would need.

Failure model: when Redis is unreachable or slow the store raises :class:`StoreUnavailable`
within ``timeout`` seconds and then refuses immediately for ``retry_after`` seconds (a
circuit breaker), so a dead Redis costs requests nothing while the service answers in
degraded mode from the request itself. The first call after that window probes Redis again;
when it answers, normal service resumes by itself.
"""

from __future__ import annotations

from sessionrec._errors import ConfigError
from sessionrec.serve.store.base import (
    Conversion,
    Event,
    FeedbackResult,
    FeedbackStatus,
    FeedEntry,
    SessionKpis,
    SessionStore,
    StoreUnavailable,
    VariantCounts,
    VariantKpis,
)
from sessionrec.serve.store.buffer import BufferObserver, ClickBuffer
from sessionrec.serve.store.memory import MemoryStore
from sessionrec.serve.store.redis_store import FLUSH_BATCH, RedisStore

__all__ = [
    "FLUSH_BATCH",
    "BufferObserver",
    "ClickBuffer",
    "Conversion",
    "Event",
    "FeedEntry",
    "FeedbackResult",
    "FeedbackStatus",
    "MemoryStore",
    "RedisStore",
    "SessionKpis",
    "SessionStore",
    "StoreUnavailable",
    "VariantCounts",
    "VariantKpis",
    "open_store",
]


def open_store(
    url: str,
    *,
    ttl: float,
    max_sessions: int,
    max_events: int,
    recommendation_ttl: float,
    timeout: float,
    retry_after: float,
    prefix: str,
    outage_buffer: int = 10_000,
    observer: BufferObserver | None = None,
    attribution_window: float = 3600.0,
    kpi_retention: float = 7 * 86400.0,
    live_feed: int = 0,
) -> SessionStore:
    """The store for ``--store``: ``memory`` or a Redis URL (``outage_buffer``: most clicks a
    worker keeps while Redis is down; ``observer`` is told about that buffer;
    ``attribution_window``: seconds after an answer in which a cart or purchase of an item
    it showed counts for it; ``kpi_retention``: seconds per-session KPI summaries are kept;
    ``live_feed``: finished sessions the live-learning feed keeps, 0 for no feed)."""
    if url == "memory":
        return MemoryStore(
            ttl=ttl,
            max_sessions=max_sessions,
            max_events=max_events,
            recommendation_ttl=recommendation_ttl,
            attribution_window=attribution_window,
            kpi_retention=kpi_retention,
            live_feed=live_feed,
        )
    if url.startswith(("redis://", "rediss://", "unix://")):
        return RedisStore(
            url,
            ttl=ttl,
            max_events=max_events,
            recommendation_ttl=recommendation_ttl,
            timeout=timeout,
            retry_after=retry_after,
            prefix=prefix,
            buffer_capacity=outage_buffer,
            observer=observer,
            attribution_window=attribution_window,
            kpi_retention=kpi_retention,
            live_feed=live_feed,
        )
    raise ConfigError(f"--store must be 'memory' or a redis:// URL, got {url!r}")

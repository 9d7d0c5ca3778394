"""The shared store: sessions, recommendation records and counters in a real Redis server."""

from __future__ import annotations

import asyncio
import functools
import hashlib
import logging
import os
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar
from urllib.parse import urlsplit, urlunsplit

from sessionrec._errors import ConfigError
from sessionrec.serve.store.base import (
    KPI_COUNTS,
    SEP,
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
from sessionrec.serve.store.batching import CommandBatcher
from sessionrec.serve.store.buffer import Buffered, BufferObserver, ClickBuffer
from sessionrec.serve.store.redis_feed import FeedKeys, RedisFeed
from sessionrec.serve.store.redis_kpis import read_summaries, summary_keys, text
from sessionrec.serve.store.scripts import (
    APPEND,
    CLAIM,
    CONVERT,
    DELETE,
    FEEDBACK,
    GET,
    RECORD,
    REPLAY,
)

log = logging.getLogger("sessionrec.serve.store")

T = TypeVar("T")

FLUSH_BATCH = 512
"""Most recommendation records written by one pipeline."""

REPLAY_PARALLEL = 16
"""Sessions written back at once after an outage."""


_FEEDBACK_CODES: dict[int, FeedbackStatus] = {
    1: "counted",
    -1: "unknown_recommendation",
    -2: "not_recommended",
    -3: "duplicate",
}


@functools.cache
def script_sha(script: str) -> str:
    """The name Redis knows a loaded script by (``EVALSHA``)."""
    return hashlib.sha1(script.encode(), usedforsecurity=False).hexdigest()


def redacted(url: str) -> str:
    """``url`` without its password, for logs."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    netloc = f"{parts.username or ''}:***@{host}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))


class RedisStore(SessionStore):
    """Sessions in a real Redis server, shared by every process that points at it.

    Layout (``prefix`` defaults to ``sessionrec:``):

    - ``{prefix}s:{session_id}``: a list of encoded events; appended, trimmed to
      ``max_events``, given a fresh idle timeout and read back by one Lua script (atomic,
      one round trip), so two replicas appending to one session each see a consistent
      prefix of the same sequence.
    - ``{prefix}r:{recommendation_id}``: a hash (variant, items shown, items clicked) that
      expires after ``recommendation_ttl``; feedback is checked and counted by one Lua
      script, atomically. These records and the impression counters are written in
      batches, every ``flush_interval`` seconds (default 50 ms), by one script call: a
      round trip per answer would cost more CPU than computing the answer, and nobody
      clicks a recommendation 50 ms after it was shown. If Redis is down at flush time,
      the batch is dropped (logged): those answers then get no feedback.
    - ``{prefix}sr:{session_id}``: the ids of the records answered to the session (a set,
      expiring with them), so that erasing the session erases its records.
    - ``{prefix}d:{hash}``: the time a session was erased (ms), kept for ``ttl``, so that
      clicks another worker buffered before the erasure are not written back. Named by a
      hash of the session id: no key names an erased session.
    - ``{prefix}k:{session_id}``: the session's KPI summary (variant, first answer's time,
      impressions, clicks, attributed carts and purchases, revenue) for A/B statistics;
      created by its first recorded answer, counted by feedback and conversions (all in the
      scripts that already run for them), expiring ``kpi_retention`` after its last change.
    - ``{prefix}counters``: impressions, clicks, sessions, conversions and revenue per
      variant (``{variant}:{name}`` fields: bounded by the number of variants).
    - ``{prefix}control``: values every replica polls (the model folder of each variant).
    - With a live feed (``live_feed`` > 0 entries): the going sessions, their clicks waiting
      for the feed, the withheld sessions and the feed itself (see
      :mod:`~sessionrec.serve.store.redis_feed`); a click's script marks its session going
      in the same round trip. Without one, a click costs what it cost before the feed.

    Every script call goes through a :class:`~sessionrec.serve.store.batching.CommandBatcher`:
    the calls of one event-loop turn share one pipeline (one write, one read), which is
    what keeps the Redis path cheap under load. Scripts are called by their SHA1 and loaded
    again when Redis answers ``NOSCRIPT`` (after a restart).

    Clicks that Redis did not take wait in a per-worker :class:`ClickBuffer` of
    ``buffer_capacity`` clicks and are written back, in order and once each, when Redis
    answers again (see :mod:`~sessionrec.serve.store.buffer`).

    The Lua scripts build keys from ``prefix``, so all keys of one service live on one
    node: fine for a single Redis or a replicated pair, not for Redis Cluster.
    """

    kind = "redis"

    def __init__(
        self,
        url: str,
        *,
        ttl: float = 1800.0,
        max_events: int = 200,
        recommendation_ttl: float = 3600.0,
        timeout: float = 0.25,
        retry_after: float = 1.0,
        prefix: str = "sessionrec:",
        flush_interval: float = 0.05,
        buffer_capacity: int = 10_000,
        observer: BufferObserver | None = None,
        attribution_window: float = 3600.0,
        kpi_retention: float = 7 * 86400.0,
        clock: Callable[[], float] = time.time,
        live_feed: int = 0,
    ) -> None:
        try:
            import redis.asyncio as aioredis
            from redis.asyncio.retry import Retry
            from redis.backoff import NoBackoff
        except ImportError as exc:  # pragma: no cover - depends on the install
            raise ConfigError(
                "the Redis store needs the redis package: pip install 'sessionrec[serve]'"
            ) from exc
        self.url = url
        self.ttl_ms = int(ttl * 1000)
        self.max_events = int(max_events)
        self.recommendation_ttl_ms = int(recommendation_ttl * 1000)
        self.timeout = float(timeout)
        self.retry_after = float(retry_after)
        self.prefix = prefix
        self.attribution_window_ms = int(attribution_window * 1000)
        self.kpi_retention_ms = int(kpi_retention * 1000)
        self.clock = clock
        """Wall-clock seconds of answers, conversions (the attribution window) and clicks
        (how long a session of the live feed has been idle)."""
        if live_feed < 0:
            raise ConfigError("the live feed's capacity must be 0 (no feed) or positive")
        self.live_feed = int(live_feed)
        self._token = uuid.uuid4().hex  # this store object's name as a lease holder
        self._feed_keys = FeedKeys(prefix)
        # No client-side retries: a failure must reach the circuit breaker at once, not
        # after several backoffs while the visitor waits.
        self._client = aioredis.Redis.from_url(
            url,
            socket_timeout=timeout,
            socket_connect_timeout=timeout,
            retry=Retry(NoBackoff(), 0),
            max_connections=256,
        )
        self._batcher = CommandBatcher(self._client)
        self._feed = RedisFeed(
            self._feed_keys,
            self.live_feed,
            self.ttl_ms,
            clock,
            self._eval,
            self._call,
            self._client,
        )
        self._loading: dict[str, asyncio.Future[Any]] = {}
        self.flush_interval = float(flush_interval)
        self._pending: list[tuple[str, str, str, str | None, int]] = []
        self._flusher: asyncio.Task[None] | None = None
        self.dropped_records = 0
        self.buffer = ClickBuffer(buffer_capacity, observer)
        self._replayer: asyncio.Task[None] | None = None
        self._down_until = 0.0
        self._down_since: float | None = None
        self._last_error = ""

    def _key(self, kind: str, name: str) -> str:
        return f"{self.prefix}{kind}:{name}"

    def _erasure_key(self, session_id: str) -> str:
        digest = hashlib.blake2b(session_id.encode(), digest_size=16).hexdigest()
        return self._key("d", digest)

    @property
    def available(self) -> bool:
        return self._down_since is None

    @property
    def last_error(self) -> str:
        return self._last_error

    def retention(self) -> dict[str, Any]:
        return {
            "session_ttl": self.ttl_ms / 1000,
            "recommendation_ttl": self.recommendation_ttl_ms / 1000,
            "max_events": self.max_events,
            "outage_buffer": self.buffer.capacity,
            "buffered_clicks": len(self.buffer),
            "kpi_retention": self.kpi_retention_ms / 1000,
            "live_feed": self.live_feed,
        }

    async def _call(self, fn: Callable[[], Awaitable[T]], timeout: float | None = None) -> T:
        """Run one Redis round trip under the timeout and the circuit breaker."""
        from redis.exceptions import RedisError

        now = time.monotonic()
        if now < self._down_until:
            raise StoreUnavailable(f"redis unavailable ({self._last_error}); retrying soon")
        try:
            async with asyncio.timeout(timeout or self.timeout):
                result = await fn()
        except (RedisError, OSError, TimeoutError) as exc:
            self._last_error = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
            if self._down_since is None:
                self._down_since = now
                log.warning("redis at %s unreachable (%s): degraded mode", redacted(self.url), exc)
            self._down_until = now + self.retry_after
            raise StoreUnavailable(f"redis unavailable: {self._last_error}") from exc
        if self._down_since is not None:
            log.warning(
                "redis at %s is back after %.1fs: leaving degraded mode",
                redacted(self.url),
                now - self._down_since,
            )
            self._down_since = None
        return result

    async def _eval(
        self,
        script: str,
        keys: Sequence[str],
        args: Sequence[str | int],
        timeout: float | None = None,
    ) -> Any:
        """One script call (batched with the other calls of this loop turn) under the
        timeout and the circuit breaker."""
        from redis.exceptions import NoScriptError

        command = ("EVALSHA", script_sha(script), len(keys), *keys, *args)

        async def run() -> Any:
            loaded = await self._load(script)
            try:
                return await self._batcher.call(*command)
            except NoScriptError:  # Redis restarted and forgot its scripts
                if self._loading.get(script) is loaded:  # the first caller to notice
                    del self._loading[script]
                await self._load(script)
                return await self._batcher.call(*command)

        return await self._call(run, timeout)

    async def _load(self, script: str) -> asyncio.Future[Any]:
        """Load ``script`` into Redis once, however many callers are waiting for it; the
        load they waited for."""
        loading = self._loading.get(script)
        if loading is None or (
            loading.done() and (loading.cancelled() or loading.exception() is not None)
        ):
            loading = asyncio.ensure_future(self._client.script_load(script))
            self._loading[script] = loading
        await asyncio.shield(loading)
        return loading

    # ------------------------------------------------------------ sessions
    async def append(self, session_id: str, event: Event) -> list[Event]:
        nonce = os.urandom(8).hex()
        raw = Event(event.item_id, event.event_type, event.timestamp, nonce).encode()
        if self.buffer.holds(session_id):
            # Earlier clicks of this session wait in the buffer: this one queues behind them
            # and they are written together, in order.
            if self.buffer.has_room():
                self._keep(session_id, raw)
                return await self._write_back(session_id)
            late = Buffered(raw, int(time.time() * 1000))
            try:  # no room to wait: written now with the waiting ones, or lost
                return await self._write_back(session_id, also=late)
            except StoreUnavailable:
                self.buffer.add(session_id, late)  # full: counted as dropped
                raise
        keys = [self._key("s", session_id)]
        args: list[str | int] = [raw, self.max_events, self.ttl_ms]
        if self.live_feed:
            keys += self._feed_keys.of(session_id)
            args += [session_id, self._feed.now_ms()]
        try:
            result = await self._eval(APPEND, keys, args)
        except StoreUnavailable:
            self._keep(session_id, raw)
            raise
        return [Event.decode(raw) for raw in result]

    async def get(self, session_id: str) -> list[Event]:
        key = self._key("s", session_id)
        result = await self._eval(GET, [key], [self.ttl_ms])
        return [Event.decode(raw) for raw in result]

    async def delete_session(self, session_id: str) -> int:
        found = self.buffer.discard(session_id)
        before = len(self._pending)
        self._pending = [p for p in self._pending if p[3] != session_id]
        found += before - len(self._pending)
        keys = [self._key("s", session_id), self._key("sr", session_id)]
        keys += [self._erasure_key(session_id), summary_keys(self.prefix) + session_id]
        keys += self._feed_keys.of(session_id)  # erased whether or not this store has a feed
        args: list[str | int] = [self._key("r", ""), int(time.time() * 1000), self.ttl_ms]
        args.append(session_id)
        found += int(await self._eval(DELETE, keys, args))
        return found

    # ------------------------------------------------------ outage buffer
    def _keep(self, session_id: str, raw: str) -> None:
        """Buffer a click Redis did not take and make sure a task writes it back."""
        if not self.buffer.add(session_id, Buffered(raw, int(time.time() * 1000))):
            return
        if self._replayer is None or self._replayer.done():
            self._replayer = asyncio.get_running_loop().create_task(self._replay_until_empty())

    async def _write_back(self, session_id: str, also: Buffered | None = None) -> list[Event]:
        """Write the session's buffered clicks (see the buffer module), then ``also`` (a
        click that found no room in the buffer); the session's kept events."""
        self.buffer.expire(session_id, int(time.time() * 1000) - self.ttl_ms)
        clicks = self.buffer.peek(session_id)
        if not clicks and also is None:  # written meanwhile by another task
            return await self.get(session_id)
        keys = [self._key("s", session_id), self._erasure_key(session_id)]
        args: list[str | int] = [self.max_events, self.ttl_ms]
        for click in [*clicks, also] if also is not None else clicks:
            args += [click.raw, click.at_ms]
        if self.live_feed:
            keys += self._feed_keys.of(session_id)
            args += [session_id, self._feed.now_ms()]
        result = await self._eval(REPLAY, keys, args, timeout=4 * self.timeout)
        self.buffer.confirm(session_id, clicks)
        return [Event.decode(raw) for raw in result]

    async def replay(self) -> None:
        """Write back every buffered session (raises StoreUnavailable while Redis is down)."""
        while sessions := self.buffer.sessions():
            for start in range(0, len(sessions), REPLAY_PARALLEL):
                group = sessions[start : start + REPLAY_PARALLEL]
                await asyncio.gather(*(self._write_back(s) for s in group))

    async def _replay_until_empty(self) -> None:
        while len(self.buffer):
            # the circuit breaker refuses until then: the first try is the probe
            await asyncio.sleep(max(self._down_until - time.monotonic(), 0.0))
            try:
                await self.replay()
            except StoreUnavailable:
                continue
        log.info("the outage buffer is written back (%d clicks)", self.buffer.replayed)

    # ----------------------------------------------- recommendation records
    async def record_recommendation(
        self,
        recommendation_id: str,
        variant: str,
        items: Sequence[str],
        session_id: str | None = None,
    ) -> None:
        """Queue the record; a background task writes the queue every ``flush_interval``."""
        shown = SEP + SEP.join(items) + SEP
        at_ms = int(self.clock() * 1000)
        self._pending.append((recommendation_id, variant, shown, session_id, at_ms))
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.get_running_loop().create_task(self._flush_later())

    async def _flush_later(self) -> None:
        await asyncio.sleep(self.flush_interval)
        await self.flush()

    async def flush(self) -> None:
        """Write the queued recommendation records and impression counts (one script call
        per :data:`FLUSH_BATCH` records)."""
        while self._pending:
            batch = self._pending[:FLUSH_BATCH]
            del self._pending[:FLUSH_BATCH]
            args: list[str | int] = [
                self._key("r", ""),
                self._key("sr", ""),
                self.recommendation_ttl_ms,
                summary_keys(self.prefix),
                self.kpi_retention_ms,
            ]
            for rec_id, variant, shown, session_id, at_ms in batch:
                args += [rec_id, variant, shown, session_id or "", at_ms]
            try:
                # a bulk write may take longer than one visitor's request may wait
                await self._eval(RECORD, [f"{self.prefix}counters"], args, 4 * self.timeout)
            except StoreUnavailable:
                self.dropped_records += len(batch)
                log.warning("dropped %d recommendation records: redis unavailable", len(batch))

    async def feedback(self, recommendation_id: str, item_id: str) -> FeedbackResult:
        keys = [self._key("r", recommendation_id), f"{self.prefix}counters"]
        args: list[str | int] = [
            SEP + item_id + SEP,
            item_id,
            summary_keys(self.prefix),
            self.kpi_retention_ms,
        ]
        code, variant = await self._eval(FEEDBACK, keys, args)
        name = variant.decode() if isinstance(variant, bytes) else str(variant)
        return FeedbackResult(_FEEDBACK_CODES[int(code)], name or None)

    async def counts(self) -> dict[str, VariantCounts]:
        raw = await self._call(lambda: self._client.hgetall(f"{self.prefix}counters"))
        out: dict[str, VariantCounts] = {}
        for field_name, value in raw.items():
            name = field_name.decode() if isinstance(field_name, bytes) else str(field_name)
            variant, _, what = name.rpartition(":")
            counts = out.setdefault(variant, VariantCounts())
            if what == "impressions":
                counts.impressions = int(value)
            elif what == "clicks":
                counts.clicks = int(value)
        return out

    # ------------------------------------------------------------- KPIs
    async def convert(
        self, session_id: str, event: Event, variant: str, revenue: float, *, keep: bool
    ) -> tuple[list[Event], Conversion]:
        raw = ""
        if keep and self.buffer.holds(session_id):  # rare: keep the buffered order
            await self.append(session_id, event)
        elif keep:
            nonce = os.urandom(8).hex()
            raw = Event(event.item_id, event.event_type, event.timestamp, nonce).encode()
        if any(p[3] == session_id for p in self._pending):
            await self.flush()  # an answer of the last 50 ms may be what is converted
        keys = [
            self._key("s", session_id),
            self._key("sr", session_id),
            summary_keys(self.prefix) + session_id,
            f"{self.prefix}counters",
        ]
        args: list[str | int] = [
            raw,
            self.max_events,
            self.ttl_ms,
            self._key("r", ""),
            SEP + event.item_id + SEP,
            event.event_type,
            repr(float(revenue)),
            int(self.clock() * 1000),
            self.attribution_window_ms,
            variant,
            self.kpi_retention_ms,
            "1" if keep else "0",
        ]
        if self.live_feed:
            keys += self._feed_keys.of(session_id)
            args.append(session_id)
        try:
            stored, attributed, counted_for, rec_id = await self._eval(CONVERT, keys, args)
        except StoreUnavailable:
            if raw:
                self._keep(session_id, raw)
            raise
        events = [Event.decode(item) for item in stored]
        if not keep:
            events.append(event)
        name = text(counted_for)
        return events, Conversion(
            event.event_type, name, bool(attributed), revenue, text(rec_id) or None
        )

    async def kpis(self) -> dict[str, VariantKpis]:
        raw = await self._call(lambda: self._client.hgetall(f"{self.prefix}counters"))
        out: dict[str, VariantKpis] = {}
        for field_name, value in raw.items():
            variant, _, what = text(field_name).rpartition(":")
            if what in KPI_COUNTS:
                kpis = out.setdefault(variant, VariantKpis())
                number = text(value)
                setattr(kpis, what, float(number) if "revenue" in what else int(number))
        return out

    async def session_summaries(self, limit: int) -> list[SessionKpis]:
        call = functools.partial(self._call, timeout=4 * self.timeout)
        return await read_summaries(self._client, summary_keys(self.prefix), limit, call)

    # ------------------------------------------------------------ live learning
    def _require_feed(self) -> RedisFeed:
        if not self.live_feed:
            raise ConfigError("this redis store was opened without a live feed")
        return self._feed

    async def finish_idle(self, idle: float, limit: int) -> int:
        return await self._require_feed().finish_idle(idle, limit)

    async def finish(self, session_id: str) -> bool:
        return await self._require_feed().finish(session_id)

    async def withhold(self, session_id: str) -> None:
        await self._require_feed().withhold(session_id)

    async def read_feed(self, after: int, limit: int) -> list[FeedEntry]:
        return await self._require_feed().read_feed(after, limit)

    async def feed_head(self) -> int:
        return await self._require_feed().feed_head()

    # ------------------------------------------------------------- control
    async def claim(self, name: str, seconds: float) -> bool:
        key, ms = f"{self.prefix}lease:{name}", max(int(seconds * 1000), 1)
        return bool(await self._eval(CLAIM, [key], [self._token, ms]))

    async def set_control(self, key: str, value: str) -> None:
        await self._call(lambda: self._client.hset(f"{self.prefix}control", key, value))

    async def get_control(self) -> dict[str, str]:
        raw = await self._call(lambda: self._client.hgetall(f"{self.prefix}control"))
        return {
            (k.decode() if isinstance(k, bytes) else str(k)): (
                v.decode() if isinstance(v, bytes) else str(v)
            )
            for k, v in raw.items()
        }

    async def ping(self) -> bool:
        try:
            return bool(await self._call(self._client.ping))
        except StoreUnavailable:
            return False

    async def close(self) -> None:
        if self._flusher is not None and not self._flusher.done():
            self._flusher.cancel()
        if self._replayer is not None and not self._replayer.done():
            self._replayer.cancel()
        await self.flush()
        if len(self.buffer):
            try:  # a last try: clicks still buffered at shutdown are lost otherwise
                await self.replay()
            except StoreUnavailable:
                log.warning("shutdown: %d buffered clicks lost (redis down)", len(self.buffer))
        await self._batcher.close()
        await self._client.aclose()

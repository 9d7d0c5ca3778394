"""Where the service keeps live sessions, issued recommendations and A/B counters.

One asynchronous interface, :class:`SessionStore`, two implementations:

- :class:`MemoryStore`: a per-process LRU of sessions with an idle timeout and a cap on the
  events kept per session. The embedded default: no dependency, sub-microsecond, but each
  worker process has its own sessions (use ``--workers 1`` with it, or Redis).
- :class:`RedisStore`: a real Redis server, so that several processes or replicas share one
  view of a visitor's session, of feedback and of the variant counters.

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

import abc
import asyncio
import logging
import time
from collections import OrderedDict, deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar

from sessionrec._errors import ConfigError, SessionrecError

log = logging.getLogger("sessionrec.serve.store")

T = TypeVar("T")

FeedbackStatus = Literal["counted", "duplicate", "unknown_recommendation", "not_recommended"]

FLUSH_BATCH = 512
"""Most recommendation records written by one pipeline."""

_SEP = "\x1f"
"""Field separator of the Redis encoding; ids are validated to contain no control chars."""


class StoreUnavailable(SessionrecError):
    """The store cannot be reached now; the caller answers in degraded mode."""


@dataclass(frozen=True, slots=True)
class Event:
    """One recorded click. ``timestamp`` is the client's (Unix seconds) or None.

    The service never invents a timestamp: a session whose clicks carry none is scored like
    an offline session without times, which keeps replay equal to offline evaluation.
    """

    item_id: str
    event_type: str = "view"
    timestamp: float | None = None

    def encode(self) -> str:
        ts = "" if self.timestamp is None else repr(float(self.timestamp))
        return f"{ts}{_SEP}{self.event_type}{_SEP}{self.item_id}"

    @classmethod
    def decode(cls, raw: bytes | str) -> Event:
        text = raw.decode() if isinstance(raw, bytes) else raw
        ts, event_type, item = text.split(_SEP, 2)
        return cls(item_id=item, event_type=event_type, timestamp=float(ts) if ts else None)


@dataclass(frozen=True, slots=True)
class FeedbackResult:
    status: FeedbackStatus
    variant: str | None = None


@dataclass
class VariantCounts:
    """Impressions (recommendation answers served) and clicks on recommended items."""

    impressions: int = 0
    clicks: int = 0

    @property
    def ctr(self) -> float:
        return self.clicks / self.impressions if self.impressions else 0.0


class SessionStore(abc.ABC):
    """The store interface the service uses; every method may raise StoreUnavailable."""

    kind: str = ""

    @abc.abstractmethod
    async def append(self, session_id: str, event: Event) -> list[Event]:
        """Record ``event`` and return the session's kept events, oldest first, it included."""

    @abc.abstractmethod
    async def get(self, session_id: str) -> list[Event]:
        """The session's kept events (empty for an unknown or expired session)."""

    @abc.abstractmethod
    async def record_recommendation(
        self, recommendation_id: str, variant: str, items: Sequence[str]
    ) -> None:
        """Remember which items an answer showed (for feedback) and count an impression."""

    @abc.abstractmethod
    async def feedback(self, recommendation_id: str, item_id: str) -> FeedbackResult:
        """Count a click on ``item_id`` of an answer; each (answer, item) counts once."""

    @abc.abstractmethod
    async def counts(self) -> dict[str, VariantCounts]:
        """Impressions and clicks per variant."""

    @abc.abstractmethod
    async def set_control(self, key: str, value: str) -> None:
        """Shared control value (e.g. the model folder an admin chose for a variant)."""

    @abc.abstractmethod
    async def get_control(self) -> dict[str, str]:
        """All shared control values."""

    @abc.abstractmethod
    async def ping(self) -> bool:
        """True when the store answers now."""

    @property
    def available(self) -> bool:
        """False while the store is known to be down (degraded mode)."""
        return True

    async def close(self) -> None:  # noqa: B027 - optional hook
        """Release connections."""


# ------------------------------------------------------------------ memory
@dataclass
class _Session:
    events: deque[Event]
    last_seen: float


@dataclass
class _Issued:
    variant: str
    items: frozenset[str]
    created: float
    clicked: set[str] = field(default_factory=set)


class MemoryStore(SessionStore):
    """Per-process store: LRU sessions with an idle timeout and a per-session event cap.

    All methods run on the event loop thread (no awaits inside), so no lock is needed.
    ``clock`` is injectable so tests can move time instead of sleeping.
    """

    kind = "memory"

    def __init__(
        self,
        *,
        ttl: float = 1800.0,
        max_sessions: int = 100_000,
        max_events: int = 200,
        recommendation_ttl: float = 3600.0,
        max_recommendations: int | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if ttl <= 0 or max_sessions < 1 or max_events < 1 or recommendation_ttl <= 0:
            raise ConfigError("MemoryStore limits must be positive")
        self.ttl = float(ttl)
        self.max_sessions = int(max_sessions)
        self.max_events = int(max_events)
        self.recommendation_ttl = float(recommendation_ttl)
        self.max_recommendations = int(max_recommendations or 4 * max_sessions)
        self._clock = clock
        self._sessions: OrderedDict[str, _Session] = OrderedDict()
        self._issued: OrderedDict[str, _Issued] = OrderedDict()
        self._counts: dict[str, VariantCounts] = {}
        self._control: dict[str, str] = {}

    def __len__(self) -> int:
        return len(self._sessions)

    def _expire(self, now: float) -> None:
        # Ordered by last access: expired sessions are all at the front.
        sessions = self._sessions
        while sessions:
            first = next(iter(sessions.values()))
            if now - first.last_seen <= self.ttl:
                break
            sessions.popitem(last=False)
        issued = self._issued
        while issued:
            first_issued = next(iter(issued.values()))
            if now - first_issued.created <= self.recommendation_ttl:
                break
            issued.popitem(last=False)

    def _touch(self, session_id: str, now: float) -> _Session | None:
        entry = self._sessions.get(session_id)
        if entry is None:
            return None
        if now - entry.last_seen > self.ttl:
            del self._sessions[session_id]
            return None
        entry.last_seen = now
        self._sessions.move_to_end(session_id)
        return entry

    async def append(self, session_id: str, event: Event) -> list[Event]:
        now = self._clock()
        self._expire(now)
        entry = self._touch(session_id, now)
        if entry is None:
            entry = _Session(deque(maxlen=self.max_events), now)
            self._sessions[session_id] = entry
            while len(self._sessions) > self.max_sessions:
                self._sessions.popitem(last=False)
        entry.events.append(event)
        return list(entry.events)

    async def get(self, session_id: str) -> list[Event]:
        entry = self._touch(session_id, self._clock())
        return [] if entry is None else list(entry.events)

    async def record_recommendation(
        self, recommendation_id: str, variant: str, items: Sequence[str]
    ) -> None:
        now = self._clock()
        self._issued[recommendation_id] = _Issued(variant, frozenset(items), now)
        while len(self._issued) > self.max_recommendations:
            self._issued.popitem(last=False)
        self._counts.setdefault(variant, VariantCounts()).impressions += 1

    async def feedback(self, recommendation_id: str, item_id: str) -> FeedbackResult:
        now = self._clock()
        self._expire(now)
        issued = self._issued.get(recommendation_id)
        if issued is None:
            return FeedbackResult("unknown_recommendation")
        if item_id not in issued.items:
            return FeedbackResult("not_recommended", issued.variant)
        if item_id in issued.clicked:
            return FeedbackResult("duplicate", issued.variant)
        issued.clicked.add(item_id)
        self._counts.setdefault(issued.variant, VariantCounts()).clicks += 1
        return FeedbackResult("counted", issued.variant)

    async def counts(self) -> dict[str, VariantCounts]:
        return {k: VariantCounts(v.impressions, v.clicks) for k, v in self._counts.items()}

    async def set_control(self, key: str, value: str) -> None:
        self._control[key] = value

    async def get_control(self) -> dict[str, str]:
        return dict(self._control)

    async def ping(self) -> bool:
        return True


# ------------------------------------------------------------------- redis
_APPEND_LUA = """
redis.call('RPUSH', KEYS[1], ARGV[1])
redis.call('LTRIM', KEYS[1], -tonumber(ARGV[2]), -1)
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return redis.call('LRANGE', KEYS[1], 0, -1)
"""
_GET_LUA = """
local events = redis.call('LRANGE', KEYS[1], 0, -1)
if #events > 0 then redis.call('PEXPIRE', KEYS[1], ARGV[1]) end
return events
"""
_FEEDBACK_LUA = """
local variant = redis.call('HGET', KEYS[1], 'v')
if not variant then return {-1, ''} end
local items = redis.call('HGET', KEYS[1], 'i')
if not string.find(items, ARGV[1], 1, true) then return {-2, variant} end
if redis.call('HSETNX', KEYS[1], 'c:' .. ARGV[2], '1') == 0 then return {-3, variant} end
redis.call('HINCRBY', KEYS[2], variant .. ':clicks', 1)
return {1, variant}
"""
_FEEDBACK_CODES: dict[int, FeedbackStatus] = {
    1: "counted",
    -1: "unknown_recommendation",
    -2: "not_recommended",
    -3: "duplicate",
}


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
      batches, every ``flush_interval`` seconds (default 50 ms) in one pipeline: a
      round trip per answer would cost more CPU than computing the answer, and nobody
      clicks a recommendation 50 ms after it was shown. If Redis is down at flush time,
      the batch is dropped (logged): those answers then get no feedback.
    - ``{prefix}counters``: impressions and clicks per variant.
    - ``{prefix}control``: values every replica polls (the model folder of each variant).

    The Lua script builds the counters key from ``prefix`` only, so all keys of one service
    live on one node: fine for a single Redis or a replicated pair, not for Redis Cluster.
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
        # No client-side retries: a failure must reach the circuit breaker at once, not
        # after several backoffs while the visitor waits.
        self._client = aioredis.Redis.from_url(
            url,
            socket_timeout=timeout,
            socket_connect_timeout=timeout,
            retry=Retry(NoBackoff(), 0),
            max_connections=256,
        )
        self._append_script = self._client.register_script(_APPEND_LUA)
        self._get_script = self._client.register_script(_GET_LUA)
        self._feedback_script = self._client.register_script(_FEEDBACK_LUA)
        self.flush_interval = float(flush_interval)
        self._pending: list[tuple[str, str, str]] = []
        self._flusher: asyncio.Task[None] | None = None
        self.dropped_records = 0
        self._down_until = 0.0
        self._down_since: float | None = None
        self._last_error = ""

    def _key(self, kind: str, name: str) -> str:
        return f"{self.prefix}{kind}:{name}"

    @property
    def available(self) -> bool:
        return self._down_since is None

    @property
    def last_error(self) -> str:
        return self._last_error

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
                log.warning("redis at %s unreachable (%s): degraded mode", self.url, exc)
            self._down_until = now + self.retry_after
            raise StoreUnavailable(f"redis unavailable: {self._last_error}") from exc
        if self._down_since is not None:
            log.warning(
                "redis at %s is back after %.1fs: leaving degraded mode",
                self.url,
                now - self._down_since,
            )
            self._down_since = None
        return result

    async def append(self, session_id: str, event: Event) -> list[Event]:
        key = self._key("s", session_id)
        args: list[str | int] = [event.encode(), self.max_events, self.ttl_ms]
        result = await self._call(lambda: self._append_script(keys=[key], args=args))
        return [Event.decode(raw) for raw in result]

    async def get(self, session_id: str) -> list[Event]:
        key = self._key("s", session_id)
        result = await self._call(lambda: self._get_script(keys=[key], args=[self.ttl_ms]))
        return [Event.decode(raw) for raw in result]

    async def record_recommendation(
        self, recommendation_id: str, variant: str, items: Sequence[str]
    ) -> None:
        """Queue the record; a background task writes the queue every ``flush_interval``."""
        self._pending.append((recommendation_id, variant, _SEP + _SEP.join(items) + _SEP))
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.get_running_loop().create_task(self._flush_later())

    async def _flush_later(self) -> None:
        await asyncio.sleep(self.flush_interval)
        await self.flush()

    async def flush(self) -> None:
        """Write the queued recommendation records and impression counts (batched pipelines)."""
        while self._pending:
            batch = self._pending[:FLUSH_BATCH]
            del self._pending[:FLUSH_BATCH]
            impressions: dict[str, int] = {}
            for _, variant, _ in batch:
                impressions[variant] = impressions.get(variant, 0) + 1

            async def run(
                batch: list[tuple[str, str, str]] = batch,
                impressions: dict[str, int] = impressions,
            ) -> list[Any]:
                async with self._client.pipeline(transaction=False) as pipe:
                    for rec_id, variant, shown in batch:
                        key = self._key("r", rec_id)
                        pipe.hset(key, mapping={"v": variant, "i": shown})
                        pipe.pexpire(key, self.recommendation_ttl_ms)
                    for variant, count in impressions.items():
                        pipe.hincrby(f"{self.prefix}counters", f"{variant}:impressions", count)
                    return await pipe.execute()

            try:
                # a bulk write may take longer than one visitor's request may wait
                await self._call(run, timeout=4 * self.timeout)
            except StoreUnavailable:
                self.dropped_records += len(batch)
                log.warning("dropped %d recommendation records: redis unavailable", len(batch))

    async def feedback(self, recommendation_id: str, item_id: str) -> FeedbackResult:
        keys = [self._key("r", recommendation_id), f"{self.prefix}counters"]
        args = [_SEP + item_id + _SEP, item_id]

        async def run() -> Any:
            return await self._feedback_script(keys=keys, args=args)

        code, variant = await self._call(run)
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
        await self.flush()
        await self._client.aclose()


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
) -> SessionStore:
    """The store for ``--store``: ``memory`` or a Redis URL."""
    if url == "memory":
        return MemoryStore(
            ttl=ttl,
            max_sessions=max_sessions,
            max_events=max_events,
            recommendation_ttl=recommendation_ttl,
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
        )
    raise ConfigError(f"--store must be 'memory' or a redis:// URL, got {url!r}")

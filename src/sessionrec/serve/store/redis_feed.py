"""The live-learning feed of the Redis store: which sessions are going, and the feed of
finished ones every worker and replica reads in the same order.

Layout (after the store's prefix):

- ``going``: a sorted set of the sessions with clicks not handed over yet, scored by their
  last click (ms); a click's script adds its session, sessions idle longer than the idle
  timeout drop out, so it holds at most the sessions of the last ``ttl``.
- ``fp:{session_id}``: how many of the session's clicks wait for the feed; ``fw:{session_id}``:
  the session is withheld (no consent). Both live as long as the session (idle timeout).
- ``feed``: a stream of finished sessions, entry ``{seq}-1`` holding the session's clicks
  (no session id, no nonce), trimmed to the feed's capacity; ``feed:head``: the last ``seq``.

Handing over is one Lua script (:data:`~sessionrec.serve.store.scripts.FINISH_IDLE`), so two
replicas sweeping at once never hand a session over twice.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from sessionrec.serve.store.base import Event, FeedEntry
from sessionrec.serve.store.scripts import FINISH, FINISH_IDLE, WITHHOLD

Eval = Callable[[str, Sequence[str], Sequence[str | int]], Awaitable[Any]]
"""The store's script call (batched, under its timeout and circuit breaker)."""
Call = Callable[[Callable[[], Awaitable[Any]]], Awaitable[Any]]
"""The store's plain round trip (under its timeout and circuit breaker)."""


class FeedKeys:
    """The names of the live-feed keys under ``prefix``."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        self.going = f"{prefix}going"
        self.feed = f"{prefix}feed"
        self.head = f"{prefix}feed:head"
        self.pending_prefix = f"{prefix}fp:"
        self.withheld_prefix = f"{prefix}fw:"

    def of(self, session_id: str) -> list[str]:
        """The keys a click of the session updates: going set, pending clicks, withheld."""
        return [self.going, self.pending_prefix + session_id, self.withheld_prefix + session_id]


class RedisFeed:
    """The live-feed calls of a :class:`~sessionrec.serve.store.RedisStore` (``capacity``
    entries kept; ``clock``: wall-clock seconds, injectable so tests can move time)."""

    def __init__(
        self,
        keys: FeedKeys,
        capacity: int,
        ttl_ms: int,
        clock: Callable[[], float],
        eval_script: Eval,
        call: Call,
        client: Any,
    ) -> None:
        self.keys = keys
        self.capacity = int(capacity)
        self.ttl_ms = int(ttl_ms)
        self.clock = clock
        self._eval = eval_script
        self._call = call
        self._client = client

    def now_ms(self) -> int:
        return int(self.clock() * 1000)

    def _hand_over_args(self) -> list[str | int]:
        keys = self.keys
        return [self.capacity, f"{keys.prefix}s:", keys.pending_prefix, keys.withheld_prefix]

    async def finish_idle(self, idle: float, limit: int) -> int:
        keys = [self.keys.going, self.keys.feed, self.keys.head]
        args: list[str | int] = [self.now_ms(), int(idle * 1000), int(limit)]
        return int(await self._eval(FINISH_IDLE, keys, args + self._hand_over_args()))

    async def finish(self, session_id: str) -> bool:
        keys = [self.keys.going, self.keys.feed, self.keys.head]
        args: list[str | int] = [session_id, *self._hand_over_args()]
        return bool(await self._eval(FINISH, keys, args))

    async def withhold(self, session_id: str) -> None:
        going, pending, withheld = self.keys.of(session_id)
        await self._eval(WITHHOLD, [withheld, pending, going], [session_id, self.ttl_ms])

    async def read_feed(self, after: int, limit: int) -> list[FeedEntry]:
        if limit <= 0:
            return []
        start = f"{int(after) + 1}-0"
        raw = await self._call(
            lambda: self._client.xrange(self.keys.feed, min=start, max="+", count=int(limit))
        )
        return [_entry(entry_id, fields) for entry_id, fields in raw]

    async def feed_head(self) -> int:
        head = await self._call(lambda: self._client.get(self.keys.head))
        return int(head or 0)


def _entry(entry_id: bytes | str, fields: dict[Any, Any]) -> FeedEntry:
    """A stream entry as a feed entry (its fields are the clicks, numbered from 1)."""
    name = entry_id.decode() if isinstance(entry_id, bytes) else str(entry_id)
    ordered = sorted(fields.items(), key=lambda field: int(field[0]))
    return FeedEntry(int(name.split("-", 1)[0]), tuple(Event.decode(raw) for _, raw in ordered))

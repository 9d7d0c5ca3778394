"""Clicks that Redis did not take, kept by the worker until Redis answers again.

When Redis is down a click is answered in degraded mode; without this buffer it would be
gone from the shared session. The buffer keeps the clicks of each session in the order they
arrived, up to ``capacity`` clicks in the whole worker: a click beyond that is dropped and
counted (``sessionrec_store_buffer_dropped_total{reason="full"}``), so an outage costs
bounded memory. A click older than the session idle timeout when Redis returns is dropped too
(``reason="expired"``): its session would have ended meanwhile.

Writing back (:class:`~sessionrec.serve.store.redis_store.RedisStore`) sends a session's
buffered clicks, oldest first, to one Lua script that appends only those whose nonce (see
:class:`~sessionrec.serve.store.base.Event`) is not in the list yet. A click whose first
write reached Redis although its answer was lost, or a write that two tasks send at once,
is therefore never stored twice; since every writer sends a prefix of the same sequence in
order, the stored order is the arrival order. Written clicks leave the buffer only once
Redis has confirmed them.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from typing import Protocol


class BufferObserver(Protocol):
    """Who is told about the buffer (the service's metrics)."""

    def buffer_size(self, clicks: int) -> None: ...

    def buffer_dropped(self, clicks: int, reason: str) -> None: ...

    def buffer_replayed(self, clicks: int) -> None: ...


@dataclass(frozen=True, slots=True, eq=False)
class Buffered:
    """One click as it will be written (encoded, nonce included) and when it arrived.

    Compared by identity: two equal clicks are still two clicks.
    """

    raw: str
    at_ms: int
    """Wall-clock milliseconds when the worker received it (compared with erasure times)."""


class ClickBuffer:
    """Per-session FIFO queues of clicks, at most ``capacity`` clicks in all."""

    def __init__(self, capacity: int, observer: BufferObserver | None = None) -> None:
        if capacity < 0:
            raise ValueError("the buffer capacity must be >= 0")
        self.capacity = int(capacity)
        self.observer = observer
        self._sessions: OrderedDict[str, list[Buffered]] = OrderedDict()
        self._size = 0
        self.dropped = 0
        self.replayed = 0

    def __len__(self) -> int:
        return self._size

    def holds(self, session_id: str) -> bool:
        """Whether clicks of ``session_id`` wait to be written (new ones queue behind them)."""
        return session_id in self._sessions

    def has_room(self) -> bool:
        return self._size < self.capacity

    def sessions(self) -> list[str]:
        """The sessions with waiting clicks, the longest-waiting first."""
        return list(self._sessions)

    def add(self, session_id: str, click: Buffered) -> bool:
        """Queue ``click``; False (and counted) when the buffer is full."""
        if self._size >= self.capacity:
            self._drop(1, "full")
            return False
        self._sessions.setdefault(session_id, []).append(click)
        self._resize(1)
        return True

    def peek(self, session_id: str) -> list[Buffered]:
        """The session's waiting clicks, oldest first (they stay until :meth:`confirm`)."""
        return list(self._sessions.get(session_id, ()))

    def confirm(self, session_id: str, written: list[Buffered]) -> None:
        """Remove the clicks Redis confirmed (a prefix of the queue, or already gone)."""
        queue = self._sessions.get(session_id)
        if queue is None:
            return
        done = {id(click) for click in written}
        n = 0
        while n < len(queue) and id(queue[n]) in done:
            n += 1
        if n:
            del queue[:n]
            if not queue:
                del self._sessions[session_id]
            self.replayed += n
            if self.observer is not None:
                self.observer.buffer_replayed(n)
            self._resize(-n)

    def expire(self, session_id: str, oldest_ms: int) -> None:
        """Drop the session's clicks received before ``oldest_ms`` (their session ended)."""
        queue = self._sessions.get(session_id)
        if queue is None:
            return
        n = 0
        while n < len(queue) and queue[n].at_ms < oldest_ms:
            n += 1
        if n:
            del queue[:n]
            if not queue:
                del self._sessions[session_id]
            self._drop(n, "expired")
            self._resize(-n)

    def discard(self, session_id: str) -> int:
        """Forget the session's clicks (erasure); how many there were."""
        queue = self._sessions.pop(session_id, None)
        if not queue:
            return 0
        self._resize(-len(queue))
        return len(queue)

    def _drop(self, clicks: int, reason: str) -> None:
        self.dropped += clicks
        if self.observer is not None:
            self.observer.buffer_dropped(clicks, reason)

    def _resize(self, change: int) -> None:
        self._size += change
        if self.observer is not None:
            self.observer.buffer_size(self._size)

"""The per-process store: LRU sessions with an idle timeout and a per-session event cap."""

from __future__ import annotations

import time
from collections import OrderedDict, deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from sessionrec._errors import ConfigError
from sessionrec.serve.store.base import Event, FeedbackResult, SessionStore, VariantCounts


@dataclass
class _Session:
    events: deque[Event]
    last_seen: float


@dataclass
class _Issued:
    variant: str
    items: frozenset[str]
    created: float
    session_id: str | None = None
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
        self._issued_to: dict[str, set[str]] = {}
        """Recommendation ids issued to each session (for erasure)."""
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
            self._forget_oldest_record()

    def _forget_oldest_record(self) -> None:
        rec_id, record = self._issued.popitem(last=False)
        if record.session_id is not None:
            ids = self._issued_to.get(record.session_id)
            if ids is not None:
                ids.discard(rec_id)
                if not ids:
                    del self._issued_to[record.session_id]

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
        self,
        recommendation_id: str,
        variant: str,
        items: Sequence[str],
        session_id: str | None = None,
    ) -> None:
        now = self._clock()
        self._issued[recommendation_id] = _Issued(variant, frozenset(items), now, session_id)
        if session_id is not None:
            self._issued_to.setdefault(session_id, set()).add(recommendation_id)
        while len(self._issued) > self.max_recommendations:
            self._forget_oldest_record()
        self._counts.setdefault(variant, VariantCounts()).impressions += 1

    async def delete_session(self, session_id: str) -> int:
        found = 0
        entry = self._sessions.pop(session_id, None)
        if entry is not None:
            found += 1
        for rec_id in self._issued_to.pop(session_id, set()):
            if self._issued.pop(rec_id, None) is not None:
                found += 1
        return found

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

    def retention(self) -> dict[str, Any]:
        return {
            "session_ttl": self.ttl,
            "recommendation_ttl": self.recommendation_ttl,
            "max_events": self.max_events,
            "max_sessions": self.max_sessions,
            "max_recommendations": self.max_recommendations,
        }

"""The per-process store: LRU sessions with an idle timeout and a per-session event cap,
recommendation records, the A/B counters and per-session KPI summaries, and (with a live
feed) the finished sessions handed to live learning."""

from __future__ import annotations

import time
from collections import OrderedDict, deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from sessionrec._errors import ConfigError
from sessionrec.serve.store.base import (
    Conversion,
    Event,
    FeedbackResult,
    FeedEntry,
    SessionKpis,
    SessionStore,
    VariantCounts,
    VariantKpis,
)


@dataclass
class _Session:
    events: deque[Event]
    last_seen: float
    appended: int = 0  # clicks ever appended (with a live feed), of which ...
    handed: int = 0  # ... the first ``handed`` went to the feed


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
        attribution_window: float = 3600.0,
        kpi_retention: float = 7 * 86400.0,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
        live_feed: int = 0,
    ) -> None:
        if ttl <= 0 or max_sessions < 1 or max_events < 1 or recommendation_ttl <= 0:
            raise ConfigError("MemoryStore limits must be positive")
        if attribution_window <= 0 or kpi_retention <= 0 or live_feed < 0:
            raise ConfigError("MemoryStore limits must be positive")
        self.ttl = float(ttl)
        self.max_sessions = int(max_sessions)
        self.max_events = int(max_events)
        self.recommendation_ttl = float(recommendation_ttl)
        self.max_recommendations = int(max_recommendations or 4 * max_sessions)
        self.attribution_window = float(attribution_window)
        self.kpi_retention = float(kpi_retention)
        self._clock = clock
        self._wall_clock = wall_clock
        self._sessions: OrderedDict[str, _Session] = OrderedDict()
        self._issued: OrderedDict[str, _Issued] = OrderedDict()
        self._issued_to: dict[str, dict[str, None]] = {}
        """Recommendation ids issued to each session, oldest first (erasure, attribution)."""
        self._counts: dict[str, VariantCounts] = {}
        self._kpis: dict[str, VariantKpis] = {}
        self._summaries: OrderedDict[str, tuple[SessionKpis, float]] = OrderedDict()
        """Per-session KPI summaries and when each was last written, least recent first;
        at most ``max_recommendations`` of them, each kept ``kpi_retention`` seconds."""
        self._control: dict[str, str] = {}
        self._feed: deque[FeedEntry] | None = deque(maxlen=live_feed) if live_feed else None
        self._feed_head = 0
        self._going: OrderedDict[str, float] = OrderedDict()
        """Sessions with clicks not handed to the feed yet, by last click, oldest first."""
        self._withheld: OrderedDict[str, float] = OrderedDict()
        """Sessions never to hand over (a click without consent), by when, oldest first."""

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
        withheld = self._withheld
        while withheld and now - next(iter(withheld.values())) > self.ttl:
            withheld.popitem(last=False)

    def _forget_oldest_record(self) -> None:
        rec_id, record = self._issued.popitem(last=False)
        if record.session_id is not None:
            ids = self._issued_to.get(record.session_id)
            if ids is not None:
                ids.pop(rec_id, None)
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
        if self._feed is not None:
            entry.appended += 1
            if session_id not in self._withheld:
                self._going[session_id] = now
                self._going.move_to_end(session_id)
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
            self._issued_to.setdefault(session_id, {})[recommendation_id] = None
        while len(self._issued) > self.max_recommendations:
            self._forget_oldest_record()
        self._counts.setdefault(variant, VariantCounts()).impressions += 1
        kpis = self._kpis.setdefault(variant, VariantKpis())
        kpis.impressions += 1
        if session_id is not None:
            summary = self._summary(session_id)
            if summary is None:
                summary = SessionKpis(session_id, variant, first_seen=self._wall_clock())
                kpis.sessions += 1
            summary.impressions += 1
            self._keep_summary(summary)

    async def delete_session(self, session_id: str) -> int:
        found = 0
        entry = self._sessions.pop(session_id, None)
        if entry is not None:
            found += 1
        for rec_id in self._issued_to.pop(session_id, {}):
            if self._issued.pop(rec_id, None) is not None:
                found += 1
        self._summaries.pop(session_id, None)  # derived from the above: not counted
        self._going.pop(session_id, None)
        self._withheld.pop(session_id, None)
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
        self._kpis.setdefault(issued.variant, VariantKpis()).clicks += 1
        if issued.session_id is not None:
            summary = self._summary(issued.session_id)
            if summary is not None:
                summary.clicks += 1
                self._keep_summary(summary)
        return FeedbackResult("counted", issued.variant)

    async def counts(self) -> dict[str, VariantCounts]:
        return {k: VariantCounts(v.impressions, v.clicks) for k, v in self._counts.items()}

    # ------------------------------------------------------------ KPIs
    def _summary(self, session_id: str) -> SessionKpis | None:
        """The session's KPI summary unless it is older than ``kpi_retention``."""
        kept = self._summaries.get(session_id)
        if kept is None:
            return None
        if self._clock() - kept[1] > self.kpi_retention:
            del self._summaries[session_id]
            return None
        return kept[0]

    def _keep_summary(self, summary: SessionKpis) -> None:
        now = self._clock()
        self._summaries[summary.session_id] = (summary, now)
        self._summaries.move_to_end(summary.session_id)
        while self._summaries:
            _, (oldest, written) = next(iter(self._summaries.items()))
            if now - written <= self.kpi_retention and len(self._summaries) <= (
                self.max_recommendations
            ):
                break
            del self._summaries[oldest.session_id]

    def _last_touch(self, session_id: str, item_id: str, now: float) -> tuple[str, _Issued] | None:
        """The latest answer to the session that showed ``item_id`` within the window."""
        best: tuple[str, _Issued] | None = None
        for rec_id in self._issued_to.get(session_id, ()):
            issued = self._issued.get(rec_id)
            if (
                issued is not None
                and item_id in issued.items
                and now - issued.created <= self.attribution_window
                and (best is None or issued.created >= best[1].created)
            ):
                best = (rec_id, issued)
        return best

    async def convert(
        self, session_id: str, event: Event, variant: str, revenue: float, *, keep: bool
    ) -> tuple[list[Event], Conversion]:
        if keep:
            events = await self.append(session_id, event)
        else:
            events = [*await self.get(session_id), event]
        touch = self._last_touch(session_id, event.item_id, self._clock())
        field = "purchases" if event.event_type == "purchase" else "carts"
        if touch is None:
            kpis = self._kpis.setdefault(variant, VariantKpis())
            _count(kpis, "unattributed_" + field, "unattributed_revenue", revenue)
            return events, Conversion(event.event_type, variant, False, revenue)
        rec_id, issued = touch
        _count(self._kpis.setdefault(issued.variant, VariantKpis()), field, "revenue", revenue)
        summary = self._summary(session_id) if keep else None
        if summary is not None:
            if getattr(summary, field) == 0:  # the session's first: it counts in the rates
                sessions = "purchase_sessions" if field == "purchases" else "cart_sessions"
                _count(self._kpis.setdefault(summary.variant, VariantKpis()), sessions)
            _count(summary, field, "revenue", revenue)
            self._keep_summary(summary)
        return events, Conversion(event.event_type, issued.variant, True, revenue, rec_id)

    async def kpis(self) -> dict[str, VariantKpis]:
        return {name: VariantKpis(**vars(k)) for name, k in self._kpis.items()}

    async def session_summaries(self, limit: int) -> list[SessionKpis]:
        out: list[SessionKpis] = []
        for session_id in list(self._summaries):
            if len(out) >= limit:
                break
            summary = self._summary(session_id)
            if summary is not None:
                out.append(SessionKpis(**summary.to_dict()))
        return out

    async def set_control(self, key: str, value: str) -> None:
        self._control[key] = value

    async def get_control(self) -> dict[str, str]:
        return dict(self._control)

    async def ping(self) -> bool:
        return True

    # ----------------------------------------------------------- live learning
    def _require_feed(self) -> deque[FeedEntry]:
        if self._feed is None:
            raise ConfigError("this memory store was opened without a live feed")
        return self._feed

    def _hand_over(self, session_id: str) -> bool:
        """Put the session's clicks not handed over yet on the feed."""
        feed = self._require_feed()
        entry = self._sessions.get(session_id)
        if entry is None or session_id in self._withheld:
            return False
        fresh = min(entry.appended - entry.handed, len(entry.events))
        entry.handed = entry.appended
        if fresh <= 0:
            return False
        self._feed_head += 1
        events = tuple(entry.events)[len(entry.events) - fresh :]
        feed.append(FeedEntry(self._feed_head, events))
        return True

    async def finish_idle(self, idle: float, limit: int) -> int:
        self._require_feed()
        now, going, handed = self._clock(), self._going, 0
        while going and handed < limit:
            session_id, last = next(iter(going.items()))
            if now - last < idle:
                break
            del going[session_id]
            handed += self._hand_over(session_id)
        return handed

    async def finish(self, session_id: str) -> bool:
        self._require_feed()
        self._going.pop(session_id, None)
        return self._hand_over(session_id)

    async def withhold(self, session_id: str) -> None:
        self._require_feed()
        self._going.pop(session_id, None)
        self._withheld[session_id] = self._clock()
        self._withheld.move_to_end(session_id)

    async def read_feed(self, after: int, limit: int) -> list[FeedEntry]:
        feed = self._require_feed()
        if not feed or after >= self._feed_head:
            return []
        start = max(after + 1 - feed[0].sequence, 0)  # sequences are consecutive
        return [feed[i] for i in range(start, min(start + limit, len(feed)))]

    async def feed_head(self) -> int:
        self._require_feed()
        return self._feed_head

    async def claim(self, name: str, seconds: float) -> bool:
        return True  # one process: nobody else to share a lease with

    def retention(self) -> dict[str, Any]:
        return {
            "session_ttl": self.ttl,
            "recommendation_ttl": self.recommendation_ttl,
            "max_events": self.max_events,
            "max_sessions": self.max_sessions,
            "max_recommendations": self.max_recommendations,
            "kpi_retention": self.kpi_retention,
            "live_feed": 0 if self._feed is None else self._feed.maxlen,
        }


def _count(target: object, field: str, revenue_field: str = "", revenue: float = 0.0) -> None:
    """Add one to ``target.field`` and ``revenue`` to ``target.revenue_field``."""
    setattr(target, field, getattr(target, field) + 1)
    if revenue:
        setattr(target, revenue_field, getattr(target, revenue_field) + revenue)

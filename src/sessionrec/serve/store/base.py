"""The store interface and the values that cross it (events, feedback results, counters,
conversions and the per-variant and per-session KPIs)."""

from __future__ import annotations

import abc
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from sessionrec._errors import SessionrecError

FeedbackStatus = Literal["counted", "duplicate", "unknown_recommendation", "not_recommended"]

SEP = "\x1f"
"""Field separator of the Redis encoding; ids are validated to contain no control chars."""

NONCE_SEP = "\x1e"
"""Separates an event's nonce from its event type (event types hold no control chars)."""


class StoreUnavailable(SessionrecError):
    """The store cannot be reached now; the caller answers in degraded mode."""


@dataclass(frozen=True, slots=True)
class Event:
    """One recorded click. ``timestamp`` is the client's (Unix seconds) or None.

    The service never invents a timestamp: a session whose clicks carry none is scored like
    an offline session without times, which keeps replay equal to offline evaluation.

    ``nonce`` tells two identical clicks apart in Redis, so that a click written again after
    an outage (see :mod:`~sessionrec.serve.store.buffer`) is recognised instead of counted
    twice; it takes no part in equality. It is encoded after the event type
    (``time SEP type NONCE_SEP nonce SEP item``): a replica of an older version, which reads
    ``time SEP type SEP item`` and uses only the time and the item, still reads it right
    while replicas are upgraded one by one.
    """

    item_id: str
    event_type: str = "view"
    timestamp: float | None = None
    nonce: str = field(default="", compare=False)

    def encode(self) -> str:
        ts = "" if self.timestamp is None else repr(float(self.timestamp))
        kind = f"{self.event_type}{NONCE_SEP}{self.nonce}" if self.nonce else self.event_type
        return f"{ts}{SEP}{kind}{SEP}{self.item_id}"

    @classmethod
    def decode(cls, raw: bytes | str) -> Event:
        text = raw.decode() if isinstance(raw, bytes) else raw
        ts, kind, item = text.split(SEP, 2)
        event_type, _, nonce = kind.partition(NONCE_SEP)
        return cls(
            item_id=item,
            event_type=event_type,
            timestamp=float(ts) if ts else None,
            nonce=nonce,
        )


@dataclass(frozen=True, slots=True)
class FeedEntry:
    """A finished session on the live-learning feed: its kept clicks in order, no session id.

    ``sequence`` numbers the feed's entries from 1 with no gaps, so that a reader that finds
    a gap after its last entry knows how many were trimmed before it could read them.
    """

    sequence: int
    events: tuple[Event, ...]


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


@dataclass(frozen=True, slots=True)
class Conversion:
    """What a cart or purchase event counted as (see :mod:`sessionrec.serve.kpis`).

    ``variant``: the variant of the answer it is attributed to, or, unattributed, the
    variant the session is served by. ``revenue``: counted for purchases only.
    """

    event_type: str
    variant: str
    attributed: bool
    revenue: float = 0.0
    recommendation_id: str | None = None


@dataclass
class VariantKpis:
    """The pilot's numbers of one variant (``unattributed_*``: conversions of items no
    answer of the session showed within the attribution window)."""

    sessions: int = 0
    """Sessions with at least one recorded answer of this variant (their first one)."""
    impressions: int = 0
    clicks: int = 0
    carts: int = 0
    purchases: int = 0
    revenue: float = 0.0
    cart_sessions: int = 0
    """Sessions with at least one attributed cart."""
    purchase_sessions: int = 0
    """Sessions with at least one attributed purchase."""
    unattributed_carts: int = 0
    unattributed_purchases: int = 0
    unattributed_revenue: float = 0.0

    @property
    def ctr(self) -> float:
        return self.clicks / self.impressions if self.impressions else 0.0

    @property
    def cart_rate(self) -> float:
        return self.cart_sessions / self.sessions if self.sessions else 0.0

    @property
    def conversion_rate(self) -> float:
        return self.purchase_sessions / self.sessions if self.sessions else 0.0

    @property
    def revenue_per_session(self) -> float:
        return self.revenue / self.sessions if self.sessions else 0.0

    def to_dict(self) -> dict[str, float]:
        out: dict[str, float] = dict(vars(self))
        for name in KPI_RATES:
            out[name] = getattr(self, name)
        return out


KPI_COUNTS: tuple[str, ...] = tuple(VariantKpis.__dataclass_fields__)
"""The counted fields of :class:`VariantKpis`, in order."""
KPI_RATES: tuple[str, ...] = ("ctr", "cart_rate", "conversion_rate", "revenue_per_session")
"""The rates derived from them."""


@dataclass
class SessionKpis:
    """One session's numbers for A/B statistics: a row of the per-session export
    (:mod:`sessionrec.abtest.export`). ``first_seen``: Unix seconds of its first answer."""

    session_id: str
    variant: str
    impressions: int = 0
    clicks: int = 0
    carts: int = 0
    purchases: int = 0
    revenue: float = 0.0
    first_seen: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return dict(vars(self))


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
        self,
        recommendation_id: str,
        variant: str,
        items: Sequence[str],
        session_id: str | None = None,
    ) -> None:
        """Remember which items an answer showed (for feedback) and count an impression.

        ``session_id`` links the record to its session, so that erasing the session
        (:meth:`delete_session`) erases the record too.
        """

    @abc.abstractmethod
    async def delete_session(self, session_id: str) -> int:
        """Erase the session's events, its recommendation records (how many were found) and its
        KPI summary.

        Idempotent: erasing an unknown session erases nothing and succeeds.
        """

    @abc.abstractmethod
    async def feedback(self, recommendation_id: str, item_id: str) -> FeedbackResult:
        """Count a click on ``item_id`` of an answer; each (answer, item) counts once."""

    @abc.abstractmethod
    async def counts(self) -> dict[str, VariantCounts]:
        """Impressions and clicks per variant."""

    @abc.abstractmethod
    async def convert(
        self, session_id: str, event: Event, variant: str, revenue: float, *, keep: bool
    ) -> tuple[list[Event], Conversion]:
        """Record a cart or purchase ``event`` (kept in the session unless ``keep`` is False)
        and count it as a conversion: of the latest answer to the session that showed the
        item within the attribution window, else unattributed, for ``variant`` (the
        session's). ``revenue`` is added to what it is counted for. Without ``keep`` (no
        consent) only the per-variant counters change, never the per-session summary.
        Returns the session's kept events (this one last) and what it counted as."""

    @abc.abstractmethod
    async def kpis(self) -> dict[str, VariantKpis]:
        """The KPI counters per variant."""

    @abc.abstractmethod
    async def session_summaries(self, limit: int) -> list[SessionKpis]:
        """At most ``limit`` per-session summaries (sessions with a recorded answer)."""

    @abc.abstractmethod
    async def set_control(self, key: str, value: str) -> None:
        """Shared control value (e.g. the model folder an admin chose for a variant)."""

    @abc.abstractmethod
    async def get_control(self) -> dict[str, str]:
        """All shared control values."""

    @abc.abstractmethod
    async def ping(self) -> bool:
        """True when the store answers now."""

    # ----------------------------------------------------------- live learning
    # A store opened with a live feed (``live_feed`` > 0) tracks which sessions are still
    # going; a finished one (idle long enough, or ended by the client) is handed over once to
    # the feed, which every worker and replica reads in the same order
    # (:mod:`sessionrec.serve.live`). Sessions the visitor did not consent to are never handed
    # over; a visitor who comes back after a hand-over starts a new part, handed over later.

    async def finish_idle(self, idle: float, limit: int) -> int:
        """Hand the sessions without a click for ``idle`` seconds to the feed (at most
        ``limit``, longest idle first); returns how many were handed over."""
        raise NotImplementedError(f"the {self.kind} store has no live feed")

    async def finish(self, session_id: str) -> bool:
        """Hand one session to the feed now (the client ended it); False when it had no
        clicks left to hand over (unknown, withheld, or already handed over)."""
        raise NotImplementedError(f"the {self.kind} store has no live feed")

    async def withhold(self, session_id: str) -> None:
        """Never hand this session to the feed (a click came without consent)."""
        raise NotImplementedError(f"the {self.kind} store has no live feed")

    async def read_feed(self, after: int, limit: int) -> list[FeedEntry]:
        """At most ``limit`` feed entries with a sequence number above ``after``, in order."""
        raise NotImplementedError(f"the {self.kind} store has no live feed")

    async def feed_head(self) -> int:
        """The sequence number of the newest feed entry (0 when there is none yet)."""
        raise NotImplementedError(f"the {self.kind} store has no live feed")

    async def claim(self, name: str, seconds: float) -> bool:
        """Hold the lease ``name`` for ``seconds`` (taken, or renewed by its holder): True
        when this store object holds it now. One holder among all the workers and replicas
        sharing the store: the one that writes the live snapshots."""
        raise NotImplementedError(f"the {self.kind} store has no leases")

    @abc.abstractmethod
    def retention(self) -> dict[str, Any]:
        """How long this store keeps what it keeps (seconds) and its caps (``/v1/info``)."""

    @property
    def available(self) -> bool:
        """False while the store is known to be down (degraded mode)."""
        return True

    async def close(self) -> None:  # noqa: B027 - optional hook
        """Release connections."""

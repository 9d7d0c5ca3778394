"""What is popular *now*: click counts with exponential time decay over the live stream.

All-time popularity (the training clicks) is a poor fallback when a sale starts or a
product trends: it still ranks last month's best sellers first. With ``sessionrec serve
--trending-half-life SECONDS`` the service counts the clicks it receives, each worth
``2 ** (-age / half_life)``, and the fallback chain ranks the items with live clicks by
that decayed count before the all-time best sellers (within the session's categories as
well as overall); items listed from it say ``source: "trending"`` (or ``"category"``).

How it is kept cheap: a click adds ``2 ** ((t - t0) / half_life)`` to its item (``t0`` a
reference time), which keeps every item's value proportional to its decayed count without
touching the other items; values are rescaled and ``t0`` moved forward when they grow
large. The ranking is recomputed at most every ``refresh`` seconds (sorting on every
request would cost more than the answer), and the table keeps the ``max_items`` items
with the largest values (the smallest are dropped when it holds twice that many).

Each worker counts the clicks it answers (consenting clicks only: a click sent with
``consent: false`` is never learned from). Requests are spread over workers and replicas
at random, so every worker sees the same trends from a share of the traffic; the counts
are not shared or persisted, and start empty after a restart (the fallback is then the
all-time popularity until clicks arrive).
"""

from __future__ import annotations

import heapq
import math
import time
from collections.abc import Callable

RESCALE_EXPONENT = 60.0
"""Rescale once a click would add more than 2**60: far from float64's range."""
RANKED = 10_000
"""Items the ranking keeps (the fallback needs the top of each category, not the tail):
bounds the work of mapping it to a model's indices, once per refresh and worker."""


class TrendingClicks:
    """Decayed click counts by external item id, with a ranking refreshed at intervals."""

    def __init__(
        self,
        half_life: float,
        *,
        refresh: float = 1.0,
        max_items: int = 100_000,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if not half_life > 0:
            raise ValueError(f"half_life must be > 0 seconds, got {half_life}")
        self.half_life = float(half_life)
        self.refresh = float(refresh)
        self.max_items = int(max_items)
        self._clock = clock
        self._t0 = clock()
        self._values: dict[str, float] = {}
        self._ranking: list[tuple[str, float]] = []
        self._ranked_at = -math.inf
        self.version = 0
        """Changes whenever :meth:`ranking` returns a new list (callers cache by it)."""
        self.clicks = 0

    def add(self, item_id: str, now: float | None = None) -> None:
        """Count one click on ``item_id`` at ``now`` (Unix seconds; default: the clock)."""
        now = self._clock() if now is None else now
        exponent = (now - self._t0) / self.half_life
        if exponent > RESCALE_EXPONENT:
            self._rescale(now)
            exponent = 0.0
        self._values[item_id] = self._values.get(item_id, 0.0) + 2.0**exponent
        self.clicks += 1
        if len(self._values) > 2 * self.max_items:
            self._prune()

    def _rescale(self, now: float) -> None:
        factor = 2.0 ** (-(now - self._t0) / self.half_life)
        self._values = {k: v * factor for k, v in self._values.items() if v * factor > 1e-12}
        self._t0 = now

    def _prune(self) -> None:
        kept = sorted(self._values.items(), key=lambda kv: -kv[1])[: self.max_items]
        self._values = dict(kept)

    def counts(self, now: float | None = None) -> dict[str, float]:
        """Every item's decayed click count at ``now``."""
        now = self._clock() if now is None else now
        factor = 2.0 ** (-(now - self._t0) / self.half_life)
        return {k: v * factor for k, v in self._values.items()}

    def ranking(self) -> list[tuple[str, float]]:
        """The :data:`RANKED` items with the largest decayed counts, (item id, count) largest
        first, ties by id; recomputed at most every ``refresh`` seconds."""
        now = self._clock()
        if now - self._ranked_at >= self.refresh:
            counts = self.counts(now).items()
            ranked = heapq.nsmallest(RANKED, counts, key=lambda kv: (-kv[1], kv[0]))
            if ranked != self._ranking:
                self._ranking = ranked
                self.version += 1
            self._ranked_at = now
        return self._ranking

    def describe(self) -> dict[str, float | int]:
        """For ``/v1/info``."""
        return {
            "half_life": self.half_life,
            "refresh": self.refresh,
            "max_items": self.max_items,
            "items": len(self._values),
            "clicks": self.clicks,
        }

"""The click generator: seeded sessions of visitors walking the catalog's categories."""

from __future__ import annotations

import math
from datetime import UTC, date, datetime

import numpy as np
import polars as pl

from sessionrec._errors import ConfigError
from sessionrec.data.events.event_types import CANONICAL_EVENT_TYPES
from sessionrec.data.synthetic.catalog import make_catalog
from sessionrec.data.synthetic.intents import (
    SESSION_INTENTS,
    funnel_actions,
    funnel_events,
    plan_intents,
)
from sessionrec.data.synthetic.laws import DiscreteLaws, catalog_structure, jump_laws, zipf_laws

EVENT_TYPES: tuple[str, ...] = CANONICAL_EVENT_TYPES
"""The event types in the click log (the canonical ones), most frequent first."""

_RETURN_SAME_START = 0.5  # a returning visitor reopens their first session's category
_LONG_SESSION_SHARE = 0.25  # sessions drawn from the long geometric component ...
_LONG_SESSION_FACTOR = 3.0  # ... whose mean is this many times the short one's
_GAP_MEDIAN_S = 40.0  # median seconds between two clicks of a session
_GAP_SIGMA = 1.0  # log-normal spread of those gaps
_GAP_MAX_S = 20 * 60.0  # no gap inside a session reaches the 30-minute inactivity cut
_SESSION_MAX_S = 3 * 3600.0  # longer sessions are compressed to this duration
_RETURN_MIN_S = 31 * 60.0  # a visitor's next session starts at least this long after
_RETURN_MEDIAN_S = 6 * 3600.0  # median extra wait before a return visit
_RETURN_SIGMA = 1.5
_RETURN_MAX_EXTRA_S = 7 * 86400.0


def _session_lengths(
    rng: np.random.Generator, n_events: int, mean: float, max_len: int
) -> np.ndarray:
    """Session lengths summing to exactly ``n_events`` (the last one is cut short).

    A 3:1 mixture of geometric laws whose means differ by :data:`_LONG_SESSION_FACTOR`:
    half the sessions have one or two clicks, a tail of long browsing sessions.
    """
    short_mean = mean / (1.0 - _LONG_SESSION_SHARE + _LONG_SESSION_SHARE * _LONG_SESSION_FACTOR)
    chunks: list[np.ndarray] = []
    total = 0
    while total < n_events:
        n = int((n_events - total) / mean * 1.05) + 16
        long = rng.random(n) < _LONG_SESSION_SHARE
        p = np.where(long, 1.0 / (short_mean * _LONG_SESSION_FACTOR), 1.0 / short_mean)
        chunk = np.minimum(rng.geometric(p), max_len)
        chunks.append(chunk)
        total += int(chunk.sum())
    lengths = np.concatenate(chunks)
    ends = np.cumsum(lengths)
    last = int(np.searchsorted(ends, n_events))
    lengths = lengths[: last + 1]
    lengths[last] -= int(ends[last]) - n_events
    return lengths


def _stable_argsort(keys: np.ndarray) -> np.ndarray:
    """Stable argsort of non-negative int64 ``keys`` (millisecond times), fast.

    Packing every key with its position into one int64 makes the keys unique, so numpy's
    SIMD sort (unstable, but the order of unique values is unique) yields the stable
    order 3-5 times faster than ``kind="stable"`` on tens of millions of values. Falls back
    to the stable sort when key and position do not fit in 63 bits.
    """
    n = keys.size
    bits = max(1, (n - 1).bit_length())
    if n == 0 or int(keys.max()).bit_length() + bits > 63:
        return np.argsort(keys, kind="stable")
    packed = (keys << bits) | np.arange(n, dtype=np.int64)
    packed.sort()
    packed &= (1 << bits) - 1
    return packed


def _ffill_index(mask: np.ndarray) -> np.ndarray:
    """For every position, the rank among ``mask``'s true entries of the last one so far."""
    return np.cumsum(mask, dtype=np.int64) - 1


def _parse_start(start: str | date | datetime | float) -> float:
    """Unix seconds of the period start; naive dates and datetimes are read as UTC."""
    if isinstance(start, (int, float)) and not isinstance(start, bool):
        return float(start)
    if isinstance(start, str):
        try:
            start = datetime.fromisoformat(start)
        except ValueError as err:
            raise ConfigError(f"start must be an ISO date or datetime, not {start!r}") from err
    if isinstance(start, datetime):
        moment = start if start.tzinfo is not None else start.replace(tzinfo=UTC)
    elif isinstance(start, date):
        moment = datetime(start.year, start.month, start.day, tzinfo=UTC)
    else:
        raise ConfigError(f"start must be a date, datetime or ISO string, not {start!r}")
    return moment.timestamp()


def _check(condition: bool, message: str) -> None:
    if not condition:
        raise ConfigError(message)


def generate_clicks(
    n_events: int = 100_000,
    seed: int = 0,
    n_items: int = 2000,
    days: float = 30,
    start: str | date | datetime | float = "2026-01-01",
    catalog: pl.DataFrame | None = None,
    *,
    zipf_exponent: float = 1.0,
    mean_session_length: float = 4.0,
    max_session_length: int = 200,
    repeat_prob: float = 0.08,
    same_category_prob: float = 0.47,
    multi_intent_share: float = 0.15,
    mean_sessions_per_visitor: float = 1.6,
    purchase_share: float = 0.25,
    switching_share: float = 0.10,
) -> pl.DataFrame:
    """A visitor click log of exactly ``n_events`` clicks on ``catalog``'s items.

    Returns columns ``user_id`` (Int64), ``session_id`` (Int64, the true session),
    ``item_id`` (the catalog's dtype), ``timestamp`` (Float64 Unix seconds, millisecond
    precision), ``event_type`` (String: ``view``, ``cart`` or ``purchase``) and
    ``session_intent`` (the session's planted intent, an Enum of
    :data:`~sessionrec.data.synthetic.intents.SESSION_INTENTS`), sorted by timestamp.
    All timestamps lie in ``[start, start + days)``. The frame is a canonical click frame
    for :meth:`sessionrec.data.sessions.SessionData.from_frame`.

    Without ``catalog`` one is made by ``make_catalog(n_items, seed)``; pass a catalog
    (then ``n_items`` is ignored) to draw several logs over the same products. A caller's
    catalog needs ``item_id``, ``category`` and ``intent``; ``popularity_rank`` is used
    when present (otherwise row order within a category is the popularity order).

    Behaviour knobs (keyword-only): ``zipf_exponent`` of item popularity within a
    category; ``mean_session_length`` (before truncation at ``max_session_length``);
    after the first click, each click repeats the previous item with ``repeat_prob``,
    shows another item of the same category with ``same_category_prob``, and otherwise
    jumps to another category; ``multi_intent_share`` of sessions change intent often;
    visitors have ``mean_sessions_per_visitor`` sessions on average (geometric law).
    ``purchase_share`` of the sessions are purchase funnels and ``switching_share`` browse
    and buy in turn; the rest browse (see :mod:`~sessionrec.data.synthetic.intents`:
    sessions too short for a funnel browse, so fewer sessions buy than the shares say).

    Time and memory grow linearly: 20M clicks take about 10 to 15 seconds on two cores
    and under 3 GB at the peak (about 140 bytes per click).
    """
    _check(
        isinstance(n_events, (int, np.integer)) and not isinstance(n_events, bool),
        f"n_events must be an integer, not {n_events!r}",
    )
    n_events = int(n_events)
    _check(n_events >= 0, f"n_events must be >= 0, not {n_events}")
    _check(days * 86400.0 >= 3600.0, f"days must cover at least one hour, not {days!r}")
    _check(zipf_exponent >= 0.0, f"zipf_exponent must be >= 0, not {zipf_exponent}")
    _check(
        1.5 <= mean_session_length <= max_session_length,
        f"mean_session_length must lie in [1.5, max_session_length], not {mean_session_length}",
    )
    _check(
        1 <= max_session_length <= 10_000,
        f"max_session_length must lie in [1, 10000], not {max_session_length}",
    )
    _check(
        repeat_prob >= 0 and same_category_prob >= 0 and repeat_prob + same_category_prob <= 1,
        "repeat_prob and same_category_prob must be >= 0 and sum to at most 1",
    )
    _check(0.0 <= multi_intent_share <= 1.0, "multi_intent_share must lie in [0, 1]")
    _check(mean_sessions_per_visitor >= 1.0, "mean_sessions_per_visitor must be >= 1")
    _check(
        purchase_share >= 0 and switching_share >= 0 and purchase_share + switching_share <= 1,
        "purchase_share and switching_share must be >= 0 and sum to at most 1",
    )
    _check(
        isinstance(seed, (int, np.integer)) and not isinstance(seed, bool) and seed >= 0,
        f"seed must be a non-negative integer, not {seed!r}",
    )
    period_start = _parse_start(start)
    period = float(days) * 86400.0

    if catalog is None:
        catalog = make_catalog(n_items, seed)
    st = catalog_structure(catalog)
    if n_events == 0:
        empty = np.zeros(0, dtype=np.int64)
        return _frame(empty, empty, catalog["item_id"].clear(), np.zeros(0), empty, empty)

    rng_len, rng_user, rng_walk, rng_item, rng_time, rng_intent = (
        np.random.default_rng(s) for s in np.random.SeedSequence([seed, 2]).spawn(6)
    )

    # Sessions, and visitors owning runs of consecutive sessions.
    lengths = _session_lengths(rng_len, n_events, mean_session_length, max_session_length)
    n_sessions = lengths.size
    first_click = np.concatenate([[0], np.cumsum(lengths)[:-1]])
    session_of = np.repeat(np.arange(n_sessions, dtype=np.int32), lengths)
    multi = rng_len.random(n_sessions) < multi_intent_share
    max_duration = min(_SESSION_MAX_S, period / 4.0)
    # At most k_max sessions per visitor, so that all of them always fit in the period.
    k_max = max(1, int((period - 1.0 + _RETURN_MIN_S) // (max_duration + _RETURN_MIN_S)))
    visitor_of = _visitors(rng_user, n_sessions, mean_sessions_per_visitor, k_max)
    visitor_first = np.ones(n_sessions, dtype=bool)
    visitor_first[1:] = visitor_of[1:] != visitor_of[:-1]
    visitor_start = np.flatnonzero(visitor_first)  # first session of each visitor

    # What each click does: 0 opens the session, 1 jumps to another category, 2 shows
    # another item of the same category, 3 repeats the previous item.
    u = rng_walk.random(n_events, dtype=np.float32)
    action = np.where(
        u < repeat_prob, 3, np.where(u < repeat_prob + same_category_prob, 2, 1)
    ).astype(np.int8)
    del u
    action[first_click] = 0
    plan = plan_intents(rng_intent, lengths, purchase_share, switching_share)
    funnel_actions(plan, action, first_click, lengths, session_of)

    # Where: a category per session start and jump, carried over to the clicks after it.
    start_cat = DiscreteLaws(st.cat_weight, np.array([0, st.n_cats])).sample(
        np.zeros(n_sessions, np.int64), rng_walk.random(n_sessions)
    )
    returning = ~visitor_first & (rng_walk.random(n_sessions) < _RETURN_SAME_START)
    start_cat[returning] = start_cat[visitor_start[visitor_of[returning]]]
    fresh = action <= 1
    cat_fresh = _walk_categories(
        rng_walk, jump_laws(st), start_cat, action[fresh] == 0, multi[session_of[fresh]]
    )
    category = cat_fresh[_ffill_index(fresh)]
    del cat_fresh, fresh

    # What: a Zipf draw within the category, except that repeats copy the previous item.
    new_item = np.flatnonzero(action != 3)
    cat_new = category[new_item]
    del category
    pos = zipf_laws(st, zipf_exponent).sample(cat_new, rng_item.random(new_item.size))
    item_row = st.by_rank[pos][_ffill_index(action != 3)]
    del pos, cat_new, new_item
    del action
    event = funnel_events(rng_intent, plan, item_row, first_click, n_events)

    # When: gaps within sessions, then every visitor's sessions laid out in the period.
    gap = rng_time.lognormal(math.log(_GAP_MEDIAN_S), _GAP_SIGMA, n_events)
    np.clip(gap, 1.0, _GAP_MAX_S, out=gap)
    gap[first_click] = 0.0
    elapsed = np.cumsum(gap, out=gap)
    elapsed -= elapsed[first_click][session_of]  # seconds since the session's first click
    duration = elapsed[first_click + lengths - 1]
    squeeze = np.minimum(1.0, max_duration / np.maximum(duration, 1e-9))
    if (squeeze < 1.0).any():
        elapsed *= squeeze[session_of]
        duration *= squeeze
    session_start = _session_starts(rng_user, visitor_of, visitor_start, duration, period)
    millis = np.rint((session_start[session_of] + elapsed) * 1000.0).astype(np.int64)
    del elapsed, gap, session_start

    # Ids in order of first appearance; clicks in time order (ties: session, then click).
    n_visitors = visitor_start.size
    session_id = np.empty(n_sessions, dtype=np.int64)
    session_id[_stable_argsort(millis[first_click])] = np.arange(1, n_sessions + 1)
    user_id = np.empty(n_visitors, dtype=np.int64)
    user_id[_stable_argsort(millis[first_click[visitor_start]])] = np.arange(1, n_visitors + 1)
    order = _stable_argsort(millis)
    timestamp = (millis[order] + round(period_start * 1000.0)) / 1000.0
    del millis
    click_session = session_of[order]
    return _frame(
        user_id[visitor_of][click_session],
        session_id[click_session],
        catalog["item_id"].gather(item_row[order]),
        timestamp,
        event[order],
        plan.intent[click_session],
    )


def _visitors(
    rng: np.random.Generator, n_sessions: int, mean_sessions: float, k_max: int
) -> np.ndarray:
    """Visitor index (0, 1, ...) of every session: runs of geometric length <= ``k_max``."""
    per_visitor: list[np.ndarray] = []
    assigned = 0
    while assigned < n_sessions:
        wanted = int((n_sessions - assigned) / mean_sessions) + 16
        draw = np.minimum(rng.geometric(1.0 / mean_sessions, wanted), k_max)
        per_visitor.append(draw)
        assigned += int(draw.sum())
    counts = np.concatenate(per_visitor)
    return np.repeat(np.arange(counts.size, dtype=np.int64), counts)[:n_sessions]


def _walk_categories(
    rng: np.random.Generator,
    jump: DiscreteLaws,
    start_cat: np.ndarray,
    is_start: np.ndarray,
    multi: np.ndarray,
) -> np.ndarray:
    """Categories of the "fresh" clicks (session starts and jumps), in click order.

    ``is_start`` and ``multi`` (the session is multi-intent) are per fresh click;
    ``start_cat`` has one category per session. Jump ``j`` of a session depends on jump
    ``j - 1``, so the walk runs over ``j``: all sessions' ``j``-th jumps in one vectorised
    step, at most ``max_session_length`` steps and O(clicks) work in total.
    """
    n_fresh = is_start.size
    n_cats = int(jump.start.size - 1) // 2
    position = np.arange(n_fresh, dtype=np.int64)
    step = position - np.maximum.accumulate(np.where(is_start, position, 0))
    del position
    by_step = np.argsort(step.astype(np.uint16), kind="stable")  # a radix sort
    bounds = np.concatenate([[0], np.cumsum(np.bincount(step))])
    del step
    category = np.empty(n_fresh, dtype=np.int32)
    category[by_step[: bounds[1]]] = start_cat  # step 0: the session starts, in order
    law_base = np.where(multi, n_cats, 0).astype(np.int32)
    u = rng.random(n_fresh)
    for j in range(1, bounds.size - 1):
        idx = by_step[bounds[j] : bounds[j + 1]]
        law = law_base[idx] + category[idx - 1]
        category[idx] = jump.sample(law, u[idx]) - law * n_cats
    return category


def _session_starts(
    rng: np.random.Generator,
    visitor_of: np.ndarray,
    visitor_start: np.ndarray,
    duration: np.ndarray,
    period: float,
) -> np.ndarray:
    """Start of every session in seconds after the period start, inside the period.

    A visitor waits at least :data:`_RETURN_MIN_S` plus a log-normal extra (at most a
    week) after a session ends before the next one. A visitor who would overrun the
    period has the extras shrunk to a random share of the room left (so heavy visitors do
    not all pile up at the period's edges), then starts uniformly in the remaining slack.
    ``k_max`` in :func:`generate_clicks` guarantees the room is never negative.
    """
    n_sessions = visitor_of.size
    n_visitors = visitor_start.size
    last = np.ones(n_sessions, dtype=bool)
    last[:-1] = visitor_of[1:] != visitor_of[:-1]
    wait = np.where(last, 0.0, _RETURN_MIN_S)
    extra = rng.lognormal(math.log(_RETURN_MEDIAN_S), _RETURN_SIGMA, n_sessions)
    np.minimum(extra, _RETURN_MAX_EXTRA_S, out=extra)
    extra[last] = 0.0
    busy = np.bincount(visitor_of, duration + wait, minlength=n_visitors)
    room = np.maximum(period - 1.0 - busy, 0.0)
    extra_sum = np.bincount(visitor_of, extra, minlength=n_visitors)
    fit = room * rng.random(n_visitors)
    shrink = np.where(extra_sum > room, fit / np.maximum(extra_sum, 1e-9), 1.0)
    extra *= shrink[visitor_of]
    slack = np.maximum(room - extra_sum * shrink, 0.0)
    advance = duration + wait + extra
    before = np.cumsum(advance) - advance  # time from the visitor's first session start
    before -= before[visitor_start][visitor_of]
    return (rng.random(n_visitors) * slack)[visitor_of] + before


def _frame(
    user_id: np.ndarray,
    session_id: np.ndarray,
    item_id: pl.Series,
    timestamp: np.ndarray,
    event: np.ndarray,
    intent: np.ndarray,
) -> pl.DataFrame:
    return pl.DataFrame(
        {
            "user_id": pl.Series(user_id, dtype=pl.Int64),
            "session_id": pl.Series(session_id, dtype=pl.Int64),
            "item_id": item_id.alias("item_id"),
            "timestamp": pl.Series(timestamp, dtype=pl.Float64),
            "event_type": pl.Series(EVENT_TYPES, dtype=pl.String).gather(event),
            "session_intent": pl.Series(SESSION_INTENTS, dtype=pl.Enum(SESSION_INTENTS)).gather(
                intent
            ),
        }
    )

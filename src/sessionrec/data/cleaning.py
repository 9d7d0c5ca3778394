"""Cleaning steps on canonical click frames: cut sessions, drop repeats, filter rare data.

These are the steps every published session-recommendation preprocessing runs between
reading a log and splitting it (GRU4Rec's and SR-GNN's scripts): visitor logs are cut into
sessions at an inactivity gap, a click on the item just clicked is dropped (it predicts
nothing and inflates "repeat" accuracy), and rare items and too-short sessions are removed,
repeatedly, because removing one can make the other fall under its threshold.

Every function takes a canonical click frame (see :mod:`sessionrec.data.events`), returns a
new one and leaves its input untouched. :func:`sessionize` and
:func:`remove_consecutive_repeats` return rows sorted by user (session) id, then time, file
order breaking ties; input already in that order (the usual case for a log, and always for
their own output) is not sorted again. :func:`filter_sessions` keeps the input order.

Built for tens of millions of clicks: at most one sort, then O(n) passes (shifted
comparisons, ``numpy.bincount`` over dense codes) rather than repeated hash group-bys.
"""

from __future__ import annotations

import logging
import math
from dataclasses import asdict, dataclass, replace

import numpy as np
import polars as pl

from sessionrec._errors import ConfigError, DataError
from sessionrec.data.events.event_types import CANONICAL_EVENT_TYPES, EVENT_TYPE_DTYPE

__all__ = [
    "CleaningReport",
    "clean",
    "filter_sessions",
    "remove_consecutive_repeats",
    "sessionize",
]

log = logging.getLogger("sessionrec.data")


@dataclass(frozen=True)
class CleaningReport:
    """What :func:`clean` / :func:`filter_sessions` removed, for logs and dataset reports.

    ``*_events_removed`` count clicks; ``items_removed`` and ``sessions_removed`` count
    distinct items and sessions that no longer occur at all. ``iterations`` is the number of
    filtering passes until nothing changed (the last pass removes nothing).
    """

    events_in: int
    sessions_in: int
    items_in: int
    events_out: int
    sessions_out: int
    items_out: int
    repeats_removed: int = 0
    rare_item_events_removed: int = 0
    short_session_events_removed: int = 0
    long_session_events_removed: int = 0
    iterations: int = 0

    @property
    def events_removed(self) -> int:
        return self.events_in - self.events_out

    @property
    def sessions_removed(self) -> int:
        return self.sessions_in - self.sessions_out

    @property
    def items_removed(self) -> int:
        return self.items_in - self.items_out

    def as_dict(self) -> dict[str, int]:
        out = asdict(self)
        out.update(
            events_removed=self.events_removed,
            sessions_removed=self.sessions_removed,
            items_removed=self.items_removed,
        )
        return out


def _require(frame: pl.DataFrame, columns: tuple[str, ...], what: str) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise DataError(
            f"{what} needs column(s) {missing}; the frame has {frame.columns} "
            "(read it with sessionrec.data.events.read_events)"
        )
    for column in columns:
        nulls = frame[column].null_count()
        if nulls:
            raise DataError(f"{what}: {nulls} click(s) have no {column}")


def _in_order(frame: pl.DataFrame, key: str) -> bool:
    """True when rows are sorted by ``key`` and, within a key, by time (O(n), no sort)."""
    if not frame[key].is_sorted():
        return False
    if "timestamp" not in frame.columns or frame.height < 2:
        return True
    same, time = pl.col(key) == pl.col(key).shift(1), pl.col("timestamp")
    return not frame.select((same & (time < time.shift(1))).fill_null(False).any()).item()


def clicks_in_order(frame: pl.DataFrame, key: str) -> pl.DataFrame:
    """``frame`` sorted by ``key`` then time, stably; unchanged when it already is."""
    if _in_order(frame, key):
        return frame
    if "timestamp" not in frame.columns:
        return frame.sort(key, maintain_order=True)
    if frame["timestamp"].is_sorted():  # a log in time order: one stable key sort suffices
        return frame.sort(key, maintain_order=True)
    return frame.sort([key, "timestamp"], maintain_order=True)


def session_blocks(frame: pl.DataFrame) -> np.ndarray | None:
    """Row offsets where each session starts, when every session is one contiguous block.

    ``None`` when some session's clicks are scattered. The frames this module returns are
    always in blocks, which lets later steps compute per-session values with
    ``numpy.ufunc.reduceat`` instead of a hash group-by.
    """
    sid = frame["session_id"]
    starts = sid.ne_missing(sid.shift(1)).arg_true()
    if sid.is_sorted() or starts.len() == sid.n_unique():
        return starts.to_numpy().astype(np.int64, copy=False)
    return None


def dense_codes(series: pl.Series) -> tuple[np.ndarray, int]:
    """``(codes, n)``: equal values get equal codes in ``0..n-1`` (for ``numpy.bincount``).

    Integer ids spanning a moderate range are mapped through a lookup table in O(n);
    anything else is ranked (a sort).
    """
    if series.len() == 0:
        return np.zeros(0, dtype=np.int64), 0
    if series.dtype.is_integer():
        values = series.cast(pl.Int64).to_numpy()
        low, high = int(values.min()), int(values.max())
        span = high - low + 1
        if span <= 2 * values.size + (1 << 22):
            present = np.zeros(span, dtype=bool)
            present[values - low] = True
            code_of = np.cumsum(present, dtype=np.int64) - 1
            return code_of[values - low], int(code_of[-1]) + 1
    codes = series.rank("dense").to_numpy().astype(np.int64) - 1
    return codes, int(codes.max()) + 1


def _session_codes(frame: pl.DataFrame) -> tuple[np.ndarray, int]:
    starts = session_blocks(frame)
    if starts is None:
        return dense_codes(frame["session_id"])
    flags = np.zeros(frame.height, dtype=np.int64)
    flags[starts] = 1
    return np.cumsum(flags) - 1, int(starts.size)


# ----------------------------------------------------------------------- sessions
def sessionize(frame: pl.DataFrame, gap: float = 1800.0) -> pl.DataFrame:
    """Cut a visitor log into sessions: a new one starts after more than ``gap`` seconds.

    ``frame`` needs ``user_id``, ``item_id`` and ``timestamp``. A user's click starts a
    new session when it comes more than ``gap`` seconds after that user's previous click
    (30 minutes is the usual web-analytics convention). Returns the clicks ordered by user
    and time with a new ``Int64`` column ``session_id`` first (``0..n-1`` in that order:
    labels, not chronology); ``user_id`` and every other column are kept. An existing
    ``session_id`` column is replaced.
    """
    _require(frame, ("user_id", "item_id", "timestamp"), "sessionize")
    if isinstance(gap, bool) or not isinstance(gap, (int, float)) or not gap > 0:
        raise ConfigError(f"gap must be a positive number of seconds, not {gap!r}")
    if not math.isfinite(gap):
        raise ConfigError("gap must be finite")
    ordered = clicks_in_order(frame.drop("session_id", strict=False), "user_id")
    user, time = pl.col("user_id"), pl.col("timestamp")
    starts = (user != user.shift(1)).fill_null(True) | (time - time.shift(1) > gap)
    out = ordered.select((starts.cum_sum().cast(pl.Int64) - 1).alias("session_id"), pl.all())
    n_sessions = int(out["session_id"][-1]) + 1 if out.height else 0
    log.info("cut %d clicks into %d sessions (gap %gs)", out.height, n_sessions, gap)
    return out


def remove_consecutive_repeats(frame: pl.DataFrame) -> tuple[pl.DataFrame, int]:
    """Drop every click on the same item as the click right before it in its session.

    Clicks are ordered by ``timestamp`` within a session when there is one (file order
    breaks ties, and is the order without timestamps). Of a run ``A A A B A`` only the
    first ``A``, ``B`` and the last ``A`` stay. With event types, the click kept of a run
    is its strongest (``purchase`` over ``cart`` over ``view``; the first of equals), so a
    view, add-to-cart and purchase of one item become the purchase: the items of the
    sessions are the same as without types, and no cart or purchase is lost to a view.
    Returns ``(frame, number removed)``.
    """
    _require(frame, ("session_id", "item_id"), "remove_consecutive_repeats")
    ordered = clicks_in_order(frame, "session_id")
    sid, item = pl.col("session_id"), pl.col("item_id")
    repeat = ordered.select(
        ((sid == sid.shift(1)) & (item == item.shift(1))).fill_null(False)
    ).to_series()
    keep = ~repeat
    if "event_type" in ordered.columns and repeat.any():
        keep = pl.Series(_strongest_of_runs(repeat.to_numpy(), event_strength(ordered)))
    out = ordered.filter(keep)
    removed = frame.height - out.height
    log.info("removed %d consecutive repeated click(s) of %d", removed, frame.height)
    return out, removed


def event_strength(frame: pl.DataFrame) -> np.ndarray:
    """0 for a view (or any other type), 1 for a cart, 2 for a purchase, per click."""
    column = frame["event_type"]
    if column.dtype == EVENT_TYPE_DTYPE:  # physical codes are the strengths
        return column.to_physical().fill_null(0).cast(pl.Int8).to_numpy()
    strength = {name: i for i, name in enumerate(CANONICAL_EVENT_TYPES)}
    return (
        column.cast(pl.String)
        .replace_strict(strength, default=0, return_dtype=pl.Int8)
        .fill_null(0)
        .to_numpy()
    )


def _strongest_of_runs(repeat: np.ndarray, strength: np.ndarray) -> np.ndarray:
    """Keep mask: of every run of repeats (``repeat`` marks a run's later clicks), the
    first click of the run's highest strength."""
    starts = np.flatnonzero(~repeat)
    run = np.cumsum(~repeat) - 1
    best = np.maximum.reduceat(strength, starts)[run]
    candidate = strength == best
    seen = np.cumsum(candidate)
    before_run = (seen - candidate)[starts]
    return candidate & (seen - before_run[run] == 1)


def filter_sessions(
    frame: pl.DataFrame,
    min_session_length: int = 2,
    min_item_support: int = 5,
    max_session_length: int | None = None,
) -> tuple[pl.DataFrame, CleaningReport]:
    """Remove rare items and short sessions until nothing changes (a fixpoint).

    Clicks on items with fewer than ``min_item_support`` clicks are dropped, then sessions
    left with fewer than ``min_session_length`` clicks; dropping a session lowers item
    counts and dropping an item shortens sessions, so this repeats until nothing changes.
    The result is the largest part of the log in which every item has at least
    ``min_item_support`` clicks and every session at least ``min_session_length`` (the
    same whatever the order of removals). ``max_session_length``, when given, first drops
    sessions longer than that (crawlers, bots), once: filtering only shortens sessions.
    Returns the filtered frame (input order kept) and a :class:`CleaningReport`.
    """
    _require(frame, ("session_id", "item_id"), "filter_sessions")
    for name, value in (
        ("min_session_length", min_session_length),
        ("min_item_support", min_item_support),
    ):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ConfigError(f"{name} must be an integer >= 1, not {value!r}")
    if max_session_length is not None and (
        isinstance(max_session_length, bool)
        or not isinstance(max_session_length, int)
        or max_session_length < min_session_length
    ):
        raise ConfigError(
            f"max_session_length must be an integer >= min_session_length, "
            f"not {max_session_length!r}"
        )
    # Dense integer codes and numpy.bincount: counts are computed once and then only
    # decremented by the (few) clicks each pass drops, instead of a hash group-by per pass.
    items, n_items = dense_codes(frame["item_id"])
    sessions, n_sessions = _session_codes(frame)
    support = np.bincount(items, minlength=n_items)
    length = np.bincount(sessions, minlength=n_sessions)
    alive = np.ones(frame.height, dtype=bool)

    def remove(rows: np.ndarray) -> int:
        alive[rows] = False
        support[:] -= np.bincount(items[rows], minlength=n_items)
        length[:] -= np.bincount(sessions[rows], minlength=n_sessions)
        return int(rows.size)

    long = 0
    if max_session_length is not None:
        long = remove(np.flatnonzero((length > max_session_length)[sessions]))
    rare = short = 0
    iterations = 0
    while True:
        iterations += 1
        rare_rows = np.flatnonzero(((support < min_item_support)[items]) & alive)
        rare += remove(rare_rows)
        short_rows = np.flatnonzero(((length < min_session_length)[sessions]) & alive)
        short += remove(short_rows)
        if rare_rows.size == 0 and short_rows.size == 0:
            break
    current = frame.filter(pl.Series(alive))
    sessions_in, items_in = n_sessions, n_items
    sessions_out = int(np.count_nonzero(length))
    items_out = int(np.count_nonzero(support))
    report = CleaningReport(
        events_in=frame.height,
        sessions_in=sessions_in,
        items_in=items_in,
        events_out=current.height,
        sessions_out=sessions_out,
        items_out=items_out,
        rare_item_events_removed=rare,
        short_session_events_removed=short,
        long_session_events_removed=long,
        iterations=iterations,
    )
    log.info(
        "filtered in %d pass(es): %d -> %d clicks, %d -> %d sessions, %d -> %d items "
        "(min_item_support=%d, min_session_length=%d)",
        iterations,
        report.events_in,
        report.events_out,
        sessions_in,
        sessions_out,
        items_in,
        items_out,
        min_item_support,
        min_session_length,
    )
    return current, report


def clean(
    frame: pl.DataFrame,
    *,
    dedupe: bool = True,
    min_session_length: int = 2,
    min_item_support: int = 5,
    max_session_length: int | None = None,
) -> tuple[pl.DataFrame, CleaningReport]:
    """The usual cleaning: :func:`remove_consecutive_repeats` (when ``dedupe``), then
    :func:`filter_sessions`, repeated until neither removes anything.

    Dropping a rare item can make the clicks on either side of it neighbours (``A x A``
    becomes ``A A``), so repeats are dropped again after filtering, and filtering runs
    again after that: in the result no session holds two consecutive clicks on one item,
    every item has ``min_item_support`` clicks and every session ``min_session_length``.
    ``max_session_length`` is applied once, in the first round (later rounds only shorten
    sessions). The report covers every round: ``events_in`` counts the clicks before the
    first de-duplication (which never removes a whole session or item), ``iterations`` the
    filtering passes of all rounds.
    """
    current, repeats = remove_consecutive_repeats(frame) if dedupe else (frame, 0)
    current, report = filter_sessions(
        current, min_session_length, min_item_support, max_session_length
    )
    rare, short, iterations = (
        report.rare_item_events_removed,
        report.short_session_events_removed,
        report.iterations,
    )
    while dedupe:
        current, removed = remove_consecutive_repeats(current)
        if removed == 0:
            break
        repeats += removed
        current, more = filter_sessions(current, min_session_length, min_item_support)
        rare += more.rare_item_events_removed
        short += more.short_session_events_removed
        iterations += more.iterations
        report = replace(
            report,
            events_out=more.events_out,
            sessions_out=more.sessions_out,
            items_out=more.items_out,
        )
    return current, replace(
        report,
        events_in=frame.height,
        repeats_removed=repeats,
        rare_item_events_removed=rare,
        short_session_events_removed=short,
        iterations=iterations,
    )

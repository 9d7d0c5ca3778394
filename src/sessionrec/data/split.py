"""Temporal splits: test (and validation) sessions are the most recent ones.

A random split of sessions lets a model learn from clicks made after the ones it is tested
on, which inflates accuracy; every split here cuts by time, as the published protocols do.
The test part is the sessions of the log's last ``days`` days; the validation part is cut
the same way from the end of the training part only, so model selection never sees the
test period. Test and validation clicks on items the training part never saw cannot be
predicted and are removed (:func:`restrict_items`), then sessions too short to give a
prediction case.

Frame functions take and return canonical click frames (see
:mod:`sessionrec.data.events`) without touching their input; :func:`last_fraction_split`
works on :class:`SessionData` without timestamps (benchmark folders).
"""

from __future__ import annotations

import logging
import math
from dataclasses import asdict, dataclass
from typing import Literal

import numpy as np
import polars as pl

from sessionrec._errors import ConfigError, DataError
from sessionrec.data.cleaning import session_blocks
from sessionrec.data.sessions import SessionData

__all__ = [
    "DAY",
    "RestrictReport",
    "SplitBy",
    "last_fraction_split",
    "restrict_items",
    "split_cutoff",
    "temporal_split",
    "validation_split",
]

log = logging.getLogger("sessionrec.data")

DAY = 86_400.0
"""Seconds in a day: ``days`` arguments count 24-hour periods back from the last click."""

SplitBy = Literal["start", "end"]


def _require(frame: pl.DataFrame, columns: tuple[str, ...], what: str) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise DataError(f"{what} needs column(s) {missing}; the frame has {frame.columns}")


def _check_days(days: float, name: str = "days") -> float:
    if isinstance(days, bool) or not isinstance(days, (int, float)) or not days > 0:
        raise ConfigError(f"{name} must be a positive number of days, not {days!r}")
    if not math.isfinite(days):
        raise ConfigError(f"{name} must be finite")
    return float(days)


def split_cutoff(frame: pl.DataFrame, days: float) -> float:
    """The time (Unix seconds) ``days`` days before the frame's last click."""
    _require(frame, ("timestamp",), "split_cutoff")
    if frame.height == 0:
        raise DataError("cannot split an empty click frame")
    last = frame["timestamp"].max()
    if last is None:
        raise DataError("cannot split by time: every timestamp is missing")
    return float(last) - _check_days(days) * DAY  # type: ignore[arg-type]


def temporal_split(
    frame: pl.DataFrame, days: float = 1.0, by: SplitBy = "end"
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Split sessions by time: the test part is those of the log's last ``days`` days.

    A session belongs to the test part when its ``by`` time (first click for ``"start"``,
    last click for ``"end"``) is at or after :func:`split_cutoff`, i.e. ``days`` days
    before the last click of the whole log; all its clicks go with it, so a session is
    never cut in two. ``"end"`` (the GRU4Rec and SR-GNN scripts' choice) guarantees that
    every training click precedes the cutoff; ``"start"`` puts sessions that straddle the
    cutoff into training. Returns ``(train, test)`` in input order; either may be empty.
    """
    _require(frame, ("session_id", "timestamp"), "temporal_split")
    if by not in ("start", "end"):
        raise ConfigError(f"by must be 'start' or 'end', not {by!r}")
    if frame["timestamp"].null_count():
        raise DataError(f"temporal_split: {frame['timestamp'].null_count()} click(s) lack a time")
    cutoff = split_cutoff(frame, days)
    in_test = pl.Series(_per_session(frame, by) >= cutoff)
    train, test = frame.filter(~in_test), frame.filter(in_test)
    log.info(
        "temporal split (last %g day(s) by session %s): %d train / %d test clicks",
        days,
        by,
        train.height,
        test.height,
    )
    return train, test


def validation_split(
    train_frame: pl.DataFrame, days: float = 1.0, by: SplitBy = "end"
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """The validation cut: :func:`temporal_split` applied to the *training* part only.

    Pass the training frame (never the whole log), so that validation sessions come from
    the days just before the test period and model selection never looks at test clicks.
    Returns ``(train, valid)``.
    """
    return temporal_split(train_frame, days, by)


def _per_session(frame: pl.DataFrame, by: SplitBy) -> np.ndarray:
    """Each click's session start (or end) time, aligned with the rows."""
    times = frame["timestamp"].to_numpy()
    starts = session_blocks(frame)
    if starts is None:  # scattered sessions: a hash group-by
        time = pl.col("timestamp")
        key = (time.min() if by == "start" else time.max()).over("session_id")
        return frame.select(key).to_series().to_numpy()
    if starts.size == 0:
        return times
    ufunc = np.minimum if by == "start" else np.maximum
    lengths = np.diff(np.append(starts, times.size))
    return np.repeat(ufunc.reduceat(times, starts), lengths)


def _session_lengths(frame: pl.DataFrame) -> np.ndarray:
    """Each click's session length, aligned with the rows."""
    starts = session_blocks(frame)
    if starts is None:
        return frame.select(pl.len().over("session_id")).to_series().to_numpy()
    lengths = np.diff(np.append(starts, frame.height))
    return np.repeat(lengths, lengths)


@dataclass(frozen=True)
class RestrictReport:
    """What :func:`restrict_items` removed from a test or validation part."""

    events_in: int
    sessions_in: int
    unknown_item_events_removed: int
    short_session_events_removed: int
    events_out: int
    sessions_out: int

    @property
    def sessions_removed(self) -> int:
        return self.sessions_in - self.sessions_out

    def as_dict(self) -> dict[str, int]:
        return {**asdict(self), "sessions_removed": self.sessions_removed}


def restrict_items(
    test_frame: pl.DataFrame, train_frame: pl.DataFrame, min_session_length: int = 2
) -> tuple[pl.DataFrame, RestrictReport]:
    """Keep the test clicks a model trained on ``train_frame`` can be scored on.

    Drops clicks on items that never occur in ``train_frame`` (no model can rank an item it
    has never seen), then sessions left with fewer than ``min_session_length`` clicks (a
    session of length ``n`` gives ``n - 1`` prediction cases). Returns the restricted frame
    (input order kept) and a :class:`RestrictReport`.
    """
    _require(test_frame, ("session_id", "item_id"), "restrict_items")
    _require(train_frame, ("item_id",), "restrict_items")
    if isinstance(min_session_length, bool) or not isinstance(min_session_length, int):
        raise ConfigError(f"min_session_length must be an integer, not {min_session_length!r}")
    if min_session_length < 1:
        raise ConfigError(f"min_session_length must be >= 1, not {min_session_length}")
    test_type, train_type = test_frame["item_id"].dtype, train_frame["item_id"].dtype
    if test_type != train_type:
        raise DataError(
            f"restrict_items: item ids are {test_type} in the test part but {train_type} in "
            "the training part; read both with the same options"
        )
    sessions_in = test_frame["session_id"].n_unique()
    known = test_frame.filter(pl.col("item_id").is_in(train_frame["item_id"].unique().implode()))
    out = known.filter(pl.Series(_session_lengths(known) >= min_session_length))
    report = RestrictReport(
        events_in=test_frame.height,
        sessions_in=sessions_in,
        unknown_item_events_removed=test_frame.height - known.height,
        short_session_events_removed=known.height - out.height,
        events_out=out.height,
        sessions_out=out["session_id"].n_unique(),
    )
    log.info(
        "restricted to training items: %d clicks on unknown items and %d clicks of sessions "
        "shorter than %d removed; %d of %d sessions kept",
        report.unknown_item_events_removed,
        report.short_session_events_removed,
        min_session_length,
        report.sessions_out,
        sessions_in,
    )
    return out, report


def last_fraction_split(
    sessions: SessionData, fraction: float = 0.1
) -> tuple[SessionData, SessionData]:
    """Hold out the chronologically last ``fraction`` of sessions as validation.

    For data without timestamps whose sessions are stored in chronological order (the
    sessions-txt benchmark files): the README protocol takes the validation part from the
    end of ``train_sessions.txt``. The training part has ``round(n * (1 - fraction))``
    sessions, as in the SR-GNN code. Both keep the vocabulary of ``sessions``; validation
    items unseen in the training part are simply misses.
    """
    if isinstance(fraction, bool) or not isinstance(fraction, (int, float)):
        raise ConfigError(f"fraction must be a number in (0, 1), not {fraction!r}")
    if not 0.0 < fraction < 1.0:
        raise ConfigError(f"fraction must lie in (0, 1), not {fraction}")
    n = sessions.n_sessions
    n_train = round(n * (1.0 - fraction))
    if n_train == 0 or n_train == n:
        raise DataError(
            f"cannot hold out {fraction:.0%} of {n} session(s): one part would be empty"
        )
    order = np.arange(n, dtype=np.int64)
    return sessions.subset(order[:n_train]), sessions.subset(order[n_train:])

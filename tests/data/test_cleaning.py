"""sessionize, remove_consecutive_repeats, filter_sessions and clean on hand-made frames
with answers worked out by hand, plus a brute-force reference for the fixpoint."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest
from polars.testing import assert_frame_equal

from sessionrec._errors import ConfigError, DataError
from sessionrec.data.cleaning import (
    CleaningReport,
    clean,
    filter_sessions,
    remove_consecutive_repeats,
    sessionize,
)
from sessionrec.data.synthetic import generate_clicks


# ---------------------------------------------------------------------- sessionize
def visitor_log() -> pl.DataFrame:
    # user 7: clicks at 0, 100, 2000 (1900 s later: new session), 3800 (exactly 1800 s
    # later: same session); user 3: 50, 60. Rows deliberately out of order.
    return pl.DataFrame(
        {
            "user_id": [7, 3, 7, 7, 3, 7],
            "item_id": [10, 20, 11, 12, 21, 13],
            "timestamp": [2000.0, 60.0, 0.0, 100.0, 50.0, 3800.0],
        }
    )


def test_sessionize_cuts_at_the_gap() -> None:
    log = visitor_log()
    before = log.clone()
    result = sessionize(log, gap=1800)
    expected = pl.DataFrame(
        {
            "session_id": [0, 0, 1, 1, 2, 2],
            "user_id": [3, 3, 7, 7, 7, 7],
            "item_id": [21, 20, 11, 12, 10, 13],
            "timestamp": [50.0, 60.0, 0.0, 100.0, 2000.0, 3800.0],
        }
    )
    assert_frame_equal(result, expected)
    assert_frame_equal(log, before)  # the caller's frame is untouched


def test_sessionize_smaller_gap_and_ties_keep_file_order() -> None:
    log = pl.DataFrame(
        {"user_id": [1, 1, 1], "item_id": [5, 6, 7], "timestamp": [10.0, 10.0, 20.0]}
    )
    result = sessionize(log, gap=5)
    assert result["session_id"].to_list() == [0, 0, 1]
    assert result["item_id"].to_list() == [5, 6, 7]


def test_sessionize_replaces_session_id_and_keeps_other_columns() -> None:
    log = visitor_log().with_columns(session_id=pl.lit(99), event_type=pl.lit("view"))
    result = sessionize(log)
    assert result.columns == ["session_id", "user_id", "item_id", "timestamp", "event_type"]
    assert result["session_id"].max() == 2


def test_sessionize_recovers_the_synthetic_sessions() -> None:
    log = generate_clicks(20_000, seed=3)  # visitors return > 30 min after a session ends
    result = sessionize(log.drop("session_id"), gap=1800)
    truth = log.sort(["user_id", "timestamp"], maintain_order=True)["session_id"]
    pairs = pl.DataFrame({"cut": result["session_id"], "true": truth}).unique()
    assert pairs.height == result["session_id"].n_unique() == truth.n_unique()


@pytest.mark.parametrize("gap", [0, -1, float("nan"), float("inf"), "30", True])
def test_sessionize_rejects_bad_gaps(gap: object) -> None:
    with pytest.raises(ConfigError):
        sessionize(visitor_log(), gap=gap)  # type: ignore[arg-type]


def test_sessionize_needs_user_and_time() -> None:
    with pytest.raises(DataError, match=r"needs column\(s\) \['user_id'\]"):
        sessionize(pl.DataFrame({"item_id": [1], "timestamp": [1.0]}))
    log = visitor_log().with_columns(timestamp=pl.lit(None, pl.Float64))
    with pytest.raises(DataError, match="6 click\\(s\\) have no timestamp"):
        sessionize(log)


# ------------------------------------------------------------------------ repeats
def test_remove_consecutive_repeats() -> None:
    clicks = pl.DataFrame(
        {
            "session_id": [1, 1, 1, 1, 1, 2, 2],
            "item_id": [5, 5, 5, 6, 5, 5, 5],
            "timestamp": [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0],
        }
    )
    result, removed = remove_consecutive_repeats(clicks)
    assert removed == 3
    assert result["item_id"].to_list() == [5, 6, 5, 5]  # session 2 starts afresh
    assert result["session_id"].to_list() == [1, 1, 1, 2]


def test_repeats_follow_time_order_not_file_order() -> None:
    # by time: A(1) B(2) A(3) -- nothing repeats, although A A are adjacent in the file
    clicks = pl.DataFrame(
        {"session_id": [1, 1, 1], "item_id": ["A", "A", "B"], "timestamp": [1.0, 3.0, 2.0]}
    )
    before = clicks.clone()
    result, removed = remove_consecutive_repeats(clicks)
    assert removed == 0
    assert result["item_id"].to_list() == ["A", "B", "A"]
    assert_frame_equal(clicks, before)


def test_repeats_without_timestamps_use_file_order() -> None:
    clicks = pl.DataFrame({"session_id": [2, 1, 2, 1], "item_id": [7, 7, 7, 8]})
    result, removed = remove_consecutive_repeats(clicks)
    assert removed == 1
    assert result.rows() == [(1, 7), (1, 8), (2, 7)]


# ------------------------------------------------------------------------- filter
CASCADE = pl.DataFrame(
    {
        # 1:[a b a]  2:[a c]  3:[b b]  4:[c d]  5:[d]
        "session_id": [1, 1, 1, 2, 2, 3, 3, 4, 4, 5],
        "item_id": ["a", "b", "a", "a", "c", "b", "b", "c", "d", "d"],
    }
)


def test_filter_reaches_the_fixpoint_through_a_cascade() -> None:
    # pass 1: session 5 is too short (d); pass 2: d has 1 click left, so session 4 loses it
    # and is too short (c); pass 3: c has 1 click left, so session 2 loses it and is too
    # short (a); pass 4: a still has 2 clicks -- nothing changes.
    before = CASCADE.clone()
    result, report = filter_sessions(CASCADE, min_session_length=2, min_item_support=2)
    assert result.rows() == [(1, "a"), (1, "b"), (1, "a"), (3, "b"), (3, "b")]
    assert report == CleaningReport(
        events_in=10,
        sessions_in=5,
        items_in=4,
        events_out=5,
        sessions_out=2,
        items_out=2,
        rare_item_events_removed=2,
        short_session_events_removed=3,
        iterations=4,
    )
    assert (report.events_removed, report.sessions_removed, report.items_removed) == (5, 3, 2)
    assert_frame_equal(CASCADE, before)


def test_max_session_length_drops_long_sessions_first() -> None:
    result, report = filter_sessions(
        CASCADE, min_session_length=1, min_item_support=1, max_session_length=2
    )
    assert result["session_id"].unique().sort().to_list() == [2, 3, 4, 5]
    assert report.long_session_events_removed == 3


def reference_filter(
    sessions: list[int], items: list[int], min_len: int, min_support: int
) -> list[int]:
    """Brute force: remove offending rows one kind at a time until nothing changes."""
    alive = set(range(len(items)))
    while True:
        support: dict[int, int] = {}
        for r in alive:
            support[items[r]] = support.get(items[r], 0) + 1
        length: dict[int, int] = {}
        for r in alive:
            length[sessions[r]] = length.get(sessions[r], 0) + 1
        bad = {r for r in alive if support[items[r]] < min_support}
        bad |= {r for r in alive if length[sessions[r]] < min_len}
        if not bad:
            return sorted(alive)
        alive -= bad


@pytest.mark.parametrize("seed", range(6))
def test_filter_matches_brute_force(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n = 300
    sessions = np.sort(rng.integers(0, 80, n))
    if seed % 2:  # scattered sessions and ids spanning a huge range exercise the fallbacks
        rng.shuffle(sessions)
    items = np.minimum(rng.zipf(1.6, n), 1000) * (10**12 if seed % 3 == 0 else 1)
    clicks = pl.DataFrame({"session_id": sessions, "item_id": items})
    result, _ = filter_sessions(clicks, min_session_length=3, min_item_support=3)
    keep = reference_filter(sessions.tolist(), items.tolist(), 3, 3)
    assert_frame_equal(result, clicks[keep])


def test_filter_everything_away() -> None:
    result, report = filter_sessions(CASCADE, min_item_support=100)
    assert result.height == 0 and report.events_out == 0 and report.items_out == 0


@pytest.mark.parametrize(
    "kwargs",
    [
        {"min_session_length": 0},
        {"min_item_support": 1.5},
        {"min_session_length": True},
        {"max_session_length": 1, "min_session_length": 2},
    ],
)
def test_filter_rejects_bad_thresholds(kwargs: dict[str, object]) -> None:
    with pytest.raises(ConfigError):
        filter_sessions(CASCADE, **kwargs)  # type: ignore[arg-type]


def test_filter_needs_ids_without_nulls() -> None:
    with pytest.raises(DataError, match="no item_id"):
        filter_sessions(pl.DataFrame({"session_id": [1], "item_id": [None]}))


# -------------------------------------------------------------------------- clean
def test_clean_reports_both_steps() -> None:
    clicks = pl.DataFrame(
        {
            # 1:[x x y]  2:[x y]  3:[z]
            "session_id": [1, 1, 1, 2, 2, 3],
            "item_id": [1, 1, 2, 1, 2, 3],
            "timestamp": [0.0, 1.0, 2.0, 3.0, 4.0, 5.0],
        }
    )
    result, report = clean(clicks, min_session_length=2, min_item_support=2)
    assert result.rows() == [(1, 1, 0.0), (1, 2, 2.0), (2, 1, 3.0), (2, 2, 4.0)]
    assert report.repeats_removed == 1
    assert report.events_in == 6 and report.events_out == 4
    assert report.rare_item_events_removed == 1  # z
    assert report.as_dict()["sessions_removed"] == 1
    _, kept = clean(clicks, dedupe=False, min_session_length=2, min_item_support=2)
    assert kept.repeats_removed == 0 and kept.events_out == 5


def test_clean_drops_repeats_that_filtering_made_consecutive() -> None:
    # Session 1 is [a r a b]: r is rare, so dropping it leaves [a a b], whose second a is a
    # repeat; dropping that lowers a's support to 2, which is still enough.
    clicks = pl.DataFrame(
        {
            "session_id": [1, 1, 1, 1, 2, 2, 3, 3],
            "item_id": [1, 9, 1, 2, 1, 2, 1, 2],
            "timestamp": [0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0],
        }
    )
    result, report = clean(clicks, min_session_length=2, min_item_support=2)
    assert result.rows() == [
        (1, 1, 0.0),
        (1, 2, 3.0),
        (2, 1, 4.0),
        (2, 2, 5.0),
        (3, 1, 6.0),
        (3, 2, 7.0),
    ]
    assert report.repeats_removed == 1
    assert report.rare_item_events_removed == 1
    assert report.events_in == 8 and report.events_out == 6
    assert report.sessions_out == 3 and report.items_out == 2


def test_clean_repeats_and_filters_cascade_to_the_fixpoint() -> None:
    # 1:[a r a]  2:[a b]  3:[b z b]; support >= 2, length >= 2. The first round drops the
    # rare r and z, leaving 1:[a a] and 3:[b b]; their repeats go, sessions 1 and 3 are then
    # too short, which leaves a and b one click each: rare, so session 2 goes too.
    clicks = pl.DataFrame(
        {
            "session_id": [1, 1, 1, 2, 2, 3, 3, 3],
            "item_id": [1, 9, 1, 1, 2, 2, 3, 2],
            "timestamp": [0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0],
        }
    )
    result, report = clean(clicks, min_session_length=2, min_item_support=2)
    assert result.height == 0
    assert report.repeats_removed == 2
    assert report.rare_item_events_removed == 4  # r, z, then a and b of session 2
    assert report.short_session_events_removed == 2
    assert report.events_in == 8 and report.events_out == 0 and report.sessions_out == 0
    # with support 1 nothing is rare, and [a r a] has no consecutive repeat: all kept
    kept, _ = clean(clicks, min_session_length=2, min_item_support=1)
    assert kept.rows() == clicks.rows()


@pytest.mark.parametrize("seed", range(4))
def test_clean_output_has_no_consecutive_repeats(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n = 400
    clicks = pl.DataFrame(
        {
            "session_id": np.sort(rng.integers(0, 60, n)),
            "item_id": rng.integers(0, 70, n),
            "timestamp": np.arange(n, dtype=np.float64),
        }
    )
    result, report = clean(clicks, min_session_length=2, min_item_support=4)
    _, left = remove_consecutive_repeats(result)
    assert left == 0
    again, _ = filter_sessions(result, min_session_length=2, min_item_support=4)
    assert again.height == result.height
    assert report.events_out == result.height

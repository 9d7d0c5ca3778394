"""Temporal, validation and last-fraction splits, and the restriction of test items,
on frames small enough to check by hand."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest
from polars.testing import assert_frame_equal

from sessionrec._errors import ConfigError, DataError
from sessionrec.data.sessions import SessionData
from sessionrec.data.split import (
    DAY,
    RestrictReport,
    last_fraction_split,
    restrict_items,
    split_cutoff,
    temporal_split,
    validation_split,
)

T = 100 * DAY  # the log's last click; the 1-day cutoff is T - DAY


def log() -> pl.DataFrame:
    return pl.DataFrame(
        {
            # session 1: old. 2: starts before the cutoff, ends after it. 3: starts exactly
            # at the cutoff. 4: recent.
            "session_id": [1, 1, 2, 2, 3, 3, 4, 4],
            "item_id": [10, 11, 10, 12, 11, 10, 12, 13],
            "timestamp": [
                T - 5 * DAY,
                T - 5 * DAY + 60,
                T - DAY - 60,
                T - DAY + 60,
                T - DAY,
                T - DAY + 30,
                T - 100,
                T,
            ],
        }
    )


def sessions(frame: pl.DataFrame) -> list[int]:
    return frame["session_id"].unique(maintain_order=True).to_list()


def test_split_by_end() -> None:
    clicks = log()
    before = clicks.clone()
    train, test = temporal_split(clicks, days=1, by="end")
    assert sessions(train) == [1]
    assert sessions(test) == [2, 3, 4]
    assert train.height + test.height == clicks.height
    assert_frame_equal(clicks, before)


def test_split_by_start_keeps_straddling_sessions_in_train() -> None:
    train, test = temporal_split(log(), days=1, by="start")
    assert sessions(train) == [1, 2]
    assert sessions(test) == [3, 4]  # a start exactly at the cutoff is in the test part


def test_split_is_the_same_for_scattered_sessions() -> None:
    clicks = log()
    order = [3, 0, 7, 5, 1, 2, 6, 4]
    train, test = temporal_split(clicks[order], days=1, by="start")
    assert_frame_equal(train, clicks[order].filter(pl.col("session_id").is_in([1, 2])))
    assert_frame_equal(test, clicks[order].filter(pl.col("session_id").is_in([3, 4])))


def test_longer_test_period() -> None:
    train, test = temporal_split(log(), days=6)
    assert train.height == 0 and test.height == 8
    assert split_cutoff(log(), 2.5) == T - 2.5 * DAY


def test_validation_split_is_the_same_cut_on_train() -> None:
    train, _ = temporal_split(log(), days=1, by="end")
    extra = pl.DataFrame({"session_id": [0], "item_id": [10], "timestamp": [T - 9 * DAY]})
    train = pl.concat([extra, train])
    tr, valid = validation_split(train, days=2)
    assert sessions(tr) == [0] and sessions(valid) == [1]


@pytest.mark.parametrize("days", [0, -1, float("nan"), "1"])
def test_bad_days(days: object) -> None:
    with pytest.raises(ConfigError):
        temporal_split(log(), days=days)  # type: ignore[arg-type]


def test_bad_by_and_missing_columns() -> None:
    with pytest.raises(ConfigError, match="by must be"):
        temporal_split(log(), by="middle")  # type: ignore[arg-type]
    with pytest.raises(DataError, match=r"needs column\(s\) \['timestamp'\]"):
        temporal_split(log().drop("timestamp"))
    with pytest.raises(DataError, match="empty"):
        split_cutoff(log().clear(), 1)


# ------------------------------------------------------------------------ restrict
def test_restrict_items() -> None:
    train = pl.DataFrame({"session_id": [1, 1], "item_id": [10, 11]})
    test = pl.DataFrame(
        {
            # 5: [10 99 11] -> [10 11];  6: [99 10] -> [10] too short;  7: [11 10 11] kept
            "session_id": [5, 5, 5, 6, 6, 7, 7, 7],
            "item_id": [10, 99, 11, 99, 10, 11, 10, 11],
        }
    )
    result, report = restrict_items(test, train, min_session_length=2)
    assert result.rows() == [(5, 10), (5, 11), (7, 11), (7, 10), (7, 11)]
    assert report == RestrictReport(
        events_in=8,
        sessions_in=3,
        unknown_item_events_removed=2,
        short_session_events_removed=1,
        events_out=5,
        sessions_out=2,
    )
    assert report.as_dict()["sessions_removed"] == 1
    longer, _ = restrict_items(test, train, min_session_length=3)
    assert sessions(longer) == [7]


def test_restrict_items_scattered_sessions() -> None:
    train = pl.DataFrame({"item_id": [1, 2]})
    test = pl.DataFrame({"session_id": [1, 2, 1, 2, 3], "item_id": [1, 1, 2, 9, 2]})
    result, _ = restrict_items(test, train)
    assert result.rows() == [(1, 1), (1, 2)]


def test_restrict_items_rejects_mixed_id_types() -> None:
    with pytest.raises(DataError, match="item ids are String in the test part but Int64"):
        restrict_items(
            pl.DataFrame({"session_id": [1], "item_id": ["1"]}), pl.DataFrame({"item_id": [1]})
        )
    with pytest.raises(ConfigError):
        restrict_items(log(), log(), min_session_length=0)


# ------------------------------------------------------------------ last fraction
def test_last_fraction_split() -> None:
    data = SessionData.from_sequences([[1, 2], [2, 3], [3], [4, 1], [5, 6]])
    train, valid = last_fraction_split(data, fraction=0.4)
    assert train.n_sessions == 3 and valid.n_sessions == 2
    assert [train.vocab.decode(s) for s in train] == [[1, 2], [2, 3], [3]]
    assert [valid.vocab.decode(s) for s in valid] == [[4, 1], [5, 6]]
    assert train.vocab == valid.vocab == data.vocab


def test_last_fraction_split_rounds_like_srgnn() -> None:
    data = SessionData.from_sequences([[i] for i in range(25)])
    train, valid = last_fraction_split(data)  # round(25 * 0.9) = round(22.5) = 22
    assert (train.n_sessions, valid.n_sessions) == (int(np.round(22.5)), 3)


@pytest.mark.parametrize("fraction", [0, 1, 1.5, -0.1, "0.1"])
def test_last_fraction_split_bad_fraction(fraction: object) -> None:
    with pytest.raises(ConfigError):
        last_fraction_split(SessionData.from_sequences([[1], [2]]), fraction)  # type: ignore[arg-type]


def test_last_fraction_split_too_few_sessions() -> None:
    with pytest.raises(DataError, match="one part would be empty"):
        last_fraction_split(SessionData.from_sequences([[1], [2], [3]]), 0.1)

"""prepare / write_prepared / read_prepared: a hand-worked visitor log end to end, the
dataset folder format, round trips, and the real YooChoose GRU4Rec split reproduced."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from polars.testing import assert_frame_equal

from sessionrec._errors import ConfigError, DataError
from sessionrec.data.cleaning import clean, sessionize
from sessionrec.data.events import read_events
from sessionrec.data.prepare import (
    FORMAT,
    PreparedData,
    PrepareOptions,
    prepare,
    read_prepared,
    write_prepared,
)
from sessionrec.data.sessions import SessionData
from sessionrec.data.split import restrict_items, temporal_split, validation_split
from sessionrec.data.synthetic import generate_clicks

DAY = 86_400


def visitor_csv(tmp_path: Path) -> Path:
    """Sessions (cut at 30 minutes) and where they end up, worked out by hand:

    A user 1, day 0    [1 2 3]          train
    G user 5, day 1    [9]              too short: removed
    B user 2, day 2    [2 3]            train
    C user 1, day 5    [3 3 4] -> [3 4] repeat removed; train
    D user 3, day 8.5  [1 4]            valid (train_full ends at 8.5 d + 10 s)
    E user 2, day 9.5  [4 5 1] -> [4 1] test; item 5 never in train_full
    F user 4, day 9.8  [5 2] -> [2]     test, then too short: removed
    """
    rows = [
        (1, 1, 0, "view"),
        (1, 2, 10, "view"),
        (1, 3, 20, "view"),
        (5, 9, DAY, "view"),
        (2, 2, 2 * DAY, "view"),
        (2, 3, 2 * DAY + 10, "view"),
        (1, 3, 5 * DAY, "view"),
        (1, 3, 5 * DAY + 5, "cart"),
        (1, 4, 5 * DAY + 9, "view"),
        (3, 1, 8.5 * DAY, "view"),
        (3, 4, 8.5 * DAY + 10, "view"),
        (2, 4, 9.5 * DAY, "view"),
        (2, 5, 9.5 * DAY + 10, "view"),
        (2, 1, 9.5 * DAY + 20, "purchase"),
        (4, 5, 9.8 * DAY, "view"),
        (4, 2, 9.8 * DAY + 10, "view"),
    ]
    path = tmp_path / "visits.csv"
    lines = ["visitor,sku,ts,action"] + [f"{u},{i},{t},{e}" for u, i, t, e in reversed(rows)]
    path.write_text("\n".join(lines) + "\n")
    return path


COLUMNS = {"user_id": "visitor", "item_id": "sku", "timestamp": "ts", "event_type": "action"}


def decoded(data: SessionData) -> list[list[int | str]]:
    return [data.vocab.decode(s) for s in data]


@pytest.fixture
def prepared(tmp_path: Path) -> PreparedData:
    return prepare(visitor_csv(tmp_path), columns=COLUMNS, min_item_support=1)


def test_prepare_by_hand(prepared: PreparedData) -> None:
    assert decoded(prepared.train_full) == [[1, 2, 3], [2, 3], [3, 4], [1, 4]]
    assert decoded(prepared.train) == [[1, 2, 3], [2, 3], [3, 4]]
    assert prepared.valid is not None and decoded(prepared.valid) == [[1, 4]]
    assert decoded(prepared.test) == [[4, 1]]
    # sessionize numbers sessions by user, then time: A0 C1 | B2 E3 | D4 | F5 | G6
    assert prepared.train_full.session_ids.tolist() == [0, 2, 1, 4]  # type: ignore[union-attr]
    assert prepared.test.session_ids.tolist() == [3]  # type: ignore[union-attr]
    assert prepared.train_full.vocab.ids.tolist() == [1, 2, 3, 4]
    assert prepared.test.vocab is prepared.train_full.vocab
    assert prepared.valid.vocab is prepared.train.vocab
    assert prepared.test.event_types == ("purchase", "view")
    assert prepared.test.times.tolist() == [9.5 * DAY, 9.5 * DAY + 20]  # type: ignore[union-attr]


def test_prepare_report(prepared: PreparedData) -> None:
    steps = prepared.report["steps"]
    assert steps["read"]["events"] == 16
    assert steps["sessionize"] == {"gap": 1800.0, "sessions": 7}
    assert steps["cleaning"]["repeats_removed"] == 1
    assert steps["cleaning"]["short_session_events_removed"] == 1  # G
    assert steps["test"]["cutoff"] == 8.8 * DAY + 10
    assert steps["test"]["unknown_item_events_removed"] == 2
    assert steps["test"]["short_session_events_removed"] == 1
    assert steps["valid"]["cutoff"] == 7.5 * DAY + 10
    assert prepared.report["parts"]["test"] == {"sessions": 1, "events": 2, "items": 4}
    summary = prepared.summary()
    assert summary["train_full_sessions"] == 4 and summary["valid_sessions"] == 1
    assert summary["test_cases"] == 1 and summary["repeats_removed"] == 1
    json.dumps(prepared.report)  # JSON-ready


def test_prepare_without_validation_and_from_a_frame(tmp_path: Path) -> None:
    frame = read_events(visitor_csv(tmp_path), columns=COLUMNS)
    before = frame.clone()
    result = prepare(frame, PrepareOptions(min_item_support=1, valid_days=None))
    assert result.valid is None and result.train is result.train_full
    assert decoded(result.train_full) == [[1, 2, 3], [2, 3], [3, 4], [1, 4]]
    assert result.report["steps"]["read"] is None
    assert_frame_equal(frame, before)


def test_prepare_split_by_start_and_no_dedupe(tmp_path: Path) -> None:
    # With test_days=0.3 the cutoff (9.5 d + 10 s) falls inside session E (9.5 d .. +20 s).
    options = PrepareOptions(columns=COLUMNS, min_item_support=1, test_days=0.3, valid_days=0)
    by_end = prepare(visitor_csv(tmp_path), options)
    assert decoded(by_end.test) == [[4, 1]]  # E (item 5 unknown); F reduced to [2]: dropped
    by_start = prepare(visitor_csv(tmp_path), options, split_by="start", dedupe=False)
    assert decoded(by_start.train_full)[2:] == [[3, 3, 4], [1, 4], [4, 5, 1]]
    assert decoded(by_start.test) == [[5, 2]]  # E is training data now, so 5 is known


def test_prepare_errors(tmp_path: Path) -> None:
    path = visitor_csv(tmp_path)
    with pytest.raises(DataError, match="training part"):
        prepare(path, columns=COLUMNS, min_item_support=1, test_days=30)
    with pytest.raises(DataError, match="no clicks left"):
        prepare(path, columns=COLUMNS, min_item_support=50)
    with pytest.raises(ConfigError, match="unknown option"):
        prepare(path, colums=COLUMNS)
    with pytest.raises(ConfigError, match="test_days"):
        prepare(path, columns=COLUMNS, test_days=0)
    with pytest.raises(ConfigError, match="split_by"):
        prepare(path, columns=COLUMNS, split_by="middle")
    with pytest.raises(ConfigError, match="PrepareOptions"):
        prepare(path, "yoochoose")  # type: ignore[arg-type]
    sessions = tmp_path / "train_sessions.txt"
    sessions.write_text("1 2\n3 4\n")
    with pytest.raises(ConfigError, match="last_fraction_split"):
        prepare(sessions, preset="sessions-txt")


def test_prepare_matches_the_frame_functions_step_by_step() -> None:
    """prepare cuts validation on arrays; it must agree with validation_split on frames."""
    log = generate_clicks(30_000, seed=5, n_items=300, days=10).drop("session_id")
    result = prepare(log, test_days=2, valid_days=2, split_by="start")
    frame, _ = clean(sessionize(log))
    full, test = temporal_split(frame, 2, by="start")
    train, valid = validation_split(full, 2, by="start")
    assert set(result.train_full.session_ids.tolist()) == set(full["session_id"])  # type: ignore[union-attr]
    assert set(result.train.session_ids.tolist()) == set(train["session_id"])  # type: ignore[union-attr]
    valid, _ = restrict_items(valid, train)
    assert result.valid is not None
    assert set(result.valid.session_ids.tolist()) == set(valid["session_id"])  # type: ignore[union-attr]
    assert result.valid.n_events == valid.height
    test, _ = restrict_items(test, full)
    assert result.test.n_events == test.height


# ------------------------------------------------------------------ folder
def test_write_prepared_layout(prepared: PreparedData, tmp_path: Path) -> None:
    folder = write_prepared(prepared, tmp_path / "out" / "dataset")
    names = sorted(p.name for p in folder.iterdir())
    assert names == [
        "report.json",
        "test.parquet",
        "test_sessions.txt",
        "train.parquet",
        "train_sessions.txt",
        "train_tr_sessions.txt",
        "valid.parquet",
        "valid_sessions.txt",
    ]
    assert (folder / "train_sessions.txt").read_text() == "1 2 3\n2 3\n3 4\n1 4\n"
    assert (folder / "train_tr_sessions.txt").read_text() == "1 2 3\n2 3\n3 4\n"
    assert (folder / "valid_sessions.txt").read_text() == "1 4\n"
    assert (folder / "test_sessions.txt").read_text() == "4 1\n"
    report = json.loads((folder / "report.json").read_text())
    assert report["format"] == FORMAT and report["format_version"] == 1
    assert report["parts"]["train_full"]["events"] == 9
    train = pl.read_parquet(folder / "train.parquet")
    assert train.columns == [
        "session_id",
        "item_id",
        "timestamp",
        "event_type",
        "raw_event_type",
        "valid_period",
    ]
    assert train["valid_period"].to_list() == [False] * 7 + [True] * 2
    assert not [p for p in folder.parent.iterdir() if p.name.startswith(".")]  # no temp dirs


def assert_same(a: SessionData | None, b: SessionData | None) -> None:
    assert a is not None and b is not None
    assert a.vocab == b.vocab
    for name in ("offsets", "items", "times", "types", "session_ids"):
        x, y = getattr(a, name), getattr(b, name)
        assert (x is None and y is None) or np.array_equal(x, y), name
    assert a.event_types == b.event_types


def test_round_trip(prepared: PreparedData, tmp_path: Path) -> None:
    back = read_prepared(write_prepared(prepared, tmp_path / "ds"))
    for name in ("train", "valid", "train_full", "test"):
        assert_same(getattr(prepared, name), getattr(back, name))
    assert back.report["steps"] == json.loads(json.dumps(prepared.report["steps"]))


def test_round_trip_without_validation(tmp_path: Path) -> None:
    result = prepare(visitor_csv(tmp_path), columns=COLUMNS, min_item_support=1, valid_days=0)
    folder = write_prepared(result, tmp_path / "ds")
    assert not (folder / "valid_sessions.txt").exists()
    back = read_prepared(folder)
    assert back.valid is None
    assert_same(result.train_full, back.train_full)
    assert_same(result.test, back.test)


def test_the_folder_is_a_benchmark_folder(prepared: PreparedData, tmp_path: Path) -> None:
    folder = write_prepared(prepared, tmp_path / "ds")
    train = read_events(folder / "train_sessions.txt", "sessions-txt")
    assert train.group_by("session_id", maintain_order=True).agg("item_id")[
        "item_id"
    ].to_list() == (decoded(prepared.train_full))


def test_write_replaces_a_dataset_but_nothing_else(prepared: PreparedData, tmp_path: Path) -> None:
    folder = write_prepared(prepared, tmp_path / "ds")
    (folder / "stale.txt").write_text("old")
    write_prepared(prepared, folder)
    assert not (folder / "stale.txt").exists()
    other = tmp_path / "precious"
    other.mkdir()
    (other / "thesis.tex").write_text("keep me")
    with pytest.raises(ConfigError, match="not a dataset folder"):
        write_prepared(prepared, other)
    assert (other / "thesis.tex").read_text() == "keep me"
    empty = tmp_path / "empty"
    empty.mkdir()
    write_prepared(prepared, empty)
    assert (empty / "report.json").is_file()


def test_read_prepared_rejects_other_folders(tmp_path: Path, prepared: PreparedData) -> None:
    with pytest.raises(DataError, match=r"no report\.json"):
        read_prepared(tmp_path)
    folder = write_prepared(prepared, tmp_path / "ds")
    report = json.loads((folder / "report.json").read_text())
    report["format_version"] = 99
    (folder / "report.json").write_text(json.dumps(report))
    with pytest.raises(DataError, match="newer"):
        read_prepared(folder)


def test_write_rejects_ids_sessions_txt_cannot_hold(tmp_path: Path) -> None:
    frame = pl.DataFrame(
        {
            "session_id": [1, 1, 2, 2],
            "item_id": ["a b", "c", "a b", "c"],
            "timestamp": [0.0, 1.0, 5 * DAY, 5 * DAY + 1],
        }
    )
    result = prepare(frame, min_item_support=1, valid_days=0)
    with pytest.raises(DataError, match="whitespace"):
        write_prepared(result, tmp_path / "ds")
    assert not (tmp_path / "ds").exists()


# ----------------------------------------------------- fast SessionData builder
def random_frame(seed: int, *, blocks: bool, text_ids: bool) -> pl.DataFrame:
    rng = np.random.default_rng(seed)
    n_sessions = 40
    lengths = rng.integers(1, 6, n_sessions)
    session = np.repeat(rng.permutation(1000)[:n_sessions], lengths)
    start = rng.integers(0, 20, n_sessions).astype(float)  # many equal start times
    times = np.repeat(start, lengths) + np.concatenate(
        [np.sort(rng.integers(0, 3, k)).astype(float) for k in lengths]
    )
    items = rng.integers(0, 15, session.size)
    frame = pl.DataFrame(
        {
            "session_id": session,
            "item_id": [f"i{x}" for x in items] if text_ids else items,
            "timestamp": times,
            "event_type": rng.choice(["view", "cart", "buy"], session.size),
        }
    )
    return frame if blocks else frame[rng.permutation(frame.height)]


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("blocks", [True, False])
@pytest.mark.parametrize("text_ids", [True, False])
def test_enum_event_types_build_the_same_sessions_as_text(
    seed: int, blocks: bool, text_ids: bool
) -> None:
    # prepare stores event types as an Enum internally; the codes must not change.
    frame = random_frame(seed, blocks=blocks, text_ids=text_ids)
    enum = frame.with_columns(pl.col("event_type").cast(pl.Enum(["view", "cart", "buy", "gone"])))
    assert_same(SessionData.from_frame(enum), SessionData.from_frame(frame))


def test_session_data_unknown_item() -> None:
    vocab = SessionData.from_sequences([[1, 2]]).vocab
    frame = pl.DataFrame({"session_id": [1, 1], "item_id": [1, 3], "timestamp": [0.0, 1.0]})
    with pytest.raises(DataError, match="item id 3 is not in the vocabulary"):
        SessionData.from_frame(frame, vocab)


# --------------------------------------------------------------------- real data
def test_reproduces_the_gru4rec_yoochoose_split(shared_file: Callable[[str], Path]) -> None:
    """rsc15-100k was split the GRU4Rec way (last day by session end); re-splitting its
    train_full + test without any further filtering gives back exactly the same parts."""
    folder = "yoochoose/rsc15-100k/yoochoose-clicks-100k_"
    train = read_events(shared_file(folder + "train_full.txt"), "gru4rec")
    test = read_events(shared_file(folder + "test.txt"), "gru4rec")
    train_tr = read_events(shared_file(folder + "train_tr.txt"), "gru4rec")
    result = prepare(
        pl.concat([train, test]), dedupe=False, min_item_support=1, min_session_length=1
    )
    assert result.train_full.n_events == train.height == 70_278
    assert result.train_full.n_items == 2_933
    assert result.train.n_events == train_tr.height == 53_254
    assert result.test.n_events == test.height == 13_568
    assert set(result.test.session_ids.tolist()) == set(test["session_id"].unique().to_list())  # type: ignore[union-attr]


def test_prepare_real_diginetica_sample(shared_file: Callable[[str], Path], tmp_path: Path) -> None:
    path = shared_file("diginetica/raw-sample/sample_train-item-views.csv")
    result = prepare(path, preset="diginetica", test_days=7, valid_days=7, min_item_support=2)
    for part in (result.train, result.valid, result.train_full, result.test):
        assert part is not None and part.n_sessions > 0
        assert (part.lengths >= 2).all()
        assert np.all(np.diff(part.start_times()) >= 0)  # chronological
    cutoff = result.report["steps"]["test"]["cutoff"]
    assert result.train_full.end_times().max() < cutoff
    assert not set(result.test.session_ids.tolist()) & set(result.train_full.session_ids.tolist())  # type: ignore[union-attr]
    assert np.isin(result.test.items, result.train_full.items).all()
    assert_same(read_prepared(write_prepared(result, tmp_path / "d")).test, result.test)

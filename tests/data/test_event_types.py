"""Canonical event types (issue 24): every preset's words mapped to view/cart/purchase, the
raw words kept, unknown words refused, purchase files merged, and the types carried through
cleaning, prepare and the dataset folder."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from sessionrec._errors import ConfigError, DataError
from sessionrec.cli import main
from sessionrec.data.cleaning import remove_consecutive_repeats
from sessionrec.data.events import PRESETS, read_events
from sessionrec.data.events.event_types import CANONICAL_EVENT_TYPES, parse_event_map
from sessionrec.data.prepare import prepare, read_prepared, write_prepared
from sessionrec.data.sessions import SessionData


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def utc(*args: int) -> float:
    return datetime(*args, tzinfo=UTC).timestamp()  # type: ignore[misc]


def test_canonical_names_weakest_first() -> None:
    assert CANONICAL_EVENT_TYPES == ("view", "cart", "purchase")


# ------------------------------------------------------------------- preset maps
OTTO_LINES = (
    '{"session": 7, "events": [{"aid": 1, "ts": 1659304800000, "type": "clicks"},'
    ' {"aid": 2, "ts": 1659304801000, "type": "clicks"},'
    ' {"aid": 2, "ts": 1659304802000, "type": "carts"}]}\n'
    '{"session": 8, "events": [{"aid": 3, "ts": 1659304900000, "type": "clicks"},'
    ' {"aid": 3, "ts": 1659304901000, "type": "carts"},'
    ' {"aid": 3, "ts": 1659304902000, "type": "orders"}]}\n'
)


def test_otto_six_events_map_to_canonical_and_keep_raw(tmp_path: Path) -> None:
    result = read_events(write(tmp_path / "train.jsonl", OTTO_LINES), "otto")
    assert result.columns == [
        "session_id",
        "item_id",
        "timestamp",
        "event_type",
        "raw_event_type",
    ]
    assert result["event_type"].to_list() == ["view", "view", "cart", "view", "cart", "purchase"]
    assert result["raw_event_type"].to_list() == [
        "clicks",
        "clicks",
        "carts",
        "clicks",
        "carts",
        "orders",
    ]
    assert result["raw_event_type"].dtype == pl.String


def test_taobao_preset_reads_user_behavior_without_header(tmp_path: Path) -> None:
    path = write(
        tmp_path / "UserBehavior.csv",
        "1,2268318,2520377,pv,1511544070\n"
        "1,2333346,2520771,fav,1511561733\n"
        "1,2333346,2520771,cart,1511561800\n"
        "1,2333346,2520771,buy,1511561900\n",
    )
    result = read_events(path, "taobao")
    assert result.columns == ["user_id", "item_id", "timestamp", "event_type", "raw_event_type"]
    assert result["event_type"].to_list() == ["view", "view", "cart", "purchase"]
    assert result["raw_event_type"].to_list() == ["pv", "fav", "cart", "buy"]
    assert result["timestamp"].to_list() == [1511544070.0, 1511561733.0, 1511561800.0, 1511561900.0]
    # the fav rule is configurable
    as_cart = read_events(path, "taobao", event_map={"fav": "cart"})
    assert as_cart["event_type"].to_list() == ["view", "cart", "cart", "purchase"]


def test_every_typed_preset_has_a_map() -> None:
    assert dict(PRESETS["otto"].event_map) == {
        "clicks": "view",
        "carts": "cart",
        "orders": "purchase",
    }
    assert dict(PRESETS["retailrocket"].event_map) == {
        "view": "view",
        "addtocart": "cart",
        "transaction": "purchase",
    }
    assert dict(PRESETS["taobao"].event_map) == {
        "pv": "view",
        "cart": "cart",
        "buy": "purchase",
        "fav": "view",
    }
    assert PRESETS["yoochoose"].event_map["click"] == "view"
    assert PRESETS["yoochoose"].purchases is not None
    assert PRESETS["yoochoose"].purchases.filename == "yoochoose-buys.dat"
    assert PRESETS["diginetica"].purchases is not None
    assert PRESETS["diginetica"].purchases.filename == "train-purchases.csv"


def test_matching_ignores_case_and_whitespace(tmp_path: Path) -> None:
    path = write(
        tmp_path / "events.csv",
        "timestamp,visitorid,event,itemid,transactionid\n"
        "1433221332117,1,View,10,\n"
        "1433221332118,1, ADDTOCART ,10,\n"
        "1433221332119,1,Purchase,10,\n",
    )
    result = read_events(path, "retailrocket")
    assert result["event_type"].to_list() == ["view", "cart", "purchase"]
    assert result["raw_event_type"].to_list() == ["View", " ADDTOCART ", "Purchase"]


# -------------------------------------------------------------------- unknown types
RETAILROCKET_WITH_LIKES = (
    "timestamp,visitorid,event,itemid,transactionid\n"
    "1433221332117,1,view,10,\n"
    "1433221332118,1,like,10,\n"
    "1433221332119,2,like,11,\n"
    "1433221332120,2,share,11,\n"
)


def test_an_unknown_type_is_refused_with_the_exact_message(tmp_path: Path) -> None:
    path = write(tmp_path / "events.csv", RETAILROCKET_WITH_LIKES)
    expected = (
        f"{path}, field 'event': unknown event type 'like' in 2 row(s) (also unknown: "
        "'share' (1 row(s))); known types: addtocart, cart, purchase, transaction, view. "
        "Map it to one of view, cart, purchase with --event-map like=view "
        "(event_map={'like': 'view'} in Python)"
    )
    with pytest.raises(DataError) as raised:
        read_events(path, "retailrocket")
    assert str(raised.value) == expected
    # skipping bad rows never drops an unknown type silently
    with pytest.raises(DataError, match="unknown event type 'like' in 2 row"):
        read_events(path, "retailrocket", on_bad_rows="skip")
    with pytest.raises(DataError, match="unknown event type 'like'"):
        prepare(path, preset="retailrocket")


def test_the_user_map_extends_the_preset_map(tmp_path: Path) -> None:
    path = write(tmp_path / "events.csv", RETAILROCKET_WITH_LIKES)
    result = read_events(path, "retailrocket", event_map={"Like": "cart", "share": "view"})
    assert result["event_type"].to_list() == ["view", "cart", "cart", "view"]
    assert result["raw_event_type"].to_list() == ["view", "like", "like", "share"]


def test_a_map_to_a_non_canonical_name_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path / "events.csv", RETAILROCKET_WITH_LIKES)
    with pytest.raises(ConfigError, match="maps 'like' to 'love'; event types map to one of"):
        read_events(path, "retailrocket", event_map={"like": "love"})
    assert parse_event_map(["fav=cart", " like = view "]) == {"fav": "cart", "like": "view"}
    with pytest.raises(ConfigError, match="RAW=CANONICAL"):
        parse_event_map(["fav"])


def test_a_log_without_a_type_column_has_no_types_and_counts_as_views(tmp_path: Path) -> None:
    path = write(tmp_path / "log.csv", "session_id,item_id,timestamp\n1,5,10\n1,6,20\n")
    frame = read_events(path)
    assert frame.columns == ["session_id", "item_id", "timestamp"]
    data = SessionData.from_frame(frame)
    assert data.types is None
    assert data.type_mask("view").tolist() == [True, True]
    assert data.type_mask("purchase").tolist() == [False, False]


# ---------------------------------------------------------------- purchase files
YOOCHOOSE_CLICKS = (
    "1,2014-04-07T10:51:09.277Z,214536502,0\n"
    "1,2014-04-07T10:54:09.868Z,214536500,0\n"
    "2,2014-04-06T18:26:35.001Z,214576500,S\n"
    "2,2014-04-06T18:28:00.000Z,214576501,S\n"
)
YOOCHOOSE_BUYS = (
    "2,2014-04-06T18:27:10.500Z,214576500,1046,1\n1,2014-04-07T10:56:00.000Z,214536500,2093,2\n"
)


def test_yoochoose_clicks_and_buys_merge_in_time_order(tmp_path: Path) -> None:
    clicks = write(tmp_path / "yoochoose-clicks.dat", YOOCHOOSE_CLICKS)
    write(tmp_path / "yoochoose-buys.dat", YOOCHOOSE_BUYS)
    result, report = read_events(clicks, "yoochoose", return_report=True)
    assert result.rows() == [
        (1, 214536502, utc(2014, 4, 7, 10, 51, 9) + 0.277, "view", "click"),
        (1, 214536500, utc(2014, 4, 7, 10, 54, 9) + 0.868, "view", "click"),
        (1, 214536500, utc(2014, 4, 7, 10, 56, 0), "purchase", "buy"),
        (2, 214576500, utc(2014, 4, 6, 18, 26, 35) + 0.001, "view", "click"),
        (2, 214576500, utc(2014, 4, 6, 18, 27, 10) + 0.5, "purchase", "buy"),
        (2, 214576501, utc(2014, 4, 6, 18, 28, 0), "view", "click"),
    ]
    assert report.events == 6
    assert [part.path for part in report.parts] == [str(tmp_path / "yoochoose-buys.dat")]
    assert report.as_dict()["parts"][0]["events"] == 2
    # purchases=False reads the clicks alone
    alone = read_events(clicks, "yoochoose", purchases=False)
    assert alone["event_type"].to_list() == ["view"] * 4


def test_a_purchase_file_given_by_path(tmp_path: Path) -> None:
    clicks = write(tmp_path / "yoochoose-clicks.dat", YOOCHOOSE_CLICKS)
    buys = write(tmp_path / "buys-april.dat", YOOCHOOSE_BUYS)
    alone = read_events(clicks, "yoochoose")  # not beside under its usual name
    assert alone.height == 4
    with pytest.raises(DataError, match=r"no purchase file yoochoose-buys\.dat beside it"):
        read_events(clicks, "yoochoose", purchases=True)
    merged = read_events(clicks, "yoochoose", purchases=buys)
    assert merged["event_type"].to_list().count("purchase") == 2
    with pytest.raises(ConfigError, match="purchases= works with diginetica, yoochoose"):
        read_events(write(tmp_path / "events.csv", RETAILROCKET_WITH_LIKES), "otto", purchases=buys)


def test_diginetica_views_and_purchases(tmp_path: Path) -> None:
    views = write(
        tmp_path / "train-item-views.csv",
        "sessionId;userId;itemId;timeframe;eventdate\n"
        "1;NA;81766;526309;2016-05-09\n"
        "1;NA;31331;1031018;2016-05-09\n"
        "2;5;32118;0;2016-05-10\n",
    )
    write(
        tmp_path / "train-purchases.csv",
        "sessionId;userId;timeframe;eventdate;ordernumber;itemId\n"
        "1;NA;800000;2016-05-09;7;81766\n"
        "2;5;1000;2016-05-10;8;32118\n",
    )
    result = read_events(views, "diginetica")
    assert result.rows() == [
        (1, 81766, utc(2016, 5, 9) + 526.309, "view", "view"),
        (1, 81766, utc(2016, 5, 9) + 800.0, "purchase", "purchase"),
        (1, 31331, utc(2016, 5, 9) + 1031.018, "view", "view"),
        (2, 32118, utc(2016, 5, 10), "view", "view"),
        (2, 32118, utc(2016, 5, 10) + 1.0, "purchase", "purchase"),
    ]


# ---------------------------------------------------------- cleaning and prepare
def test_a_repeat_keeps_the_strongest_type_of_its_run() -> None:
    frame = pl.DataFrame(
        {
            "session_id": [1, 1, 1, 1, 1, 2, 2],
            "item_id": [5, 5, 5, 6, 6, 7, 7],
            "timestamp": [1.0, 2.0, 3.0, 4.0, 5.0, 1.0, 2.0],
            "event_type": ["view", "purchase", "cart", "view", "view", "cart", "cart"],
        }
    )
    out, removed = remove_consecutive_repeats(frame)
    assert removed == 4
    assert out.rows() == [(1, 5, 2.0, "purchase"), (1, 6, 4.0, "view"), (2, 7, 1.0, "cart")]


def otto_log(tmp_path: Path) -> Path:
    """Ten days of OTTO sessions [1 2 3] viewed, item 3 carted then ordered."""
    lines = []
    for day in range(10):
        for k in range(3):
            t = 1659304800000 + day * 86_400_000 + k * 3_600_000
            events = [{"aid": a, "ts": t + 1000 * a, "type": "clicks"} for a in (1, 2, 3)]
            events += [
                {"aid": 3, "ts": t + 5000, "type": "carts"},
                {"aid": 3, "ts": t + 6000, "type": "orders"},
            ]
            lines.append(json.dumps({"session": day * 3 + k, "events": events}))
    return write(tmp_path / "train.jsonl", "\n".join(lines) + "\n")


def test_prepare_keeps_canonical_and_raw_types_through_the_folder(tmp_path: Path) -> None:
    result = prepare(otto_log(tmp_path), preset="otto", min_item_support=1)
    assert result.report["steps"]["event_types"] == {"view": 90, "cart": 30, "purchase": 30}
    for part in (result.train_full, result.test):
        assert part.event_types == ("purchase", "view")  # the cart and order of 3 -> order
        assert part.raw_event_types == ("clicks", "orders")
        frame = part.to_frame()
        assert frame.group_by("session_id").agg("event_type")["event_type"].to_list()[0] == [
            "view",
            "view",
            "purchase",
        ]
    folder = write_prepared(result, tmp_path / "data")
    train = pl.read_parquet(folder / "train.parquet")
    assert train["raw_event_type"].dtype == pl.String
    assert set(train["event_type"]) == {"view", "purchase"}
    back = read_prepared(folder)
    for a, b in ((result.train_full, back.train_full), (result.test, back.test)):
        assert a.event_types == b.event_types and a.raw_event_types == b.raw_event_types
        assert np.array_equal(a.types, b.types)  # type: ignore[arg-type]
        assert np.array_equal(a.raw_types, b.raw_types)  # type: ignore[arg-type]


def test_prepare_a_frame_maps_its_types() -> None:
    day = 86_400.0
    rows = [(s, i, s * day + i, "pv" if i < 3 else "buy") for s in range(6) for i in (1, 2, 3)]
    frame = pl.DataFrame(
        rows, schema=["session_id", "item_id", "timestamp", "event_type"], orient="row"
    )
    result = prepare(frame, min_item_support=1, valid_days=None)
    last = result.test.to_frame().tail(3)
    assert last["event_type"].to_list() == ["view", "view", "purchase"]
    assert last["raw_event_type"].to_list() == ["pv", "pv", "buy"]
    with pytest.raises(DataError, match="unknown event type 'like' in 18 row"):
        prepare(frame.with_columns(event_type=pl.lit("like")))
    liked = prepare(frame.with_columns(event_type=pl.lit("like")), event_map={"like": "cart"})
    assert liked.train_full.event_types == ("cart",)


def test_cli_event_map(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    lines = ["timestamp,visitorid,event,itemid,transactionid"]
    for day in range(5):
        for k, (item, event) in enumerate([(1, "view"), (2, "like"), (3, "transaction")]):
            lines.append(f"{1433221332000 + day * 86_400_000 + k * 1000},{day},{event},{item},")
    log = write(tmp_path / "events.csv", "\n".join(lines) + "\n")
    out = tmp_path / "data"
    args = ["prepare", str(log), "-o", str(out), "--preset", "retailrocket"]
    common = ["--min-item-support", "1", "--valid-days", "0"]
    assert main([*args, *common]) == 1
    assert "--event-map like=view" in capsys.readouterr().err
    assert main([*args, *common, "--event-map", "like=cart", "--json"]) == 0
    capsys.readouterr()
    test = pl.read_parquet(out / "test.parquet").tail(3)
    assert test["event_type"].to_list() == ["view", "cart", "purchase"]
    assert test["raw_event_type"].to_list() == ["view", "like", "transaction"]
    assert main([*args, *common, "--event-map", "like"]) == 1
    assert "RAW=CANONICAL" in capsys.readouterr().err


def test_shared_taobao_sample(shared_file: Callable[[str], Path]) -> None:
    path = shared_file("taobao-sample/UserBehavior.csv")
    result = read_events(path, "taobao", on_bad_rows="skip")  # the sample's last line is cut
    counts = dict(result.group_by("raw_event_type").len().iter_rows())
    assert counts == {"pv": 75_872, "cart": 4_497, "fav": 2_356, "buy": 1_750}
    canonical = dict(result.group_by("event_type").len().iter_rows())
    assert canonical == {"view": 75_872 + 2_356, "cart": 4_497, "purchase": 1_750}

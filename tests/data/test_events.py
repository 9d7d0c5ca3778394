"""read_events: every preset on tiny hand-written files, the real shared files, and every
kind of bad input with the file, line and field its error must name."""

from __future__ import annotations

import gzip
import logging
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from sessionrec._errors import ConfigError, DataError
from sessionrec.data.events import PRESETS, Preset, ReadReport, read_events


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0) -> float:
    return datetime(year, month, day, hour, minute, second, tzinfo=UTC).timestamp()


def frame(**columns: list[object]) -> pl.DataFrame:
    schema = {
        "session_id": pl.Int64,
        "user_id": pl.Int64,
        "item_id": pl.Int64,
        "timestamp": pl.Float64,
        "event_type": pl.String,
        "raw_event_type": pl.String,
    }
    return pl.DataFrame(columns, schema={k: schema[k] for k in columns})


# ------------------------------------------------------------------------ presets
def test_yoochoose(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "yoochoose-clicks.dat",
        "1,2014-04-07T10:51:09.277Z,214536502,0\n"
        "1,2014-04-07T10:54:09.868Z,214536500,0\n"
        "2,2014-04-06T18:26:35.001Z,214576500,S\n",
    )
    expected = frame(
        session_id=[1, 1, 2],
        item_id=[214536502, 214536500, 214576500],
        timestamp=[
            utc(2014, 4, 7, 10, 51, 9) + 0.277,
            utc(2014, 4, 7, 10, 54, 9) + 0.868,
            utc(2014, 4, 6, 18, 26, 35) + 0.001,
        ],
        event_type=["view"] * 3,
        raw_event_type=["click"] * 3,
    )
    assert_frame_equal(read_events(path, "yoochoose"), expected)


def test_diginetica_adds_timeframe_to_eventdate(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "train-item-views.csv",
        "session_id;user_id;item_id;timeframe;eventdate\n"
        "1;NA;81766;526309;2016-05-09\n"
        "1;NA;31331;1031018;2016-05-09\n"
        "2;5;32118;0;2016-05-10\n",
    )
    expected = frame(
        session_id=[1, 1, 2],
        item_id=[81766, 31331, 32118],
        timestamp=[utc(2016, 5, 9) + 526.309, utc(2016, 5, 9) + 1031.018, utc(2016, 5, 10)],
    )
    assert_frame_equal(read_events(path, "diginetica"), expected)


def test_diginetica_original_camel_case_header(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "train-item-views.csv",
        "sessionId;userId;itemId;timeframe;eventdate\n1;NA;81766;526309;2016-05-09\n",
    )
    assert read_events(path, "diginetica")["item_id"].to_list() == [81766]


def test_retailrocket_is_a_visitor_log(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "events.csv",
        "timestamp,visitorid,event,itemid,transactionid\n"
        "1433221332117,257597,view,355908,\n"
        "1433224214164,992329,addtocart,248676,\n"
        "1433221999827,111016,transaction,318965,4000\n",
    )
    expected = frame(
        user_id=[257597, 992329, 111016],
        item_id=[355908, 248676, 318965],
        timestamp=[1433221332.117, 1433224214.164, 1433221999.827],
        event_type=["view", "cart", "purchase"],
        raw_event_type=["view", "addtocart", "transaction"],
    )
    assert_frame_equal(read_events(path, "retailrocket"), expected)


def test_otto_explodes_events(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "train.jsonl",
        '{"session": 0, "events": [{"aid": 11, "ts": 1659304800025, "type": "clicks"},'
        ' {"aid": 12, "ts": 1659304904511, "type": "carts"}]}\n'
        '{"session": 1, "events": []}\n'
        '{"session": 2, "events": [{"aid": 11, "ts": 1659367439426, "type": "orders"}]}\n',
    )
    expected = frame(
        session_id=[0, 0, 2],
        item_id=[11, 12, 11],
        timestamp=[1659304800.025, 1659304904.511, 1659367439.426],
        event_type=["view", "cart", "purchase"],
        raw_event_type=["clicks", "carts", "orders"],
    )
    assert_frame_equal(read_events(path, "otto"), expected)


def test_gru4rec_tsv(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "rsc15_train_full.txt",
        "SessionId\tItemId\tTime\n3\t214716935\t1396437466.94\n3\t214832672\t1396438212.318\n",
    )
    expected = frame(
        session_id=[3, 3], item_id=[214716935, 214832672], timestamp=[1396437466.94, 1396438212.318]
    )
    assert_frame_equal(read_events(path, "gru4rec"), expected)


def test_sessions_txt(tmp_path: Path) -> None:
    path = write(tmp_path, "train_sessions.txt", "5 7  5\n9\n7 8\n\n")
    expected = frame(session_id=[0, 0, 0, 1, 2, 2], item_id=[5, 7, 5, 9, 7, 8])
    assert_frame_equal(read_events(path, "sessions-txt"), expected)


def test_sessions_txt_text_ids(tmp_path: Path) -> None:
    path = write(tmp_path, "s.txt", "a1 b2\r\n007 x\r\n")
    result = read_events(path, format="sessions-txt")
    assert result["item_id"].dtype == pl.String
    assert result["item_id"].to_list() == ["a1", "b2", "007", "x"]


def test_every_preset_is_covered() -> None:
    assert set(PRESETS) == {
        "yoochoose",
        "diginetica",
        "retailrocket",
        "otto",
        "taobao",
        "gru4rec",
        "sessions-txt",
    }


# ----------------------------------------------------------------- other logs
def test_explicit_columns_and_iso_offsets(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "log.csv",
        "sid,product,ts,action,extra\n"
        "s1,p9,2024-01-01T10:00:00+02:00,view,x\n"
        "s1,p7,2024-01-01 08:00:30Z,buy,y\n"
        "s2,p9,2024-01-01T08:01:00,view,z\n",
    )
    columns = {"session_id": "sid", "item_id": "product", "timestamp": "ts", "event_type": "action"}
    result = read_events(path, columns=columns)
    t = utc(2024, 1, 1, 8)
    assert result.columns == ["session_id", "item_id", "timestamp", "event_type", "raw_event_type"]
    assert result["session_id"].to_list() == ["s1", "s1", "s2"]
    assert result["timestamp"].to_list() == [t, t + 30, t + 60]
    # without a preset, every preset's words are understood: buy is a purchase
    assert result["event_type"].to_list() == ["view", "purchase", "view"]
    assert result["raw_event_type"].to_list() == ["view", "buy", "view"]


@pytest.mark.parametrize(
    ("values", "unit", "seconds"),
    [
        ("1700000000", None, 1700000000.0),
        ("1700000000123", None, 1700000000.123),
        ("1700000000123456", None, 1700000000.123456),
        ("1700000000123456789", None, 1700000000.1234567),
        ("1700000000500", "ms", 1700000000.5),
        ("1700000000", "s", 1700000000.0),
        ("17", "s", 17.0),
    ],
)
def test_numeric_time_units(tmp_path: Path, values: str, unit: str | None, seconds: float) -> None:
    path = write(tmp_path, "t.csv", f"session_id,item_id,timestamp\n1,2,{values}\n")
    result = read_events(path, time_unit=unit)
    assert result["timestamp"].dtype == pl.Float64
    assert result["timestamp"][0] == pytest.approx(seconds, abs=1e-6)


def test_visitor_log_with_user_id_has_no_session_id(tmp_path: Path) -> None:
    path = write(tmp_path, "v.csv", "visitor|sku|when\n7|100|1\n7|101|2\n")
    result = read_events(
        path, columns={"user_id": "visitor", "item_id": "sku", "timestamp": "when"}
    )
    assert result.columns == ["user_id", "item_id", "timestamp"]  # separator '|' sniffed
    assert result["user_id"].to_list() == [7, 7]


def test_canonical_names_are_used_without_mapping(tmp_path: Path) -> None:
    path = write(tmp_path, "c.tsv", "item_id\tsession_id\tother\n5\t1\tx\n")
    assert read_events(path).columns == ["session_id", "item_id"]


def test_ids_with_leading_zeros_stay_text(tmp_path: Path) -> None:
    path = write(tmp_path, "z.csv", "session_id,item_id\n1,007\n1,7\n")
    assert read_events(path)["item_id"].to_list() == ["007", "7"]


def test_no_header_names_columns_by_position(tmp_path: Path) -> None:
    path = write(tmp_path, "h.csv", "1,10,5\n1,11,6\n")
    result = read_events(
        path,
        has_header=False,
        columns={"session_id": "column_1", "item_id": "column_2", "timestamp": "column_3"},
    )
    assert result["item_id"].to_list() == [10, 11]


def test_ids_mixing_numbers_and_text_past_the_type_sample(tmp_path: Path) -> None:
    rows = "".join(f"{i},{i}\n" for i in range(12_000))
    path = write(tmp_path, "m.csv", "session_id,item_id\n" + rows + "1,A7\n")
    result = read_events(path)
    assert result["item_id"].dtype == pl.String
    assert result["item_id"][-1] == "A7"


def test_gzip_csv(tmp_path: Path) -> None:
    path = tmp_path / "clicks.csv.gz"
    with gzip.open(path, "wt") as handle:
        handle.write("session_id,item_id,timestamp\n1,2,3.5\n")
    assert read_events(path)["timestamp"].to_list() == [3.5]


def test_parquet_with_datetimes(tmp_path: Path) -> None:
    path = tmp_path / "log.parquet"
    pl.DataFrame(
        {
            "s": ["a", "a"],
            "i": [1, 2],
            "t": [datetime(2024, 1, 1), datetime(2024, 1, 1, 0, 0, 5)],
        }
    ).write_parquet(path)
    result = read_events(path, columns={"session_id": "s", "item_id": "i", "timestamp": "t"})
    assert result["timestamp"].to_list() == [utc(2024, 1, 1), utc(2024, 1, 1) + 5]


def test_flat_jsonl(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "log.ndjson",
        '{"session_id": 1, "item_id": "x", "timestamp": 1000}\n\n'
        '{"session_id": 1, "item_id": "y", "timestamp": 1001, "other": [1]}\n',
    )
    result = read_events(path)
    assert result["item_id"].to_list() == ["x", "y"]
    assert result["timestamp"].to_list() == [1000.0, 1001.0]


def test_custom_preset_object(tmp_path: Path) -> None:
    path = write(tmp_path, "log.txt", "a;b\n1;2\n")
    preset = Preset(format="csv", separator=";", columns={"session_id": "a", "item_id": "b"})
    assert read_events(path, preset)["item_id"].to_list() == [2]


def test_caller_columns_merge_over_the_preset(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "train-item-views.csv",
        "session_id;user_id;item_id;timeframe;eventdate\n1;4;81766;0;2016-05-09\n",
    )
    result = read_events(path, "diginetica", columns={"user_id": "user_id"})
    assert result["user_id"].to_list() == [4]


# ------------------------------------------------------------------ shared data
def test_shared_diginetica_sample(shared_file: Callable[[str], Path]) -> None:
    path = shared_file("diginetica/raw-sample/sample_train-item-views.csv")
    result = read_events(path, "diginetica")
    assert result.height == 12_391
    assert result["session_id"].n_unique() == 2_986
    assert result["item_id"].n_unique() == 7_139
    first = result.filter(pl.col("session_id") == 1)["timestamp"].to_list()
    assert first[:2] == [utc(2016, 5, 9) + 526.309, utc(2016, 5, 9) + 1031.018]


def test_shared_otto_fixture(shared_file: Callable[[str], Path]) -> None:
    result = read_events(shared_file("otto/train_fixture.jsonl"), "otto")
    assert result.height == 862
    assert result["session_id"].n_unique() == 20
    assert result["item_id"].n_unique() == 510
    assert set(result["raw_event_type"].unique()) == {"clicks", "carts", "orders"}
    counts = dict(result.group_by("event_type").len().iter_rows())
    assert counts == {"view": 800, "cart": 52, "purchase": 10}


def test_shared_yoochoose_gru4rec_file(shared_file: Callable[[str], Path]) -> None:
    path = shared_file("yoochoose/rsc15-100k/yoochoose-clicks-100k_train_full.txt")
    result = read_events(path, "gru4rec")
    assert result.height == 70_278
    assert result["item_id"].n_unique() == 2_933
    assert result["timestamp"].dtype == pl.Float64


def test_shared_sessions_txt(shared_file: Callable[[str], Path]) -> None:
    path = shared_file("yoochoose/srgnn-1_64/train_sessions.txt")
    result = read_events(path, "sessions-txt")
    assert result["session_id"].n_unique() == 116_167
    assert result["item_id"].le(37_483).all()


# ------------------------------------------------------------------- bad input
def raises(path: Path, *, line: int | None, field: str | None, text: str, **kwargs: object) -> str:
    with pytest.raises(DataError) as info:
        read_events(path, **kwargs)  # type: ignore[call-overload]
    message = str(info.value)
    where = f"{path}:{line}" if line is not None else str(path)
    assert message.startswith(where), message
    if field is not None:
        assert f"field '{field}'" in message, message
    assert text in message, message
    return message


YOO = "1,2014-04-07T10:51:09.277Z,214536502,0\n"


def test_too_many_fields(tmp_path: Path) -> None:
    path = write(tmp_path, "y.dat", YOO + YOO + "1,2014-04-07T10:51:09.277Z,214536502,0,9\n")
    raises(path, line=3, field=None, text="row has 5 fields, expected 4", preset="yoochoose")


def test_too_few_fields(tmp_path: Path) -> None:
    path = write(tmp_path, "y.dat", YOO + "1,2014-04-07T10:51:09.277Z\n")
    raises(path, line=2, field="item_id", text="row has 2 fields, expected 4", preset="yoochoose")


def test_short_row_missing_only_an_unused_column_is_kept(tmp_path: Path) -> None:
    path = write(tmp_path, "y.dat", YOO + "1,2014-04-07T10:51:09.277Z,214536502\n")
    assert read_events(path, "yoochoose").height == 2


def test_trailing_separator_is_tolerated(tmp_path: Path) -> None:
    path = write(tmp_path, "t.csv", "session_id,item_id\n1,2,\n")
    assert read_events(path).height == 1


def test_missing_columns_lists_the_found_ones(tmp_path: Path) -> None:
    path = write(tmp_path, "train-item-views.csv", "sid;uid;item;timeframe;eventdate\n1;2;3;4;5\n")
    message = raises(path, line=1, field=None, text="missing column(s)", preset="diginetica")
    assert "'session_id'" in message and "'item_id'" in message
    assert "found columns: ['sid', 'uid', 'item', 'timeframe', 'eventdate']" in message


def test_missing_mapping_without_preset(tmp_path: Path) -> None:
    path = write(tmp_path, "x.csv", "a,b\n1,2\n")
    raises(path, line=1, field=None, text="found columns: ['a', 'b']")


def test_empty_file(tmp_path: Path) -> None:
    raises(write(tmp_path, "e.csv", ""), line=None, field=None, text="file is empty")
    raises(
        write(tmp_path, "e.jsonl", ""), line=None, field=None, text="file is empty", preset="otto"
    )


def test_header_only(tmp_path: Path) -> None:
    path = write(tmp_path, "h.csv", "session_id,item_id\n")
    raises(path, line=None, field=None, text="no events")


def test_blank_sessions_txt(tmp_path: Path) -> None:
    path = write(tmp_path, "b.txt", "\n\n")
    raises(path, line=None, field=None, text="file is empty", preset="sessions-txt")


def test_unparseable_iso_timestamp(tmp_path: Path) -> None:
    path = write(tmp_path, "y.dat", YOO + "1,yesterday,214536502,0\n")
    raises(path, line=2, field="timestamp", text="'yesterday'", preset="yoochoose")


def test_unparseable_numeric_timestamp(tmp_path: Path) -> None:
    path = write(tmp_path, "g.txt", "SessionId\tItemId\tTime\n1\t2\t3.5\n1\t2\tsoon\n")
    raises(path, line=3, field="Time", text="cannot parse timestamp 'soon'", preset="gru4rec")


def test_missing_timestamp(tmp_path: Path) -> None:
    path = write(tmp_path, "g.txt", "SessionId\tItemId\tTime\n1\t2\t\n")
    raises(path, line=2, field="Time", text="missing timestamp", preset="gru4rec")


def test_missing_item_id(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "d.csv",
        "session_id;user_id;item_id;timeframe;eventdate\n1;NA;5;0;2016-05-09\n1;NA;;7;2016-05-09\n",
    )
    raises(path, line=3, field="item_id", text="missing item id", preset="diginetica")


def test_empty_text_session_id(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "s.jsonl",
        '{"session_id": "a", "item_id": 1}\n{"session_id": " ", "item_id": 2}\n',
    )
    raises(path, line=2, field="session_id", text="empty session id")


def test_non_integer_id_under_an_integer_preset(tmp_path: Path) -> None:
    path = write(tmp_path, "y.dat", YOO + "2,2014-04-07T10:54:46.998Z,abc,0\n")
    raises(
        path, line=2, field="item_id", text="item id 'abc' is not an integer", preset="yoochoose"
    )


def test_missing_event_type(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "events.csv",
        "timestamp,visitorid,event,itemid,transactionid\n1433221332117,1,view,2,\n"
        "1433221332118,1,,3,\n",
    )
    raises(path, line=3, field="event", text="missing event type", preset="retailrocket")


def test_quoted_newline_counts_physical_lines(tmp_path: Path) -> None:
    path = write(tmp_path, "q.csv", 'session_id,item_id,note\n1,2,"a\nb"\n1,,c\n')
    raises(path, line=4, field="item_id", text="missing item id")


def test_invalid_json_line(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "o.jsonl",
        '{"session": 0, "events": [{"aid": 1, "ts": 1, "type": "clicks"}]}\n\n'
        '{"session": 1, "events": [{"aid": 1, "ts": 1, "type": "clicks"}\n',
    )
    raises(path, line=3, field=None, text="invalid JSON", preset="otto")


def test_json_line_that_is_not_an_object(tmp_path: Path) -> None:
    path = write(tmp_path, "o.jsonl", '{"session_id": 1, "item_id": 2}\n[1, 2]\n')
    raises(path, line=2, field=None, text="expected a JSON object")


def test_otto_event_without_aid_after_a_blank_line(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "o.jsonl",
        '{"session": 0, "events": [{"aid": 1, "ts": 1, "type": "clicks"}]}\n\n'
        '{"session": 1, "events": [{"ts": 1, "type": "clicks"}]}\n',
    )
    raises(path, line=3, field="aid", text="missing item id", preset="otto")


def test_otto_text_aid(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "o.jsonl",
        '{"session": 0, "events": [{"aid": "x1", "ts": 1, "type": "clicks"}]}\n',
    )
    raises(path, line=1, field="aid", text="item id 'x1' is not an integer", preset="otto")


def test_blank_line_inside_sessions_txt(tmp_path: Path) -> None:
    path = write(tmp_path, "s.txt", "1 2\n\n3 4\n")
    raises(path, line=2, field=None, text="empty line", preset="sessions-txt")


def test_parquet_null_item_names_the_row(tmp_path: Path) -> None:
    path = tmp_path / "n.parquet"
    pl.DataFrame({"session_id": [1, 1, 2], "item_id": [1, None, 3]}).write_parquet(path)
    raises(path, line=2, field="item_id", text="missing item id")


def test_float_ids_must_be_integral(tmp_path: Path) -> None:
    path = tmp_path / "f.parquet"
    pl.DataFrame({"session_id": [1.0, 1.5], "item_id": [1, 2]}).write_parquet(path)
    raises(path, line=2, field="session_id", text="session id 1.5 is not an integer")


def test_no_such_file(tmp_path: Path) -> None:
    raises(tmp_path / "nope.csv", line=None, field=None, text="no such file")


# --------------------------------------------------------------------- options
def test_unknown_preset_lists_the_valid_ones(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="valid presets: diginetica, gru4rec, otto"):
        read_events(write(tmp_path, "x.csv", "a\n"), "yoochose")


@pytest.mark.parametrize(
    ("kwargs", "text"),
    [
        ({"format": "xml"}, "unknown format 'xml'"),
        ({"time_unit": "minutes"}, "unknown time_unit"),
        ({"columns": {"sessionid": "a"}}, "unknown key(s) ['sessionid']"),
        ({"columns": {"session_id": "a"}}, "must name the 'item_id'"),
        ({"separator": ";;"}, "one character"),
        ({"on_bad_rows": "ignore"}, "on_bad_rows"),
    ],
)
def test_bad_options(tmp_path: Path, kwargs: dict[str, object], text: str) -> None:
    with pytest.raises(ConfigError) as info:
        read_events(write(tmp_path, "x.csv", "a\n1\n"), **kwargs)  # type: ignore[call-overload]
    assert text in str(info.value)


def test_unknown_extension_asks_for_a_format(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="pass format="):
        read_events(write(tmp_path, "x.log", "a\n"))


# ------------------------------------------------------------------- skip mode
def test_skip_drops_counts_and_logs(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = write(
        tmp_path,
        "y.dat",
        YOO
        + "1,yesterday,214536502,0\n"
        + "2,2014-04-07T10:54:46.998Z,abc,0\n"
        + "2,2014-04-07T10:54:46.998Z,214536502,0,extra\n"
        + "3,2014-04-07T10:55:00Z,7,0\n",
    )
    with caplog.at_level(logging.WARNING, logger="sessionrec.data"):
        result, report = read_events(path, "yoochoose", on_bad_rows="skip", return_report=True)
    assert result["session_id"].to_list() == [1, 3]
    assert isinstance(report, ReadReport)
    assert (report.events, report.bad_rows) == (2, 3)
    assert [(row.line, row.field) for row in report.examples] == [
        (2, "timestamp"),
        (3, "item_id"),
        (4, None),
    ]
    assert "dropped 3 bad row(s)" in caplog.text
    assert f"{path}:2, field 'timestamp'" in caplog.text


def test_skip_invalid_json_lines(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "o.jsonl",
        '{"session": 0, "events": [{"aid": 1, "ts": 1000, "type": "clicks"}]}\n'
        "not json\n"
        '{"session": 1, "events": [{"ts": 1, "type": "clicks"}, '
        '{"aid": 3, "ts": 2000, "type": "carts"}]}\n',
    )
    result, report = read_events(path, "otto", on_bad_rows="skip", return_report=True)
    assert result["item_id"].to_list() == [1, 3]
    assert report.bad_rows == 2
    assert [(row.line, row.field) for row in report.examples] == [(2, None), (3, "aid")]


def test_skip_with_every_row_bad_raises(tmp_path: Path) -> None:
    path = write(tmp_path, "b.csv", "session_id,item_id\n1,\n2,\n")
    raises(path, line=None, field=None, text="every row is bad (2 dropped)", on_bad_rows="skip")


def test_report_without_problems(tmp_path: Path) -> None:
    path = write(tmp_path, "ok.csv", "session_id,item_id\n1,2\n")
    _, report = read_events(path, return_report=True)
    assert report.as_dict() == {"path": str(path), "events": 1, "bad_rows": 0, "examples": []}

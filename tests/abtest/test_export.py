"""The per-session export: round trips, and bad rows named by file, line and field."""

import json

import numpy as np
import pytest

from sessionrec._errors import DataError
from sessionrec.abtest.export import FIELDS, read_session_log, write_session_log

HEADER = ",".join(FIELDS)


def _write(path, *lines):
    path.write_text("\n".join([HEADER, *lines]) + "\n", encoding="utf-8")
    return path


def test_csv_is_read_with_iso_and_unix_times(tmp_path):
    path = _write(
        tmp_path / "pilot.csv",
        "s1,default,3,1,0,0,0,1767225600",
        "s2,b,2,2,1,1,19.99,2026-01-01T01:00:00Z",
        "s3,b,0,0,0,0,0,2026-01-01T02:00:00",  # no offset: UTC
    )
    log = read_session_log(path)
    assert len(log) == 3
    assert log.variant_names == ["default", "b"]
    np.testing.assert_array_equal(log.purchases, [0, 1, 0])
    np.testing.assert_allclose(log.revenue, [0, 19.99, 0])
    np.testing.assert_allclose(log.first_seen, [1767225600, 1767229200, 1767232800])


def test_write_then_read_round_trips_csv_and_jsonl(tmp_path):
    log = read_session_log(
        _write(tmp_path / "a.csv", "s1,a,3,1,0,0,0,10.5", "s2,b,2,2,1,1,19.99,11")
    )
    for name in ("b.csv", "b.jsonl"):
        again = read_session_log(write_session_log(log, tmp_path / name))
        for field in ("session_ids", "variants", "clicks", "revenue", "first_seen"):
            np.testing.assert_array_equal(getattr(again, field), getattr(log, field))
    first = json.loads((tmp_path / "b.jsonl").read_text().splitlines()[0])
    assert first == {
        "session_id": "s1", "variant": "a", "impressions": 3, "clicks": 1, "carts": 0,
        "purchases": 0, "revenue": 0.0, "first_seen": 10.5,
    }  # fmt: skip


@pytest.mark.parametrize(
    ("row", "field", "message"),
    [
        ("s2,b,2,x,0,0,0,5", "clicks", "expected an integer >= 0, got 'x'"),
        ("s2,b,2,-1,0,0,0,5", "clicks", "expected an integer >= 0"),
        ("s2,b,2,1,0,0,nan,5", "revenue", "expected a finite number >= 0"),
        ("s2,b,2,1,0,0,0,yesterday", "first_seen", "Unix seconds or an ISO-8601"),
        ("s2,,2,1,0,0,0,5", "variant", "missing value"),
        ("s1,b,2,1,0,0,0,5", "session_id", "repeats the one on line 2"),
    ],
)
def test_a_bad_csv_row_names_file_line_and_field(tmp_path, row, field, message):
    path = _write(tmp_path / "bad.csv", "s1,a,1,0,0,0,0,1", row)
    with pytest.raises(DataError) as info:
        read_session_log(path)
    text = str(info.value)
    assert text.startswith(f"{path}:3, field '{field}': ")
    assert message in text


def test_missing_header_fields_and_bad_json_lines(tmp_path):
    csv_path = tmp_path / "short.csv"
    csv_path.write_text("session_id,variant,clicks\ns1,a,1\n")
    with pytest.raises(DataError, match=r"short.csv:1: the header lacks impressions, carts"):
        read_session_log(csv_path)
    jsonl = tmp_path / "bad.jsonl"
    good = {name: 1 for name in FIELDS} | {"session_id": "s1", "variant": "a"}
    jsonl.write_text(json.dumps(good) + "\n{not json\n")
    with pytest.raises(DataError, match=r"bad.jsonl:2: not valid JSON"):
        read_session_log(jsonl)
    jsonl.write_text(json.dumps(good | {"carts": True}) + "\n")
    with pytest.raises(DataError, match=r"bad.jsonl:1, field 'carts'"):
        read_session_log(jsonl)


def test_an_empty_export_is_refused(tmp_path):
    with pytest.raises(DataError, match="holds no sessions"):
        read_session_log(_write(tmp_path / "empty.csv"))
    with pytest.raises(DataError, match="no such file"):
        read_session_log(tmp_path / "missing.csv")

"""Preset defaults of prepare (issue 22): Diginetica's 7-day test period, an explicit
--format honoured with a preset, a known log without its preset named in the error, small
test parts flagged, and repeats gone from the final data."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from sessionrec._errors import ConfigError
from sessionrec.cli import main
from sessionrec.data.events.files import guess_preset
from sessionrec.data.formats import read_sessions_txt
from sessionrec.data.prepare import PrepareOptions, checked_options, prepare

HEADER = "session_id;user_id;item_id;timeframe;eventdate"


def diginetica_log(path: Path, separator: str = ";") -> Path:
    """Twelve days of Diginetica-like sessions, 2016-01-01..2016-01-12: on each day three
    sessions [1 2 3 4], [2 3 4 1], [3 4 1 2] (ids 10 * day + n); every item is clicked often."""
    rows = [HEADER.replace(";", separator)]
    session = 0
    for day in range(1, 13):
        for shift in range(3):
            session += 1
            for position in range(4):
                item = 1 + (shift + position) % 4
                fields = [
                    str(session),
                    "NA",
                    str(item),
                    str(1000 * position + 10 * day),
                    f"2016-01-{day:02d}",
                ]
                rows.append(separator.join(fields))
    path.write_text("\n".join(rows) + "\n")
    return path


def test_diginetica_preset_tests_on_the_last_seven_days(tmp_path: Path) -> None:
    result = prepare(diginetica_log(tmp_path / "train-item-views.csv"), preset="diginetica")
    assert result.report["options"]["test_days"] == 7.0
    assert result.test.n_sessions == 3 * 7  # sessions of days 6..12 (each ends on its day)
    assert result.train_full.n_sessions == 3 * 5
    # an explicit test_days still wins, and presets without one keep one day
    one_day = prepare(tmp_path / "train-item-views.csv", preset="diginetica", test_days=1)
    assert one_day.test.n_sessions == 3
    assert checked_options(PrepareOptions(preset="gru4rec"), {}).test_days == 1.0
    assert checked_options(PrepareOptions(), {}).test_days == 1.0


def test_cli_prepare_diginetica_uses_seven_days(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    log = diginetica_log(tmp_path / "views.csv")
    code = main(["prepare", str(log), "--preset", "diginetica", "-o", str(tmp_path / "d")])
    assert code == 0
    assert len(read_sessions_txt(tmp_path / "d" / "test_sessions.txt")) == 21
    report = json.loads((tmp_path / "d" / "report.json").read_text())
    assert report["options"]["test_days"] == 7.0


def test_prepare_summary_flags_a_small_test_part(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    log = diginetica_log(tmp_path / "views.csv")
    code = main(["prepare", str(log), "--preset", "diginetica", "-o", str(tmp_path / "d")])
    out, err = capsys.readouterr()
    assert code == 0
    (line,) = [line for line in out.splitlines() if line.split()[0] == "test_cases"]
    assert line.split()[1] == "63" and "noise" in line
    assert err.count("only 63 test case(s), fewer than 1,000") == 1
    argv = ["prepare", str(log), "--preset", "diginetica", "-o", str(tmp_path / "f"), "--json"]
    assert main(argv) == 0
    payload = json.loads(capsys.readouterr().out)
    assert payload["test_cases"] == 63 and "noise" in payload["warnings"][0]
    # the library warns too (a Python user sees it without any logging set up)
    # main() gave the package logger its own handler; let caplog's see the records again
    monkeypatch.setattr(logging.getLogger("sessionrec"), "propagate", True)
    with caplog.at_level(logging.WARNING, logger="sessionrec.data"):
        prepare(log, preset="diginetica")
    assert any("only 63 test case(s)" in r.getMessage() for r in caplog.records)


def test_format_is_honoured_together_with_a_preset(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    tabs = diginetica_log(tmp_path / "views.tsv", separator="\t")
    result = prepare(tabs, preset="diginetica", format="tsv")
    assert result.test.n_sessions == 21
    code = main(
        [
            "prepare",
            str(tabs),
            "--preset",
            "diginetica",
            "--format",
            "tsv",
            "-o",
            str(tmp_path / "d"),
        ]
    )
    assert code == 0


def test_a_known_log_without_its_preset_suggests_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    log = diginetica_log(tmp_path / "views.csv")
    assert guess_preset(log) == "diginetica"
    with pytest.raises(ConfigError, match="looks like a diginetica log: pass --preset diginetica"):
        prepare(log)
    code = main(["prepare", str(log), "-o", str(tmp_path / "d")])
    err = capsys.readouterr().err
    assert code == 1 and "--preset diginetica" in err and "last_fraction_split" not in err
    code = main(["auto", "--events", str(log), "--output", str(tmp_path / "m")])
    err = capsys.readouterr().err
    assert code == 1 and "looks like a diginetica log: --preset diginetica" in err
    other = tmp_path / "clicks.csv"
    other.write_text("sid,item\n1,2\n1,3\n")
    assert guess_preset(other) is None
    with pytest.raises(ConfigError, match="--columns"):
        prepare(other, columns={"session_id": "sid", "item_id": "item"})


def test_the_shared_diginetica_sample_prepares_with_the_protocol_split(
    shared_file: Callable[[str], Path], tmp_path: Path
) -> None:
    path = shared_file("diginetica/raw-sample/sample_train-item-views.csv")
    result = prepare(path, preset="diginetica")
    assert result.report["options"]["test_days"] == 7.0
    cutoff = result.report["steps"]["test"]["cutoff"]
    assert result.train_full.end_times().max() < cutoff
    assert result.test.n_sessions > 0
    for part in (result.train_full, result.test, result.train):
        sessions = [
            part.items[a:b] for a, b in zip(part.offsets[:-1], part.offsets[1:], strict=True)
        ]
        assert all(np.all(s[1:] != s[:-1]) for s in sessions)  # no consecutive repeats left

"""Output paths that cannot be written end in one error line naming them, before any work."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from sessionrec._atomic import atomic_file, atomic_folder, check_output
from sessionrec._errors import ConfigError
from sessionrec.cli import main


@pytest.fixture
def a_file(tmp_path: Path) -> Path:
    path = tmp_path / "some_file"
    path.write_text("not a folder\n")
    return path


def commands(bench: Path, out: str) -> dict[str, list[str]]:
    """Every command that writes, with ``out`` as the path it writes."""
    log = bench / "clicks.csv"
    log.write_text("session_id,item_id,timestamp\n1,1,0\n1,2,1\n")
    return {
        "prepare": ["prepare", str(log), "-o", out],
        "train": ["train", "--benchmark", str(bench), "--model", "pop", "--output", out],
        "evaluate --predictions": [
            "evaluate",
            "--benchmark",
            str(bench),
            "--model",
            "pop",
            "--predictions",
            out,
        ],
        "evaluate --save-results": [
            "evaluate",
            "--benchmark",
            str(bench),
            "--model",
            "pop",
            "--save-results",
            out,
        ],
        "tune": ["tune", "--benchmark", str(bench), "--model", "pop", "--output", out],
        "auto": ["auto", "--benchmark", str(bench), "--budget", "1m", "--output", out],
        "auto --work-dir": [
            "auto",
            "--benchmark",
            str(bench),
            "--output",
            str(bench.parent / "m"),
            "--work-dir",
            out,
        ],
        "report": ["report", str(bench / "r.json"), "-o", out],
    }


NAMES = [
    "prepare",
    "train",
    "evaluate --predictions",
    "evaluate --save-results",
    "tune",
    "auto",
    "auto --work-dir",
    "report",
]


def assert_one_error_line(capsys: pytest.CaptureFixture[str], code: int, path: str) -> str:
    out, err = capsys.readouterr()
    assert code == 1 and out == ""
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if line.startswith("sessionrec: error:")]
    assert len(lines) == 1 and path in lines[0], err
    assert "fitting" not in err and "read " not in err  # refused before any work
    return lines[0]


@pytest.mark.parametrize("name", NAMES)
def test_an_output_under_a_file_is_one_error_line(
    bench: Path, a_file: Path, capsys: pytest.CaptureFixture[str], name: str
) -> None:
    out = str(a_file / "x")
    code = main(commands(bench, out)[name])
    line = assert_one_error_line(capsys, code, out)
    assert f"{a_file} is a file, not a folder" in line
    assert a_file.read_text() == "not a folder\n"


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="/proc is Linux's")
@pytest.mark.parametrize("name", ["prepare", "train", "evaluate --save-results", "report"])
def test_an_output_on_a_virtual_file_system_is_one_error_line(
    bench: Path, capsys: pytest.CaptureFixture[str], name: str
) -> None:
    code = main(commands(bench, "/proc/x")[name])
    line = assert_one_error_line(capsys, code, "/proc/x")
    assert "cannot create files in /proc" in line


def test_a_folder_where_a_file_goes_is_one_error_line(
    bench: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(commands(bench, str(tmp_path))["evaluate --save-results"])
    line = assert_one_error_line(capsys, code, str(tmp_path))
    assert "is a folder" in line


def test_a_good_output_path_is_left_uncreated_by_the_check(tmp_path: Path) -> None:
    target = tmp_path / "a" / "b" / "model"
    check_output(target, folder=True)
    assert list(tmp_path.iterdir()) == []  # nothing created, no probe left behind


def test_the_atomic_writers_name_the_path_too(a_file: Path) -> None:
    with (
        pytest.raises(ConfigError, match=f"cannot write {a_file / 'x'}"),
        atomic_file(a_file / "x") as tmp,
    ):
        tmp.write_text("never")
    with (
        pytest.raises(ConfigError, match=f"cannot write {a_file / 'x' / 'y'}"),
        atomic_folder(a_file / "x" / "y"),
    ):
        pass
    assert a_file.read_text() == "not a folder\n"


@pytest.mark.parametrize(
    ("name", "what"), [("prepare", "dataset folder"), ("train", "model folder")]
)
def test_a_folder_the_writer_would_refuse_is_refused_before_any_work(
    bench: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], name: str, what: str
) -> None:
    taken = tmp_path / "taken"
    taken.mkdir()
    (taken / "notes.txt").write_text("mine\n")
    code = main(commands(bench, str(taken))[name])
    line = assert_one_error_line(capsys, code, str(taken))
    assert f"is not a {what}" in line
    assert (taken / "notes.txt").read_text() == "mine\n"

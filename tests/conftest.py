"""Fixtures shared by every test package.

``shared_data``: the folder of real public datasets (``../shared/data`` beside the
repository, or ``$SESSIONREC_SHARED_DATA``). They are research data that may not be
redistributed, so a fresh clone does not have them: tests that need them skip with the
reason, unless ``SESSIONREC_REQUIRE_SHARED_DATA=1`` (CI) turns the skip into a failure.
Tests using the fixture are marked ``shared_data`` automatically (``-m "not shared_data"``).

Optional dependencies (torch, optuna, matplotlib, schemathesis, ...): tests that need one call
``pytest.importorskip`` and skip without it on a developer's machine. Under
``SESSIONREC_REQUIRE_EXTRAS=1`` (CI, where every extra is installed) the hooks below turn such a
skip, at collection or at run time, into a failure: a missing extra must not pass CI silently.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Generator
from pathlib import Path
from types import CodeType, TracebackType

import pytest

REPO = Path(__file__).resolve().parents[1]
REQUIRE_EXTRAS = "SESSIONREC_REQUIRE_EXTRAS"


def shared_data_dir() -> Path:
    """Where the shared datasets are expected."""
    override = os.environ.get("SESSIONREC_SHARED_DATA")
    return Path(override) if override else REPO.parent / "shared" / "data"


def _missing(message: str) -> None:
    if os.environ.get("SESSIONREC_REQUIRE_SHARED_DATA") == "1":
        pytest.fail(f"{message} (required: SESSIONREC_REQUIRE_SHARED_DATA=1)")
    pytest.skip(message)


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The shared data folder; skips (or fails when required) if it is absent."""
    path = shared_data_dir()
    if not path.is_dir():
        _missing(f"shared data folder {path} not found; set SESSIONREC_SHARED_DATA")
    return path


@pytest.fixture(scope="session")
def shared_file(shared_data: Path) -> Callable[[str], Path]:
    """``shared_file("otto/train_fixture.jsonl")``: one file of the shared data folder,
    skipping (or failing when required) if that file is absent."""

    def get(relative: str) -> Path:
        path = shared_data / relative
        if not path.is_file():
            _missing(f"shared data file {path} not found")
        return path

    return get


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "shared_data" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.shared_data)


# A skip is pytest.importorskip's when its traceback passes through that function: this also
# catches a custom ``reason=`` and an unmet ``minversion``, which a message match would not.
_IMPORTORSKIP_CODE: CodeType = pytest.importorskip.__code__


def importorskip_reason(excinfo: pytest.ExceptionInfo[BaseException] | None) -> str | None:
    """The reason of a skip raised inside ``pytest.importorskip``; None for anything else."""
    if excinfo is None or not isinstance(excinfo.value, pytest.skip.Exception):
        return None
    frame: TracebackType | None = excinfo.tb
    while frame is not None:
        if frame.tb_frame.f_code is _IMPORTORSKIP_CODE:
            return str(excinfo.value)
        frame = frame.tb_next
    return None


def _fail_if_extras_required(
    report: pytest.CollectReport | pytest.TestReport,
    excinfo: pytest.ExceptionInfo[BaseException] | None,
) -> None:
    reason = importorskip_reason(excinfo)
    if reason is not None and report.skipped and os.environ.get(REQUIRE_EXTRAS) == "1":
        report.outcome = "failed"
        report.longrepr = f"{reason} (required: {REQUIRE_EXTRAS}=1)"


@pytest.hookimpl(wrapper=True)
def pytest_make_collect_report(
    collector: pytest.Collector,
) -> Generator[None, pytest.CollectReport, pytest.CollectReport]:
    """A module-level ``importorskip`` that skips the whole file fails it instead."""
    report = yield
    # pytest keeps the collection's CallInfo on the report until collect_one_node reads it.
    call = getattr(report, "call", None)
    _fail_if_extras_required(report, call.excinfo if call is not None else None)
    return report


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """An ``importorskip`` in a test or a fixture fails that test instead of skipping it."""
    report = yield
    _fail_if_extras_required(report, call.excinfo)
    return report

"""Fixtures shared by every test package.

``shared_data``: the folder of real public datasets (``../shared/data`` beside the
repository, or ``$SESSIONREC_SHARED_DATA``). They are research data that may not be
redistributed, so a fresh clone does not have them: tests that need them skip with the
reason, unless ``SESSIONREC_REQUIRE_SHARED_DATA=1`` (CI) turns the skip into a failure.
Tests using the fixture are marked ``shared_data`` automatically (``-m "not shared_data"``).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


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

"""Bad rows: the checks that flag them, where they are in the file, and the report of them."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import polars as pl

from sessionrec._errors import data_error
from sessionrec.data.events.planning import ReadPlan

MAX_EXAMPLES = 5  # bad rows described in a ReadReport / the skip warning
SEPARATOR_NAMES = {"\t": "tab", ",": "comma", ";": "semicolon", "|": "pipe"}
"""The CSV separators a reader sniffs, by the name a message gives them."""


@dataclass(frozen=True)
class BadRow:
    """Where one bad row is and what is wrong with it."""

    line: int | None
    field: str | None
    message: str

    def describe(self, path: object) -> str:
        return str(data_error(self.message, path=path, line=self.line, field=self.field))


@dataclass(frozen=True)
class ReadReport:
    """What :func:`read_events` read and what it dropped (``on_bad_rows="skip"``).

    ``bad_rows`` counts dropped input records: CSV lines, JSONL lines that are not valid
    JSON, Parquet rows, and single events of an OTTO session line. ``examples`` describes
    the first few. A log read together with its purchase file has that file's report in
    ``parts``; ``events`` and ``bad_rows`` are then the totals of both files.
    """

    path: str
    events: int
    bad_rows: int = 0
    examples: tuple[BadRow, ...] = ()
    parts: tuple[ReadReport, ...] = ()

    def as_dict(self) -> dict[str, Any]:
        out = {
            "path": self.path,
            "events": self.events,
            "bad_rows": self.bad_rows,
            "examples": [row.describe(self.path) for row in self.examples],
        }
        if self.parts:
            out["parts"] = [part.as_dict() for part in self.parts]
        return out


@dataclass(frozen=True)
class RowCheck:
    """One kind of bad row: the field it concerns and its message.

    ``value`` names the raw column quoted in the message as ``{value}``.
    """

    field: str | None
    message: str
    value: str | None = None

    def format(self, value: Any) -> str:
        return self.message.format(value=value) if self.value else self.message


@dataclass
class BadRowsFound:
    """Bad rows found by a reader: a mask over the returned frame, a count, examples."""

    mask: pl.Series | None  # rows of the returned frame to drop (None: none to drop)
    count: int  # bad input records in total, including ones never in the frame
    examples: list[BadRow]


class LineLocator(Protocol):
    """Maps Polars record numbers of a read back to lines of the file (slow path only)."""

    n_fields: int | None  # fields a CSV row should have; None for other formats

    def lines(self, records: Sequence[int]) -> dict[int, tuple[int, int]]:
        """Record -> (1-based line, number of fields or -1) for the given records."""
        ...


def describe_bad_row(
    plan: ReadPlan,
    located: tuple[int, int] | None,
    record: int,
    check: RowCheck,
    value: Any,
    n: int | None,
) -> BadRow:
    line, fields = located if located else (record + 1 + int(plan.has_header), -1)
    if plan.format == "sessions-txt" and check.message == "missing item id":
        return BadRow(line, None, "empty line: a session needs at least one item id")
    if n is not None and fields == 0:
        return BadRow(line, check.field, "empty line")
    if n is not None and fields >= 0 and fields != n and (fields < n or check.field is None):
        sep = SEPARATOR_NAMES.get(plan.separator, repr(plan.separator))
        return BadRow(line, check.field, f"row has {fields} fields, expected {n} ({sep}-separated)")
    return BadRow(line, check.field, check.format(value))


@dataclass
class RowLocator:
    """Parquet and sessions-txt: row ``r`` is line (or row) ``r + 1``."""

    n_fields: int | None = None

    def lines(self, records: Sequence[int]) -> dict[int, tuple[int, int]]:
        return {r: (r + 1, -1) for r in records}

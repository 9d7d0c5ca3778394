""":func:`read_events`: one entry point that picks the reader of the file's format."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Mapping
from typing import Literal, overload

import polars as pl

from sessionrec._errors import ConfigError, data_error
from sessionrec.data.events.bad_rows import BadRowsFound, ReadReport
from sessionrec.data.events.csv_reader import read_csv
from sessionrec.data.events.jsonl_reader import read_jsonl
from sessionrec.data.events.parquet_reader import read_parquet
from sessionrec.data.events.planning import ReadPlan, plan_read
from sessionrec.data.events.presets import OnBadRows, Preset
from sessionrec.data.events.sessions_txt_reader import read_sessions_txt

log = logging.getLogger("sessionrec.data")


_READERS: dict[str, Callable[[ReadPlan, OnBadRows], tuple[pl.DataFrame, BadRowsFound | None]]] = {
    "csv": read_csv,
    "jsonl": read_jsonl,
    "parquet": read_parquet,
    "sessions-txt": read_sessions_txt,
}


@overload
def read_events(
    path: str | os.PathLike[str],
    preset: str | Preset | None = None,
    *,
    format: str | None = None,
    columns: Mapping[str, str] | None = None,
    time_unit: str | None = None,
    separator: str | None = None,
    has_header: bool | None = None,
    on_bad_rows: OnBadRows = "raise",
    return_report: Literal[False] = False,
) -> pl.DataFrame: ...


@overload
def read_events(
    path: str | os.PathLike[str],
    preset: str | Preset | None = None,
    *,
    format: str | None = None,
    columns: Mapping[str, str] | None = None,
    time_unit: str | None = None,
    separator: str | None = None,
    has_header: bool | None = None,
    on_bad_rows: OnBadRows = "raise",
    return_report: Literal[True],
) -> tuple[pl.DataFrame, ReadReport]: ...


def read_events(
    path: str | os.PathLike[str],
    preset: str | Preset | None = None,
    *,
    format: str | None = None,
    columns: Mapping[str, str] | None = None,
    time_unit: str | None = None,
    separator: str | None = None,
    has_header: bool | None = None,
    on_bad_rows: OnBadRows = "raise",
    return_report: bool = False,
) -> pl.DataFrame | tuple[pl.DataFrame, ReadReport]:
    """Read a click log into a canonical click frame (see the module docstring).

    ``preset`` names a public format (a key of :data:`PRESETS`, or a :class:`Preset`);
    the keyword arguments override it, or describe any other log:

    * ``format``: ``csv``, ``tsv``, ``parquet``, ``jsonl`` or ``sessions-txt``; by
      default from the file name (``.csv``/``.dat``/``.txt``, ``.tsv``, ``.parquet``,
      ``.jsonl``/``.ndjson``/``.json``; CSV and JSONL may be gzip-compressed, ``.gz``).
    * ``columns``: canonical name -> the file's column, e.g. ``{"session_id": "sid",
      "item_id": "product", "timestamp": "ts", "event_type": "action"}``, merged over
      the preset's. A visitor log maps ``user_id`` instead of ``session_id``; cut it into
      sessions with :func:`sessionrec.data.cleaning.sessionize`. Without a preset or a
      mapping, the columns already named ``session_id``, ``user_id``, ``item_id``,
      ``timestamp``, ``event_type`` are used. A file without a header calls its fields
      ``column_1``, ``column_2``, ... Names match ignoring case, ``_``, ``-`` and spaces.
    * ``time_unit``: ``s``, ``ms``, ``us`` or ``ns`` for numbers, ``iso`` for ISO-8601
      text. ``None`` decides from the data: text that is not a number is ISO-8601 (with
      or without a ``Z`` or ``+hh:mm`` offset; without one it is taken as UTC), and the
      unit of numbers follows from their median magnitude: below 1e11 seconds, below
      1e14 milliseconds, below 1e17 microseconds, else nanoseconds (right for any date
      from 1973 to 5138; the choice is logged). Timestamps come out as Float64 Unix
      seconds.
    * ``separator`` (one character; when neither given nor implied by the preset or a
      ``.tsv`` name, the most frequent of tab, comma, semicolon and pipe in the first
      line) and ``has_header``.
    * ``on_bad_rows``: ``"raise"`` the first bad row as a :class:`DataError`, or
      ``"skip"`` bad rows: they are dropped, counted and logged as a warning on the
      ``sessionrec.data`` logger.
    * ``return_report``: return ``(frame, ReadReport)``; the report counts what was
      dropped and describes the first bad rows.

    Raises :class:`ConfigError` for bad arguments (e.g. an unknown preset) and
    :class:`DataError` for bad data, naming the file, the line and the field.
    """
    if on_bad_rows not in ("raise", "skip"):
        raise ConfigError(f"on_bad_rows must be 'raise' or 'skip', not {on_bad_rows!r}")
    plan = plan_read(path, preset, format, columns, time_unit, separator, has_header)
    if not plan.path.is_file():
        raise data_error("no such file", path=plan.path)
    if plan.path.stat().st_size == 0:
        raise data_error("file is empty", path=plan.path)
    frame, problems = _READERS[plan.format](plan, on_bad_rows)
    bad = problems.count if problems else 0
    examples = tuple(problems.examples) if problems else ()
    if problems is not None and problems.mask is not None:
        frame = frame.filter(~problems.mask)
    if bad:
        log.warning(
            "%s: dropped %d bad row(s) (on_bad_rows='skip'); first: %s",
            plan.path,
            bad,
            " | ".join(row.describe(plan.path) for row in examples),
        )
    if frame.height == 0:
        if bad:
            raise data_error(
                f"every row is bad ({bad} dropped); first: {examples[0].describe(plan.path)}",
                path=plan.path,
            )
        raise data_error("file contains no events", path=plan.path)
    log.info("read %d events from %s", frame.height, plan.path)
    if return_report:
        return frame, ReadReport(str(plan.path), frame.height, bad, examples)
    return frame

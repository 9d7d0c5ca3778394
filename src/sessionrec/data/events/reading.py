""":func:`read_events`: one entry point that picks the reader of the file's format."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Mapping
from dataclasses import replace
from pathlib import Path
from typing import Literal, overload

import polars as pl

from sessionrec._errors import ConfigError, data_error
from sessionrec.data.events.bad_rows import BadRowsFound, ReadReport
from sessionrec.data.events.csv_reader import read_csv
from sessionrec.data.events.event_types import VIEW, canonical_event_types
from sessionrec.data.events.jsonl_reader import read_jsonl
from sessionrec.data.events.parquet_reader import read_parquet
from sessionrec.data.events.planning import ReadPlan, plan_read
from sessionrec.data.events.presets import PRESETS, ROLES, OnBadRows, Preset
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
    event_map: Mapping[str, str] | None = None,
    purchases: str | os.PathLike[str] | bool | None = None,
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
    event_map: Mapping[str, str] | None = None,
    purchases: str | os.PathLike[str] | bool | None = None,
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
    event_map: Mapping[str, str] | None = None,
    purchases: str | os.PathLike[str] | bool | None = None,
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
    * ``event_map``: raw event type -> ``view``, ``cart`` or ``purchase``, merged over
      the preset's map (or, without a preset, over every preset's map). The frame's
      ``event_type`` holds the canonical name and ``raw_event_type`` the file's word; a
      raw type no map knows raises a :class:`DataError` naming it (see
      :mod:`~sessionrec.data.events.event_types`). A log without a type column has no
      ``event_type`` (every click is a view), unless its preset names a constant raw
      type (YooChoose: ``click``).
    * ``purchases``: the companion purchase file of a preset that has one (YooChoose's
      ``yoochoose-buys.dat``, Diginetica's ``train-purchases.csv``). ``None`` (the
      default) reads it when it sits beside ``path`` under its usual name; a path reads
      that file; ``False`` never reads one. Its rows become ``purchase`` events merged
      with the log's (whose rows without a type are views); the merged frame is sorted by
      session id, then time (file order, then the log before the purchases, breaking ties).
    * ``return_report``: return ``(frame, ReadReport)``; the report counts what was
      dropped and describes the first bad rows.

    Raises :class:`ConfigError` for bad arguments (e.g. an unknown preset) and
    :class:`DataError` for bad data, naming the file, the line and the field.
    """
    if on_bad_rows not in ("raise", "skip"):
        raise ConfigError(f"on_bad_rows must be 'raise' or 'skip', not {on_bad_rows!r}")
    plan = plan_read(path, preset, format, columns, time_unit, separator, has_header, event_map)
    companion = companion_file(plan.path, preset, purchases)
    frame, report = _read_one(plan, on_bad_rows)
    if companion is not None:
        companion_path, companion_preset = companion
        bought, bought_report = read_events(
            companion_path,
            companion_preset,
            on_bad_rows=on_bad_rows,
            event_map=event_map,
            return_report=True,
        )
        frame = merge_purchases(frame, bought)
        report = replace(
            report,
            events=frame.height,
            bad_rows=report.bad_rows + bought_report.bad_rows,
            parts=(bought_report,),
        )
    if return_report:
        return frame, report
    return frame


def companion_file(
    path: Path,
    preset: str | Preset | None,
    purchases: str | os.PathLike[str] | bool | None,
) -> tuple[Path, Preset] | None:
    """The purchase file to read with the log at ``path`` and its preset, or ``None``."""
    if purchases is False or preset is None:
        if purchases not in (None, False):
            raise ConfigError("purchases= needs a preset that has a purchase file")
        return None
    spec = PRESETS.get(preset) if isinstance(preset, str) else preset
    if spec is None or spec.purchases is None:
        if purchases not in (None, False, True):
            with_files = sorted(name for name, p in PRESETS.items() if p.purchases is not None)
            raise ConfigError(
                f"the preset has no purchase file; purchases= works with {', '.join(with_files)}"
            )
        return None
    if purchases is None or purchases is True:
        beside = path.parent / spec.purchases.filename
        if beside.is_file() and beside != path:
            log.info("reading the purchases beside %s: %s", path, beside)
            return beside, spec.purchases
        if purchases is True:
            raise data_error(f"no purchase file {spec.purchases.filename} beside it", path=path)
        return None
    return Path(purchases), spec.purchases


def merge_purchases(frame: pl.DataFrame, bought: pl.DataFrame) -> pl.DataFrame:
    """A log and its purchases in one frame, sorted by session, then time, stably.

    Rows of the log without an event type are views (raw type ``view``).
    """
    if "event_type" not in frame.columns:
        frame = frame.with_columns(
            event_type=pl.lit(VIEW, pl.String), raw_event_type=pl.lit(VIEW, pl.String)
        )
    merged = pl.concat([frame, bought], how="diagonal_relaxed")
    key = "session_id" if "session_id" in merged.columns else "user_id"
    merged = merged.sort([key, "timestamp"], maintain_order=True, nulls_last=True)
    return merged.select([c for c in (*ROLES, "raw_event_type") if c in merged.columns])


def _read_one(plan: ReadPlan, on_bad_rows: OnBadRows) -> tuple[pl.DataFrame, ReadReport]:
    """One file, bad rows dropped, event types made canonical."""
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
    if "event_type" in frame.columns:
        raw = frame["event_type"].alias("raw_event_type")
        field = plan.mapping.get("event_type")  # None: the preset's constant type
        canonical = canonical_event_types(raw, plan.event_map, path=plan.path, field=field)
        frame = frame.with_columns(canonical.alias("event_type"), raw)
    log.info("read %d events from %s", frame.height, plan.path)
    return frame, ReadReport(str(plan.path), frame.height, bad, examples)

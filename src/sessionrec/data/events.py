"""Read click logs of any common shape into a canonical click frame.

Every later step (sessionizing, cleaning, splitting, :meth:`SessionData.from_frame`) works
on one shape, the *canonical click frame*: a Polars DataFrame with ``session_id`` (or
``user_id`` for a visitor log that still has to be cut into sessions), ``item_id``, and
optionally ``timestamp`` (Float64 Unix seconds) and ``event_type`` (String). Ids are
``Int64`` when every id in the file is a plain integer, ``String`` otherwise (without a
preset, a column whose first 10,000 ids are integers is read as integers; a later id that
is not one switches it to text). Rows are in file order; nothing is sorted here.

Reading is built for logs of tens of millions of rows: Polars reads the file once with the
schema the format implies and every check is vectorised. Only when something is wrong does
the reader take a slower path to say *where*: it re-reads the suspect columns as text,
finds the offending rows, and maps the first one back to its physical line (Python's
``csv`` module or a line count, used only on that error path). Errors therefore cost time
only when there is an error to report.

What counts as a bad row
------------------------
* a row with more fields than the header (a trailing empty field is tolerated), or with
  fewer, so that a column that is read is missing (a short row that only lacks an unused
  trailing column is harmless and kept); an empty line in a CSV or sessions-txt file
  (blank lines at the end of a sessions-txt file, and in JSONL anywhere, are skipped);
* a missing or empty session, user or item id; a non-integer id where the preset says ids
  are integers;
* a missing or unparseable timestamp (or Diginetica ``timeframe``), a non-finite number;
* a missing or empty event type (when the column is mapped);
* in JSONL, a line that is not valid JSON or not a JSON object.

With ``on_bad_rows="raise"`` (the default) the first bad row raises one
:class:`~sessionrec._errors.DataError` of the form ``file:line, field 'name': message``. With
``on_bad_rows="skip"`` bad rows are dropped, counted, logged on the ``sessionrec.data``
logger and reported in :class:`ReadReport` (``return_report=True``): nothing disappears
silently. An empty file, a file without events and missing columns always raise.

Line numbers are 1-based physical lines of the file (the header is line 1). For Parquet,
which has no lines, the number is the 1-based row.
"""

from __future__ import annotations

import csv
import gzip
import json
import logging
import os
import re
import tempfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from types import MappingProxyType
from typing import IO, Any, Literal, Protocol, cast, get_args, overload

import polars as pl

from sessionrec._errors import ConfigError, DataError, data_error

__all__ = [
    "PRESETS",
    "BadRow",
    "Format",
    "OnBadRows",
    "Preset",
    "ReadReport",
    "TimeUnit",
    "read_events",
]

log = logging.getLogger("sessionrec.data")

Format = Literal["csv", "tsv", "parquet", "jsonl", "sessions-txt"]
"""File formats :func:`read_events` understands (``tsv`` is CSV with tabs)."""

TimeUnit = Literal["s", "ms", "us", "ns", "iso"]
"""Unit of a numeric timestamp column, or ``"iso"`` for ISO-8601 text."""

OnBadRows = Literal["raise", "skip"]

ROLES: tuple[str, ...] = ("session_id", "user_id", "item_id", "timestamp", "event_type")
"""Canonical column names, in the order they appear in a canonical click frame."""

_ID_ROLES = ("session_id", "user_id", "item_id")
_ID_LABEL = {"session_id": "session id", "user_id": "user id", "item_id": "item id"}
_SCALE = {"s": 1.0, "ms": 1e-3, "us": 1e-6, "ns": 1e-9}
_EXAMPLES = 5  # bad rows described in a ReadReport / the skip warning
_INFER_ROWS = 10_000  # rows sampled to guess column types of a log without a preset
_LINE_SEPARATOR = "\x1f"  # never in text logs: reads a whole line as one CSV field
# Canonical decimal integers that fit in Int64; anything else (leading zeros, "+1",
# "1.0") stays text so that two different external ids never become one integer.
_INT_PATTERN = r"^-?(?:0|[1-9][0-9]{0,17})$"

# ISO-8601 variants tried for text timestamps, most common first. ``%#z`` accepts
# ``Z``, ``+02:00`` and ``+0200``; text without an offset is taken as UTC.
_ISO_FORMATS = (
    "%Y-%m-%dT%H:%M:%S%.f%#z",
    "%Y-%m-%dT%H:%M:%S%.f",
    "%Y-%m-%d %H:%M:%S%.f%#z",
    "%Y-%m-%d %H:%M:%S%.f",
    "%Y-%m-%dT%H:%M%#z",
    "%Y-%m-%dT%H:%M",
    "%Y-%m-%d %H:%M",
    "%Y-%m-%d",
)

_EXTENSIONS: dict[str, Format] = {
    ".csv": "csv",
    ".dat": "csv",
    ".txt": "csv",
    ".tsv": "tsv",
    ".tab": "tsv",
    ".parquet": "parquet",
    ".pq": "parquet",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".json": "jsonl",
}


# ------------------------------------------------------------------------ presets
@dataclass(frozen=True)
class Preset:
    """How to read one public click-log format.

    ``columns`` maps canonical names (see :data:`ROLES`) to the file's column names;
    matching against the header ignores case and ``_``/``-``/spaces, so ``sessionId``
    finds ``session_id``. ``names`` names the fields of a file without a header.
    ``integer_ids`` makes a non-integer id a bad row (the public logs use integers, so
    one is damage) instead of turning the whole column into text.
    ``timestamp_offset_ms`` names a column of milliseconds added to the timestamp
    (Diginetica's ``timeframe``); ``explode`` names a list-of-objects column holding the
    events of one session per row (OTTO's ``events``).
    """

    format: Format
    columns: Mapping[str, str]
    description: str = ""
    filename: str = ""
    separator: str | None = None
    has_header: bool = True
    names: tuple[str, ...] | None = None
    integer_ids: bool = False
    time_unit: TimeUnit | None = None
    event_type: str | None = None
    timestamp_offset_ms: str | None = None
    explode: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "columns", MappingProxyType(dict(self.columns)))


PRESETS: dict[str, Preset] = {
    "yoochoose": Preset(
        format="csv",
        filename="yoochoose-clicks.dat",
        description="RecSys Challenge 2015 clicks: session_id,timestamp(ISO),item_id,category",
        separator=",",
        has_header=False,
        names=("session_id", "timestamp", "item_id", "category"),
        columns={"session_id": "session_id", "item_id": "item_id", "timestamp": "timestamp"},
        integer_ids=True,
        time_unit="iso",
        event_type="click",
    ),
    "diginetica": Preset(
        format="csv",
        filename="train-item-views.csv",
        description="CIKM Cup 2016 item views: session_id;user_id;item_id;timeframe;eventdate",
        separator=";",
        columns={"session_id": "session_id", "item_id": "item_id", "timestamp": "eventdate"},
        integer_ids=True,
        time_unit="iso",
        timestamp_offset_ms="timeframe",
    ),
    "retailrocket": Preset(
        format="csv",
        filename="events.csv",
        description="Retailrocket visitor log (timestamp in ms); cut sessions with sessionize",
        separator=",",
        columns={
            "user_id": "visitorid",
            "item_id": "itemid",
            "timestamp": "timestamp",
            "event_type": "event",
        },
        integer_ids=True,
        time_unit="ms",
    ),
    "otto": Preset(
        format="jsonl",
        filename="train.jsonl",
        description='OTTO (Kaggle 2022): {"session", "events": [{"aid", "ts" (ms), "type"}]}',
        columns={
            "session_id": "session",
            "item_id": "aid",
            "timestamp": "ts",
            "event_type": "type",
        },
        integer_ids=True,
        time_unit="ms",
        explode="events",
    ),
    "gru4rec": Preset(
        format="tsv",
        filename="*.txt",
        description="GRU4Rec TSV: SessionId<TAB>ItemId<TAB>Time (Unix seconds)",
        separator="\t",
        columns={"session_id": "SessionId", "item_id": "ItemId", "timestamp": "Time"},
        time_unit="s",
    ),
    "sessions-txt": Preset(
        format="sessions-txt",
        filename="train_sessions.txt",
        description="one session per line, space-separated item ids, no timestamps",
        has_header=False,
        columns={"session_id": "line", "item_id": "items"},
    ),
}
"""Public log formats by name. Add your own :class:`Preset` here to register one."""


# ------------------------------------------------------------------------ reports
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
    the first few.
    """

    path: str
    events: int
    bad_rows: int = 0
    examples: tuple[BadRow, ...] = ()

    def as_dict(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "events": self.events,
            "bad_rows": self.bad_rows,
            "examples": [row.describe(self.path) for row in self.examples],
        }


# --------------------------------------------------------------------------- plan
@dataclass(frozen=True)
class _Plan:
    """A preset merged with the caller's overrides: everything needed to read one file."""

    path: Path
    format: Format
    separator: str  # "" = sniff from the first line
    has_header: bool
    names: tuple[str, ...] | None
    mapping: dict[str, str]  # canonical role -> source column, as requested
    integer_ids: bool
    time_unit: TimeUnit | None
    event_type: str | None  # constant event type of a log that has none
    offset: str | None  # column of milliseconds added to the timestamp
    explode: str | None  # list-of-events column (one session per record)


def _plan(
    path: str | os.PathLike[str],
    preset: str | Preset | None,
    format: str | None,
    columns: Mapping[str, str] | None,
    time_unit: str | None,
    separator: str | None,
    has_header: bool | None,
) -> _Plan:
    spec: Preset | None
    if preset is None or isinstance(preset, Preset):
        spec = preset
    elif preset in PRESETS:
        spec = PRESETS[preset]
    else:
        raise ConfigError(f"unknown preset {preset!r}; valid presets: {', '.join(sorted(PRESETS))}")
    if format is not None and format not in get_args(Format):
        raise ConfigError(
            f"unknown format {format!r}; valid formats: {', '.join(get_args(Format))}"
        )
    if time_unit is not None and time_unit not in get_args(TimeUnit):
        raise ConfigError(
            f"unknown time_unit {time_unit!r}; valid units: {', '.join(get_args(TimeUnit))}"
        )
    if separator is not None and len(separator) != 1:
        raise ConfigError(f"separator must be one character, not {separator!r}")
    if columns is not None:
        unknown = sorted(set(columns) - set(ROLES))
        if unknown:
            raise ConfigError(f"unknown key(s) {unknown} in columns; valid keys: {list(ROLES)}")
        empty = sorted(k for k, v in columns.items() if not isinstance(v, str) or not v)
        if empty:
            raise ConfigError(f"columns must map to non-empty column names (check {empty})")
    file = Path(path)
    fmt: Format = cast(Format, format) if format else spec.format if spec else _guess_format(file)
    mapping = dict(spec.columns) if spec else {}
    mapping.update(columns or {})
    if mapping and "item_id" not in mapping:
        raise ConfigError("columns must name the 'item_id' column")
    if mapping and "session_id" not in mapping and "user_id" not in mapping:
        raise ConfigError("columns must name a 'session_id' or a 'user_id' column")
    default_sep = "\t" if fmt == "tsv" else ""
    return _Plan(
        path=file,
        format="csv" if fmt == "tsv" else fmt,
        separator=separator or (spec.separator if spec else None) or default_sep,
        has_header=spec.has_header if has_header is None and spec else has_header is not False,
        names=spec.names if spec and has_header is not True else None,
        mapping=mapping,
        integer_ids=spec.integer_ids if spec else False,
        time_unit=cast("TimeUnit | None", time_unit) or (spec.time_unit if spec else None),
        event_type=spec.event_type if spec and "event_type" not in mapping else None,
        offset=spec.timestamp_offset_ms if spec and not (columns or {}).get("timestamp") else None,
        explode=spec.explode if spec else None,
    )


def _guess_format(path: Path) -> Format:
    suffixes = [s.lower() for s in path.suffixes]
    if suffixes and suffixes[-1] in (".gz", ".gzip"):
        suffixes = suffixes[:-1]
    if suffixes and suffixes[-1] in _EXTENSIONS:
        return _EXTENSIONS[suffixes[-1]]
    raise ConfigError(
        f"{path}: cannot guess the format from the file name; pass format= (one of "
        f"{', '.join(get_args(Format))}) or a preset ({', '.join(sorted(PRESETS))})"
    )


def _norm(name: str) -> str:
    return re.sub(r"[\s_\-]", "", name).lower()


def _match(name: str, available: Sequence[str]) -> str | None:
    if name in available:
        return name
    hits = [a for a in available if _norm(a) == _norm(name)]
    return hits[0] if len(hits) == 1 else None


def _resolve(plan: _Plan, available: Sequence[str], *, line: int | None) -> dict[str, str]:
    """Canonical role -> the file's real column name; raises listing the columns found.

    The role ``_offset`` is the preset's timestamp offset column, when it has one.
    """
    wanted = dict(plan.mapping)
    if not wanted:  # neither preset nor mapping: use columns already named canonically
        wanted = {role: role for role in ROLES if _match(role, available)}
    resolved: dict[str, str] = {}
    missing: list[str] = []
    requests = list(wanted.items()) + ([("_offset", plan.offset)] if plan.offset else [])
    for role, source in requests:
        found = _match(source, available)
        if found is None:
            missing.append(repr(source) if role in (source, "_offset") else f"{source!r} ({role})")
        else:
            resolved[role] = found
    if "item_id" not in wanted:
        missing.append("'item_id' (name it with columns= or use a preset)")
    if "session_id" not in wanted and "user_id" not in wanted:
        missing.append("'session_id' or 'user_id' (name it with columns= or use a preset)")
    if missing:
        raise data_error(
            f"missing column(s) {', '.join(missing)}; found columns: {list(available)}",
            path=plan.path,
            line=line,
        )
    return resolved


# --------------------------------------------------------------------------- api
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
    plan = _plan(path, preset, format, columns, time_unit, separator, has_header)
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


# ------------------------------------------------------------------- bad rows
@dataclass(frozen=True)
class _Check:
    """One kind of bad row: the field it concerns and its message.

    ``value`` names the raw column quoted in the message as ``{value}``.
    """

    field: str | None
    message: str
    value: str | None = None

    def format(self, value: Any) -> str:
        return self.message.format(value=value) if self.value else self.message


@dataclass
class _Problems:
    """Bad rows found by a reader: a mask over the returned frame, a count, examples."""

    mask: pl.Series | None  # rows of the returned frame to drop (None: none to drop)
    count: int  # bad input records in total, including ones never in the frame
    examples: list[BadRow]


class _Locator(Protocol):
    """Maps Polars record numbers of a read back to lines of the file (slow path only)."""

    n_fields: int | None  # fields a CSV row should have; None for other formats

    def lines(self, records: Sequence[int]) -> dict[int, tuple[int, int]]:
        """Record -> (1-based line, number of fields or -1) for the given records."""
        ...


def _describe(
    plan: _Plan,
    located: tuple[int, int] | None,
    record: int,
    check: _Check,
    value: Any,
    n: int | None,
) -> BadRow:
    line, fields = located if located else (record + 1 + int(plan.has_header), -1)
    if plan.format == "sessions-txt" and check.message == "missing item id":
        return BadRow(line, None, "empty line: a session needs at least one item id")
    if n is not None and fields == 0:
        return BadRow(line, check.field, "empty line")
    if n is not None and fields >= 0 and fields != n and (fields < n or check.field is None):
        sep = _SEPARATOR_NAMES.get(plan.separator, repr(plan.separator))
        return BadRow(line, check.field, f"row has {fields} fields, expected {n} ({sep}-separated)")
    return BadRow(line, check.field, check.format(value))


_SEPARATOR_NAMES = {"\t": "tab", ",": "comma", ";": "semicolon", "|": "pipe"}


# ------------------------------------------------------------------- file access
@contextmanager
def _open_text(path: Path) -> Iterator[IO[str]]:
    """Open a (possibly gzip-compressed) text file for the Python slow paths."""
    with path.open("rb") as probe:
        magic = probe.read(2)
    if magic == b"\x1f\x8b":
        with gzip.open(path, "rt", encoding="utf-8-sig", errors="replace", newline="") as f:
            yield f
    else:
        with path.open(encoding="utf-8-sig", errors="replace", newline="") as f:
            yield f


def _polars_error(plan: _Plan, exc: Exception) -> DataError:
    text = str(exc).strip().splitlines()
    return data_error(
        f"cannot read as {plan.format}: {text[0] if text else type(exc).__name__}",
        path=plan.path,
    )


# --------------------------------------------------------------------------- CSV
def _read_csv(plan: _Plan, on_bad_rows: OnBadRows) -> tuple[pl.DataFrame, _Problems | None]:
    try:
        with _open_text(plan.path) as handle:
            first_line = handle.readline()
            if not plan.separator:
                counts = {sep: first_line.count(sep) for sep in _SEPARATOR_NAMES}
                best = max(counts, key=counts.__getitem__)
                plan = replace(plan, separator=best if counts[best] else ",")
        with _open_text(plan.path) as handle:
            first = next(csv.reader(handle, delimiter=plan.separator), None)
    except (OSError, EOFError, csv.Error) as exc:
        raise data_error(f"cannot read file: {exc}", path=plan.path) from None
    if not first:
        raise data_error(
            "file is empty" if first is None else "first line is empty",
            path=plan.path,
            line=None if first is None else 1,
        )
    if plan.names is not None:
        header = list(plan.names)
    elif plan.has_header:
        header = _unique_names(first)
    else:
        header = [f"column_{i + 1}" for i in range(len(first))]
    resolved = _resolve(plan, header, line=1 if plan.has_header else None)
    needed = list(dict.fromkeys(resolved.values()))

    def scan(types: Mapping[str, pl.DataType], lossy: bool) -> pl.DataFrame:
        schema: dict[str, pl.DataType] = {name: types.get(name, pl.String()) for name in header}
        schema["_extra"] = pl.String()  # catches rows with more fields than the header
        lf = pl.scan_csv(
            plan.path,
            has_header=False,
            skip_rows=1 if plan.has_header else 0,
            separator=plan.separator,
            schema=schema,
            truncate_ragged_lines=True,
            missing_columns="insert",
            row_index_name="_row",
            encoding="utf8-lossy" if lossy else "utf8",
        )
        extra = pl.col("_extra").is_not_null().alias("_extra")
        return lf.select("_row", *needed, extra).collect(engine="streaming")

    try:
        raw = scan(_typed_schema(plan, resolved, header), lossy=False)
    except pl.exceptions.PolarsError as exc:
        log.debug("%s: typed read failed (%s); re-reading as text", plan.path, exc)
        try:
            raw = scan({}, lossy=True)
        except pl.exceptions.PolarsError as exc2:
            raise _polars_error(plan, exc2) from None
    return _canonicalise(raw, plan, resolved, _CsvLocator(plan, len(header)), on_bad_rows)


def _unique_names(names: Sequence[str]) -> list[str]:
    seen: dict[str, int] = {}
    out = []
    for i, raw in enumerate(names):
        name = raw.strip() or f"column_{i + 1}"
        if name in seen:
            seen[name] += 1
            name = f"{name}_{seen[name]}"
        seen.setdefault(name, 0)
        out.append(name)
    return out


def _typed_schema(
    plan: _Plan, resolved: Mapping[str, str], header: Sequence[str]
) -> dict[str, pl.DataType]:
    """Dtypes of the fast path: what the preset promises, or what a sample suggests."""
    types: dict[str, pl.DataType] = {}
    sample: pl.DataFrame | None = None
    for role, source in resolved.items():
        dtype: pl.DataType | None = None
        if role in _ID_ROLES and plan.integer_ids:
            dtype = pl.Int64()
        elif role in ("timestamp", "event_type") and plan.time_unit == "iso":
            dtype = pl.String()
        elif role in ("timestamp", "_offset") and plan.time_unit in _SCALE:
            dtype = pl.Float64()
        elif role == "event_type":
            dtype = pl.String()
        if dtype is None:
            if sample is None:
                sample = pl.read_csv(
                    plan.path,
                    has_header=False,
                    skip_rows=1 if plan.has_header else 0,
                    separator=plan.separator,
                    schema=dict.fromkeys(header, pl.String()),
                    n_rows=_INFER_ROWS,
                    truncate_ragged_lines=True,
                    encoding="utf8-lossy",
                )
            dtype = _infer_dtype(sample[source], numeric=role not in _ID_ROLES)
        types[source] = dtype
    return types


def _infer_dtype(sample: pl.Series, *, numeric: bool) -> pl.DataType:
    """Int64 when every sampled value is a plain integer; Float64 too for non-ids."""
    values = sample.drop_nulls()
    if values.len() and values.str.contains(_INT_PATTERN).all():
        return pl.Int64()
    if numeric and values.len() and values.cast(pl.Float64, strict=False).null_count() == 0:
        return pl.Float64()
    return pl.String()


@dataclass
class _CsvLocator:
    """Record -> line with Python's csv module, which counts records as Polars does.

    Blank lines are records; a quoted newline is not a line break; ``line_num`` is the
    record's last physical line.
    """

    plan: _Plan
    n_fields: int | None

    def lines(self, records: Sequence[int]) -> dict[int, tuple[int, int]]:
        wanted, last = set(records), max(records)
        found: dict[int, tuple[int, int]] = {}
        skip = int(self.plan.has_header)
        with _open_text(self.plan.path) as handle:
            reader = csv.reader(handle, delimiter=self.plan.separator)
            for number, row in enumerate(reader):
                if number - skip in wanted:
                    found[number - skip] = (reader.line_num, len(row))
                if number - skip >= last:
                    break
        return found


# -------------------------------------------------------------------------- JSONL
def _read_jsonl(plan: _Plan, on_bad_rows: OnBadRows) -> tuple[pl.DataFrame, _Problems | None]:
    try:
        inferred = pl.scan_ndjson(plan.path, infer_schema_length=_INFER_ROWS).collect_schema()
    except pl.exceptions.PolarsError:
        return _read_valid_json_lines(plan, on_bad_rows)  # invalid JSON early in the file
    available = list(inferred.names())
    inner_types: dict[str, pl.DataType] = {}
    if plan.explode:
        column = inferred.get(plan.explode)
        if column is None:
            raise data_error(
                f"missing column(s) {plan.explode!r}; found columns: {available}", path=plan.path
            )
        if isinstance(column, pl.List) and isinstance(column.inner, pl.Struct):
            inner_types = {f.name: cast(pl.DataType, f.dtype) for f in column.inner.fields}
        available = [c for c in available if c != plan.explode]
    resolved = _resolve(plan, available + list(inner_types), line=None)
    role_of = {source: role for role, source in resolved.items()}

    def schema(typed: bool) -> dict[str, pl.DataType]:
        def dtype(source: str, inferred_type: pl.DataType) -> pl.DataType:
            if not typed:
                return pl.String()
            if role_of[source] in _ID_ROLES and plan.integer_ids:
                return pl.Int64()
            return inferred_type

        out = {s: dtype(s, inferred[s]) for s in role_of if s in available}
        if plan.explode:
            fields = {s: dtype(s, t) for s, t in inner_types.items() if s in role_of}
            out[plan.explode] = pl.List(pl.Struct(fields))
        return out

    def scan(typed: bool) -> pl.DataFrame:
        lf = pl.scan_ndjson(
            plan.path, schema=schema(typed), ignore_errors=not typed, row_index_name="_row"
        )
        if plan.explode:
            # A session without events loses nothing; a missing list is flagged later.
            lf = lf.filter(pl.col(plan.explode).list.len().fill_null(1) > 0)
            lf = lf.explode(plan.explode).unnest(plan.explode)
        return lf.collect(engine="streaming")

    try:
        raw = scan(typed=True)
    except pl.exceptions.PolarsError as exc:
        log.debug("%s: typed read failed (%s); re-reading as text", plan.path, exc)
        try:
            raw = scan(typed=False)
        except pl.exceptions.PolarsError:
            return _read_valid_json_lines(plan, on_bad_rows)
    for name in resolved.values():  # a key absent from every object of a nested list
        if name not in raw.columns:
            raw = raw.with_columns(pl.lit(None, pl.String).alias(name))
    return _canonicalise(raw, plan, resolved, _JsonLocator(plan), on_bad_rows)


def _read_valid_json_lines(
    plan: _Plan, on_bad_rows: OnBadRows
) -> tuple[pl.DataFrame, _Problems | None]:
    """The slow path for invalid JSON: raise the first bad line, or read the others.

    Skipping copies the valid lines to a temporary file, reads that, and maps its line
    numbers back to the original file's.
    """
    good: list[int] = []
    examples: list[BadRow] = []
    n_bad = 0
    with _open_text(plan.path) as handle:
        for number, text in enumerate(handle, start=1):
            if not text.strip():
                continue
            try:
                value = json.loads(text)
                problem = None if isinstance(value, dict) else "expected a JSON object"
            except json.JSONDecodeError as exc:
                problem = f"invalid JSON: {exc.msg} (column {exc.colno})"
            if problem is None:
                good.append(number)
                continue
            if on_bad_rows == "raise":
                raise data_error(problem, path=plan.path, line=number)
            n_bad += 1
            if len(examples) < _EXAMPLES:
                examples.append(BadRow(number, None, problem))
    if not n_bad:  # Polars fails on a file Python reads: nothing more precise to say
        raise data_error("cannot read as JSON lines", path=plan.path)
    if not good:
        return pl.DataFrame(), _Problems(None, n_bad, examples)
    keep = set(good)
    with tempfile.TemporaryDirectory(prefix="sessionrec-") as tmp:
        copy = Path(tmp) / plan.path.with_suffix(".jsonl").name
        with _open_text(plan.path) as src, copy.open("w", encoding="utf-8") as dst:
            for number, text in enumerate(src, start=1):
                if number in keep:
                    dst.write(text.rstrip("\r\n") + "\n")
        frame, problems = _read_jsonl(replace(plan, path=copy), on_bad_rows)
    if problems is None:
        return frame, _Problems(None, n_bad, examples)
    moved = [
        replace(row, line=good[row.line - 1] if row.line else None) for row in problems.examples
    ]
    merged = sorted(examples + moved, key=lambda row: row.line or 0)[:_EXAMPLES]
    return frame, _Problems(problems.mask, problems.count + n_bad, merged)


@dataclass
class _JsonLocator:
    """Record -> line: Polars skips blank lines, so count the non-blank ones."""

    plan: _Plan
    n_fields: int | None = None

    def lines(self, records: Sequence[int]) -> dict[int, tuple[int, int]]:
        wanted, last = set(records), max(records)
        found: dict[int, tuple[int, int]] = {}
        record = -1
        with _open_text(self.plan.path) as handle:
            for number, text in enumerate(handle, start=1):
                if text.strip():
                    record += 1
                    if record in wanted:
                        found[record] = (number, -1)
                    if record >= last:
                        break
        return found


# ------------------------------------------------------------------------ Parquet
def _read_parquet(plan: _Plan, on_bad_rows: OnBadRows) -> tuple[pl.DataFrame, _Problems | None]:
    try:
        lf = pl.scan_parquet(plan.path)
        available = lf.collect_schema().names()
    except pl.exceptions.PolarsError as exc:
        raise _polars_error(plan, exc) from None
    resolved = _resolve(plan, available, line=None)
    needed = list(dict.fromkeys(resolved.values()))
    try:
        raw = lf.with_row_index("_row").select("_row", *needed).collect(engine="streaming")
    except pl.exceptions.PolarsError as exc:
        raise _polars_error(plan, exc) from None
    return _canonicalise(raw, plan, resolved, _RowLocator(), on_bad_rows)


@dataclass
class _RowLocator:
    """Parquet and sessions-txt: row ``r`` is line (or row) ``r + 1``."""

    n_fields: int | None = None

    def lines(self, records: Sequence[int]) -> dict[int, tuple[int, int]]:
        return {r: (r + 1, -1) for r in records}


# ------------------------------------------------------------------- sessions-txt
def _read_sessions_txt(
    plan: _Plan, on_bad_rows: OnBadRows
) -> tuple[pl.DataFrame, _Problems | None]:
    """One session per line: session id = 0-based line number, items = its tokens."""
    try:
        lines = pl.scan_csv(
            plan.path,
            has_header=False,
            separator=_LINE_SEPARATOR,
            quote_char=None,
            schema={"_line": pl.String()},
            encoding="utf8-lossy",
            row_index_name="_row",
        ).collect(engine="streaming")
    except pl.exceptions.PolarsError as exc:
        raise _polars_error(plan, exc) from None
    tokens = lines["_line"].str.extract_all(r"\S+")
    nonblank = tokens.list.len().fill_null(0) > 0
    if not nonblank.any():
        raise data_error("file is empty: expected one session per line", path=plan.path)
    last = int(nonblank.arg_true()[-1])  # trailing blank lines are not sessions
    raw = (
        lines.head(last + 1)
        .select(
            "_row",
            pl.col("_row").cast(pl.Int64).alias("line"),
            tokens.head(last + 1).alias("items"),
        )
        .explode("items")
    )
    resolved = {"session_id": "line", "item_id": "items"}
    return _canonicalise(raw, plan, resolved, _RowLocator(), on_bad_rows)


_READERS: dict[str, Callable[[_Plan, OnBadRows], tuple[pl.DataFrame, _Problems | None]]] = {
    "csv": _read_csv,
    "jsonl": _read_jsonl,
    "parquet": _read_parquet,
    "sessions-txt": _read_sessions_txt,
}


# ------------------------------------------------------------------ canonical form
def _canonicalise(
    raw: pl.DataFrame,
    plan: _Plan,
    resolved: Mapping[str, str],
    locator: _Locator,
    on_bad_rows: OnBadRows,
) -> tuple[pl.DataFrame, _Problems | None]:
    """Source columns -> canonical columns, flagging every bad row (vectorised).

    ``raw`` holds ``_row`` (the record number), the source columns and, for CSV,
    ``_extra`` (the row has more fields than the header).
    """
    checks: list[tuple[pl.Series, _Check]] = []
    if "_extra" in raw.columns:
        checks.append((raw["_extra"], _Check(None, "row has too many fields")))
    out: dict[str, pl.Series] = {}
    for role in _ID_ROLES:
        if role in resolved:
            out[role] = _id_column(raw[resolved[role]], role, resolved[role], plan, checks)
    if "timestamp" in resolved:
        out["timestamp"] = _timestamp_column(raw, resolved, plan, checks)
    if "event_type" in resolved:
        source = resolved["event_type"]
        text = _as_text(raw[source], source, "event type", plan)
        checks.append((text.is_null(), _Check(source, "missing event type")))
        blank = text.str.contains(r"^\s*$")
        checks.append((blank, _Check(source, "empty event type")))
        out["event_type"] = text
    elif plan.event_type is not None:
        out["event_type"] = pl.repeat(plan.event_type, raw.height, dtype=pl.String, eager=True)
    frame = pl.DataFrame([series.alias(name) for name, series in out.items()])

    failing = [(mask.fill_null(False), check) for mask, check in checks]
    failing = [(mask, check) for mask, check in failing if mask.any()]
    if not failing:
        return frame, None
    # The first failing check of every row, or null when the row is fine.
    codes = pl.select(
        pl.coalesce(
            [pl.when(mask).then(pl.lit(i, pl.Int16)) for i, (mask, _) in enumerate(failing)]
        )
    ).to_series()
    bad = codes.is_not_null()
    positions = bad.arg_true().head(1 if on_bad_rows == "raise" else _EXAMPLES).to_list()
    records = [int(raw["_row"][pos]) for pos in positions]
    located = locator.lines(records)
    examples = []
    for pos, record in zip(positions, records, strict=True):
        check = failing[int(codes[pos])][1]
        value = raw[check.value][pos] if check.value else None
        examples.append(
            _describe(plan, located.get(record), record, check, value, locator.n_fields)
        )
    if on_bad_rows == "raise":
        first = examples[0]
        raise data_error(first.message, path=plan.path, line=first.line, field=first.field)
    return frame, _Problems(bad, int(bad.sum()), examples)


def _as_text(series: pl.Series, source: str, label: str, plan: _Plan) -> pl.Series:
    dtype = series.dtype
    if dtype == pl.String:
        return series
    if isinstance(dtype, (pl.Categorical, pl.Enum)) or dtype.is_integer() or dtype == pl.Null:
        return series.cast(pl.String)
    raise data_error(
        f"has type {dtype}; a {label} must be text or an integer", path=plan.path, field=source
    )


def _id_column(
    series: pl.Series,
    role: str,
    source: str,
    plan: _Plan,
    checks: list[tuple[pl.Series, _Check]],
) -> pl.Series:
    """Ids as Int64 when every id is a plain integer, else as text; flags bad ones."""
    label = _ID_LABEL[role]
    checks.append((series.is_null(), _Check(source, f"missing {label}")))
    dtype = series.dtype
    if dtype.is_integer():
        return series.cast(pl.Int64)
    if dtype.is_float():
        integral = series.is_finite() & (series == series.floor())
        message = f"{label} {{value}} is not an integer"
        checks.append((~integral & series.is_not_null(), _Check(source, message, source)))
        return series.cast(pl.Int64, strict=False)
    text = _as_text(series, source, label, plan)
    empty = text.str.contains(r"^\s*$")
    checks.append((empty, _Check(source, f"empty {label}")))
    not_int = ~text.str.contains(_INT_PATTERN).fill_null(True) & ~empty.fill_null(False)
    if plan.integer_ids:
        message = f"{label} {{value!r}} is not an integer"
        checks.append((not_int, _Check(source, message, source)))
        return text.cast(pl.Int64, strict=False)
    if not not_int.any():
        return text.cast(pl.Int64, strict=False)
    return text


def _timestamp_column(
    raw: pl.DataFrame,
    resolved: Mapping[str, str],
    plan: _Plan,
    checks: list[tuple[pl.Series, _Check]],
) -> pl.Series:
    source = resolved["timestamp"]
    series = raw[source]
    checks.append((series.is_null(), _Check(source, "missing timestamp")))
    seconds = _to_seconds(series, source, plan, checks)
    if "_offset" not in resolved:
        return seconds
    source = resolved["_offset"]
    offset = raw[source]
    checks.append((offset.is_null(), _Check(source, "missing value")))
    if offset.dtype == pl.String:
        parsed = offset.str.strip_chars().cast(pl.Float64, strict=False)
        message = "{value!r} is not a number of milliseconds"
        checks.append((parsed.is_null() & offset.is_not_null(), _Check(source, message, source)))
        offset = parsed
    elif not offset.dtype.is_numeric():
        raise data_error(
            f"has type {offset.dtype}; expected milliseconds", path=plan.path, field=source
        )
    return seconds + offset.cast(pl.Float64) / 1000.0


def _to_seconds(
    series: pl.Series, source: str, plan: _Plan, checks: list[tuple[pl.Series, _Check]]
) -> pl.Series:
    """Any timestamp column -> Float64 Unix seconds (null where it cannot be parsed)."""
    unit = plan.time_unit
    dtype = series.dtype
    if isinstance(dtype, pl.Datetime):
        return series.dt.epoch("us").cast(pl.Float64) / 1e6
    if dtype == pl.Date:
        return series.cast(pl.Datetime("us")).dt.epoch("us").cast(pl.Float64) / 1e6
    if dtype == pl.String:
        if unit is None:
            first = series.drop_nulls().head(1).str.strip_chars().cast(pl.Float64, strict=False)
            unit = None if first.len() and first.null_count() == 0 else "iso"
        if unit == "iso":
            return _parse_iso(series, source, checks)
        text = series.str.strip_chars()
        numbers = text.cast(pl.Float64, strict=False)
        message = "cannot parse timestamp {value!r} as a number"
        checks.append((numbers.is_null() & text.is_not_null(), _Check(source, message, source)))
    elif dtype.is_numeric():
        if unit == "iso":
            raise data_error(
                "holds numbers, but time_unit='iso' expects ISO-8601 text",
                path=plan.path,
                field=source,
            )
        numbers = series.cast(pl.Float64)
    else:
        raise data_error(
            f"has type {dtype}; a timestamp must be a number or ISO-8601 text",
            path=plan.path,
            field=source,
        )
    message = "timestamp {value} is not a finite number"
    checks.append((numbers.is_not_null() & ~numbers.is_finite(), _Check(source, message, source)))
    scale = _SCALE[unit if unit in _SCALE else _guess_unit(numbers, plan)]
    return numbers if scale == 1.0 else numbers * scale


def _guess_unit(numbers: pl.Series, plan: _Plan) -> str:
    finite = numbers.filter(numbers.is_finite()).abs()
    magnitude = float(cast(float, finite.median())) if finite.len() else 0.0
    unit = (
        "s"
        if magnitude < 1e11
        else "ms"
        if magnitude < 1e14
        else "us"
        if magnitude < 1e17
        else "ns"
    )
    log.info(
        "%s: numeric timestamps (median %.3g) read as %s; pass time_unit= to override",
        plan.path,
        magnitude,
        {"s": "seconds", "ms": "milliseconds", "us": "microseconds", "ns": "nanoseconds"}[unit],
    )
    return unit


def _parse_iso(text: pl.Series, source: str, checks: list[tuple[pl.Series, _Check]]) -> pl.Series:
    def parse(fmt: str, values: pl.Series) -> pl.Series:
        return values.str.to_datetime(fmt, strict=False, time_unit="us", time_zone="UTC")

    sample = text.drop_nulls().head(1000)
    ranked = sorted(_ISO_FORMATS, key=lambda fmt: -parse(fmt, sample).is_not_null().sum())
    parsed = parse(ranked[0], text)
    failed = parsed.is_null() & text.is_not_null()
    if failed.any():  # several styles in one column: try the others where the best failed
        parsed = pl.select(pl.coalesce([parse(fmt, text) for fmt in ranked])).to_series()
        failed = parsed.is_null() & text.is_not_null()
    message = "cannot parse timestamp {value!r} (expected ISO-8601 like 2014-04-07T10:51:09Z)"
    checks.append((failed, _Check(source, message, source)))
    return parsed.dt.epoch("us").cast(pl.Float64) / 1e6

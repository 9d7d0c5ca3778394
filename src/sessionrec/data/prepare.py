"""From a raw click log to a dataset folder: read, cut, clean, split, write.

:func:`prepare` runs the standard preprocessing of session-based recommendation (the steps
of the GRU4Rec and SR-GNN scripts) on any log :func:`~sessionrec.data.events.read_events`
reads, and :func:`write_prepared` / :func:`read_prepared` store the result so that training
and evaluation never redo it:

1. read the log (a preset or an explicit column mapping);
2. cut visitor logs into sessions at an inactivity ``gap``
   (:func:`~sessionrec.data.cleaning.sessionize`);
3. drop consecutive repeated clicks (``dedupe``), rare items and short sessions until
   nothing changes (:func:`~sessionrec.data.cleaning.clean`);
4. the sessions of the last ``test_days`` days become the test part (by default the
   preset's standard test period, e.g. 7 days for Diginetica, else 1 day); the rest is
   ``train_full`` (:func:`~sessionrec.data.split.temporal_split`); a test part of fewer
   than :data:`~sessionrec.data.reliability.MIN_RELIABLE_CASES` cases is warned about;
5. the sessions of the last ``valid_days`` days of ``train_full`` become the validation
   part; the rest is ``train`` (:func:`~sessionrec.data.split.validation_split`);
6. test clicks on items not in ``train_full``, and validation clicks on items not in
   ``train``, are removed, then sessions shorter than ``min_session_length``
   (:func:`~sessionrec.data.split.restrict_items`).

Two pairs come out, each sharing one vocabulary, as in GRU4Rec's preprocessing:

* ``train`` / ``valid``: fit and select hyperparameters or epochs here. ``train`` holds only
  sessions before the validation period, so ``model.fit(data.train, data.valid)`` never
  trains on validation clicks; ``valid`` is re-indexed into ``train``'s vocabulary.
* ``train_full`` / ``test``: refit the chosen model on ``train_full`` (train plus the
  validation period) and report on ``test``, re-indexed into ``train_full``'s vocabulary.
  The test part is therefore the standard one whatever ``valid_days`` is.

Without validation (``valid_days=None`` or ``0``) ``train`` is ``train_full`` and ``valid``
is ``None``.

Dataset folder layout (``report.json`` ``format`` is ``"sessionrec.dataset"``, version 1)::

    train_sessions.txt      train_full, sessions-txt (external ids, chronological order)
    test_sessions.txt       test, sessions-txt
    train_tr_sessions.txt   train, sessions-txt               (only with validation)
    valid_sessions.txt      valid, sessions-txt               (only with validation)
    train.parquet           train_full clicks: session_id, item_id, timestamp[, event_type,
                            raw_event_type], and ``valid_period`` (True for sessions
                            outside ``train``)
    test.parquet            test clicks, same columns without valid_period
    valid.parquet           valid clicks                      (only with validation)
    report.json             format, options, counts and everything each step removed

``train_sessions.txt`` plus ``test_sessions.txt`` make it a benchmark folder like the shared
SR-GNN ones (train on all data before the test period); the Parquet files keep timestamps
and event types for full fidelity, and :func:`read_prepared` rebuilds identical
:class:`SessionData` from them. The folder is written beside its destination under a
temporary name and renamed into place, so a reader never sees half of it.
"""

from __future__ import annotations

import json
import logging
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from sessionrec._atomic import atomic_folder
from sessionrec._errors import ConfigError, DataError
from sessionrec._version import __version__
from sessionrec.data.cleaning import clean, clicks_in_order, sessionize
from sessionrec.data.events import PRESETS, ROLES, OnBadRows, Preset, read_events
from sessionrec.data.events.event_types import (
    CANONICAL_EVENT_TYPES,
    EVENT_TYPE_DTYPE,
    canonical_event_types,
    event_map_of,
)
from sessionrec.data.events.files import guess_preset
from sessionrec.data.events.planning import default_event_map
from sessionrec.data.formats import write_sessions_txt
from sessionrec.data.reliability import small_test_warning
from sessionrec.data.sessions import SessionData
from sessionrec.data.split import DAY, SplitBy, restrict_items, split_cutoff, temporal_split

__all__ = [
    "FORMAT",
    "FORMAT_VERSION",
    "PrepareOptions",
    "PreparedData",
    "prepare",
    "read_prepared",
    "write_prepared",
]

log = logging.getLogger("sessionrec.data")

FORMAT = "sessionrec.dataset"
FORMAT_VERSION = 1
REPORT = "report.json"
DEFAULT_TEST_DAYS = 1.0
"""The test period of a log whose preset names none (GRU4Rec's protocol: the last day)."""


@dataclass(frozen=True)
class PrepareOptions:
    """Every knob of :func:`prepare`; the reading options go to :func:`read_events`.

    ``test_days`` of ``None`` (the default) takes the preset's standard test period
    (:attr:`Preset.test_days <sessionrec.data.events.Preset>`), or 1 day.
    ``valid_days`` of ``None`` or ``0`` means no validation split. ``split_by`` decides
    which time of a session places it in the test (validation) period: its ``"end"`` (the
    default, as in the GRU4Rec and SR-GNN scripts: no training click is later than the
    cutoff) or its ``"start"``. ``event_map`` (raw event type -> ``view``, ``cart`` or
    ``purchase``) extends the preset's map; ``purchases`` is the preset's companion
    purchase file (``None``: read it when it sits beside the log; ``False``: never).
    """

    preset: str | Preset | None = None
    format: str | None = None
    columns: Mapping[str, str] | None = None
    time_unit: str | None = None
    separator: str | None = None
    has_header: bool | None = None
    on_bad_rows: OnBadRows = "raise"
    event_map: Mapping[str, str] | None = None
    purchases: str | os.PathLike[str] | bool | None = None
    gap: float = 1800.0
    dedupe: bool = True
    min_session_length: int = 2
    min_item_support: int = 5
    max_session_length: int | None = None
    test_days: float | None = None
    valid_days: float | None = 1.0
    split_by: SplitBy = "end"

    def as_dict(self) -> dict[str, Any]:
        out = {f.name: getattr(self, f.name) for f in fields(self)}
        if isinstance(self.preset, Preset):
            out["preset"] = f"custom {self.preset.format} preset"
        out["columns"] = dict(self.columns) if self.columns is not None else None
        out["event_map"] = dict(self.event_map) if self.event_map is not None else None
        if isinstance(self.purchases, os.PathLike):
            out["purchases"] = os.fspath(self.purchases)
        return out


@dataclass(frozen=True, eq=False)
class PreparedData:
    """The result of :func:`prepare` (see the module docstring for the two pairs).

    ``report`` is JSON-ready: the options, what each step read and removed, the cutoff
    times and the size of every part (:meth:`summary` is its flat digest).
    """

    train: SessionData
    valid: SessionData | None
    train_full: SessionData
    test: SessionData
    report: dict[str, Any]

    def summary(self) -> dict[str, Any]:
        """Sizes and removals in one flat dict, for the command line and logs."""
        out: dict[str, Any] = {}
        parts = {"train_full": self.train_full, "train": self.train, "test": self.test}
        if self.valid is not None:
            parts["valid"] = self.valid
        for name, data in parts.items():
            out[f"{name}_sessions"] = data.n_sessions
            out[f"{name}_events"] = data.n_events
        out["items"] = self.train_full.n_items
        out["test_cases"] = self.test.n_events - self.test.n_sessions
        steps = self.report.get("steps", {})
        out["bad_rows_dropped"] = (steps.get("read") or {}).get("bad_rows", 0)
        cleaning = steps.get("cleaning", {})
        for key in ("repeats_removed", "rare_item_events_removed", "short_session_events_removed"):
            out[key] = cleaning.get(key, 0)
        out["test_unknown_item_events_removed"] = steps.get("test", {}).get(
            "unknown_item_events_removed", 0
        )
        return out


# ------------------------------------------------------------------------ prepare
def prepare(
    source: str | os.PathLike[str] | pl.DataFrame,
    options: PrepareOptions | None = None,
    **overrides: Any,
) -> PreparedData:
    """Read, sessionize, clean and split a click log (see the module docstring).

    ``source`` is a file (read with :func:`read_events` and the reading options) or a
    canonical click frame (never modified). Options come from ``options`` and/or keyword
    arguments named like :class:`PrepareOptions` fields, e.g.
    ``prepare("yoochoose-clicks.dat", preset="yoochoose", valid_days=1)``.

    Raises :class:`DataError` when a step leaves a part empty (for example ``test_days``
    covering the whole log) and :class:`ConfigError` for bad options.
    """
    opts = checked_options(options, overrides)
    report: dict[str, Any] = {"options": opts.as_dict(), "steps": {}}
    steps = report["steps"]
    if isinstance(source, pl.DataFrame):
        report["source"] = "<frame>"
        frame = _check_frame(source, opts.event_map)
        steps["read"] = None
    else:
        report["source"] = str(source)
        frame, read_report = read_events(
            source,
            opts.preset,
            format=opts.format,
            columns=opts.columns,
            time_unit=opts.time_unit,
            separator=opts.separator,
            has_header=opts.has_header,
            on_bad_rows=opts.on_bad_rows,
            event_map=opts.event_map,
            purchases=opts.purchases,
            return_report=True,
        )
        steps["read"] = read_report.as_dict()
    frame = _types_as_enums(frame)
    if "event_type" in frame.columns:
        steps["event_types"] = _type_counts(frame)
    if "timestamp" not in frame.columns:
        raise ConfigError(no_timestamp_message(source, opts))
    if "session_id" not in frame.columns:
        frame = sessionize(frame, opts.gap).drop("user_id")
        n_sessions = int(frame["session_id"][-1]) + 1 if frame.height else 0  # ids 0..n-1
        steps["sessionize"] = {"gap": opts.gap, "sessions": n_sessions}
    else:
        frame = clicks_in_order(frame.drop("user_id", strict=False), "session_id")
    frame, cleaning = clean(
        frame,
        dedupe=opts.dedupe,
        min_session_length=opts.min_session_length,
        min_item_support=opts.min_item_support,
        max_session_length=opts.max_session_length,
    )
    steps["cleaning"] = cleaning.as_dict()
    if frame.height == 0:
        raise DataError(
            f"no clicks left after cleaning (min_item_support={opts.min_item_support}, "
            f"min_session_length={opts.min_session_length}); lower them"
        )

    test_days = resolved_test_days(opts)
    test_cutoff = split_cutoff(frame, test_days)
    full_frame, test_frame = temporal_split(frame, test_days, opts.split_by)
    del frame
    _nonempty(full_frame, f"training part (test_days={test_days} covers the whole log)")
    train_full = SessionData.from_frame(full_frame)
    del full_frame
    test_frame, test_report = restrict_items(
        test_frame, _items_frame(train_full), opts.min_session_length
    )
    _nonempty(test_frame, f"test part (the last {test_days} day(s))")
    steps["test"] = {"cutoff": test_cutoff, **test_report.as_dict()}
    test = SessionData.from_frame(test_frame, train_full.vocab)

    train, valid = train_full, None
    if opts.valid_days:
        # validation_split on train_full's clicks, done on the arrays (same rule, same
        # floats) so that the 16M-click training frame is not copied once more.
        times = train_full.times
        if times is None:  # pragma: no cover - prepare has checked for timestamps
            raise DataError("validation split needs timestamps")
        valid_cutoff = float(times.max()) - opts.valid_days * DAY
        keys = train_full.start_times() if opts.split_by == "start" else train_full.end_times()
        in_valid = keys >= valid_cutoff
        if in_valid.all():
            raise DataError(
                f"the training part before the {opts.valid_days}-day validation is empty; "
                "check the day options"
            )
        train = train_full.subset(~in_valid).compact_vocab()
        valid_frame, valid_report = restrict_items(
            train_full.subset(in_valid).to_frame(), _items_frame(train), opts.min_session_length
        )
        _nonempty(valid_frame, f"validation part (the last {opts.valid_days} day(s) of train)")
        steps["valid"] = {"cutoff": valid_cutoff, **valid_report.as_dict()}
        valid = SessionData.from_frame(valid_frame, train.vocab)
    result = PreparedData(train, valid, train_full, test, report)
    report["parts"] = part_sizes(result)
    log.info("prepared %s: %s", report["source"], summary_line(result.summary()))
    warn_small_test(result)
    return result


def warn_small_test(result: PreparedData) -> None:
    """Log a warning when the test part is too small for its metrics to mean anything."""
    warning = small_test_warning(result.summary()["test_cases"])
    if warning is not None:
        log.warning("%s", warning)


def no_timestamp_message(
    source: str | os.PathLike[str] | pl.DataFrame, opts: PrepareOptions
) -> str:
    """Why a log without timestamps cannot be prepared, and what to pass instead: the
    preset of a log that looks like a known one, else a column mapping naming the time."""
    start = "prepare splits by time, but no timestamp column was found"
    if isinstance(source, pl.DataFrame):
        return f"{start} in the frame: add a 'timestamp' column (Unix seconds)"
    where = f"{start} in {source}"
    if opts.preset is None:
        guess = guess_preset(Path(source))
        if guess is not None and guess != "sessions-txt":
            return (
                f"{where}; it looks like a {guess} log: pass --preset {guess} "
                f"(preset={guess!r} in Python)"
            )
    if opts.format == "sessions-txt" or opts.preset == "sessions-txt":
        return (
            f"{where}: a sessions-txt file has no times; split it with "
            "sessionrec.data.split.last_fraction_split instead"
        )
    return (
        f"{where}; name it with --columns, e.g. "
        '\'{"session_id": "...", "item_id": "...", "timestamp": "..."}\' '
        "(columns= in Python), or pass the log's --preset"
    )


def _items_frame(data: SessionData) -> pl.DataFrame:
    """The items of ``data``'s vocabulary as a one-column frame, for restrict_items."""
    return pl.DataFrame({"item_id": pl.Series(data.vocab.ids)})


def checked_options(options: PrepareOptions | None, overrides: Mapping[str, Any]) -> PrepareOptions:
    """``options`` (or the defaults) with ``overrides`` applied, every value checked."""
    if options is not None and not isinstance(options, PrepareOptions):
        raise ConfigError(
            f"options must be a PrepareOptions, not {type(options).__name__} "
            "(pass the preset as preset=...)"
        )
    known = {f.name for f in fields(PrepareOptions)}
    unknown = sorted(set(overrides) - known)
    if unknown:
        raise ConfigError(f"unknown option(s) {unknown}; valid options: {sorted(known)}")
    opts = replace(options or PrepareOptions(), **overrides)
    if opts.test_days is None:
        opts = replace(opts, test_days=default_test_days(opts.preset))
    for name in ("test_days", "gap"):
        value = getattr(opts, name)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
            raise ConfigError(f"{name} must be a positive number, not {value!r}")
        if not math.isfinite(value):
            raise ConfigError(f"{name} must be finite")
    if opts.valid_days is not None and (
        isinstance(opts.valid_days, bool)
        or not isinstance(opts.valid_days, (int, float))
        or not opts.valid_days >= 0
        or not math.isfinite(opts.valid_days)
    ):
        raise ConfigError(f"valid_days must be None or a number >= 0, not {opts.valid_days!r}")
    if opts.split_by not in ("start", "end"):
        raise ConfigError(f"split_by must be 'start' or 'end', not {opts.split_by!r}")
    return opts


def resolved_test_days(opts: PrepareOptions) -> float:
    """``opts.test_days``, or the preset's standard test period when it is ``None``."""
    if opts.test_days is not None:
        return float(opts.test_days)
    return default_test_days(opts.preset)


def default_test_days(preset: str | Preset | None) -> float:
    """The test period of ``preset``'s standard protocol, in days; 1 without one."""
    found = PRESETS.get(preset) if isinstance(preset, str) else preset
    if found is not None and found.test_days is not None:
        return float(found.test_days)
    return DEFAULT_TEST_DAYS


def _types_as_enums(frame: pl.DataFrame) -> pl.DataFrame:
    """Event types as Enums: a handful of distinct values, so every later sort and filter
    moves one small code per click instead of a string. ``event_type`` gets the canonical
    Enum, whose codes are the strengths :func:`~sessionrec.data.cleaning.clean` compares."""
    casts = []
    if "event_type" in frame.columns and frame["event_type"].dtype != EVENT_TYPE_DTYPE:
        casts.append(pl.col("event_type").cast(pl.String).cast(EVENT_TYPE_DTYPE))
    if "raw_event_type" in frame.columns and not isinstance(frame["raw_event_type"].dtype, pl.Enum):
        names = frame["raw_event_type"].cast(pl.String).unique().drop_nulls().sort()
        casts.append(pl.col("raw_event_type").cast(pl.String).cast(pl.Enum(names)))
    return frame.with_columns(casts) if casts else frame


def _type_counts(frame: pl.DataFrame) -> dict[str, int]:
    """Clicks per canonical event type as read (before cleaning), for the report."""
    counts = frame["event_type"].value_counts()
    found = dict(zip(counts["event_type"].cast(pl.String), counts["count"], strict=True))
    return {name: int(found.get(name, 0)) for name in CANONICAL_EVENT_TYPES}


def _check_frame(frame: pl.DataFrame, event_map: Mapping[str, str] | None) -> pl.DataFrame:
    """A caller's click frame: only the canonical columns, event types made canonical
    (the raw ones kept in ``raw_event_type``), timestamps as Float64."""
    frame = frame.select([c for c in (*ROLES, "raw_event_type") if c in frame.columns])
    if "event_type" in frame.columns:
        raw = frame["event_type"].cast(pl.String)
        if "raw_event_type" in frame.columns:  # already canonical, or refused
            canonical = canonical_event_types(raw, {}, path="<frame>", field="event_type")
            frame = frame.with_columns(canonical)
        else:
            lookup = event_map_of(default_event_map(), event_map)
            canonical = canonical_event_types(raw, lookup, path="<frame>", field="event_type")
            frame = frame.with_columns(canonical, raw.alias("raw_event_type"))
    if "item_id" not in frame.columns or not (
        "session_id" in frame.columns or "user_id" in frame.columns
    ):
        raise DataError(
            "a click frame needs 'item_id' and 'session_id' (or 'user_id'); "
            f"this one has {frame.columns}"
        )
    if "timestamp" in frame.columns:
        dtype = frame["timestamp"].dtype
        if not dtype.is_numeric():
            raise DataError(f"timestamp must be Unix seconds (a number), not {dtype}")
        if dtype != pl.Float64:
            frame = frame.with_columns(pl.col("timestamp").cast(pl.Float64))
    return frame


def _nonempty(frame: pl.DataFrame, what: str) -> None:
    if frame.height == 0:
        raise DataError(f"the {what} is empty after preparation; check the day options")


def part_sizes(result: PreparedData) -> dict[str, dict[str, int]]:
    """Sessions, events and items of every part, as the report records them."""
    parts = {"train_full": result.train_full, "test": result.test, "train": result.train}
    if result.valid is not None:
        parts["valid"] = result.valid
    return {
        name: {"sessions": d.n_sessions, "events": d.n_events, "items": d.n_items}
        for name, d in parts.items()
    }


def summary_line(summary: Mapping[str, Any]) -> str:
    """A summary as one ``key=value, ...`` line for the log."""
    return ", ".join(f"{key}={value}" for key, value in summary.items())


# ------------------------------------------------------------------- folder I/O
def write_prepared(result: PreparedData, folder: str | os.PathLike[str]) -> Path:
    """Write ``result`` as a dataset folder (layout in the module docstring), atomically.

    An existing dataset folder at ``folder`` is replaced; any other existing, non-empty
    folder is left alone and raises :class:`ConfigError`. Returns the folder's path.
    """
    target = Path(folder)
    check_dataset_target(target)
    for name, data in (("train_full", result.train_full), ("test", result.test)):
        _check_writable(name, data)
    with atomic_folder(target) as tmp:
        files: list[str] = []

        def write_txt(name: str, data: SessionData) -> None:
            write_sessions_txt(data, tmp / name)
            files.append(name)

        def write_parquet(name: str, frame: pl.DataFrame) -> None:
            frame.write_parquet(tmp / name)
            files.append(name)

        write_txt("train_sessions.txt", result.train_full)
        write_txt("test_sessions.txt", result.test)
        full_frame = result.train_full.to_frame()
        if result.valid is not None:
            write_txt("train_tr_sessions.txt", result.train)
            write_txt("valid_sessions.txt", result.valid)
            write_parquet("valid.parquet", result.valid.to_frame())
            in_train = _session_mask(result.train_full, result.train)
            flag = ~np.repeat(in_train, result.train_full.lengths)
        else:
            flag = np.zeros(result.train_full.n_events, dtype=bool)
        write_parquet("train.parquet", full_frame.with_columns(valid_period=pl.Series(flag)))
        write_parquet("test.parquet", result.test.to_frame())
        manifest = {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "sessionrec_version": __version__,
            "files": sorted(files),
            "vocab": {"kind": result.train_full.vocab.kind, "size": result.train_full.n_items},
            **result.report,
        }
        (tmp / REPORT).write_text(json.dumps(manifest, indent=2, default=_json_default) + "\n")
    log.info("wrote dataset folder %s (%s)", target, ", ".join(sorted(files)))
    return target


def check_dataset_target(folder: str | os.PathLike[str]) -> None:
    """Raise :class:`ConfigError` unless :func:`write_prepared` may write ``folder``: it is
    absent, an empty folder or a dataset folder (which is replaced)."""
    target = Path(folder)
    replaceable = not target.exists() or _is_dataset(target)
    if not replaceable and (not target.is_dir() or any(target.iterdir())):
        raise ConfigError(f"{target} exists and is not a dataset folder; refusing to replace it")


def read_prepared(folder: str | os.PathLike[str]) -> PreparedData:
    """Read a folder written by :func:`write_prepared` back into identical data."""
    path = Path(folder)
    manifest = _read_manifest(path)
    files = set(manifest.get("files", []))
    try:
        full_frame = pl.read_parquet(path / "train.parquet")
        test_frame = pl.read_parquet(path / "test.parquet")
        valid_frame = pl.read_parquet(path / "valid.parquet") if "valid.parquet" in files else None
    except (OSError, pl.exceptions.PolarsError) as exc:
        raise DataError(f"{path}: cannot read the dataset's Parquet files: {exc}") from None
    if "valid_period" not in full_frame.columns:
        raise DataError(f"{path / 'train.parquet'}: no 'valid_period' column")
    valid_ids = full_frame.filter("valid_period")["session_id"].unique()
    full_frame = full_frame.drop("valid_period")
    train_full = SessionData.from_frame(full_frame)
    test = SessionData.from_frame(test_frame, train_full.vocab)
    if valid_frame is None:
        train, valid = train_full, None
    else:
        ids = pl.Series(train_full.session_ids)
        in_valid = ids.is_in(valid_ids.implode()).to_numpy()
        train = train_full.subset(~in_valid).compact_vocab()
        valid = SessionData.from_frame(valid_frame, train.vocab)
    report = {k: v for k, v in manifest.items() if k in ("source", "options", "steps", "parts")}
    return PreparedData(train, valid, train_full, test, report)


def read_prepared_training(folder: str | os.PathLike[str]) -> SessionData:
    """The training sessions (validation period included: ``train_full`` of
    :func:`read_prepared`) of a prepared folder, with their event types; the test file is
    never opened (what tuning reads)."""
    path = Path(folder)
    _read_manifest(path)
    try:
        frame = pl.read_parquet(path / "train.parquet")
    except (OSError, pl.exceptions.PolarsError) as exc:
        raise DataError(f"{path}: cannot read the dataset's Parquet files: {exc}") from None
    return SessionData.from_frame(frame.drop("valid_period", strict=False))


def _read_manifest(path: Path) -> dict[str, Any]:
    file = path / REPORT
    if not file.is_file():
        raise DataError(f"{path}: not a prepared dataset folder (no {REPORT})")
    try:
        manifest = json.loads(file.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise DataError(f"{file}: cannot read: {exc}") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise DataError(f"{file}: not a sessionrec dataset report (format != {FORMAT!r})")
    version = manifest.get("format_version")
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise DataError(
            f"{file}: dataset format version {version!r} is newer than this sessionrec "
            f"reads ({FORMAT_VERSION}); upgrade sessionrec"
        )
    return manifest


def _is_dataset(path: Path) -> bool:
    try:
        return _read_manifest(path) is not None
    except DataError:
        return False


def _check_writable(name: str, data: SessionData) -> None:
    if (data.lengths == 0).any():
        raise DataError(f"{name} has empty sessions; sessions-txt cannot represent them")
    if data.vocab.kind == "str":
        ids = pl.Series(data.vocab.ids)
        bad = ids.filter(ids.str.contains(r"\s") | (ids.str.len_bytes() == 0))
        if bad.len():
            raise DataError(
                f"item id {bad[0]!r} is empty or contains whitespace; "
                "sessions-txt cannot represent it"
            )


def _session_mask(full: SessionData, part: SessionData) -> np.ndarray:
    """Which sessions of ``full`` are in ``part`` (matched by session id)."""
    if full.session_ids is None or part.session_ids is None:  # pragma: no cover - defensive
        raise DataError("sessions without ids cannot be matched")
    return pl.Series(full.session_ids).is_in(pl.Series(part.session_ids).implode()).to_numpy()


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")

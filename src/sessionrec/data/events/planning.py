"""Column planning: a preset merged with the caller's overrides, and the file's columns found."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import cast, get_args

from sessionrec._errors import ConfigError, data_error
from sessionrec.data.events.event_types import event_map_of
from sessionrec.data.events.presets import PRESETS, ROLES, Format, Preset, TimeUnit

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


@dataclass(frozen=True)
class ReadPlan:
    """A preset merged with the caller's overrides: everything needed to read one file."""

    path: Path
    format: Format
    separator: str  # "" = sniff from the first line
    has_header: bool
    names: tuple[str, ...] | None
    mapping: dict[str, str]  # canonical role -> source column, as requested
    integer_ids: bool
    time_unit: TimeUnit | None
    event_type: str | None  # constant raw event type of a log that has none
    event_map: dict[str, str]  # normalised raw event type -> canonical name
    offset: str | None  # column of milliseconds added to the timestamp
    explode: str | None  # list-of-events column (one session per record)


def plan_read(
    path: str | os.PathLike[str],
    preset: str | Preset | None,
    format: str | None,
    columns: Mapping[str, str] | None,
    time_unit: str | None,
    separator: str | None,
    has_header: bool | None,
    event_map: Mapping[str, str] | None = None,
) -> ReadPlan:
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
    return ReadPlan(
        path=file,
        format="csv" if fmt == "tsv" else fmt,
        # an explicit format other than the preset's brings its own separator (tsv: tab)
        separator=separator
        or (spec.separator if spec and format in (None, spec.format) else None)
        or default_sep,
        has_header=spec.has_header if has_header is None and spec else has_header is not False,
        names=spec.names if spec and has_header is not True else None,
        mapping=mapping,
        integer_ids=spec.integer_ids if spec else False,
        time_unit=cast("TimeUnit | None", time_unit) or (spec.time_unit if spec else None),
        event_type=spec.event_type if spec and "event_type" not in mapping else None,
        event_map=event_map_of(
            spec.event_map if spec and spec.event_map else default_event_map(), event_map
        ),
        offset=spec.timestamp_offset_ms if spec and not (columns or {}).get("timestamp") else None,
        explode=spec.explode if spec else None,
    )


def default_event_map() -> dict[str, str]:
    """The map of a log read without a preset (or with one that has no map): every
    preset's map merged, so that the public logs' words (``clicks``, ``pv``,
    ``addtocart``, ``buy``, ``orders``, ``transaction``, ...) are understood anywhere."""
    return event_map_of(*(preset.event_map for preset in PRESETS.values()))


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


def normalised_name(name: str) -> str:
    """A column name as matching compares it: lower case, without ``_``, ``-`` or spaces."""
    return re.sub(r"[\s_\-]", "", name).lower()


def _match(name: str, available: Sequence[str]) -> str | None:
    if name in available:
        return name
    hits = [a for a in available if normalised_name(a) == normalised_name(name)]
    return hits[0] if len(hits) == 1 else None


def resolve_columns(
    plan: ReadPlan, available: Sequence[str], *, line: int | None
) -> dict[str, str]:
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

"""Source columns -> the canonical click frame: ids, timestamps and event types, checked."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import cast

import polars as pl

from sessionrec._errors import data_error
from sessionrec.data.events.bad_rows import (
    MAX_EXAMPLES,
    BadRowsFound,
    LineLocator,
    RowCheck,
    describe_bad_row,
)
from sessionrec.data.events.planning import ReadPlan
from sessionrec.data.events.presets import ID_ROLES, OnBadRows, TimeUnit

log = logging.getLogger("sessionrec.data")


_ID_LABEL = {"session_id": "session id", "user_id": "user id", "item_id": "item id"}
SECONDS_PER_UNIT = {"s": 1.0, "ms": 1e-3, "us": 1e-6, "ns": 1e-9}
TYPE_SAMPLE_ROWS = 10_000  # rows sampled to guess column types of a log without a preset
# Canonical decimal integers that fit in Int64; anything else (leading zeros, "+1",
# "1.0") stays text so that two different external ids never become one integer.
INT_PATTERN = r"^-?(?:0|[1-9][0-9]{0,17})$"

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


def canonicalise(
    raw: pl.DataFrame,
    plan: ReadPlan,
    resolved: Mapping[str, str],
    locator: LineLocator,
    on_bad_rows: OnBadRows,
) -> tuple[pl.DataFrame, BadRowsFound | None]:
    """Source columns -> canonical columns, flagging every bad row (vectorised).

    ``raw`` holds ``_row`` (the record number), the source columns and, for CSV,
    ``_extra`` (the row has more fields than the header).
    """
    checks: list[tuple[pl.Series, RowCheck]] = []
    if "_extra" in raw.columns:
        checks.append((raw["_extra"], RowCheck(None, "row has too many fields")))
    out: dict[str, pl.Series] = {}
    for role in ID_ROLES:
        if role in resolved:
            out[role] = _id_column(raw[resolved[role]], role, resolved[role], plan, checks)
    if "timestamp" in resolved:
        out["timestamp"] = _timestamp_column(raw, resolved, plan, checks)
    if "event_type" in resolved:
        source = resolved["event_type"]
        text = _as_text(raw[source], source, "event type", plan)
        checks.append((text.is_null(), RowCheck(source, "missing event type")))
        blank = text.str.contains(r"^\s*$")
        checks.append((blank, RowCheck(source, "empty event type")))
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
    positions = bad.arg_true().head(1 if on_bad_rows == "raise" else MAX_EXAMPLES).to_list()
    records = [int(raw["_row"][pos]) for pos in positions]
    located = locator.lines(records)
    examples = []
    for pos, record in zip(positions, records, strict=True):
        check = failing[int(codes[pos])][1]
        value = raw[check.value][pos] if check.value else None
        examples.append(
            describe_bad_row(plan, located.get(record), record, check, value, locator.n_fields)
        )
    if on_bad_rows == "raise":
        first = examples[0]
        raise data_error(first.message, path=plan.path, line=first.line, field=first.field)
    return frame, BadRowsFound(bad, int(bad.sum()), examples)


def _as_text(series: pl.Series, source: str, label: str, plan: ReadPlan) -> pl.Series:
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
    plan: ReadPlan,
    checks: list[tuple[pl.Series, RowCheck]],
) -> pl.Series:
    """Ids as Int64 when every id is a plain integer, else as text; flags bad ones."""
    label = _ID_LABEL[role]
    checks.append((series.is_null(), RowCheck(source, f"missing {label}")))
    dtype = series.dtype
    if dtype.is_integer():
        return series.cast(pl.Int64)
    if dtype.is_float():
        integral = series.is_finite() & (series == series.floor())
        message = f"{label} {{value}} is not an integer"
        checks.append((~integral & series.is_not_null(), RowCheck(source, message, source)))
        return series.cast(pl.Int64, strict=False)
    text = _as_text(series, source, label, plan)
    empty = text.str.contains(r"^\s*$")
    checks.append((empty, RowCheck(source, f"empty {label}")))
    not_int = ~text.str.contains(INT_PATTERN).fill_null(True) & ~empty.fill_null(False)
    if plan.integer_ids:
        message = f"{label} {{value!r}} is not an integer"
        checks.append((not_int, RowCheck(source, message, source)))
        return text.cast(pl.Int64, strict=False)
    if not not_int.any():
        return text.cast(pl.Int64, strict=False)
    return text


def _timestamp_column(
    raw: pl.DataFrame,
    resolved: Mapping[str, str],
    plan: ReadPlan,
    checks: list[tuple[pl.Series, RowCheck]],
) -> pl.Series:
    source = resolved["timestamp"]
    series = raw[source]
    checks.append((series.is_null(), RowCheck(source, "missing timestamp")))
    seconds = _to_seconds(series, source, plan, checks)
    if "_offset" not in resolved:
        return seconds
    source = resolved["_offset"]
    offset = raw[source]
    checks.append((offset.is_null(), RowCheck(source, "missing value")))
    if offset.dtype == pl.String:
        parsed = offset.str.strip_chars().cast(pl.Float64, strict=False)
        message = "{value!r} is not a number of milliseconds"
        checks.append((parsed.is_null() & offset.is_not_null(), RowCheck(source, message, source)))
        offset = parsed
    elif not offset.dtype.is_numeric():
        raise data_error(
            f"has type {offset.dtype}; expected milliseconds", path=plan.path, field=source
        )
    return seconds + offset.cast(pl.Float64) / 1000.0


def _to_seconds(
    series: pl.Series, source: str, plan: ReadPlan, checks: list[tuple[pl.Series, RowCheck]]
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
        checks.append((numbers.is_null() & text.is_not_null(), RowCheck(source, message, source)))
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
    checks.append((numbers.is_not_null() & ~numbers.is_finite(), RowCheck(source, message, source)))
    scale = SECONDS_PER_UNIT[unit if unit in SECONDS_PER_UNIT else _guess_unit(numbers, plan)]
    return numbers if scale == 1.0 else numbers * scale


def unit_of_magnitude(magnitude: float) -> TimeUnit:
    """The unit of numeric timestamps whose median absolute value is ``magnitude``.

    Below 1e11 seconds, below 1e14 milliseconds, below 1e17 microseconds, else
    nanoseconds: right for any date from 1973 to 5138.
    """
    return (
        "s"
        if magnitude < 1e11
        else "ms"
        if magnitude < 1e14
        else "us"
        if magnitude < 1e17
        else "ns"
    )


def _guess_unit(numbers: pl.Series, plan: ReadPlan) -> str:
    finite = numbers.filter(numbers.is_finite()).abs()
    magnitude = float(cast(float, finite.median())) if finite.len() else 0.0
    unit = unit_of_magnitude(magnitude)
    log.info(
        "%s: numeric timestamps (median %.3g) read as %s; pass time_unit= to override",
        plan.path,
        magnitude,
        {"s": "seconds", "ms": "milliseconds", "us": "microseconds", "ns": "nanoseconds"}[unit],
    )
    return unit


def _parse_iso(text: pl.Series, source: str, checks: list[tuple[pl.Series, RowCheck]]) -> pl.Series:
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
    checks.append((failed, RowCheck(source, message, source)))
    return parsed.dt.epoch("us").cast(pl.Float64) / 1e6

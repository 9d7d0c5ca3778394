"""Reading a CSV/TSV or Parquet log on Spark, with the Polars reader's checks and messages."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sessionrec._errors import ConfigError, DataError, data_error
from sessionrec.data.events.canonical import INT_PATTERN, SECONDS_PER_UNIT, unit_of_magnitude
from sessionrec.data.events.event_types import event_map_of, event_type_lookup
from sessionrec.data.events.planning import ReadPlan, default_event_map, resolve_columns
from sessionrec.data.spark.engine import number_rows

if TYPE_CHECKING:  # pragma: no cover - typing only
    from pyspark.sql import Column, DataFrame, SparkSession


log = logging.getLogger("sessionrec.data")


def _sniff_separator(path: Path) -> str:
    with path.open(encoding="utf-8-sig", errors="replace") as handle:
        first = handle.readline()
    return max("\t,;|", key=first.count)


def read_log(
    spark: SparkSession, plan: ReadPlan, on_bad_rows: str
) -> tuple[DataFrame, dict[str, Any]]:
    """A file -> canonical Spark frame with ``_row`` (the 0-based record number)."""
    from pyspark.sql import functions as F

    if plan.format not in ("csv", "parquet") or plan.explode:
        raise ConfigError(
            f"the Spark engine reads CSV/TSV and Parquet logs, not {plan.format}"
            f"{' with nested events' if plan.explode else ''}; use the polars engine"
        )
    if not plan.path.is_file():
        raise data_error("no such file", path=plan.path)
    if plan.path.stat().st_size == 0:
        raise data_error("file is empty", path=plan.path)
    if plan.format == "parquet":
        raw = spark.read.parquet(str(plan.path))
    else:
        raw = (
            spark.read.option("sep", plan.separator or _sniff_separator(plan.path))
            .option("header", str(plan.has_header).lower())
            .option("mode", "PERMISSIVE")
            .csv(str(plan.path))  # every column as text, as the checks below expect
        )
        if not plan.has_header:
            names = plan.names or tuple(f"column_{i + 1}" for i in range(len(raw.columns)))
            raw = raw.toDF(
                *[names[i] if i < len(names) else f"_c{i}" for i in range(len(raw.columns))]
            )
    resolved = resolve_columns(plan, raw.columns, line=1 if plan.has_header else None)
    raw = raw.select(*dict.fromkeys(resolved.values()))
    raw, _ = number_rows(raw, "_row")
    types = dict(raw.dtypes)
    columns: dict[str, Column] = {}
    checks: list[tuple[Column, str | None, str, str | None]] = []  # bad, field, message, value

    for role, label in (
        ("session_id", "session id"),
        ("user_id", "user id"),
        ("item_id", "item id"),
    ):
        if role not in resolved:
            continue
        source = resolved[role]
        col = F.col(f"`{source}`")
        checks.append((col.isNull(), source, f"missing {label}", None))
        kind = types[source]
        if kind in ("tinyint", "smallint", "int", "bigint"):
            columns[role] = col.cast("long")
            continue
        if kind in ("float", "double"):
            integral = ~F.isnan(col) & (col == F.floor(col)) & (F.abs(col) < float("inf"))
            checks.append(
                (
                    col.isNotNull() & ~integral,
                    source,
                    f"{label} {{value}} is not an integer",
                    source,
                )
            )
            columns[role] = col.cast("long")
            continue
        text = col.cast("string")
        empty = text.rlike(r"^\s*$")
        not_int = ~text.rlike(INT_PATTERN) & ~empty
        checks.append((empty, source, f"empty {label}", None))
        if plan.integer_ids:
            checks.append((not_int, source, f"{label} {{value!r}} is not an integer", source))
            columns[role] = text.cast("long")
        elif raw.filter(not_int).limit(1).count() == 0:
            columns[role] = text.cast("long")
        else:
            columns[role] = text
    if "timestamp" in resolved:
        columns["timestamp"] = _timestamp(raw, resolved, plan, checks, types)
    if "event_type" in resolved:
        source = resolved["event_type"]
        text = F.col(f"`{source}`").cast("string")
        checks.append((text.isNull(), source, "missing event type", None))
        checks.append((text.rlike(r"^\s*$"), source, "empty event type", None))
        columns["event_type"] = text
    elif plan.event_type is not None:
        columns["event_type"] = F.lit(plan.event_type)

    flagged = raw.select(
        "_row",
        *[c.alias(n) for n, c in columns.items()],
        *[F.coalesce(cond, F.lit(False)).alias(f"_bad{i}") for i, (cond, *_) in enumerate(checks)],
        *[
            F.col(f"`{v}`").cast("string").alias(f"_val{i}")
            for i, (*_, v) in enumerate(checks)
            if v
        ],
    )
    bad = F.lit(False)
    for i in range(len(checks)):
        bad = bad | F.col(f"_bad{i}")
    flagged = flagged.withColumn("_bad", bad).localCheckpoint(eager=False)
    totals = flagged.agg(F.count("*"), F.sum(F.col("_bad").cast("long"))).first()
    n_rows = int(totals[0]) if totals else 0
    n_bad = int(totals[1] or 0) if totals else 0
    examples: list[str] = []
    if n_bad:
        first = (
            flagged.filter("_bad")
            .orderBy("_row")
            .limit(5 if on_bad_rows == "skip" else 1)
            .collect()
        )
        for row in first:
            i = next(i for i in range(len(checks)) if row[f"_bad{i}"])
            _, field, message, value = checks[i]
            if value:
                message = message.format(value=row[f"_val{i}"])
            line = int(row["_row"]) + 1 + int(plan.has_header)
            examples.append(str(data_error(message, path=plan.path, line=line, field=field)))
            if on_bad_rows == "raise":
                raise data_error(message, path=plan.path, line=line, field=field)
        log.warning(
            "%s: dropped %d bad row(s) (on_bad_rows='skip'); first: %s",
            plan.path,
            n_bad,
            " | ".join(examples),
        )
    frame = flagged.filter(~F.col("_bad")).select("_row", *columns)
    events = n_rows - n_bad
    if events == 0:
        if n_bad:
            raise data_error(
                f"every row is bad ({n_bad} dropped); first: {examples[0]}", path=plan.path
            )
        raise data_error("file contains no events", path=plan.path)
    if "event_type" in columns:
        frame = canonical_types(
            frame, plan.event_map, path=plan.path, field=plan.mapping.get("event_type")
        )
    log.info("read %d events from %s (spark)", events, plan.path)
    report = {"path": str(plan.path), "events": events, "bad_rows": n_bad, "examples": examples}
    return frame, report


def canonical_types(
    frame: DataFrame, event_map: dict[str, str], *, path: object, field: str | None
) -> DataFrame:
    """``event_type`` mapped to the canonical names, the raw one kept in ``raw_event_type``
    (the Polars reader's rule and error: only the distinct values are looked up)."""
    from pyspark.sql import functions as F

    counts = frame.groupBy("event_type").count().orderBy(F.desc("count")).collect()
    pairs = [(row[0], int(row[1])) for row in counts]
    mapping = event_type_lookup(pairs, event_map, path=path, field=field)
    if not mapping:
        return frame.withColumn("raw_event_type", F.col("event_type"))
    lookup = F.create_map(*[F.lit(x) for pair in mapping.items() for x in pair])
    return frame.withColumn("raw_event_type", F.col("event_type")).withColumn(
        "event_type", lookup[F.col("event_type")]
    )


def _timestamp(
    raw: DataFrame,
    resolved: dict[str, str],
    plan: ReadPlan,
    checks: list[tuple[Column, str | None, str, str | None]],
    types: dict[str, str],
) -> Column:
    """Float64 Unix seconds, computed with the Polars reader's operations (same floats)."""
    from pyspark.sql import functions as F

    source = resolved["timestamp"]
    col = F.col(f"`{source}`")
    kind = types[source]
    checks.append((col.isNull(), source, "missing timestamp", None))
    unit = plan.time_unit
    if kind.startswith("timestamp"):
        seconds = F.unix_micros(col).cast("double") / 1e6
    elif kind == "date":
        seconds = F.unix_micros(col.cast("timestamp")).cast("double") / 1e6
    else:
        if kind == "string":
            if unit is None:
                first = raw.filter(col.isNotNull()).orderBy("_row").select(col).first()
                looks_numeric = first is not None and _is_number(str(first[0]).strip())
                unit = None if looks_numeric else "iso"
            if unit == "iso":
                parsed = F.expr(f"try_cast(`{source}` as timestamp)")
                message = (
                    "cannot parse timestamp {value!r} (expected ISO-8601 like 2014-04-07T10:51:09Z)"
                )
                checks.append((parsed.isNull() & col.isNotNull(), source, message, source))
                seconds = F.unix_micros(parsed).cast("double") / 1e6
                return _add_offset(seconds, resolved, checks)
            numbers = F.expr(f"try_cast(trim(`{source}`) as double)")
            message = "cannot parse timestamp {value!r} as a number"
            checks.append((numbers.isNull() & col.isNotNull(), source, message, source))
        elif unit == "iso":
            raise data_error(
                "holds numbers, but time_unit='iso' expects ISO-8601 text",
                path=plan.path,
                field=source,
            )
        else:
            numbers = col.cast("double")
        finite = ~F.isnan(numbers) & (F.abs(numbers) < float("inf"))
        checks.append(
            (
                numbers.isNotNull() & ~finite,
                source,
                "timestamp {value} is not a finite number",
                source,
            )
        )
        if unit not in SECONDS_PER_UNIT:
            magnitude = raw.select(F.median(F.when(finite, F.abs(numbers)))).first()
            value = float(magnitude[0]) if magnitude and magnitude[0] is not None else 0.0
            unit = unit_of_magnitude(value)
            log.info("%s: numeric timestamps (median %.3g) read as %s", plan.path, value, unit)
        scale = SECONDS_PER_UNIT[str(unit)]
        seconds = numbers if scale == 1.0 else numbers * F.lit(scale)
    return _add_offset(seconds, resolved, checks)


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _add_offset(
    seconds: Column,
    resolved: dict[str, str],
    checks: list[tuple[Column, str | None, str, str | None]],
) -> Column:
    """Diginetica's ``timeframe``: milliseconds added to the (day) timestamp."""
    from pyspark.sql import functions as F

    if "_offset" not in resolved:
        return seconds
    source = resolved["_offset"]
    col = F.col(f"`{source}`")
    checks.append((col.isNull(), source, "missing value", None))
    parsed = F.expr(f"try_cast(trim(cast(`{source}` as string)) as double)")
    message = "{value!r} is not a number of milliseconds"
    checks.append((parsed.isNull() & col.isNotNull(), source, message, source))
    return seconds + parsed / 1000.0


def from_frame(df: DataFrame, event_map: dict[str, str] | None = None) -> DataFrame:
    """A canonical Spark click frame -> the same with ``_row`` (its current order), event
    types mapped as :func:`~sessionrec.data.prepare.prepare` maps a frame's."""
    from pyspark.sql import functions as F

    if "item_id" not in df.columns or not ({"session_id", "user_id"} & set(df.columns)):
        raise DataError(
            "a click frame needs 'item_id' and 'session_id' (or 'user_id'); "
            f"this one has {df.columns}"
        )
    keep = [
        c
        for c in ("session_id", "user_id", "item_id", "timestamp", "event_type", "raw_event_type")
        if c in df.columns
    ]
    out, _ = number_rows(df.select(*keep), "_row")
    if "timestamp" in out.columns:
        out = out.withColumn("timestamp", F.col("timestamp").cast("double"))
    if "event_type" in out.columns:
        out = out.withColumn("event_type", F.col("event_type").cast("string"))
        if "raw_event_type" in out.columns:  # already canonical, or refused
            counts = out.groupBy("event_type").count().collect()
            pairs = [(row[0], int(row[1])) for row in counts]
            event_type_lookup(pairs, {}, path="<frame>", field="event_type")
        else:
            lookup = event_map_of(default_event_map(), event_map)
            out = canonical_types(out, lookup, path="<frame>", field="event_type")
    return out

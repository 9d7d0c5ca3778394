"""The data path on Apache Spark: :func:`prepare_spark` and :func:`build_vmis_index_spark`.

The same preprocessing as :func:`sessionrec.data.prepare.prepare` (read, cut sessions,
drop repeats, filter rare items and short sessions to the fixpoint, split by days,
restrict test and validation items) and the same VMIS-kNN index as
:func:`sessionrec.models.knn.build_index`, written as Spark DataFrame operations so that
a log too large for one machine runs on a cluster. The results are *identical* to the
Polars path (every array, the vocabulary order, the session ids, the report's counts), so
a dataset prepared either way trains and scores the same models.

How each step maps to Spark:

* **order**: the Polars path orders clicks by (session, time, file row); here every
  click carries ``_row``, its 0-based record number in the file, and window functions
  order by ``(timestamp, _row)`` within a session.
* **session cut**: a window over each user by time; a click more than ``gap`` seconds
  after the user's previous one starts a session. Session ids are ``0..n-1`` in order of
  (user, start), numbered by a global sort (as the Polars path numbers them).
* **filters**: an anti-join per pass (rare items, then short sessions), repeated until a
  pass removes nothing, each pass checkpointed so that the plan does not grow.
* **parts**: sessions ordered by (start time, session id), clicks by (time, row); the
  vocabulary is the items in order of first appearance in that order. Global positions
  come from a distributed sort plus per-partition offsets (never a single-partition
  window), and only the finished arrays (item codes, times, type codes, session lengths
  and ids, the vocabulary) are collected to the driver, as Arrow.

Differences from the Polars reader: CSV/TSV (plain text) and Parquet files, or a Spark
DataFrame with canonical columns, are read; JSONL (OTTO) and sessions-txt are not (use
the Polars path, which streams them). Bad ids, timestamps and event types are found and
raised or skipped as in :func:`~sessionrec.data.events.read_events`; the error names the
file, the record's line (exact for files without quoted line breaks) and the field.
Rows with too many fields are not detected (Spark's CSV reader drops the extra fields).

Local mode is the default (``local[2]``, 4 GiB driver memory: in local mode the driver
is also the only executor, so that memory holds Spark's working set, and the collected
arrays need as much again in the Python process). Pass ``master="spark://host:7077"`` (or
``yarn``, ``k8s://...``) and a matching ``driver_memory``, or your own ``SparkSession``,
to run on a cluster; the code is the same. ``SPARK_LOCAL_DIRS`` sets where Spark spills.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from sessionrec._errors import ConfigError, DataError, data_error
from sessionrec.data.cleaning import CleaningReport
from sessionrec.data.events import _INT_PATTERN, _SCALE, _Plan, _plan, _resolve
from sessionrec.data.prepare import (
    PreparedData,
    PrepareOptions,
    _digest,
    _options,
    _parts,
)
from sessionrec.data.sessions import ItemVocab, SessionData
from sessionrec.data.split import DAY, RestrictReport

if TYPE_CHECKING:  # pragma: no cover - typing only
    from pyspark.sql import Column, DataFrame, SparkSession

    from sessionrec.models.knn import VMISKNN
    from sessionrec.models.knn_kernels import KnnIndex

__all__ = [
    "DEFAULT_MASTER",
    "build_vmis_index_spark",
    "fit_vmisknn_spark",
    "prepare_spark",
    "spark_session",
]

log = logging.getLogger("sessionrec.data")

DEFAULT_MASTER = "local[2]"
DEFAULT_DRIVER_MEMORY = "4g"
_PARTITION_BITS = 33  # monotonically_increasing_id(): partition id << 33 | row in partition


def _pyspark() -> Any:
    try:
        import pyspark
    except ImportError:  # pragma: no cover - depends on the installed extras
        raise ConfigError(
            "the Spark engine needs PySpark and Java 17+: pip install 'sessionrec[spark]'"
        ) from None
    return pyspark


def spark_session(
    master: str | None = None,
    *,
    driver_memory: str | None = None,
    shuffle_partitions: int | None = None,
    app_name: str = "sessionrec",
) -> SparkSession:
    """The active SparkSession, or a new one on ``master`` (default ``local[2]``).

    ``driver_memory`` (default ``4g``) only takes effect when this call starts the JVM.
    The session works in UTC (ISO timestamps without an offset are UTC, as in the Polars
    reader) with non-ANSI casts (an unparseable value becomes null and is reported as a
    bad row instead of failing the job).
    """
    _pyspark()
    from pyspark.sql import SparkSession

    active = SparkSession.getActiveSession()
    if active is not None and master is None:
        spark = active
    else:
        master = master or DEFAULT_MASTER
        local = master.startswith("local")
        partitions = shuffle_partitions or (8 if local else 200)
        spark = (
            SparkSession.builder.master(master)
            .appName(app_name)
            .config("spark.driver.memory", driver_memory or DEFAULT_DRIVER_MEMORY)
            # The finished arrays are collected as Arrow: no 1 GiB cap on the result.
            .config("spark.driver.maxResultSize", "0")
            .config("spark.sql.shuffle.partitions", str(partitions))
            .config("spark.ui.enabled", "false")
            .config("spark.ui.showConsoleProgress", "false")
            .getOrCreate()
        )
        spark.sparkContext.setLogLevel("WARN")
    spark.conf.set("spark.sql.session.timeZone", "UTC")
    spark.conf.set("spark.sql.ansi.enabled", "false")
    return spark


# ---------------------------------------------------------------- global numbering
def _number_rows(df: DataFrame, name: str) -> tuple[DataFrame, int]:
    """``df`` with ``name``: 0..n-1 in its current partition order, and ``n``.

    Scalable: each partition's rows are counted, the offsets computed on the driver (one
    number per partition) and added to the row's place in its partition. The frame is
    checkpointed first, so the numbering cannot change if Spark recomputes it.
    """
    from pyspark.sql import functions as F

    tagged = (
        df.withColumn("_pid", F.spark_partition_id())
        .withColumn("_mid", F.monotonically_increasing_id())
        .localCheckpoint(eager=False)
    )
    counts = {
        int(r["_pid"]): int(r["n"])
        for r in tagged.groupBy("_pid").agg(F.count("*").alias("n")).collect()
    }
    offsets: list[Any] = []
    total = 0
    for pid in sorted(counts):
        offsets += [F.lit(pid), F.lit(total)]
        total += counts[pid]
    if not offsets:
        return tagged.drop("_pid", "_mid").withColumn(name, F.lit(0).cast("long")), 0
    start = F.element_at(F.create_map(*offsets), F.col("_pid"))
    local = F.col("_mid") - F.shiftleft(F.col("_pid").cast("long"), _PARTITION_BITS)
    out = tagged.withColumn(name, (start + local).cast("long")).drop("_pid", "_mid")
    return out, total


def _sizes(df: DataFrame) -> tuple[int, int, int]:
    """Clicks, distinct sessions and distinct items of ``df``, in one job."""
    from pyspark.sql import functions as F

    row = df.agg(F.count("*"), F.countDistinct("session_id"), F.countDistinct("item_id")).first()
    return (0, 0, 0) if row is None else (int(row[0]), int(row[1]), int(row[2]))


def _materialize(df: DataFrame) -> tuple[DataFrame, int]:
    """``df`` checkpointed (its lineage cut) and its row count, in one job."""
    out = df.localCheckpoint(eager=False)
    return out, out.count()


def _index_by(df: DataFrame, order: Sequence[str], name: str) -> tuple[DataFrame, int]:
    """``df`` with ``name`` = each row's 0-based position in the order of ``order``."""
    out, n = _number_rows(df.orderBy(*order), name)
    return out, n


# ------------------------------------------------------------------------ reading
def _sniff_separator(path: Path) -> str:
    with path.open(encoding="utf-8-sig", errors="replace") as handle:
        first = handle.readline()
    return max("\t,;|", key=first.count)


def _read(spark: SparkSession, plan: _Plan, on_bad_rows: str) -> tuple[DataFrame, dict[str, Any]]:
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
    resolved = _resolve(plan, raw.columns, line=1 if plan.has_header else None)
    raw = raw.select(*dict.fromkeys(resolved.values()))
    raw, _ = _number_rows(raw, "_row")
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
        not_int = ~text.rlike(_INT_PATTERN) & ~empty
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
    log.info("read %d events from %s (spark)", events, plan.path)
    report = {"path": str(plan.path), "events": events, "bad_rows": n_bad, "examples": examples}
    return frame, report


def _timestamp(
    raw: DataFrame,
    resolved: dict[str, str],
    plan: _Plan,
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
        if unit not in _SCALE:
            magnitude = raw.select(F.median(F.when(finite, F.abs(numbers)))).first()
            value = float(magnitude[0]) if magnitude and magnitude[0] is not None else 0.0
            unit = "s" if value < 1e11 else "ms" if value < 1e14 else "us" if value < 1e17 else "ns"
            log.info("%s: numeric timestamps (median %.3g) read as %s", plan.path, value, unit)
        scale = _SCALE[str(unit)]
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


def _from_frame(df: DataFrame) -> DataFrame:
    """A canonical Spark click frame -> the same with ``_row`` (its current order)."""
    from pyspark.sql import functions as F

    if "item_id" not in df.columns or not ({"session_id", "user_id"} & set(df.columns)):
        raise DataError(
            "a click frame needs 'item_id' and 'session_id' (or 'user_id'); "
            f"this one has {df.columns}"
        )
    keep = [
        c
        for c in ("session_id", "user_id", "item_id", "timestamp", "event_type")
        if c in df.columns
    ]
    out, _ = _number_rows(df.select(*keep), "_row")
    if "timestamp" in out.columns:
        out = out.withColumn("timestamp", F.col("timestamp").cast("double"))
    return out


# ----------------------------------------------------------------------- cleaning
def _sessionize(df: DataFrame, gap: float) -> tuple[DataFrame, int]:
    """Session ids 0..n-1 in order of (user, start), as :func:`cleaning.sessionize`."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    by_user = Window.partitionBy("user_id").orderBy("timestamp", "_row")
    previous = F.lag("timestamp").over(by_user)
    starts = (previous.isNull() | (F.col("timestamp") - previous > gap)).cast("long")
    running = by_user.rowsBetween(Window.unboundedPreceding, Window.currentRow)
    df = df.withColumn("_new", starts).withColumn("_seq", F.sum("_new").over(running)).drop("_new")
    keys, n = _index_by(df.select("user_id", "_seq").distinct(), ["user_id", "_seq"], "session_id")
    out = df.join(keys, ["user_id", "_seq"]).drop("user_id", "_seq")
    return out.localCheckpoint(eager=True), n


def _dedupe(df: DataFrame) -> DataFrame:
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    in_session = Window.partitionBy("session_id").orderBy("timestamp", "_row")
    repeat = F.coalesce(F.lag("item_id").over(in_session) == F.col("item_id"), F.lit(False))
    flagged = df.withColumn("_repeat", repeat)
    return flagged.filter(~F.col("_repeat")).drop("_repeat")


def _filter(
    df: DataFrame, min_length: int, min_support: int, max_length: int | None
) -> tuple[DataFrame, dict[str, int]]:
    """The fixpoint of :func:`cleaning.filter_sessions`, removal for removal."""
    from pyspark.sql import functions as F

    events_in, sessions_in, items_in = _sizes(df)
    current, count = df, events_in
    long = rare = short = iterations = 0

    def drop_groups(frame: DataFrame, key: str, condition: Column) -> DataFrame:
        sizes = frame.groupBy(key).agg(F.count("*").alias("_n"))
        return frame.join(sizes.filter(condition).select(key), key, "left_anti")

    if max_length is not None:
        current, after = _materialize(drop_groups(current, "session_id", F.col("_n") > max_length))
        long, count = count - after, after
    while True:
        iterations += 1
        after_rare, n_left = _materialize(
            drop_groups(current, "item_id", F.col("_n") < min_support)
        )
        n_rare = count - n_left
        after_short = drop_groups(after_rare, "session_id", F.col("_n") < min_length)
        after_short, n_after = _materialize(after_short)
        n_short = count - n_rare - n_after
        rare, short, current, count = rare + n_rare, short + n_short, after_short, n_after
        if n_rare == 0 and n_short == 0:
            break
    _, sessions_out, items_out = _sizes(current)
    report = {
        "events_in": events_in,
        "sessions_in": sessions_in,
        "items_in": items_in,
        "events_out": count,
        "sessions_out": sessions_out,
        "items_out": items_out,
        "rare_item_events_removed": rare,
        "short_session_events_removed": short,
        "long_session_events_removed": long,
        "iterations": iterations,
    }
    return current, report


def _session_key(df: DataFrame, by: str) -> DataFrame:
    """``df`` with ``_key``: its session's first (``start``) or last (``end``) time."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    window = Window.partitionBy("session_id")
    agg = F.min("timestamp") if by == "start" else F.max("timestamp")
    return df.withColumn("_key", agg.over(window))


def _restrict(df: DataFrame, items: DataFrame, min_length: int) -> tuple[DataFrame, RestrictReport]:
    """:func:`split.restrict_items`: keep known items, then long enough sessions."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    events_in, sessions_in, _ = _sizes(df)
    known, n_known = _materialize(df.join(items.select("item_id"), "item_id", "left_semi"))
    length = F.count("*").over(Window.partitionBy("session_id"))
    out = known.withColumn("_len", length).filter(F.col("_len") >= min_length).drop("_len")
    out = out.localCheckpoint(eager=False)
    events_out, sessions_out, _ = _sizes(out)
    report = RestrictReport(
        events_in=events_in,
        sessions_in=sessions_in,
        unknown_item_events_removed=events_in - n_known,
        short_session_events_removed=n_known - events_out,
        events_out=events_out,
        sessions_out=sessions_out,
    )
    return out, report


# -------------------------------------------------------------------- collecting
def _column(table: Any, name: str) -> np.ndarray:
    return np.asarray(table.column(name).to_numpy())


def _collect_part(
    df: DataFrame, vocab: tuple[DataFrame, ItemVocab] | None = None
) -> tuple[SessionData, tuple[DataFrame, ItemVocab]]:
    """A part's clicks -> :class:`SessionData` exactly as ``SessionData.from_frame`` builds it.

    Sessions by (start time, session id), clicks by (time, row); without ``vocab`` the
    vocabulary is the items in order of first appearance. Returns the data and the
    vocabulary (as a Spark frame ``item_id, _code`` and an :class:`ItemVocab`).
    """
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    start = F.min("timestamp").over(Window.partitionBy("session_id"))
    indexed, n = _index_by(
        df.withColumn("_start", start), ["_start", "session_id", "timestamp", "_row"], "_pos"
    )
    if vocab is None:
        first = indexed.groupBy("item_id").agg(F.min("_pos").alias("_first"))
        codes, k = _index_by(first, ["_first"], "_code")
        codes = codes.select("item_id", F.col("_code").cast("int").alias("_code")).localCheckpoint(
            eager=False
        )
        table = codes.toArrow()
        ids = _column(table, "item_id")
        order = np.empty(k, dtype=np.int64)
        order[_column(table, "_code")] = np.arange(k)
        vocab = (codes, ItemVocab(ids[order]))
    codes_df, item_vocab = vocab
    has_types = "event_type" in indexed.columns
    names: tuple[str, ...] = ()
    selected: list[Column | str] = [
        F.col("_pos").cast("int" if n < 2**31 else "long").alias("_pos"),
        "_code",
        "timestamp",
    ]
    if has_types:
        present = indexed.select("event_type").distinct().collect()
        names = tuple(sorted(str(r[0]) for r in present if r[0] is not None))
        if len(names) > 127:
            raise DataError(f"too many distinct event types ({len(names)} > 127)")
        position = F.array_position(F.array(*[F.lit(x) for x in names]), F.col("event_type"))
        selected.append(F.greatest(position - 1, F.lit(0)).cast("byte").alias("_type"))
    clicks = indexed.join(codes_df, "item_id").select(*selected).toArrow()
    pos = _column(clicks, "_pos")
    if pos.size != n:
        raise DataError(f"{n - pos.size} click(s) have items outside the vocabulary")
    items = np.empty(n, dtype=np.int32)
    items[pos] = _column(clicks, "_code")
    times = np.empty(n, dtype=np.float64)
    times[pos] = _column(clicks, "timestamp")
    types = None
    if has_types:
        types = np.empty(n, dtype=np.int8)
        types[pos] = _column(clicks, "_type")
    del clicks, pos
    sessions = (
        indexed.groupBy("session_id")
        .agg(F.min("_pos").alias("_first"), F.count("*").alias("_len"))
        .toArrow()
    )
    order = np.argsort(_column(sessions, "_first"), kind="stable")
    offsets = np.zeros(order.size + 1, dtype=np.int64)
    np.cumsum(_column(sessions, "_len")[order], out=offsets[1:])
    session_ids = _column(sessions, "session_id")[order]
    data = SessionData(
        offsets=offsets,
        items=items,
        vocab=item_vocab,
        times=times,
        types=types,
        event_types=names,
        session_ids=session_ids,
    )
    return data, vocab


# ------------------------------------------------------------------------ prepare
def prepare_spark(
    source: str | os.PathLike[str] | DataFrame,
    options: PrepareOptions | None = None,
    *,
    spark: SparkSession | None = None,
    master: str | None = None,
    driver_memory: str | None = None,
    **overrides: Any,
) -> PreparedData:
    """:func:`sessionrec.data.prepare.prepare` on Spark: same options, same result.

    ``source`` is a CSV/TSV/Parquet file (read with the reading options) or a Spark
    DataFrame with canonical columns. ``spark`` is the session to use; without one,
    :func:`spark_session` (``master``, default ``local[2]``, and ``driver_memory``). Raises
    the same errors as ``prepare`` for empty parts and bad options.
    """
    opts = _options(options, overrides)
    from pyspark.sql import DataFrame as SparkFrame
    from pyspark.sql import functions as F

    spark = spark or spark_session(master, driver_memory=driver_memory)
    report: dict[str, Any] = {"options": opts.as_dict(), "steps": {}, "engine": "spark"}
    steps = report["steps"]
    if isinstance(source, SparkFrame):
        report["source"] = "<frame>"
        frame = _from_frame(source)
        steps["read"] = None
    else:
        report["source"] = str(source)
        plan = _plan(
            source,
            opts.preset,
            opts.format,
            opts.columns,
            opts.time_unit,
            opts.separator,
            opts.has_header,
        )
        if opts.on_bad_rows not in ("raise", "skip"):
            raise ConfigError(f"on_bad_rows must be 'raise' or 'skip', not {opts.on_bad_rows!r}")
        frame, steps["read"] = _read(spark, plan, opts.on_bad_rows)
    if "timestamp" not in frame.columns:
        raise ConfigError(
            "prepare splits by time, but this log has no timestamps; for sessions-txt files "
            "use sessionrec.data.split.last_fraction_split"
        )
    if "session_id" not in frame.columns:
        frame, n_sessions = _sessionize(frame, opts.gap)
        steps["sessionize"] = {"gap": opts.gap, "sessions": n_sessions}
    else:
        frame = frame.drop("user_id")
    frame, events_in = _materialize(frame)
    repeats = 0
    if opts.dedupe:
        frame, after = _materialize(_dedupe(frame))
        repeats = events_in - after
    for name in ("min_session_length", "min_item_support"):
        value = getattr(opts, name)
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ConfigError(f"{name} must be an integer >= 1, not {value!r}")
    top = opts.max_session_length
    if top is not None and (
        isinstance(top, bool) or not isinstance(top, int) or top < opts.min_session_length
    ):
        raise ConfigError(
            f"max_session_length must be an integer >= min_session_length, not {top!r}"
        )
    frame, counts = _filter(frame, opts.min_session_length, opts.min_item_support, top)
    cleaning = CleaningReport(**counts)
    cleaning = replace(cleaning, events_in=events_in, repeats_removed=repeats)
    steps["cleaning"] = cleaning.as_dict()
    if cleaning.events_out == 0:
        raise DataError(
            f"no clicks left after cleaning (min_item_support={opts.min_item_support}, "
            f"min_session_length={opts.min_session_length}); lower them"
        )

    last = frame.agg(F.max("timestamp")).first()[0]  # type: ignore[index]
    test_cutoff = float(last) - float(opts.test_days) * DAY
    keyed = _session_key(frame, opts.split_by).localCheckpoint(eager=False)
    full_frame = keyed.filter(F.col("_key") < test_cutoff).drop("_key")
    test_frame = keyed.filter(F.col("_key") >= test_cutoff).drop("_key")
    if full_frame.limit(1).count() == 0:
        raise DataError(
            f"the training part (test_days={opts.test_days} covers the whole log) is empty "
            "after preparation; check the day options"
        )
    train_full, full_vocab = _collect_part(full_frame)
    test_frame, test_report = _restrict(test_frame, full_vocab[0], opts.min_session_length)
    if test_report.events_out == 0:
        raise DataError(
            f"the test part (the last {opts.test_days} day(s)) is empty after preparation; "
            "check the day options"
        )
    steps["test"] = {"cutoff": test_cutoff, **test_report.as_dict()}
    test, _ = _collect_part(test_frame, full_vocab)

    train, valid = train_full, None
    if opts.valid_days:
        times = train_full.times
        if times is None:  # pragma: no cover - timestamps were required above
            raise DataError("validation split needs timestamps")
        valid_cutoff = float(times.max()) - opts.valid_days * DAY
        keyed = _session_key(full_frame, opts.split_by).localCheckpoint(eager=False)
        in_valid = F.col("_key") >= valid_cutoff
        train_frame = keyed.filter(~in_valid).drop("_key")
        if train_frame.limit(1).count() == 0:
            raise DataError(
                f"the training part before the {opts.valid_days}-day validation is empty; "
                "check the day options"
            )
        train, train_vocab = _collect_part(train_frame)
        valid_frame, valid_report = _restrict(
            keyed.filter(in_valid).drop("_key"), train_vocab[0], opts.min_session_length
        )
        if valid_report.events_out == 0:
            raise DataError(
                f"the validation part (the last {opts.valid_days} day(s) of train) is empty "
                "after preparation; check the day options"
            )
        steps["valid"] = {"cutoff": valid_cutoff, **valid_report.as_dict()}
        valid, _ = _collect_part(valid_frame, train_vocab)
    result = PreparedData(train, valid, train_full, test, report)
    report["parts"] = _parts(result)
    log.info("prepared %s on spark: %s", report["source"], _digest(result.summary()))
    return result


# ---------------------------------------------------------------- VMIS-kNN index
def build_vmis_index_spark(
    train: SessionData, sample_size: int, *, spark: SparkSession | None = None
) -> tuple[KnnIndex, np.ndarray]:
    """:func:`sessionrec.models.knn.build_index` on Spark: the same arrays, bit for bit.

    Recency ranks (by last click time, then session number), one (session, item) pair per
    distinct item with its last click position, posting lists truncated to the
    ``sample_size`` most recent sessions with a window, the session store of referenced
    sessions and the IDF are Spark operations; the driver only scatters the collected
    (position, value) columns into the CSR arrays.
    """
    import pyarrow as pa
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    from sessionrec.models.knn import check_sampling
    from sessionrec.models.knn_kernels import KnnIndex

    check_sampling(sample_size, sample_size)
    spark = spark or spark_session()
    n_items, n_sessions = train.n_items, train.n_sessions
    lengths = train.lengths
    if train.times is not None:
        end = np.nan_to_num(train.end_times(), nan=-np.inf)
    else:
        end = np.arange(n_sessions, dtype=np.float64)
    sessions = spark.createDataFrame(
        pa.table({"s": np.arange(n_sessions, dtype=np.int64), "end": end})
    )
    ranked, _ = _index_by(sessions, ["end", "s"], "rank")
    position = (
        np.arange(train.n_events, dtype=np.int64) - np.repeat(train.offsets[:-1], lengths) + 1
    )
    clicks = spark.createDataFrame(
        pa.table(
            {"s": train.session_index(), "item": train.items.astype(np.int64), "pos": position}
        )
    )
    pairs = (
        clicks.groupBy("s", "item")
        .agg(F.max("pos").alias("pos"))
        .join(ranked.select("s", "rank"), "s")
        .localCheckpoint(eager=True)
    )
    newest_first = Window.partitionBy("item").orderBy(F.col("rank").desc())
    pairs = pairs.withColumn("_from_end", F.row_number().over(newest_first) - 1)
    df_table = pairs.groupBy("item").agg(F.count("*").alias("df")).toArrow()
    df = np.zeros(n_items, dtype=np.int64)
    df[_column(df_table, "item")] = _column(df_table, "df")
    kept_counts = np.minimum(df, sample_size)
    post_indptr = np.zeros(n_items + 1, dtype=np.int64)
    np.cumsum(kept_counts, out=post_indptr[1:])

    kept = pairs.filter(F.col("_from_end") < sample_size).localCheckpoint(eager=True)
    referenced, n_kept = _index_by(kept.select("rank").distinct(), ["rank"], "number")
    post = kept.join(referenced, "rank").select("item", "number", "pos", "_from_end").toArrow()
    item = _column(post, "item")
    slot = post_indptr[item] + kept_counts[item] - 1 - _column(post, "_from_end")
    post_sessions = np.empty(slot.size, dtype=np.int32)
    post_positions = np.empty(slot.size, dtype=np.int32)
    post_sessions[slot] = _column(post, "number")
    post_positions[slot] = _column(post, "pos")

    by_item = Window.partitionBy("number").orderBy("item")
    store = (
        pairs.join(referenced, "rank")
        .withColumn("_k", F.row_number().over(by_item) - 1)
        .select("number", "item", "pos", "_k")
        .toArrow()
    )
    number = _column(store, "number")
    sess_indptr = np.zeros(n_kept + 1, dtype=np.int64)
    np.cumsum(np.bincount(number, minlength=n_kept), out=sess_indptr[1:])
    slot = sess_indptr[number] + _column(store, "_k")
    sess_items = np.empty(slot.size, dtype=np.int32)
    sess_positions = np.empty(slot.size, dtype=np.int32)
    sess_items[slot] = _column(store, "item")
    sess_positions[slot] = _column(store, "pos")

    kept_table = referenced.join(ranked, "rank").select("number", "rank", "s").toArrow()
    kept_ranks = np.empty(n_kept, dtype=np.int64)
    source = np.empty(n_kept, dtype=np.int64)
    kept_ranks[_column(kept_table, "number")] = _column(kept_table, "rank")
    source[_column(kept_table, "number")] = _column(kept_table, "s")
    n_nonempty = int((lengths > 0).sum())
    with np.errstate(divide="ignore"):
        idf = np.where(df > 0, np.log(n_nonempty / np.maximum(df, 1)), 0.0)
    index = KnnIndex(
        post_indptr=post_indptr,
        post_sessions=post_sessions,
        post_positions=post_positions,
        sess_indptr=sess_indptr,
        sess_items=sess_items,
        sess_positions=sess_positions,
        sess_age=(n_sessions - 1 - kept_ranks).astype(np.float64),
        idf=idf.astype(np.float64),
    )
    return index, source


def fit_vmisknn_spark(
    model: VMISKNN, train: SessionData, *, spark: SparkSession | None = None
) -> VMISKNN:
    """Fit ``model`` (a VMIS-kNN, or any session-kNN) with its index built on Spark.

    The index goes through the model's own state checks (the path ``load`` takes), so the
    fitted model is the one ``model.fit(train)`` gives.
    """
    if not isinstance(train, SessionData) or train.n_events == 0:
        raise DataError("fit_vmisknn_spark needs SessionData with clicks")
    index, source = build_vmis_index_spark(train, int(model.sample_size), spark=spark)
    model.vocab_ = train.vocab
    model.data_fingerprint_ = train.fingerprint()
    state = {name: np.asarray(value) for name, value in index._asdict().items()}
    state["session_source"] = source
    state["popularity"] = train.item_counts()
    model._set_state(state)
    return model

"""Cleaning and splitting on Spark: session cut, repeats, the filter fixpoint, test items."""

from __future__ import annotations

from typing import TYPE_CHECKING

from sessionrec.data.events.event_types import CANONICAL_EVENT_TYPES
from sessionrec.data.spark.engine import frame_sizes, index_by, materialize
from sessionrec.data.split import RestrictReport

if TYPE_CHECKING:  # pragma: no cover - typing only
    from pyspark.sql import Column, DataFrame


def sessionize(df: DataFrame, gap: float) -> tuple[DataFrame, int]:
    """Session ids 0..n-1 in order of (user, start), as :func:`cleaning.sessionize`."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    by_user = Window.partitionBy("user_id").orderBy("timestamp", "_row")
    previous = F.lag("timestamp").over(by_user)
    starts = (previous.isNull() | (F.col("timestamp") - previous > gap)).cast("long")
    running = by_user.rowsBetween(Window.unboundedPreceding, Window.currentRow)
    df = df.withColumn("_new", starts).withColumn("_seq", F.sum("_new").over(running)).drop("_new")
    keys, n = index_by(df.select("user_id", "_seq").distinct(), ["user_id", "_seq"], "session_id")
    out = df.join(keys, ["user_id", "_seq"]).drop("user_id", "_seq")
    return out.localCheckpoint(eager=True), n


def dedupe(df: DataFrame) -> DataFrame:
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    in_session = Window.partitionBy("session_id").orderBy("timestamp", "_row")
    repeat = F.coalesce(F.lag("item_id").over(in_session) == F.col("item_id"), F.lit(False))
    flagged = df.withColumn("_repeat", repeat)
    if "event_type" not in df.columns:
        return flagged.filter(~F.col("_repeat")).drop("_repeat")
    # Of every run of repeats, the strongest click (cleaning.remove_consecutive_repeats).
    running = in_session.rowsBetween(Window.unboundedPreceding, Window.currentRow)
    strength = F.coalesce(
        F.array_position(F.array(*[F.lit(x) for x in CANONICAL_EVENT_TYPES]), F.col("event_type")),
        F.lit(0),
    )
    runs = flagged.withColumn("_run", F.sum((~F.col("_repeat")).cast("long")).over(running))
    best = Window.partitionBy("session_id", "_run").orderBy(
        strength.desc(), F.col("timestamp"), F.col("_row")
    )
    ranked = runs.withColumn("_rank", F.row_number().over(best))
    return ranked.filter(F.col("_rank") == 1).drop("_repeat", "_run", "_rank")


def filter_to_fixpoint(
    df: DataFrame, min_length: int, min_support: int, max_length: int | None
) -> tuple[DataFrame, dict[str, int]]:
    """The fixpoint of :func:`cleaning.filter_sessions`, removal for removal."""
    from pyspark.sql import functions as F

    events_in, sessions_in, items_in = frame_sizes(df)
    current, count = df, events_in
    long = rare = short = iterations = 0

    def drop_groups(frame: DataFrame, key: str, condition: Column) -> DataFrame:
        sizes = frame.groupBy(key).agg(F.count("*").alias("_n"))
        return frame.join(sizes.filter(condition).select(key), key, "left_anti")

    if max_length is not None:
        current, after = materialize(drop_groups(current, "session_id", F.col("_n") > max_length))
        long, count = count - after, after
    while True:
        iterations += 1
        after_rare, n_left = materialize(drop_groups(current, "item_id", F.col("_n") < min_support))
        n_rare = count - n_left
        after_short = drop_groups(after_rare, "session_id", F.col("_n") < min_length)
        after_short, n_after = materialize(after_short)
        n_short = count - n_rare - n_after
        rare, short, current, count = rare + n_rare, short + n_short, after_short, n_after
        if n_rare == 0 and n_short == 0:
            break
    _, sessions_out, items_out = frame_sizes(current)
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


def with_session_key(df: DataFrame, by: str) -> DataFrame:
    """``df`` with ``_key``: its session's first (``start``) or last (``end``) time."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    window = Window.partitionBy("session_id")
    agg = F.min("timestamp") if by == "start" else F.max("timestamp")
    return df.withColumn("_key", agg.over(window))


def restrict_items(
    df: DataFrame, items: DataFrame, min_length: int
) -> tuple[DataFrame, RestrictReport]:
    """:func:`split.restrict_items`: keep known items, then long enough sessions."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    events_in, sessions_in, _ = frame_sizes(df)
    known, n_known = materialize(df.join(items.select("item_id"), "item_id", "left_semi"))
    length = F.count("*").over(Window.partitionBy("session_id"))
    out = known.withColumn("_len", length).filter(F.col("_len") >= min_length).drop("_len")
    out = out.localCheckpoint(eager=False)
    events_out, sessions_out, _ = frame_sizes(out)
    report = RestrictReport(
        events_in=events_in,
        sessions_in=sessions_in,
        unknown_item_events_removed=events_in - n_known,
        short_session_events_removed=n_known - events_out,
        events_out=events_out,
        sessions_out=sessions_out,
    )
    return out, report

""":func:`prepare_spark`: :func:`sessionrec.data.prepare.prepare` on Spark."""

from __future__ import annotations

import logging
import os
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from sessionrec._errors import ConfigError, DataError
from sessionrec.data.cleaning import CleaningReport
from sessionrec.data.events.planning import plan_read
from sessionrec.data.events.reading import companion_file
from sessionrec.data.prepare import (
    PreparedData,
    PrepareOptions,
    checked_options,
    part_sizes,
    resolved_test_days,
    summary_line,
    warn_small_test,
)
from sessionrec.data.spark.cleaning import (
    dedupe,
    filter_to_fixpoint,
    restrict_items,
    sessionize,
    with_session_key,
)
from sessionrec.data.spark.engine import materialize, spark_session
from sessionrec.data.spark.parts import collect_part
from sessionrec.data.spark.reading import from_frame, read_log
from sessionrec.data.split import DAY

if TYPE_CHECKING:  # pragma: no cover - typing only
    from pyspark.sql import DataFrame, SparkSession


log = logging.getLogger("sessionrec.data")


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
    opts = checked_options(options, overrides)
    from pyspark.sql import DataFrame as SparkFrame
    from pyspark.sql import functions as F

    spark = spark or spark_session(master, driver_memory=driver_memory)
    report: dict[str, Any] = {"options": opts.as_dict(), "steps": {}, "engine": "spark"}
    steps = report["steps"]
    if isinstance(source, SparkFrame):
        report["source"] = "<frame>"
        frame = from_frame(source, dict(opts.event_map or {}))
        steps["read"] = None
    else:
        report["source"] = str(source)
        plan = plan_read(
            source,
            opts.preset,
            opts.format,
            opts.columns,
            opts.time_unit,
            opts.separator,
            opts.has_header,
            opts.event_map,
        )
        if companion_file(plan.path, opts.preset, opts.purchases) is not None:
            raise ConfigError(
                "the spark engine does not read purchase files; use the polars engine or "
                "pass purchases=False"
            )
        if opts.on_bad_rows not in ("raise", "skip"):
            raise ConfigError(f"on_bad_rows must be 'raise' or 'skip', not {opts.on_bad_rows!r}")
        frame, steps["read"] = read_log(spark, plan, opts.on_bad_rows)
    if "timestamp" not in frame.columns:
        raise ConfigError(
            "prepare splits by time, but this log has no timestamps; for sessions-txt files "
            "use sessionrec.data.split.last_fraction_split"
        )
    if "session_id" not in frame.columns:
        frame, n_sessions = sessionize(frame, opts.gap)
        steps["sessionize"] = {"gap": opts.gap, "sessions": n_sessions}
    else:
        frame = frame.drop("user_id")
    frame, events_in = materialize(frame)
    repeats = 0
    if opts.dedupe:
        frame, after = materialize(dedupe(frame))
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
    frame, counts = filter_to_fixpoint(frame, opts.min_session_length, opts.min_item_support, top)
    while opts.dedupe:  # filtering can make clicks neighbours: repeat both to the fixpoint
        frame, after = materialize(dedupe(frame))
        removed = counts["events_out"] - after
        if removed == 0:
            break
        repeats += removed
        frame, more = filter_to_fixpoint(
            frame, opts.min_session_length, opts.min_item_support, None
        )
        for key in ("rare_item_events_removed", "short_session_events_removed", "iterations"):
            counts[key] += more[key]
        for key in ("events_out", "sessions_out", "items_out"):
            counts[key] = more[key]
    cleaning = CleaningReport(**counts)
    cleaning = replace(cleaning, events_in=events_in, repeats_removed=repeats)
    steps["cleaning"] = cleaning.as_dict()
    if cleaning.events_out == 0:
        raise DataError(
            f"no clicks left after cleaning (min_item_support={opts.min_item_support}, "
            f"min_session_length={opts.min_session_length}); lower them"
        )

    last = frame.agg(F.max("timestamp")).first()[0]  # type: ignore[index]
    test_days = resolved_test_days(opts)
    test_cutoff = float(last) - test_days * DAY
    keyed = with_session_key(frame, opts.split_by).localCheckpoint(eager=False)
    full_frame = keyed.filter(F.col("_key") < test_cutoff).drop("_key")
    test_frame = keyed.filter(F.col("_key") >= test_cutoff).drop("_key")
    if full_frame.limit(1).count() == 0:
        raise DataError(
            f"the training part (test_days={test_days} covers the whole log) is empty "
            "after preparation; check the day options"
        )
    train_full, full_vocab = collect_part(full_frame)
    test_frame, test_report = restrict_items(test_frame, full_vocab[0], opts.min_session_length)
    if test_report.events_out == 0:
        raise DataError(
            f"the test part (the last {test_days} day(s)) is empty after preparation; "
            "check the day options"
        )
    steps["test"] = {"cutoff": test_cutoff, **test_report.as_dict()}
    test, _ = collect_part(test_frame, full_vocab)

    train, valid = train_full, None
    if opts.valid_days:
        times = train_full.times
        if times is None:  # pragma: no cover - timestamps were required above
            raise DataError("validation split needs timestamps")
        valid_cutoff = float(times.max()) - opts.valid_days * DAY
        keyed = with_session_key(full_frame, opts.split_by).localCheckpoint(eager=False)
        in_valid = F.col("_key") >= valid_cutoff
        train_frame = keyed.filter(~in_valid).drop("_key")
        if train_frame.limit(1).count() == 0:
            raise DataError(
                f"the training part before the {opts.valid_days}-day validation is empty; "
                "check the day options"
            )
        train, train_vocab = collect_part(train_frame)
        valid_frame, valid_report = restrict_items(
            keyed.filter(in_valid).drop("_key"), train_vocab[0], opts.min_session_length
        )
        if valid_report.events_out == 0:
            raise DataError(
                f"the validation part (the last {opts.valid_days} day(s) of train) is empty "
                "after preparation; check the day options"
            )
        steps["valid"] = {"cutoff": valid_cutoff, **valid_report.as_dict()}
        valid, _ = collect_part(valid_frame, train_vocab)
    result = PreparedData(train, valid, train_full, test, report)
    report["parts"] = part_sizes(result)
    log.info("prepared %s on spark: %s", report["source"], summary_line(result.summary()))
    warn_small_test(result)
    return result

"""A cleaned part on Spark -> :class:`SessionData`, as ``SessionData.from_frame`` builds it."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from sessionrec._errors import DataError
from sessionrec.data.sessions import ItemVocab, SessionData
from sessionrec.data.spark.engine import arrow_column, index_by

if TYPE_CHECKING:  # pragma: no cover - typing only
    from pyspark.sql import Column, DataFrame


def collect_part(
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
    indexed, n = index_by(
        df.withColumn("_start", start), ["_start", "session_id", "timestamp", "_row"], "_pos"
    )
    if vocab is None:
        first = indexed.groupBy("item_id").agg(F.min("_pos").alias("_first"))
        codes, k = index_by(first, ["_first"], "_code")
        codes = codes.select("item_id", F.col("_code").cast("int").alias("_code")).localCheckpoint(
            eager=False
        )
        table = codes.toArrow()
        ids = arrow_column(table, "item_id")
        order = np.empty(k, dtype=np.int64)
        order[arrow_column(table, "_code")] = np.arange(k)
        vocab = (codes, ItemVocab(ids[order]))
    codes_df, item_vocab = vocab
    type_columns = [c for c in ("event_type", "raw_event_type") if c in indexed.columns]
    names: dict[str, tuple[str, ...]] = {}
    selected: list[Column | str] = [
        F.col("_pos").cast("int" if n < 2**31 else "long").alias("_pos"),
        "_code",
        "timestamp",
    ]
    for column in type_columns:
        present = indexed.select(column).distinct().collect()
        names[column] = tuple(sorted(str(r[0]) for r in present if r[0] is not None))
        if len(names[column]) > 127:
            raise DataError(f"too many distinct event types ({len(names[column])} > 127)")
        array = F.array(*[F.lit(x) for x in names[column]])
        position = F.array_position(array, F.col(column))
        selected.append(F.greatest(position - 1, F.lit(0)).cast("byte").alias(f"_{column}"))
    clicks = indexed.join(codes_df, "item_id").select(*selected).toArrow()
    pos = arrow_column(clicks, "_pos")
    if pos.size != n:
        raise DataError(f"{n - pos.size} click(s) have items outside the vocabulary")
    items = np.empty(n, dtype=np.int32)
    items[pos] = arrow_column(clicks, "_code")
    times = np.empty(n, dtype=np.float64)
    times[pos] = arrow_column(clicks, "timestamp")
    codes_of: dict[str, np.ndarray] = {}
    for column in type_columns:
        codes_of[column] = np.empty(n, dtype=np.int8)
        codes_of[column][pos] = arrow_column(clicks, f"_{column}")
    del clicks, pos
    sessions = (
        indexed.groupBy("session_id")
        .agg(F.min("_pos").alias("_first"), F.count("*").alias("_len"))
        .toArrow()
    )
    order = np.argsort(arrow_column(sessions, "_first"), kind="stable")
    offsets = np.zeros(order.size + 1, dtype=np.int64)
    np.cumsum(arrow_column(sessions, "_len")[order], out=offsets[1:])
    session_ids = arrow_column(sessions, "session_id")[order]
    data = SessionData(
        offsets=offsets,
        items=items,
        vocab=item_vocab,
        times=times,
        types=codes_of.get("event_type"),
        event_types=names.get("event_type", ()),
        session_ids=session_ids,
        raw_types=codes_of.get("raw_event_type"),
        raw_event_types=names.get("raw_event_type", ()),
    )
    return data, vocab

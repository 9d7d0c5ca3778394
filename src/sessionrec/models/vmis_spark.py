"""The VMIS-kNN index built on Apache Spark: :func:`build_vmis_index_spark`.

The same index as :func:`sessionrec.models.knn_index.build_index`, bit for bit, written as Spark
DataFrame operations so that the training sessions of a log too large for one machine
are indexed on a cluster; :func:`fit_vmisknn_spark` fits a model with it. Needs the
``spark`` extra (PySpark and Java 17+). The data path on Spark (reading, cleaning,
splitting) is :mod:`sessionrec.data.spark`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from sessionrec._errors import DataError
from sessionrec.data.sessions import SessionData
from sessionrec.data.spark.engine import arrow_column, index_by, spark_session
from sessionrec.models.knn import VMISKNN, check_sampling
from sessionrec.models.knn_index import session_idf
from sessionrec.models.knn_kernels import KnnIndex

if TYPE_CHECKING:  # pragma: no cover - typing only
    from pyspark.sql import SparkSession

__all__ = ["build_vmis_index_spark", "fit_vmisknn_spark"]


def build_vmis_index_spark(
    train: SessionData, sample_size: int, *, spark: SparkSession | None = None
) -> tuple[KnnIndex, np.ndarray]:
    """:func:`sessionrec.models.knn_index.build_index` on Spark: the same arrays, bit for bit.

    Recency ranks (by last click time, then session number), one (session, item) pair per
    distinct item with its last click position, posting lists truncated to the
    ``sample_size`` most recent sessions with a window, the session store of referenced
    sessions and the IDF are Spark operations; the driver only scatters the collected
    (position, value) columns into the CSR arrays.
    """
    import pyarrow as pa
    from pyspark.sql import Window
    from pyspark.sql import functions as F

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
    ranked, _ = index_by(sessions, ["end", "s"], "rank")
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
    df[arrow_column(df_table, "item")] = arrow_column(df_table, "df")
    kept_counts = np.minimum(df, sample_size)
    post_indptr = np.zeros(n_items + 1, dtype=np.int64)
    np.cumsum(kept_counts, out=post_indptr[1:])

    kept = pairs.filter(F.col("_from_end") < sample_size).localCheckpoint(eager=True)
    referenced, n_kept = index_by(kept.select("rank").distinct(), ["rank"], "number")
    post = kept.join(referenced, "rank").select("item", "number", "pos", "_from_end").toArrow()
    item = arrow_column(post, "item")
    slot = post_indptr[item] + kept_counts[item] - 1 - arrow_column(post, "_from_end")
    post_sessions = np.empty(slot.size, dtype=np.int32)
    post_positions = np.empty(slot.size, dtype=np.int32)
    post_sessions[slot] = arrow_column(post, "number")
    post_positions[slot] = arrow_column(post, "pos")

    by_item = Window.partitionBy("number").orderBy("item")
    store = (
        pairs.join(referenced, "rank")
        .withColumn("_k", F.row_number().over(by_item) - 1)
        .select("number", "item", "pos", "_k")
        .toArrow()
    )
    number = arrow_column(store, "number")
    sess_indptr = np.zeros(n_kept + 1, dtype=np.int64)
    np.cumsum(np.bincount(number, minlength=n_kept), out=sess_indptr[1:])
    slot = sess_indptr[number] + arrow_column(store, "_k")
    sess_items = np.empty(slot.size, dtype=np.int32)
    sess_positions = np.empty(slot.size, dtype=np.int32)
    sess_items[slot] = arrow_column(store, "item")
    sess_positions[slot] = arrow_column(store, "pos")

    kept_table = referenced.join(ranked, "rank").select("number", "rank", "s").toArrow()
    kept_ranks = np.empty(n_kept, dtype=np.int64)
    source = np.empty(n_kept, dtype=np.int64)
    kept_ranks[arrow_column(kept_table, "number")] = arrow_column(kept_table, "rank")
    source[arrow_column(kept_table, "number")] = arrow_column(kept_table, "s")
    idf = session_idf(df, int((lengths > 0).sum()))
    index = KnnIndex(
        post_indptr=post_indptr,
        post_sessions=post_sessions,
        post_positions=post_positions,
        sess_indptr=sess_indptr,
        sess_items=sess_items,
        sess_positions=sess_positions,
        sess_age=(n_sessions - 1 - kept_ranks).astype(np.float64),
        idf=idf.astype(np.float64),
        # Event types are not read on Spark: every stored item counts as a view, so only the
        # click objective fits from this index (SessionKNN.fit_index refuses the others).
        sess_types=np.zeros(sess_items.size, dtype=np.int8),
    )
    return index, source


def fit_vmisknn_spark(
    model: VMISKNN, train: SessionData, *, spark: SparkSession | None = None
) -> VMISKNN:
    """Fit ``model`` (a VMIS-kNN, or any session-kNN) with its index built on Spark.

    The index goes through the model's own state checks (:meth:`SessionKNN.fit_index`), so
    the fitted model is the one ``model.fit(train)`` gives.
    """
    if not isinstance(train, SessionData) or train.n_events == 0:
        raise DataError("fit_vmisknn_spark needs SessionData with clicks")
    index, source = build_vmis_index_spark(train, int(model.sample_size), spark=spark)
    return model.fit_index(train, index, source)

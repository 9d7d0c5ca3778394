"""The Spark session, and the frame operations every step shares.

Global row numbers, checkpoints, sizes, and Arrow columns on the driver.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from sessionrec._errors import ConfigError

if TYPE_CHECKING:  # pragma: no cover - typing only
    from pyspark.sql import DataFrame, SparkSession


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


def number_rows(df: DataFrame, name: str) -> tuple[DataFrame, int]:
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


def frame_sizes(df: DataFrame) -> tuple[int, int, int]:
    """Clicks, distinct sessions and distinct items of ``df``, in one job."""
    from pyspark.sql import functions as F

    row = df.agg(F.count("*"), F.countDistinct("session_id"), F.countDistinct("item_id")).first()
    return (0, 0, 0) if row is None else (int(row[0]), int(row[1]), int(row[2]))


def materialize(df: DataFrame) -> tuple[DataFrame, int]:
    """``df`` checkpointed (its lineage cut) and its row count, in one job."""
    out = df.localCheckpoint(eager=False)
    return out, out.count()


def index_by(df: DataFrame, order: Sequence[str], name: str) -> tuple[DataFrame, int]:
    """``df`` with ``name`` = each row's 0-based position in the order of ``order``."""
    out, n = number_rows(df.orderBy(*order), name)
    return out, n


def arrow_column(table: Any, name: str) -> np.ndarray:
    return np.asarray(table.column(name).to_numpy())

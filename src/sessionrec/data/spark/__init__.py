"""The data path on Apache Spark: :func:`prepare_spark`.

The same preprocessing as :func:`sessionrec.data.prepare.prepare` (read, cut sessions,
drop repeats, filter rare items and short sessions to the fixpoint, split by days,
restrict test and validation items), written as Spark DataFrame operations so that a log
too large for one machine runs on a cluster (the VMIS-kNN index built on Spark is
:mod:`sessionrec.models.vmis_spark`). The results are *identical* to the
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

Modules, in the order a log goes through them: ``engine`` (the session, global row
numbers), ``reading``, ``cleaning``, ``parts`` (a part -> ``SessionData``), ``prepare``.
"""

from sessionrec.data.spark.engine import DEFAULT_MASTER, spark_session
from sessionrec.data.spark.prepare import prepare_spark

__all__ = ["DEFAULT_MASTER", "prepare_spark", "spark_session"]

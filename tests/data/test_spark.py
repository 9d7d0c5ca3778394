"""The Spark data path gives the Polars path's result, array for array.

Needs the ``spark`` extra (PySpark) and Java 17+. Without them the module skips with the
reason, unless ``SESSIONREC_REQUIRE_SERVICES=1`` (CI) turns the skip into a failure. One
local SparkSession (``local[2]``, 2 shuffle partitions) serves the whole module: starting
the JVM is the slow part.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from sessionrec._errors import ConfigError, DataError
from sessionrec.data.prepare import PreparedData, prepare, read_prepared, write_prepared
from sessionrec.data.sessions import SessionData
from sessionrec.data.split import DAY

REQUIRE = os.environ.get("SESSIONREC_REQUIRE_SERVICES") == "1"
_MISSING = (
    "pyspark is not installed (pip install 'sessionrec[spark]')"
    if importlib.util.find_spec("pyspark") is None
    else "java (17+) is not on PATH"
    if shutil.which("java") is None
    else None
)
if _MISSING:
    if REQUIRE:
        pytest.fail(f"{_MISSING} and SESSIONREC_REQUIRE_SERVICES=1", pytrace=False)
    pytest.skip(_MISSING, allow_module_level=True)

from sessionrec.data.spark import prepare_spark, spark_session  # noqa: E402 - after the skip

pytestmark = pytest.mark.slow
DIGINETICA = "diginetica/raw-sample/sample_train-item-views.csv"
# Small thresholds keep enough of the 12k-row sample for every part to be non-trivial.
DIGINETICA_OPTIONS: dict[str, Any] = {
    "preset": "diginetica",
    "test_days": 7,
    "valid_days": 7,
    "min_item_support": 2,
}

HAND_LOG = [  # user, item, time
    (1, 10, 0.0), (1, 11, 60.0), (1, 11, 70.0), (1, 12, 120.0),  # repeat of 11
    (1, 10, 5000.0), (1, 12, 5100.0),  # 4880 s later: a second session
    (2, 11, 30.0), (2, 10, 90.0), (2, 99, 100.0),  # 99 is rare
    (3, 12, 200.0),  # one click: too short
    (4, 10, 2 * DAY), (4, 11, 2 * DAY + 5), (4, 77, 2 * DAY + 6),  # test day; 77 rare
]  # fmt: skip


@pytest.fixture(scope="module")
def spark() -> Iterator[Any]:
    session = spark_session("local[2]", shuffle_partitions=2, driver_memory="1g")
    # Adaptive execution only adds planning jobs on a few thousand rows (~25% slower here).
    session.conf.set("spark.sql.adaptive.enabled", "false")
    yield session
    session.stop()


@pytest.fixture(scope="module")
def diginetica(shared_file: Any, spark: Any) -> tuple[PreparedData, PreparedData]:
    path = shared_file(DIGINETICA)
    return prepare(path, **DIGINETICA_OPTIONS), prepare_spark(
        path, spark=spark, **DIGINETICA_OPTIONS
    )


def assert_same(a: SessionData, b: SessionData) -> None:
    assert a.vocab == b.vocab
    assert a.event_types == b.event_types
    assert a.raw_event_types == b.raw_event_types
    for name in ("offsets", "items", "times", "types", "raw_types", "session_ids"):
        x, y = getattr(a, name), getattr(b, name)
        assert (x is None) == (y is None), name
        if x is not None:
            assert x.dtype == y.dtype, name
            np.testing.assert_array_equal(x, y, err_msg=name)


def test_spark_prepare_equals_polars_on_diginetica(
    diginetica: tuple[PreparedData, PreparedData],
) -> None:
    polars_result, spark_result = diginetica
    assert polars_result.valid is not None and spark_result.valid is not None
    for part in ("train", "valid", "train_full", "test"):
        assert_same(getattr(polars_result, part), getattr(spark_result, part))
    assert spark_result.train_full.n_sessions > 500  # a real comparison, not two empty parts
    steps_p, steps_s = polars_result.report["steps"], spark_result.report["steps"]
    for step in ("read", "cleaning", "test", "valid"):
        assert steps_p[step] == steps_s[step], step
    assert polars_result.report["parts"] == spark_result.report["parts"]


def test_spark_dataset_folder_equals_polars(
    diginetica: tuple[PreparedData, PreparedData], tmp_path: Path
) -> None:
    polars_dir = write_prepared(diginetica[0], tmp_path / "polars")
    spark_dir = write_prepared(diginetica[1], tmp_path / "spark")
    for name in ("train_sessions.txt", "test_sessions.txt", "train_tr_sessions.txt"):
        assert (polars_dir / name).read_bytes() == (spark_dir / name).read_bytes(), name
    again = read_prepared(spark_dir)
    for part in ("train", "valid", "train_full", "test"):
        assert_same(getattr(diginetica[0], part), getattr(again, part))


def test_spark_maps_event_types_as_polars_does(spark: Any, tmp_path: Path) -> None:
    """A typed Retailrocket log: canonical and raw types, and repeats that keep their
    strongest type, array for array as the Polars engine; unknown types refused alike."""
    rng = np.random.default_rng(3)
    words = ["view", "addtocart", "transaction", "View"]
    lines = ["timestamp,visitorid,event,itemid,transactionid"]
    for visitor in range(60):
        start = 1_433_221_332_000 + int(rng.integers(0, 6 * 86_400_000))
        items = rng.integers(1, 15, 8)
        items[3] = items[2]  # a repeat, typed differently below
        for k, item in enumerate(items):
            word = words[int(rng.integers(0, 4))] if k != 2 else "view"
            lines.append(f"{start + 60_000 * k},{visitor},{word},{item},")
    log = tmp_path / "events.csv"
    log.write_text("\n".join(lines) + "\n")
    options: dict[str, Any] = {"preset": "retailrocket", "min_item_support": 2, "valid_days": 1}
    polars_result = prepare(log, **options)
    spark_result = prepare_spark(log, spark=spark, **options)
    assert set(polars_result.train_full.raw_event_types) == set(words)
    assert polars_result.train_full.event_types == ("cart", "purchase", "view")
    for part in ("train", "valid", "train_full", "test"):
        assert_same(getattr(polars_result, part), getattr(spark_result, part))
    assert polars_result.report["steps"]["cleaning"] == spark_result.report["steps"]["cleaning"]
    log.write_text(lines[0] + "\n" + lines[1].replace(",view,", ",like,") + "\n")
    with pytest.raises(DataError, match="unknown event type 'like' in 1 row"):
        prepare_spark(log, spark=spark, preset="retailrocket")


def test_spark_sessionizes_a_hand_made_log(spark: Any) -> None:
    """Hand-computed: cut at 1800 s, one repeat, rare items 77/99 and a 1-click session
    dropped in the first pass, nothing in the second; the last day is the test part."""
    import pyarrow as pa

    user, item, time = zip(*HAND_LOG, strict=True)
    table = pa.table({"user_id": list(user), "item_id": list(item), "timestamp": list(time)})
    options: dict[str, Any] = {"min_item_support": 2, "test_days": 1, "valid_days": 0.05}
    result = prepare_spark(spark.createDataFrame(table), **options)

    full = result.train_full
    # Sessions 0 = user 1's first, 1 = user 1's second, 2 = user 2's: ordered by start.
    assert full.session_ids.tolist() == [0, 2, 1]
    assert full.vocab.ids.tolist() == [10, 11, 12]
    assert [s.tolist() for s in full] == [[0, 1, 2], [1, 0], [0, 2]]
    assert full.times is not None
    assert full.times.tolist() == [0, 60, 120, 30, 90, 5000, 5100]
    assert [s.tolist() for s in result.test] == [[0, 1]]
    assert result.test.session_ids.tolist() == [4]
    # Validation: sessions ending after 5100 - 0.05 days (= 780 s): user 1's second.
    assert [result.train.vocab.decode(s) for s in result.train] == [[10, 11, 12], [11, 10]]
    assert result.valid is not None
    assert [result.valid.vocab.decode(s) for s in result.valid] == [[10, 12]]
    cleaning = result.report["steps"]["cleaning"]
    assert cleaning["events_in"] == 13
    assert cleaning["repeats_removed"] == 1
    assert cleaning["rare_item_events_removed"] == 2
    assert cleaning["short_session_events_removed"] == 1
    assert cleaning["iterations"] == 2
    assert result.report["steps"]["sessionize"] == {"gap": 1800.0, "sessions": 5}


def test_cli_prepare_engine_spark_writes_the_polars_folder(spark: Any, tmp_path: Path) -> None:
    from sessionrec.cli import main

    log = tmp_path / "log.csv"
    log.write_text(
        "user_id,item_id,timestamp\n" + "".join(f"{u},{i},{t}\n" for u, i, t in HAND_LOG)
    )
    common = ["--min-item-support", "2", "--valid-days", "0.05", "--test-days", "1"]
    assert main(["prepare", str(log), "-o", str(tmp_path / "p"), *common]) == 0
    # The session the fixture holds is reused (no --spark-master): no second JVM.
    spark_args = ["prepare", str(log), "-o", str(tmp_path / "s"), "--engine", "spark"]
    assert main([*spark_args, *common]) == 0
    for name in ("train_sessions.txt", "test_sessions.txt", "valid_sessions.txt"):
        assert (tmp_path / "p" / name).read_text() == (tmp_path / "s" / name).read_text()
    assert (tmp_path / "s" / "train_sessions.txt").read_text() == "10 11 12\n11 10\n10 12\n"


def test_spark_refuses_formats_it_does_not_read(spark: Any, tmp_path: Path) -> None:
    log = tmp_path / "log.jsonl"
    log.write_text('{"session": 1, "events": []}\n')
    with pytest.raises(ConfigError, match="polars engine"):
        prepare_spark(log, spark=spark, preset="otto")

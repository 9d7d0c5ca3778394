"""The VMIS-kNN index built on Spark equals the one built with numpy, array for array.

Needs the ``spark`` extra (PySpark) and Java 17+. Without them the module skips with the
reason, unless ``SESSIONREC_REQUIRE_SERVICES=1`` (CI) turns the skip into a failure.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest

from sessionrec.data.prepare import PreparedData, prepare
from sessionrec.models.knn import VMISKNN
from sessionrec.models.knn_index import build_index

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

from sessionrec.data.spark import spark_session  # noqa: E402 - after the skip
from sessionrec.models.vmis_spark import (  # noqa: E402 - after the skip
    build_vmis_index_spark,
    fit_vmisknn_spark,
)

pytestmark = pytest.mark.slow
DIGINETICA = "diginetica/raw-sample/sample_train-item-views.csv"


@pytest.fixture(scope="module")
def spark() -> Iterator[Any]:
    session = spark_session("local[2]", shuffle_partitions=2, driver_memory="1g")
    # Adaptive execution only adds planning jobs on a few thousand rows.
    session.conf.set("spark.sql.adaptive.enabled", "false")
    yield session
    session.stop()


@pytest.fixture(scope="module")
def diginetica(shared_file: Any) -> PreparedData:
    # Small thresholds keep enough of the 12k-row sample for a non-trivial index.
    return prepare(shared_file(DIGINETICA), preset="diginetica", test_days=7, min_item_support=2)


def test_spark_vmis_index_and_scores_equal_polars(diginetica: PreparedData, spark: Any) -> None:
    data = diginetica
    index, source = build_index(data.train_full, 20)
    spark_index, spark_source = build_vmis_index_spark(data.train_full, 20, spark=spark)
    for name in index._fields:
        x, y = getattr(index, name), getattr(spark_index, name)
        assert x.dtype == y.dtype, name
        np.testing.assert_array_equal(x, y, err_msg=name)
    np.testing.assert_array_equal(source, spark_source)

    reference = VMISKNN(k=10, sample_size=20).fit(data.train_full)
    on_spark = fit_vmisknn_spark(VMISKNN(k=10, sample_size=20), data.train_full, spark=spark)
    sessions = [data.test.vocab.decode(s) for s in data.test][:200]
    assert reference.recommend(sessions, k=20) == on_spark.recommend(sessions, k=20)

"""Parquet logs: typed columns, rows instead of lines."""

from __future__ import annotations

import polars as pl

from sessionrec.data.events.bad_rows import BadRowsFound, RowLocator
from sessionrec.data.events.canonical import canonicalise
from sessionrec.data.events.files import polars_read_error
from sessionrec.data.events.planning import ReadPlan, resolve_columns
from sessionrec.data.events.presets import OnBadRows


def read_parquet(
    plan: ReadPlan, on_bad_rows: OnBadRows
) -> tuple[pl.DataFrame, BadRowsFound | None]:
    try:
        lf = pl.scan_parquet(plan.path)
        available = lf.collect_schema().names()
    except pl.exceptions.PolarsError as exc:
        raise polars_read_error(plan, exc) from None
    resolved = resolve_columns(plan, available, line=None)
    needed = list(dict.fromkeys(resolved.values()))
    try:
        raw = lf.with_row_index("_row").select("_row", *needed).collect(engine="streaming")
    except pl.exceptions.PolarsError as exc:
        raise polars_read_error(plan, exc) from None
    return canonicalise(raw, plan, resolved, RowLocator(), on_bad_rows)

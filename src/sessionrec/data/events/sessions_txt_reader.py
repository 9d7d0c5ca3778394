"""Sessions-txt files: one session per line, space-separated item ids."""

from __future__ import annotations

import polars as pl

from sessionrec._errors import data_error
from sessionrec.data.events.bad_rows import BadRowsFound, RowLocator
from sessionrec.data.events.canonical import canonicalise
from sessionrec.data.events.files import polars_read_error
from sessionrec.data.events.planning import ReadPlan
from sessionrec.data.events.presets import OnBadRows

_LINE_SEPARATOR = "\x1f"  # never in text logs: reads a whole line as one CSV field


def read_sessions_txt(
    plan: ReadPlan, on_bad_rows: OnBadRows
) -> tuple[pl.DataFrame, BadRowsFound | None]:
    """One session per line: session id = 0-based line number, items = its tokens."""
    try:
        lines = pl.scan_csv(
            plan.path,
            has_header=False,
            separator=_LINE_SEPARATOR,
            quote_char=None,
            schema={"_line": pl.String()},
            encoding="utf8-lossy",
            row_index_name="_row",
        ).collect(engine="streaming")
    except pl.exceptions.PolarsError as exc:
        raise polars_read_error(plan, exc) from None
    tokens = lines["_line"].str.extract_all(r"\S+")
    nonblank = tokens.list.len().fill_null(0) > 0
    if not nonblank.any():
        raise data_error("file is empty: expected one session per line", path=plan.path)
    last = int(nonblank.arg_true()[-1])  # trailing blank lines are not sessions
    raw = (
        lines.head(last + 1)
        .select(
            "_row",
            pl.col("_row").cast(pl.Int64).alias("line"),
            tokens.head(last + 1).alias("items"),
        )
        .explode("items")
    )
    resolved = {"session_id": "line", "item_id": "items"}
    return canonicalise(raw, plan, resolved, RowLocator(), on_bad_rows)

"""CSV and TSV logs (plain or gzip-compressed)."""

from __future__ import annotations

import csv
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace

import polars as pl

from sessionrec._errors import data_error
from sessionrec.data.events.bad_rows import SEPARATOR_NAMES, BadRowsFound
from sessionrec.data.events.canonical import (
    INT_PATTERN,
    SECONDS_PER_UNIT,
    TYPE_SAMPLE_ROWS,
    canonicalise,
)
from sessionrec.data.events.files import open_text, polars_read_error
from sessionrec.data.events.planning import ReadPlan, resolve_columns
from sessionrec.data.events.presets import ID_ROLES, OnBadRows

log = logging.getLogger("sessionrec.data")


def read_csv(plan: ReadPlan, on_bad_rows: OnBadRows) -> tuple[pl.DataFrame, BadRowsFound | None]:
    try:
        with open_text(plan.path) as handle:
            first_line = handle.readline()
            if not plan.separator:
                counts = {sep: first_line.count(sep) for sep in SEPARATOR_NAMES}
                best = max(counts, key=counts.__getitem__)
                plan = replace(plan, separator=best if counts[best] else ",")
        with open_text(plan.path) as handle:
            first = next(csv.reader(handle, delimiter=plan.separator), None)
    except (OSError, EOFError, csv.Error) as exc:
        raise data_error(f"cannot read file: {exc}", path=plan.path) from None
    if not first:
        raise data_error(
            "file is empty" if first is None else "first line is empty",
            path=plan.path,
            line=None if first is None else 1,
        )
    if plan.names is not None:
        header = list(plan.names)
    elif plan.has_header:
        header = _unique_names(first)
    else:
        header = [f"column_{i + 1}" for i in range(len(first))]
    resolved = resolve_columns(plan, header, line=1 if plan.has_header else None)
    needed = list(dict.fromkeys(resolved.values()))

    def scan(types: Mapping[str, pl.DataType], lossy: bool) -> pl.DataFrame:
        schema: dict[str, pl.DataType] = {name: types.get(name, pl.String()) for name in header}
        schema["_extra"] = pl.String()  # catches rows with more fields than the header
        lf = pl.scan_csv(
            plan.path,
            has_header=False,
            skip_rows=1 if plan.has_header else 0,
            separator=plan.separator,
            schema=schema,
            truncate_ragged_lines=True,
            missing_columns="insert",
            row_index_name="_row",
            encoding="utf8-lossy" if lossy else "utf8",
        )
        extra = pl.col("_extra").is_not_null().alias("_extra")
        return lf.select("_row", *needed, extra).collect(engine="streaming")

    try:
        raw = scan(_typed_schema(plan, resolved, header), lossy=False)
    except pl.exceptions.PolarsError as exc:
        log.debug("%s: typed read failed (%s); re-reading as text", plan.path, exc)
        try:
            raw = scan({}, lossy=True)
        except pl.exceptions.PolarsError as exc2:
            raise polars_read_error(plan, exc2) from None
    return canonicalise(raw, plan, resolved, _CsvLocator(plan, len(header)), on_bad_rows)


def _unique_names(names: Sequence[str]) -> list[str]:
    seen: dict[str, int] = {}
    out = []
    for i, raw in enumerate(names):
        name = raw.strip() or f"column_{i + 1}"
        if name in seen:
            seen[name] += 1
            name = f"{name}_{seen[name]}"
        seen.setdefault(name, 0)
        out.append(name)
    return out


def _typed_schema(
    plan: ReadPlan, resolved: Mapping[str, str], header: Sequence[str]
) -> dict[str, pl.DataType]:
    """Dtypes of the fast path: what the preset promises, or what a sample suggests."""
    types: dict[str, pl.DataType] = {}
    sample: pl.DataFrame | None = None
    for role, source in resolved.items():
        dtype: pl.DataType | None = None
        if role in ID_ROLES and plan.integer_ids:
            dtype = pl.Int64()
        elif role in ("timestamp", "event_type") and plan.time_unit == "iso":
            dtype = pl.String()
        elif role in ("timestamp", "_offset") and plan.time_unit in SECONDS_PER_UNIT:
            dtype = pl.Float64()
        elif role == "event_type":
            dtype = pl.String()
        if dtype is None:
            if sample is None:
                sample = pl.read_csv(
                    plan.path,
                    has_header=False,
                    skip_rows=1 if plan.has_header else 0,
                    separator=plan.separator,
                    schema=dict.fromkeys(header, pl.String()),
                    n_rows=TYPE_SAMPLE_ROWS,
                    truncate_ragged_lines=True,
                    encoding="utf8-lossy",
                )
            dtype = _infer_dtype(sample[source], numeric=role not in ID_ROLES)
        types[source] = dtype
    return types


def _infer_dtype(sample: pl.Series, *, numeric: bool) -> pl.DataType:
    """Int64 when every sampled value is a plain integer; Float64 too for non-ids."""
    values = sample.drop_nulls()
    if values.len() and values.str.contains(INT_PATTERN).all():
        return pl.Int64()
    if numeric and values.len() and values.cast(pl.Float64, strict=False).null_count() == 0:
        return pl.Float64()
    return pl.String()


@dataclass
class _CsvLocator:
    """Record -> line with Python's csv module, which counts records as Polars does.

    Blank lines are records; a quoted newline is not a line break; ``line_num`` is the
    record's last physical line.
    """

    plan: ReadPlan
    n_fields: int | None

    def lines(self, records: Sequence[int]) -> dict[int, tuple[int, int]]:
        wanted, last = set(records), max(records)
        found: dict[int, tuple[int, int]] = {}
        skip = int(self.plan.has_header)
        with open_text(self.plan.path) as handle:
            reader = csv.reader(handle, delimiter=self.plan.separator)
            for number, row in enumerate(reader):
                if number - skip in wanted:
                    found[number - skip] = (reader.line_num, len(row))
                if number - skip >= last:
                    break
        return found

"""JSON-lines logs, flat or one session per line with nested events (OTTO)."""

from __future__ import annotations

import json
import logging
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import cast

import polars as pl

from sessionrec._errors import data_error
from sessionrec.data.events.bad_rows import MAX_EXAMPLES, BadRow, BadRowsFound
from sessionrec.data.events.canonical import TYPE_SAMPLE_ROWS, canonicalise
from sessionrec.data.events.files import open_text
from sessionrec.data.events.planning import ReadPlan, resolve_columns
from sessionrec.data.events.presets import ID_ROLES, OnBadRows

log = logging.getLogger("sessionrec.data")


def read_jsonl(plan: ReadPlan, on_bad_rows: OnBadRows) -> tuple[pl.DataFrame, BadRowsFound | None]:
    try:
        inferred = pl.scan_ndjson(plan.path, infer_schema_length=TYPE_SAMPLE_ROWS).collect_schema()
    except pl.exceptions.PolarsError:
        return _read_valid_json_lines(plan, on_bad_rows)  # invalid JSON early in the file
    available = list(inferred.names())
    inner_types: dict[str, pl.DataType] = {}
    if plan.explode:
        column = inferred.get(plan.explode)
        if column is None:
            raise data_error(
                f"missing column(s) {plan.explode!r}; found columns: {available}", path=plan.path
            )
        if isinstance(column, pl.List) and isinstance(column.inner, pl.Struct):
            inner_types = {f.name: cast(pl.DataType, f.dtype) for f in column.inner.fields}
        available = [c for c in available if c != plan.explode]
    resolved = resolve_columns(plan, available + list(inner_types), line=None)
    role_of = {source: role for role, source in resolved.items()}

    def schema(typed: bool) -> dict[str, pl.DataType]:
        def dtype(source: str, inferred_type: pl.DataType) -> pl.DataType:
            if not typed:
                return pl.String()
            if role_of[source] in ID_ROLES and plan.integer_ids:
                return pl.Int64()
            return inferred_type

        out = {s: dtype(s, inferred[s]) for s in role_of if s in available}
        if plan.explode:
            fields = {s: dtype(s, t) for s, t in inner_types.items() if s in role_of}
            out[plan.explode] = pl.List(pl.Struct(fields))
        return out

    def scan(typed: bool) -> pl.DataFrame:
        lf = pl.scan_ndjson(
            plan.path, schema=schema(typed), ignore_errors=not typed, row_index_name="_row"
        )
        if plan.explode:
            # A session without events loses nothing; a missing list is flagged later.
            lf = lf.filter(pl.col(plan.explode).list.len().fill_null(1) > 0)
            lf = lf.explode(plan.explode).unnest(plan.explode)
        return lf.collect(engine="streaming")

    try:
        raw = scan(typed=True)
    except pl.exceptions.PolarsError as exc:
        log.debug("%s: typed read failed (%s); re-reading as text", plan.path, exc)
        try:
            raw = scan(typed=False)
        except pl.exceptions.PolarsError:
            return _read_valid_json_lines(plan, on_bad_rows)
    for name in resolved.values():  # a key absent from every object of a nested list
        if name not in raw.columns:
            raw = raw.with_columns(pl.lit(None, pl.String).alias(name))
    return canonicalise(raw, plan, resolved, _JsonLocator(plan), on_bad_rows)


def _read_valid_json_lines(
    plan: ReadPlan, on_bad_rows: OnBadRows
) -> tuple[pl.DataFrame, BadRowsFound | None]:
    """The slow path for invalid JSON: raise the first bad line, or read the others.

    Skipping copies the valid lines to a temporary file, reads that, and maps its line
    numbers back to the original file's.
    """
    good: list[int] = []
    examples: list[BadRow] = []
    n_bad = 0
    with open_text(plan.path) as handle:
        for number, text in enumerate(handle, start=1):
            if not text.strip():
                continue
            try:
                value = json.loads(text)
                problem = None if isinstance(value, dict) else "expected a JSON object"
            except json.JSONDecodeError as exc:
                problem = f"invalid JSON: {exc.msg} (column {exc.colno})"
            if problem is None:
                good.append(number)
                continue
            if on_bad_rows == "raise":
                raise data_error(problem, path=plan.path, line=number)
            n_bad += 1
            if len(examples) < MAX_EXAMPLES:
                examples.append(BadRow(number, None, problem))
    if not n_bad:  # Polars fails on a file Python reads: nothing more precise to say
        raise data_error("cannot read as JSON lines", path=plan.path)
    if not good:
        return pl.DataFrame(), BadRowsFound(None, n_bad, examples)
    keep = set(good)
    with tempfile.TemporaryDirectory(prefix="sessionrec-") as tmp:
        copy = Path(tmp) / plan.path.with_suffix(".jsonl").name
        with open_text(plan.path) as src, copy.open("w", encoding="utf-8") as dst:
            for number, text in enumerate(src, start=1):
                if number in keep:
                    dst.write(text.rstrip("\r\n") + "\n")
        frame, problems = read_jsonl(replace(plan, path=copy), on_bad_rows)
    if problems is None:
        return frame, BadRowsFound(None, n_bad, examples)
    moved = [
        replace(row, line=good[row.line - 1] if row.line else None) for row in problems.examples
    ]
    merged = sorted(examples + moved, key=lambda row: row.line or 0)[:MAX_EXAMPLES]
    return frame, BadRowsFound(problems.mask, problems.count + n_bad, merged)


@dataclass
class _JsonLocator:
    """Record -> line: Polars skips blank lines, so count the non-blank ones."""

    plan: ReadPlan
    n_fields: int | None = None

    def lines(self, records: Sequence[int]) -> dict[int, tuple[int, int]]:
        wanted, last = set(records), max(records)
        found: dict[int, tuple[int, int]] = {}
        record = -1
        with open_text(self.plan.path) as handle:
            for number, text in enumerate(handle, start=1):
                if text.strip():
                    record += 1
                    if record in wanted:
                        found[record] = (number, -1)
                    if record >= last:
                        break
        return found

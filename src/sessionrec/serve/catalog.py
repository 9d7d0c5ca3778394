"""What the service reads besides the models: the catalog, popularity counts and id lists,
and the mapping of external id strings to a model's internal indices.

The catalog (``--catalog``: CSV/TSV/Parquet/JSONL, optionally gzipped) gives each item its
category, availability and display attributes; ``--popularity`` gives click counts for the
fallback chain (see :mod:`sessionrec.serve.rules`); ``--deny`` an id list.
"""

from __future__ import annotations

import gzip
import io
import logging
import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from sessionrec._errors import data_error
from sessionrec.data.sessions import UNKNOWN, ItemVocab
from sessionrec.models.base import Recommender

log = logging.getLogger("sessionrec.serve.catalog")

_AVAILABLE_COLUMNS = ("available", "availability", "in_stock")
_CATEGORY_COLUMNS = ("category", "category_id")
_COUNT_COLUMNS = ("count", "clicks", "popularity")
_TRUE = frozenset({"1", "true", "yes", "y", "t", "in_stock", "available"})
_FALSE = frozenset({"0", "false", "no", "n", "f", "out_of_stock", "unavailable", ""})


def _read_table(path: Path) -> Any:
    """A polars frame from CSV/TSV/Parquet/JSONL (optionally gzip-compressed)."""
    import polars as pl

    name = path.name.lower()
    compressed = name.endswith(".gz")
    if compressed:
        name = name[:-3]
    try:
        if name.endswith((".parquet", ".pq")):
            return pl.read_parquet(path)
        raw: bytes | Path = gzip.decompress(path.read_bytes()) if compressed else path
        source = io.BytesIO(raw) if isinstance(raw, bytes) else raw
        if name.endswith((".jsonl", ".ndjson", ".json")):
            return pl.read_ndjson(source)
        if name.endswith(".tsv"):
            return pl.read_csv(source, separator="\t", infer_schema_length=10_000)
        if name.endswith(".csv"):
            return pl.read_csv(source, infer_schema_length=10_000)
    except (OSError, ValueError, pl.exceptions.PolarsError) as exc:
        raise data_error(f"cannot read table: {exc}", path=path) from exc
    raise data_error(
        "unknown table format: use .csv, .tsv, .parquet, .jsonl or .ndjson (optionally .gz)",
        path=path,
    )


def _id_strings(values: Sequence[Any], path: Path) -> list[str]:
    ids = []
    for row, value in enumerate(values, 1):
        if value is None:
            raise data_error("empty item_id", path=path, line=row + 1, field="item_id")
        ids.append(str(value).strip())
    return ids


def _to_bool(values: Sequence[Any], path: Path, column: str) -> np.ndarray:
    out = np.ones(len(values), dtype=bool)
    for row, value in enumerate(values):
        if value is None:
            continue  # unknown availability: assume available
        if isinstance(value, bool):
            out[row] = value
        elif isinstance(value, (int, float)):
            out[row] = bool(value)
        else:
            text = str(value).strip().lower()
            if text in _TRUE:
                out[row] = True
            elif text in _FALSE:
                out[row] = False
            else:
                raise data_error(
                    f"expected true/false, got {value!r}", path=path, line=row + 2, field=column
                )
    return out


@dataclass(frozen=True, eq=False)
class Catalog:
    """The shop's items: category, availability and any other attributes, by external id.

    Any table whose columns include ``item_id`` works, so the synthetic shop's catalog
    (``item_id, name, category, intent, price, available, popularity_rank``) written as
    CSV, Parquet or JSONL loads as it is. Every column other than id, category and
    availability is an attribute, returned with ``details=true``.
    """

    ids: tuple[str, ...]
    row_of: dict[str, int]
    category: np.ndarray  # int32 per row, -1 = none
    category_names: tuple[str, ...]
    available: np.ndarray  # bool per row
    popularity: np.ndarray | None  # float64 per row, higher is more popular
    attribute_columns: dict[str, list[Any]]

    @classmethod
    def read(cls, path: str | Path) -> Catalog:
        file = Path(path)
        frame = _read_table(file)
        if "item_id" not in frame.columns:
            raise data_error(f"no 'item_id' column (has {frame.columns})", path=file)
        ids = _id_strings(frame["item_id"].to_list(), file)
        row_of = {item: row for row, item in enumerate(ids)}
        if len(row_of) != len(ids):
            seen: set[str] = set()
            for row, item in enumerate(ids):
                if item in seen:
                    raise data_error(f"duplicate item_id {item!r}", path=file, line=row + 2)
                seen.add(item)
        used = {"item_id"}
        category = np.full(len(ids), -1, dtype=np.int32)
        names: tuple[str, ...] = ()
        cat_column = next((c for c in _CATEGORY_COLUMNS if c in frame.columns), None)
        if cat_column is not None:
            used.add(cat_column)
            values = [None if v is None else str(v) for v in frame[cat_column].to_list()]
            names = tuple(sorted({v for v in values if v is not None}))
            code = {name: i for i, name in enumerate(names)}
            category = np.fromiter(
                (-1 if v is None else code[v] for v in values), dtype=np.int32, count=len(ids)
            )
        available = np.ones(len(ids), dtype=bool)
        avail_column = next((c for c in _AVAILABLE_COLUMNS if c in frame.columns), None)
        if avail_column is not None:
            used.add(avail_column)
            available = _to_bool(frame[avail_column].to_list(), file, avail_column)
        popularity = None
        if "popularity" in frame.columns:
            popularity = _numeric(frame["popularity"].to_list(), file, "popularity")
        elif "popularity_rank" in frame.columns:
            ranks = _numeric(frame["popularity_rank"].to_list(), file, "popularity_rank")
            popularity = np.where(ranks > 0, 1.0 / np.maximum(ranks, 1e-12), 0.0)
        attributes = {c: frame[c].to_list() for c in frame.columns if c not in used}
        log.info(
            "catalog %s: %d items, %d categories, %d unavailable",
            file,
            len(ids),
            len(names),
            int((~available).sum()),
        )
        return cls(
            ids=tuple(ids),
            row_of=row_of,
            category=category,
            category_names=names,
            available=available,
            popularity=popularity,
            attribute_columns=attributes,
        )

    def __len__(self) -> int:
        return len(self.ids)

    def attributes(self, row: int) -> dict[str, Any]:
        return {name: values[row] for name, values in self.attribute_columns.items()}


def _numeric(values: Sequence[Any], path: Path, column: str) -> np.ndarray:
    out = np.zeros(len(values), dtype=np.float64)
    for row, value in enumerate(values):
        if value is None:
            continue
        try:
            out[row] = float(value)
        except (TypeError, ValueError):
            raise data_error(
                f"expected a number, got {value!r}", path=path, line=row + 2, field=column
            ) from None
        if not math.isfinite(out[row]) or out[row] < 0:
            raise data_error(f"expected a number >= 0, got {value!r}", path=path, field=column)
    return out


def read_popularity(path: str | Path) -> tuple[list[str], np.ndarray]:
    """(external ids, counts) from a sessions-txt file or a table with item_id and a count."""
    file = Path(path)
    if file.suffix.lower() == ".txt":
        # Only the clicks per id are needed: counting tokens is ~10x faster than building
        # SessionData, and every service worker does it at start-up.
        try:
            counts = Counter(file.read_text().split())
        except (OSError, UnicodeDecodeError) as exc:
            raise data_error(f"cannot read sessions file: {exc}", path=file) from exc
        if not counts:
            raise data_error("file is empty: expected one session per line", path=file)
        return list(counts), np.fromiter(counts.values(), dtype=np.float64, count=len(counts))
    frame = _read_table(file)
    if "item_id" not in frame.columns:
        raise data_error(f"no 'item_id' column (has {frame.columns})", path=file)
    column = next((c for c in _COUNT_COLUMNS if c in frame.columns), None)
    if column is None:
        raise data_error(f"no count column: expected one of {list(_COUNT_COLUMNS)}", path=file)
    ids = _id_strings(frame["item_id"].to_list(), file)
    return ids, _numeric(frame[column].to_list(), file, column)


def read_id_list(path: str | Path) -> list[str]:
    """Item ids, one per line; blank lines and ``#`` comments are ignored."""
    file = Path(path)
    try:
        lines = file.read_text().splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise data_error(f"cannot read id list: {exc}", path=file) from exc
    return [s for s in (line.split("#", 1)[0].strip() for line in lines) if s]


def fallback_popularity(
    model: Recommender, popularity: tuple[Sequence[str], np.ndarray] | None = None
) -> np.ndarray | None:
    """Clicks per internal item (float64) that rank the fallback chain.

    ``popularity`` (``--popularity``: external ids and counts, as :func:`read_popularity`
    returns them) overrides; otherwise the training clicks the model folder keeps
    (:meth:`Recommender.training_counts`). ``None`` when there is neither: a folder saved
    before sessionrec kept counts, served without ``--popularity``.
    """
    if popularity is not None:
        ids, counts = popularity
        idx = encode_ids(model.vocab_, list(ids))
        known = idx >= 0
        aligned = np.zeros(model.n_items, dtype=np.float64)
        np.add.at(aligned, idx[known], counts[known])
        return aligned
    kept = model.training_counts()
    return None if kept is None else kept.astype(np.float64)


NO_COUNTS_WARNING = (
    "the model folder %s keeps no training counts (saved by an older sessionrec): sessions "
    "the model cannot answer (empty, only unknown items) get no fallback items unless "
    "--popularity FILE is given; save the model again with this version to keep them"
)
"""Logged (with the folder) when a model without counts is used without ``--popularity``."""


def encode_ids(vocab: ItemVocab, ids: Sequence[str]) -> np.ndarray:
    """Internal indices (int64, :data:`UNKNOWN` for unknown ids) of external id strings.

    Integer vocabularies take a vectorised path when every id is plain ASCII digits (the
    common case, and ~50x faster than per-id lookups); other ids go through the
    vocabulary's own lenient lookup, so both paths agree with :meth:`ItemVocab.index`.
    """
    if not ids:
        return np.zeros(0, dtype=np.int64)
    if vocab.kind == "int" and all(s.isascii() and s.isdigit() and len(s) < 19 for s in ids):
        return vocab.encode(np.array([int(s) for s in ids], dtype=np.int64)).astype(np.int64)
    return np.fromiter((safe_index(vocab, s) for s in ids), dtype=np.int64, count=len(ids))


def safe_index(vocab: ItemVocab, text: str) -> int:
    """:meth:`ItemVocab.index`, with ids it cannot even parse counted as unknown.

    ``ItemVocab`` reads integer ids with ``str.isdigit``, which also accepts characters such
    as ``"²"`` that ``int()`` then rejects; for the service any such id is simply unknown.
    """
    try:
        return vocab.index(text)
    except (ValueError, OverflowError):
        return UNKNOWN

"""The per-session A/B export: one row per visitor session of a pilot.

``sessionrec abtest report`` reads it; ``sessionrec abtest simulate`` writes it. CSV (with a
header) or JSONL (one object per line), chosen by the file name (``.jsonl``/``.ndjson``,
else CSV); the fields:

=============  ===========================================================================
session_id     text, unique in the file
variant        text: the A/B variant the session was served by (e.g. ``default``, ``b``)
impressions    integer >= 0: recommendation lists shown in the session
clicks         integer >= 0: recommended items clicked
carts          integer >= 0: add-to-carts of items recommended earlier in the session
purchases      integer >= 0: purchases of items recommended earlier in the session
revenue        number >= 0: revenue of those purchases (0 when unknown)
first_seen     the session's first event: Unix seconds, or ISO-8601 text (UTC without an
               offset)
=============  ===========================================================================

A bad row is a :class:`~sessionrec._errors.DataError` naming the file, the line and the
field, like the click-log readers.

The service keeps the same rows per session (its KPI summaries, ``first_seen`` being its
first answer's time): :func:`read_store_sessions` reads them from its Redis store, and
``GET /v1/admin/kpis/sessions`` exports them as JSONL with either store.
"""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from sessionrec._atomic import atomic_file
from sessionrec._errors import ConfigError, DataError, data_error

FIELDS: tuple[str, ...] = (
    "session_id",
    "variant",
    "impressions",
    "clicks",
    "carts",
    "purchases",
    "revenue",
    "first_seen",
)
COUNT_FIELDS: tuple[str, ...] = ("impressions", "clicks", "carts", "purchases")


@dataclass(frozen=True)
class SessionLog:
    """The export as aligned arrays, one entry per session."""

    session_ids: np.ndarray  # object (str)
    variants: np.ndarray  # object (str)
    impressions: np.ndarray  # int64
    clicks: np.ndarray  # int64
    carts: np.ndarray  # int64
    purchases: np.ndarray  # int64
    revenue: np.ndarray  # float64
    first_seen: np.ndarray  # float64, Unix seconds

    def __len__(self) -> int:
        return int(self.session_ids.shape[0])

    @property
    def variant_names(self) -> list[str]:
        """The variants in order of first appearance."""
        names: dict[str, None] = {}
        for name in self.variants:
            names.setdefault(str(name), None)
        return list(names)

    def subset(self, mask: np.ndarray) -> SessionLog:
        return SessionLog(**{attr: getattr(self, attr)[mask] for attr in _ATTR.values()})

    def sorted_by_time(self) -> SessionLog:
        return self.subset(np.argsort(self.first_seen, kind="stable"))

    @classmethod
    def from_rows(cls, rows: list[dict[str, Any]]) -> SessionLog:
        """A log from already checked rows (dicts with every field of :data:`FIELDS`)."""
        columns = {name: [row[name] for row in rows] for name in FIELDS}
        return cls(
            session_ids=np.array(columns["session_id"], dtype=object),
            variants=np.array(columns["variant"], dtype=object),
            impressions=np.array(columns["impressions"], dtype=np.int64),
            clicks=np.array(columns["clicks"], dtype=np.int64),
            carts=np.array(columns["carts"], dtype=np.int64),
            purchases=np.array(columns["purchases"], dtype=np.int64),
            revenue=np.array(columns["revenue"], dtype=np.float64),
            first_seen=np.array(columns["first_seen"], dtype=np.float64),
        )


_ATTR = {name: name for name in FIELDS} | {"session_id": "session_ids", "variant": "variants"}
"""Export field -> :class:`SessionLog` attribute."""


# ------------------------------------------------------------------ reading
def read_session_log(path: str | Path) -> SessionLog:
    """Read and check an export (CSV or JSONL, see the module docstring)."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such file")
    rows: list[dict[str, Any]] = []
    seen: dict[str, int] = {}
    for line, raw in _records(path):
        row = check_row(raw, path, line)
        first = seen.setdefault(row["session_id"], line)
        if first != line:
            raise data_error(
                f"session {row['session_id']!r} repeats the one on line {first}",
                path=path,
                line=line,
                field="session_id",
            )
        rows.append(row)
    if not rows:
        raise data_error("the export holds no sessions", path=path)
    return SessionLog.from_rows(rows)


def _records(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """(line number, raw record) pairs of a CSV or JSONL file."""
    if path.suffix.lower() in (".jsonl", ".ndjson"):
        with path.open(encoding="utf-8") as handle:
            for line, text in enumerate(handle, start=1):
                if not text.strip():
                    continue
                try:
                    record = json.loads(text)
                except json.JSONDecodeError as exc:
                    raise data_error(f"not valid JSON ({exc.msg})", path=path, line=line) from None
                if not isinstance(record, dict):
                    raise data_error("a line must be a JSON object", path=path, line=line)
                yield line, record
        return
    with path.open(encoding="utf-8", newline="") as handle:
        reader = csv.DictReader(handle)
        header = [name.strip() for name in reader.fieldnames or []]
        missing = [name for name in FIELDS if name not in header]
        if missing:
            raise data_error(f"the header lacks {', '.join(missing)}", path=path, line=1)
        reader.fieldnames = header
        for record in reader:
            if None in record:  # more fields than the header names
                raise data_error("more fields than the header", path=path, line=reader.line_num)
            yield reader.line_num, record


def check_row(raw: dict[str, Any], path: object, line: int) -> dict[str, Any]:
    """One record's fields parsed and checked; a DataError naming the bad field."""
    row: dict[str, Any] = {}
    for name in FIELDS:
        value = raw.get(name)
        if value is None or (isinstance(value, str) and not value.strip()):
            raise data_error("missing value", path=path, line=line, field=name)
        row[name] = _parse(name, value, path, line)
    return row


def _parse(name: str, value: Any, path: object, line: int) -> Any:
    def bad(message: str) -> DataError:
        return data_error(f"{message}, got {value!r}", path=path, line=line, field=name)

    if name in ("session_id", "variant"):
        return str(value).strip()
    if name in COUNT_FIELDS:
        if isinstance(value, bool):
            raise bad("expected an integer >= 0")
        try:
            number = int(value) if isinstance(value, int) else int(str(value).strip())
        except ValueError:
            raise bad("expected an integer >= 0") from None
        if number < 0:
            raise bad("expected an integer >= 0")
        return number
    if name == "revenue":
        number_f = _float(value)
        if number_f is None or not math.isfinite(number_f) or number_f < 0:
            raise bad("expected a finite number >= 0")
        return number_f
    # first_seen: Unix seconds or ISO-8601
    seconds = _float(value)
    if seconds is None:
        try:
            moment = datetime.fromisoformat(str(value).strip().replace("Z", "+00:00"))
        except ValueError:
            raise bad("expected Unix seconds or an ISO-8601 time") from None
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        seconds = moment.timestamp()
    if not math.isfinite(seconds):
        raise bad("expected Unix seconds or an ISO-8601 time")
    return seconds


def _float(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value)
    try:
        return float(str(value).strip())
    except ValueError:
        return None


def read_store_sessions(
    url: str, *, prefix: str = "sessionrec:", limit: int = 1_000_000, timeout: float = 5.0
) -> SessionLog:
    """The per-session KPI summaries the service keeps in the Redis store at ``url`` (keys
    under ``prefix``, as ``sessionrec serve --redis-prefix``), at most ``limit`` of them."""
    import asyncio

    from redis.asyncio import Redis
    from redis.exceptions import RedisError

    from sessionrec.serve.store.redis_kpis import read_summaries, summary_keys
    from sessionrec.serve.store.redis_store import redacted

    if not url.startswith(("redis://", "rediss://", "unix://")):
        raise ConfigError(
            f"--store must be a redis:// URL, got {url!r} (the memory store lives in the "
            "service process: save GET /v1/admin/kpis/sessions and report on that file)"
        )

    async def direct(step: Any) -> Any:
        return await step()

    async def read() -> list[Any]:
        client = Redis.from_url(url, socket_timeout=timeout, socket_connect_timeout=timeout)
        try:
            return await read_summaries(client, summary_keys(prefix), limit, direct)
        finally:
            await client.aclose()

    source = redacted(url)
    try:
        summaries = asyncio.run(read())
    except (RedisError, OSError) as exc:
        raise DataError(f"{source}: cannot read the pilot ({exc})") from None
    rows = [check_row(s.to_dict(), source, line) for line, s in enumerate(summaries, start=1)]
    if not rows:
        raise data_error(f"no session summaries under the prefix {prefix!r}", path=source)
    return SessionLog.from_rows(rows)


# ------------------------------------------------------------------ writing
def write_session_log(log: SessionLog, path: str | Path) -> Path:
    """Write ``log`` as CSV, or JSONL for a ``.jsonl``/``.ndjson`` name, atomically."""
    path = Path(path)
    records = (
        {name: _plain(getattr(log, _ATTR[name])[i]) for name in FIELDS} for i in range(len(log))
    )
    with atomic_file(path) as tmp, tmp.open("w", encoding="utf-8", newline="") as handle:
        if path.suffix.lower() in (".jsonl", ".ndjson"):
            for record in records:
                handle.write(json.dumps(record) + "\n")
        else:
            writer = csv.DictWriter(handle, fieldnames=list(FIELDS), lineterminator="\n")
            writer.writeheader()
            writer.writerows(records)
    return path


def _plain(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value

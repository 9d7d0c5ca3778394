"""File access shared by the readers: (gzip) text for the Python slow paths, Polars errors."""

from __future__ import annotations

import gzip
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

from sessionrec._errors import DataError, data_error
from sessionrec.data.events.planning import ReadPlan


@contextmanager
def open_text(path: Path) -> Iterator[IO[str]]:
    """Open a (possibly gzip-compressed) text file for the Python slow paths."""
    with path.open("rb") as probe:
        magic = probe.read(2)
    if magic == b"\x1f\x8b":
        with gzip.open(path, "rt", encoding="utf-8-sig", errors="replace", newline="") as f:
            yield f
    else:
        with path.open(encoding="utf-8-sig", errors="replace", newline="") as f:
            yield f


def polars_read_error(plan: ReadPlan, exc: Exception) -> DataError:
    text = str(exc).strip().splitlines()
    return data_error(
        f"cannot read as {plan.format}: {text[0] if text else type(exc).__name__}",
        path=plan.path,
    )

"""File access shared by the readers: (gzip) text for the Python slow paths, Polars errors."""

from __future__ import annotations

import gzip
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

from sessionrec._errors import DataError, data_error
from sessionrec.data.events.planning import ReadPlan, normalised_name
from sessionrec.data.events.presets import PRESETS


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


def guess_preset(path: Path) -> str | None:
    """The preset whose log ``path`` looks like, or ``None``: for a preset with a header,
    the first line holds all its columns; for one without, the file is named like its logs
    (e.g. ``yoochoose-clicks.dat``). For suggestions in error messages only."""
    try:
        with open_text(path) as handle:
            first = handle.readline().strip()
    except OSError:
        return None
    for name, preset in PRESETS.items():
        if preset.format not in ("csv", "tsv"):
            continue
        if preset.has_header:
            separator = preset.separator or ("\t" if preset.format == "tsv" else ",")
            header = {normalised_name(field) for field in first.split(separator)}
            if all(normalised_name(column) in header for column in preset.columns.values()):
                return name
        elif preset.filename and path.name.endswith(preset.filename):
            return name
    return None


def polars_read_error(plan: ReadPlan, exc: Exception) -> DataError:
    text = str(exc).strip().splitlines()
    return data_error(
        f"cannot read as {plan.format}: {text[0] if text else type(exc).__name__}",
        path=plan.path,
    )

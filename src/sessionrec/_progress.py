"""Progress bars for long loops: on stderr, and silent when stderr is not a terminal."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import TypeVar

from tqdm.auto import tqdm

T = TypeVar("T")


def progress(
    iterable: Iterable[T], *, total: int | None = None, desc: str = "", unit: str = "it"
) -> Iterator[T]:
    """Wrap ``iterable`` in a tqdm bar that disables itself when not on a terminal."""
    yield from tqdm(iterable, total=total, desc=desc, unit=unit, disable=None, leave=False)

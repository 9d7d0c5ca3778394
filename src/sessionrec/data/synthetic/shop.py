"""A synthetic shop: a catalog and a click log drawn on it, from one seed."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

import polars as pl

from sessionrec.data.sessions import ItemId
from sessionrec.data.synthetic.catalog import demo_session, make_catalog
from sessionrec.data.synthetic.clicks import generate_clicks


@dataclass(frozen=True)
class SyntheticShop:
    """A catalog and a click log drawn on it, for the demo and tests."""

    catalog: pl.DataFrame
    clicks: pl.DataFrame

    def demo_session(self) -> list[ItemId]:
        """See :func:`demo_session`."""
        return demo_session(self.catalog)


def generate_shop(
    n_events: int = 100_000,
    seed: int = 0,
    n_items: int = 2000,
    days: float = 30,
    start: str | date | datetime | float = "2026-01-01",
    **behaviour: Any,
) -> SyntheticShop:
    """A catalog of ``n_items`` products and ``n_events`` clicks on it (same ``seed``).

    ``behaviour`` takes the keyword-only knobs of :func:`generate_clicks`.
    """
    catalog = make_catalog(n_items, seed)
    clicks = generate_clicks(n_events, seed, n_items, days, start, catalog, **behaviour)
    return SyntheticShop(catalog, clicks)

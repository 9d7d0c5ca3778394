"""The synthetic catalog: named products in the categories of :data:`TAXONOMY`."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import polars as pl

from sessionrec._errors import ConfigError
from sessionrec.data.sessions import ItemId
from sessionrec.data.synthetic.categories import DEMO_CATEGORIES, INTENTS, MODEL_SUFFIXES

FIRST_ITEM_ID = 1_000_000
"""``item_id`` of the first catalog row; ids are consecutive in catalog order."""


def make_catalog(n_items: int = 2000, seed: int = 0) -> pl.DataFrame:
    """A catalog of ``n_items`` named products across all categories of :data:`TAXONOMY`.

    Columns: ``item_id`` (Int64, consecutive from :data:`FIRST_ITEM_ID`), ``name``,
    ``category``, ``intent`` (String), ``price`` (Float64, ends in .99), ``available``
    (Boolean, about 95% true: sold-out items still get clicks, which is what serving
    rules filter) and ``popularity_rank`` (Int32, 1 = most clicked item of its category:
    the latent order behind the Zipf law of :func:`generate_clicks`).

    Rows are grouped by intent and category in taxonomy order. Category sizes are
    proportional to the intent's traffic with some per-category noise, every category
    gets at least one item, so ``n_items`` must be at least the number of categories
    (46). Names are not unique (a million products share a finite set of parts); ids are.
    Builds 1M items in about a second.
    """
    categories = [(i, c) for i, intent in enumerate(INTENTS) for c in intent.categories]
    n_cats = len(categories)
    if isinstance(n_items, bool) or not isinstance(n_items, (int, np.integer)):
        raise ConfigError(f"n_items must be an integer, not {n_items!r}")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ConfigError(f"seed must be a non-negative integer, not {seed!r}")
    if n_items < n_cats:
        raise ConfigError(f"n_items must be at least the number of categories ({n_cats})")
    streams = np.random.default_rng(np.random.SeedSequence([seed, 1])).spawn(3)
    rng_size, rng_name, rng_item = streams

    # Category sizes: intent weight x log-normal noise, largest-remainder rounding, >= 1.
    base = np.array([INTENTS[i].weight for i, _ in categories])
    share = base * rng_size.lognormal(0.0, 0.4, n_cats)
    sizes = _allocate(int(n_items), share)
    cat = np.repeat(np.arange(n_cats, dtype=np.int32), sizes)
    intent = np.array([i for i, _ in categories], dtype=np.int32)[cat]

    # Names: brand [line [model number | suffix]] noun, parts drawn within the intent.
    brand_off, brands = _flatten([it.brands for it in INTENTS])
    line_off, lines = _flatten([it.lines for it in INTENTS])
    n_brands = np.array([len(it.brands) for it in INTENTS])[intent]
    n_lines = np.array([len(it.lines) for it in INTENTS])[intent]
    brand_idx = brand_off[intent] + (rng_name.random(n_items) * n_brands).astype(np.int64)
    line_idx = line_off[intent] + (rng_name.random(n_items) * n_lines).astype(np.int64)
    form = rng_name.choice(4, size=n_items, p=[0.2, 0.25, 0.35, 0.2])
    model_no = rng_name.integers(2, 10, n_items)
    suffix_idx = rng_name.integers(0, len(MODEL_SUFFIXES), n_items)
    nouns = pl.Series([c.noun for _, c in categories])
    parts = pl.DataFrame(
        {
            "brand": pl.Series(brands).gather(brand_idx),
            "line": pl.Series(lines).gather(line_idx),
            "model": pl.Series(model_no).cast(pl.String),
            "suffix": pl.Series(list(MODEL_SUFFIXES)).gather(suffix_idx),
            "noun": nouns.gather(cat),
            "form": form,
        }
    )
    form_col = pl.col("form")
    name = parts.select(
        pl.concat_str(
            pl.col("brand"),
            pl.when(form_col >= 1).then(pl.col("line")),
            pl.when(form_col == 2).then(pl.col("model")),
            pl.when(form_col == 3).then(pl.col("suffix")),
            pl.col("noun"),
            separator=" ",
            ignore_nulls=True,
        )
    ).to_series()

    # Prices around the category median; latent popularity order shuffled within blocks.
    median = np.array([c.price for _, c in categories])[cat]
    raw = median * rng_item.lognormal(0.0, 0.35, n_items)
    price = np.maximum(np.floor(raw), 1.0) - 0.01
    available = rng_item.random(n_items) >= 0.05
    order = np.lexsort((rng_item.random(n_items), cat))
    block_start = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    rank = np.empty(n_items, dtype=np.int32)
    rank[order] = np.arange(n_items) - block_start[cat[order]] + 1

    return pl.DataFrame(
        {
            "item_id": pl.Series(np.arange(n_items, dtype=np.int64) + FIRST_ITEM_ID),
            "name": name,
            "category": pl.Series([c.name for _, c in categories]).gather(cat),
            "intent": pl.Series([it.name for it in INTENTS]).gather(intent),
            "price": pl.Series(price.round(2)),
            "available": pl.Series(available),
            "popularity_rank": pl.Series(rank),
        }
    )


def _allocate(total: int, share: np.ndarray) -> np.ndarray:
    """Split ``total`` into integer parts proportional to ``share``, each at least 1."""
    extra = total - share.size
    exact = share / share.sum() * extra
    sizes = np.floor(exact).astype(np.int64)
    remainder = extra - int(sizes.sum())
    if remainder:
        sizes[np.argsort(-(exact - sizes), kind="stable")[:remainder]] += 1
    return sizes + 1


def _flatten(groups: Sequence[tuple[str, ...]]) -> tuple[np.ndarray, list[str]]:
    """Concatenate string groups; return each group's start offset and the flat list."""
    offsets = np.cumsum([0, *(len(g) for g in groups[:-1])]).astype(np.int64)
    return offsets, [s for g in groups for s in g]


def demo_session(
    catalog: pl.DataFrame, categories: Sequence[str] = DEMO_CATEGORIES
) -> list[ItemId]:
    """The best-selling item of each category, in order: a session with an obvious intent.

    With the default categories this is running shoes -> sports shorts -> fitness tracker,
    for which any sensible model trained on :func:`generate_clicks` output must recommend
    sportswear/fitness items. "Best-selling" is ``popularity_rank`` 1 when the catalog has
    that column, otherwise the category's first row.
    """
    ranked = catalog.with_row_index("_row")
    key = "popularity_rank" if "popularity_rank" in catalog.columns else "_row"
    out: list[ItemId] = []
    for category in categories:
        rows = ranked.filter(pl.col("category") == category)
        if rows.height == 0:
            raise ConfigError(f"the catalog has no category {category!r}")
        out.append(rows.sort(key, "_row")["item_id"][0])
    return out

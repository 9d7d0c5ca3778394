"""A seeded synthetic shop: a catalog of named products and a visitor click log.

The demo, the tests and the scale benchmark need click data whose structure is *known*,
so that a recommendation can be judged by eye ("running shoes, sports shorts, a fitness
tracker: the model suggests sports bras and water bottles") and a test can assert a
property with a computed answer. Public logs are large, licensed and opaque; this module
makes a realistic stand-in in a fraction of a second (100k clicks) or well under a minute
(20M clicks), fully vectorised in numpy.

The world it simulates
----------------------
* **Catalog** (:func:`make_catalog`): products in 46 categories grouped into 8 shopping
  intents ("sportswear/fitness": running shoes, sports shorts, fitness trackers, ...).
  Names are assembled from brand, product line and model parts of the intent, so they read
  like real products ("Swift Runner 3 Running Shoes"). Each category's items have a latent
  ``popularity_rank`` (1 = best seller) that drives a Zipf law of clicks.
* **Sessions** (:func:`generate_clicks`): a session opens on a category (chosen in
  proportion to the category's size) and then, click by click, either repeats the
  previous item (often as an add-to-cart or purchase), stays in the category for another
  item, or jumps. A jump is a Markov step over categories: mostly to a related category of
  the same intent (nearby categories in the taxonomy more likely), rarely to another
  intent; a minority of "multi-intent" sessions switch intent much more often. Lengths
  follow a mixture of two geometric laws (about half the sessions have one or two clicks,
  mean about four, long tail).
* **Time and visitors**: clicks are tens of seconds to minutes apart (never more than 20
  minutes), sessions start anywhere in the period, and anonymous visitors (``user_id``)
  often come back for more sessions, always more than 30 minutes after their previous
  session ended. Cutting a visitor's clicks at 30 minutes of inactivity therefore recovers
  the true ``session_id`` exactly; callers may also use ``session_id`` directly.

Identifiers
-----------
``item_id`` is an ``Int64`` SKU number starting at :data:`FIRST_ITEM_ID` (1,000,000), in
catalog row order. Integers keep a 20M-click log compact and fast to index, and because
they are never equal to the internal indices ``0..n-1`` a model that confuses the two fails
loudly in tests. ``session_id`` and ``user_id`` are ``Int64`` numbered from 1 in order of
first appearance in time.

Reproducibility: everything is drawn from ``numpy.random.default_rng`` streams derived from
``seed``, so the same arguments give identical frames with the same numpy version.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from types import MappingProxyType
from typing import Any

import numpy as np
import polars as pl

from sessionrec._errors import ConfigError, DataError
from sessionrec.data.sessions import ItemId

__all__ = [
    "DEMO_CATEGORIES",
    "EVENT_TYPES",
    "FIRST_ITEM_ID",
    "TAXONOMY",
    "SyntheticShop",
    "demo_session",
    "generate_clicks",
    "generate_shop",
    "make_catalog",
]

FIRST_ITEM_ID = 1_000_000
"""``item_id`` of the first catalog row; ids are consecutive in catalog order."""

EVENT_TYPES: tuple[str, ...] = ("view", "cart", "purchase")
"""The event types in the click log, most frequent first."""

DEMO_CATEGORIES: tuple[str, ...] = ("running shoes", "sports shorts", "fitness trackers")
"""Categories of the demo session returned by :func:`demo_session`."""


# --------------------------------------------------------------------------- taxonomy
@dataclass(frozen=True)
class _Category:
    name: str  # category label, lower case plural: "running shoes"
    noun: str  # how a product name ends: "Running Shoes", "Fitness Tracker"
    price: float  # median price in the shop's currency


@dataclass(frozen=True)
class _Intent:
    name: str
    weight: float  # relative traffic of the intent (scales its categories' sizes)
    brands: tuple[str, ...]
    lines: tuple[str, ...]
    categories: tuple[_Category, ...]


def _cats(*spec: tuple[str, str, float]) -> tuple[_Category, ...]:
    return tuple(_Category(name, noun, price) for name, noun, price in spec)


# Categories are listed so that neighbours are related: a jump inside an intent prefers
# categories close in this order (on a ring), which gives sequence-aware models an order
# signal beyond mere co-occurrence.
_INTENTS: tuple[_Intent, ...] = (
    _Intent(
        "sportswear/fitness",
        1.2,
        ("Swift", "AeroFit", "PulseBand", "Stride", "Vertex", "Kinetic", "CoreFlex", "Zenith"),
        ("Runner", "Tempo", "Sprint", "Flow", "Endure", "Glide", "Boost", "Pace"),
        _cats(
            ("running shoes", "Running Shoes", 89.0),
            ("sports shorts", "Sports Shorts", 29.0),
            ("fitness trackers", "Fitness Tracker", 79.0),
            ("sports bras", "Sports Bra", 35.0),
            ("water bottles", "Water Bottle", 19.0),
            ("yoga mats", "Yoga Mat", 39.0),
            ("resistance bands", "Resistance Bands", 17.0),
            ("gym bags", "Gym Bag", 45.0),
        ),
    ),
    _Intent(
        "kitchen",
        1.0,
        ("Culina", "Ferro", "Copperleaf", "Brava", "Saltbox", "Tavola", "Hearthstone"),
        ("Classic", "Artisan", "Everyday", "Signature", "Prime", "Heritage", "Bistro"),
        _cats(
            ("frying pans", "Frying Pan", 39.0),
            ("chef knives", "Chef Knife", 59.0),
            ("cutting boards", "Cutting Board", 25.0),
            ("mixing bowls", "Mixing Bowl Set", 22.0),
            ("blenders", "Blender", 69.0),
            ("coffee makers", "Coffee Maker", 89.0),
        ),
    ),
    _Intent(
        "electronics",
        1.3,
        ("Voltix", "SonicWave", "Nexa", "Lumo", "Ampere", "Qubit", "Zentro", "Fluxon"),
        ("Air", "Core", "Ultra", "Flex", "Go", "Pulse", "Nano", "Studio"),
        _cats(
            ("headphones", "Headphones", 79.0),
            ("bluetooth speakers", "Bluetooth Speaker", 59.0),
            ("power banks", "Power Bank", 35.0),
            ("chargers", "Charger", 25.0),
            ("usb cables", "USB Cable", 12.0),
            ("phone cases", "Phone Case", 15.0),
        ),
    ),
    _Intent(
        "home",
        1.0,
        ("Linden", "Casa Nova", "Oakridge", "Soft Nest", "Lumen", "Nordic Loft", "Willow"),
        ("Cloud", "Serene", "Haven", "Drift", "Luxe", "Calm", "Aurora"),
        _cats(
            ("bedding", "Bedding Set", 59.0),
            ("cushions", "Cushion", 22.0),
            ("curtains", "Curtains", 39.0),
            ("rugs", "Rug", 79.0),
            ("lamps", "Lamp", 45.0),
        ),
    ),
    _Intent(
        "outdoor/camping",
        0.7,
        ("Trailhead", "Summit Gear", "Northbound", "Wildpine", "Ridgeline", "Basecamp"),
        ("Explorer", "Alpine", "Ranger", "Nomad", "Voyager", "Scout", "Horizon"),
        _cats(
            ("tents", "Tent", 149.0),
            ("sleeping bags", "Sleeping Bag", 69.0),
            ("camping stoves", "Camping Stove", 49.0),
            ("headlamps", "Headlamp", 25.0),
            ("backpacks", "Backpack", 79.0),
            ("hiking boots", "Hiking Boots", 119.0),
        ),
    ),
    _Intent(
        "baby",
        0.6,
        ("Little Sprout", "Cuddle Bear", "Tiny Steps", "Moonbeam", "Happy Nest", "Snugglebug"),
        ("Comfort", "Gentle", "Dream", "Sunny", "Pure", "Care"),
        _cats(
            ("diapers", "Diapers", 24.0),
            ("pacifiers", "Pacifier", 8.0),
            ("baby bottles", "Baby Bottle", 15.0),
            ("baby monitors", "Baby Monitor", 89.0),
            ("strollers", "Stroller", 299.0),
        ),
    ),
    _Intent(
        "beauty",
        0.9,
        ("Lumiere", "Velvet Rose", "Pure Glow", "Aurelia", "Silk & Stone", "Bloom", "Nuve"),
        ("Radiance", "Hydra", "Botanica", "Glow", "Matte", "Essence", "Velour"),
        _cats(
            ("face creams", "Face Cream", 29.0),
            ("shampoos", "Shampoo", 12.0),
            ("perfumes", "Eau de Parfum", 69.0),
            ("lipsticks", "Lipstick", 18.0),
            ("nail polish", "Nail Polish", 9.0),
        ),
    ),
    _Intent(
        "pets",
        0.6,
        ("Happy Paws", "Whisker & Co", "Good Boy", "Purrfect", "Barkley", "Tailwind"),
        ("Premium", "Natural", "Active", "Cozy", "Vital", "Senior"),
        _cats(
            ("dog food", "Dog Food", 39.0),
            ("dog leashes", "Dog Leash", 19.0),
            ("pet beds", "Pet Bed", 45.0),
            ("cat toys", "Cat Toy", 9.0),
            ("cat litter", "Cat Litter", 15.0),
        ),
    ),
)

TAXONOMY: Mapping[str, tuple[str, ...]] = MappingProxyType(
    {intent.name: tuple(c.name for c in intent.categories) for intent in _INTENTS}
)
"""Intent -> its categories, in catalog order (read-only)."""

_MODEL_SUFFIXES = ("Pro", "Lite", "Max", "Plus", "X", "Sport", "Elite", "Mini")

# ----------------------------------------------------------------- behaviour constants
_CART_GIVEN_REPEAT = 0.40  # a repeated click is an add-to-cart ...
_PURCHASE_GIVEN_REPEAT = 0.15  # ... or a purchase of the item just viewed
_CART_GIVEN_NEW = 0.02  # an add-to-cart straight from a listing
_SWITCH_SHARE_FOCUSED = 0.05  # share of a focused session's jumps that leave the intent
_SWITCH_SHARE_MULTI = 0.40  # same for a multi-intent session
_NEIGHBOUR_BOOST = (4.0, 2.0)  # weight of categories 1 and 2 steps away in the intent
_RETURN_SAME_START = 0.5  # a returning visitor reopens their first session's category
_LONG_SESSION_SHARE = 0.25  # sessions drawn from the long geometric component ...
_LONG_SESSION_FACTOR = 3.0  # ... whose mean is this many times the short one's
_GAP_MEDIAN_S = 40.0  # median seconds between two clicks of a session
_GAP_SIGMA = 1.0  # log-normal spread of those gaps
_GAP_MAX_S = 20 * 60.0  # no gap inside a session reaches the 30-minute inactivity cut
_SESSION_MAX_S = 3 * 3600.0  # longer sessions are compressed to this duration
_RETURN_MIN_S = 31 * 60.0  # a visitor's next session starts at least this long after
_RETURN_MEDIAN_S = 6 * 3600.0  # median extra wait before a return visit
_RETURN_SIGMA = 1.5
_RETURN_MAX_EXTRA_S = 7 * 86400.0


# ---------------------------------------------------------------------------- catalog
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
    categories = [(i, c) for i, intent in enumerate(_INTENTS) for c in intent.categories]
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
    base = np.array([_INTENTS[i].weight for i, _ in categories])
    share = base * rng_size.lognormal(0.0, 0.4, n_cats)
    sizes = _allocate(int(n_items), share)
    cat = np.repeat(np.arange(n_cats, dtype=np.int32), sizes)
    intent = np.array([i for i, _ in categories], dtype=np.int32)[cat]

    # Names: brand [line [model number | suffix]] noun, parts drawn within the intent.
    brand_off, brands = _flatten([it.brands for it in _INTENTS])
    line_off, lines = _flatten([it.lines for it in _INTENTS])
    n_brands = np.array([len(it.brands) for it in _INTENTS])[intent]
    n_lines = np.array([len(it.lines) for it in _INTENTS])[intent]
    brand_idx = brand_off[intent] + (rng_name.random(n_items) * n_brands).astype(np.int64)
    line_idx = line_off[intent] + (rng_name.random(n_items) * n_lines).astype(np.int64)
    form = rng_name.choice(4, size=n_items, p=[0.2, 0.25, 0.35, 0.2])
    model_no = rng_name.integers(2, 10, n_items)
    suffix_idx = rng_name.integers(0, len(_MODEL_SUFFIXES), n_items)
    nouns = pl.Series([c.noun for _, c in categories])
    parts = pl.DataFrame(
        {
            "brand": pl.Series(brands).gather(brand_idx),
            "line": pl.Series(lines).gather(line_idx),
            "model": pl.Series(model_no).cast(pl.String),
            "suffix": pl.Series(list(_MODEL_SUFFIXES)).gather(suffix_idx),
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
            "intent": pl.Series([it.name for it in _INTENTS]).gather(intent),
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


# ------------------------------------------------------------------------ click model
@dataclass(frozen=True)
class _Structure:
    """What the click model needs from a catalog, as numpy arrays over catalog rows."""

    n_cats: int
    cat_weight: np.ndarray  # (C,) traffic share of each category (sums to 1)
    cat_intent: np.ndarray  # (C,) intent index of each category
    by_rank: np.ndarray  # catalog rows sorted by (category, popularity)
    block_end: np.ndarray  # (C,) end of each category's block in by_rank


def _structure(catalog: pl.DataFrame) -> _Structure:
    """Categories, intents and popularity order of a catalog (ours or a caller's)."""
    for column in ("item_id", "category", "intent"):
        if column not in catalog.columns:
            raise DataError(f"catalog has no '{column}' column (has {catalog.columns})")
    if catalog.height == 0:
        raise DataError("catalog is empty")
    if catalog["item_id"].null_count() or catalog["item_id"].n_unique() != catalog.height:
        raise DataError("catalog item_id values must be unique and not null")
    if catalog["category"].null_count() or catalog["intent"].null_count():
        raise DataError("every catalog item needs a category and an intent")
    pairs = catalog.select("category", "intent").unique(maintain_order=True)
    if pairs["category"].n_unique() != pairs.height:
        raise DataError("every catalog category must belong to exactly one intent")
    cat_names = pairs["category"]
    intent_names = pairs["intent"].unique(maintain_order=True)
    cat_code = {name: i for i, name in enumerate(cat_names.cast(pl.String).to_list())}
    cat = (
        catalog["category"]
        .cast(pl.String)
        .replace_strict(cat_code, return_dtype=pl.Int32)
        .to_numpy()
    )
    intent_code = {name: i for i, name in enumerate(intent_names.cast(pl.String).to_list())}
    cat_intent = (
        pairs["intent"].cast(pl.String).replace_strict(intent_code, return_dtype=pl.Int32)
    ).to_numpy()
    if "popularity_rank" in catalog.columns:
        popularity = catalog["popularity_rank"].cast(pl.Float64).fill_null(np.inf).to_numpy()
    else:
        popularity = np.zeros(catalog.height)
    by_rank = np.lexsort((np.arange(catalog.height), popularity, cat))
    sizes = np.bincount(cat, minlength=pairs.height)
    return _Structure(
        n_cats=pairs.height,
        cat_weight=sizes / sizes.sum(),
        cat_intent=cat_intent,
        by_rank=by_rank,
        block_end=np.cumsum(sizes),
    )


class _Laws:
    """Many discrete laws stored in one array, sampled in O(1) expected time per draw.

    Law ``r`` owns entries ``start[r]:start[r + 1]``. Tens of millions of draws make
    ``np.searchsorted`` (a branchy binary search over the whole array) a bottleneck, so
    each law gets a guide table (the cutpoint method of Chen and Asau, one bucket per
    entry): bucket ``b`` of a law with ``n`` entries knows the range of entries whose
    cumulative probability crosses ``[b / n, (b + 1) / n)``. Most ranges hold one or two
    entries; a vectorised bisection settles the rest, in few passes even for steep laws.
    """

    def __init__(self, weights: np.ndarray, start: np.ndarray) -> None:
        sizes = np.diff(start)
        if (sizes <= 0).any():
            raise ValueError("every law needs at least one entry")
        law = np.repeat(np.arange(sizes.size), sizes)
        cum = np.cumsum(weights, dtype=np.float64)
        before = np.concatenate([[0.0], cum[start[1:-1] - 1]])
        total = cum[start[1:] - 1] - before
        if (total <= 0).any():
            raise ValueError("every law needs a positive total weight")
        # Entry j of law r holds r + P(X <= j): one sorted array for all laws, and the
        # last entry of each law is exactly r + 1, so every search ends inside its law.
        cdf = (cum - before[law]) / total[law]
        last = start[1:] - 1
        cdf[last] = 1.0
        self.cdf = cdf + law
        self.start = start.astype(np.int64)
        cut = law + (np.arange(law.size) - self.start[law]) / sizes[law]
        self.lo = np.searchsorted(self.cdf, cut, side="right")
        self.hi = np.empty_like(self.lo)
        self.hi[:-1] = self.lo[1:]
        self.hi[last] = last

    def sample(self, law: np.ndarray, u: np.ndarray) -> np.ndarray:
        """Flat entry index of one draw of law ``law[i]`` per uniform ``u[i]``."""
        first = self.start[law]
        size = self.start[law + 1] - first
        bucket = (u * size).astype(np.int64)
        np.minimum(bucket, size - 1, out=bucket)
        bucket += first
        lo = self.lo[bucket]
        hi = self.hi[bucket]
        del bucket, first, size
        # The answer (first entry above law + u) lies in [lo, hi]: bisect where lo < hi.
        todo = np.flatnonzero(lo < hi)
        target = law[todo] + u[todo]
        while todo.size:
            low, high = lo[todo], hi[todo]
            mid = (low + high) >> 1
            right = self.cdf[mid] <= target
            low = np.where(right, mid + 1, low)
            high = np.where(right, high, mid)
            lo[todo], hi[todo] = low, high
            open_ = low < high
            todo, target = todo[open_], target[open_]
        return lo


def _zipf_laws(st: _Structure, exponent: float) -> _Laws:
    """Per category, the law of the popularity position of a clicked item: ``rank**-a``."""
    sizes = np.diff(st.block_end, prepend=0)
    start = np.concatenate([[0], st.block_end]).astype(np.int64)
    rank = np.arange(st.by_rank.size) - np.repeat(start[:-1], sizes) + 1
    return _Laws(rank.astype(np.float64) ** -exponent, start)


def _jump_laws(st: _Structure) -> _Laws:
    """The category Markov chain: law ``t * C + c`` is where a jump from category ``c`` goes.

    ``t`` is 1 for multi-intent sessions, 0 for focused ones. Mostly to a related category
    of the same intent, weighted by traffic and boosted when near ``c`` in the taxonomy
    order; with a small (focused) or large (multi-intent) share, to any category of
    another intent. Never to ``c`` itself (staying is a separate action).
    """
    n = st.n_cats
    same = st.cat_intent[:, None] == st.cat_intent[None, :]
    # Position of each category within its intent, and the intent's size, for ring distance.
    local = np.zeros(n, dtype=np.int64)
    count = np.zeros(int(st.cat_intent.max()) + 1, dtype=np.int64)
    for c in range(n):
        local[c] = count[st.cat_intent[c]]
        count[st.cat_intent[c]] += 1
    size = count[st.cat_intent]
    diff = np.abs(local[:, None] - local[None, :])
    ring = np.minimum(diff, size[:, None] - diff)
    boost = np.ones((n, n))
    for step, factor in enumerate(_NEIGHBOUR_BOOST, start=1):
        boost[ring == step] = factor
    within = np.where(same & ~np.eye(n, dtype=bool), st.cat_weight[None, :] * boost, 0.0)
    across = np.where(~same, st.cat_weight[None, :], 0.0)
    within = _normalise_rows(within, fallback=np.eye(n))
    across = _normalise_rows(across, fallback=within)
    rows = [
        (1.0 - share) * within + share * across
        for share in (_SWITCH_SHARE_FOCUSED, _SWITCH_SHARE_MULTI)
    ]
    return _Laws(np.concatenate(rows).ravel(), np.arange(2 * n + 1, dtype=np.int64) * n)


def _normalise_rows(matrix: np.ndarray, fallback: np.ndarray) -> np.ndarray:
    """Rows scaled to sum to 1; an all-zero row (nowhere to go) takes ``fallback``'s row."""
    total = matrix.sum(axis=1, keepdims=True)
    return np.where(total > 0, matrix / np.where(total > 0, total, 1.0), fallback)


def _session_lengths(
    rng: np.random.Generator, n_events: int, mean: float, max_len: int
) -> np.ndarray:
    """Session lengths summing to exactly ``n_events`` (the last one is cut short).

    A 3:1 mixture of geometric laws whose means differ by :data:`_LONG_SESSION_FACTOR`:
    half the sessions have one or two clicks, a tail of long browsing sessions.
    """
    short_mean = mean / (1.0 - _LONG_SESSION_SHARE + _LONG_SESSION_SHARE * _LONG_SESSION_FACTOR)
    chunks: list[np.ndarray] = []
    total = 0
    while total < n_events:
        n = int((n_events - total) / mean * 1.05) + 16
        long = rng.random(n) < _LONG_SESSION_SHARE
        p = np.where(long, 1.0 / (short_mean * _LONG_SESSION_FACTOR), 1.0 / short_mean)
        chunk = np.minimum(rng.geometric(p), max_len)
        chunks.append(chunk)
        total += int(chunk.sum())
    lengths = np.concatenate(chunks)
    ends = np.cumsum(lengths)
    last = int(np.searchsorted(ends, n_events))
    lengths = lengths[: last + 1]
    lengths[last] -= int(ends[last]) - n_events
    return lengths


def _stable_argsort(keys: np.ndarray) -> np.ndarray:
    """Stable argsort of non-negative int64 ``keys`` (millisecond times), fast.

    Packing every key with its position into one int64 makes the keys unique, so numpy's
    SIMD sort (unstable, but the order of unique values is unique) yields the stable
    order 3-5 times faster than ``kind="stable"`` on tens of millions of values. Falls back
    to the stable sort when key and position do not fit in 63 bits.
    """
    n = keys.size
    bits = max(1, (n - 1).bit_length())
    if n == 0 or int(keys.max()).bit_length() + bits > 63:
        return np.argsort(keys, kind="stable")
    packed = (keys << bits) | np.arange(n, dtype=np.int64)
    packed.sort()
    packed &= (1 << bits) - 1
    return packed


def _ffill_index(mask: np.ndarray) -> np.ndarray:
    """For every position, the rank among ``mask``'s true entries of the last one so far."""
    return np.cumsum(mask, dtype=np.int64) - 1


def _parse_start(start: str | date | datetime | float) -> float:
    """Unix seconds of the period start; naive dates and datetimes are read as UTC."""
    if isinstance(start, (int, float)) and not isinstance(start, bool):
        return float(start)
    if isinstance(start, str):
        try:
            start = datetime.fromisoformat(start)
        except ValueError as err:
            raise ConfigError(f"start must be an ISO date or datetime, not {start!r}") from err
    if isinstance(start, datetime):
        moment = start if start.tzinfo is not None else start.replace(tzinfo=UTC)
    elif isinstance(start, date):
        moment = datetime(start.year, start.month, start.day, tzinfo=UTC)
    else:
        raise ConfigError(f"start must be a date, datetime or ISO string, not {start!r}")
    return moment.timestamp()


def _check(condition: bool, message: str) -> None:
    if not condition:
        raise ConfigError(message)


def generate_clicks(
    n_events: int = 100_000,
    seed: int = 0,
    n_items: int = 2000,
    days: float = 30,
    start: str | date | datetime | float = "2026-01-01",
    catalog: pl.DataFrame | None = None,
    *,
    zipf_exponent: float = 1.0,
    mean_session_length: float = 4.0,
    max_session_length: int = 200,
    repeat_prob: float = 0.08,
    same_category_prob: float = 0.47,
    multi_intent_share: float = 0.15,
    mean_sessions_per_visitor: float = 1.6,
) -> pl.DataFrame:
    """A visitor click log of exactly ``n_events`` clicks on ``catalog``'s items.

    Returns columns ``user_id`` (Int64), ``session_id`` (Int64, the true session),
    ``item_id`` (the catalog's dtype), ``timestamp`` (Float64 Unix seconds, millisecond
    precision) and ``event_type`` (String: ``view``, ``cart`` or ``purchase``), sorted by
    timestamp. All timestamps lie in ``[start, start + days)``. The frame is a canonical
    click frame for :meth:`sessionrec.data.sessions.SessionData.from_frame`.

    Without ``catalog`` one is made by ``make_catalog(n_items, seed)``; pass a catalog
    (then ``n_items`` is ignored) to draw several logs over the same products. A caller's
    catalog needs ``item_id``, ``category`` and ``intent``; ``popularity_rank`` is used
    when present (otherwise row order within a category is the popularity order).

    Behaviour knobs (keyword-only): ``zipf_exponent`` of item popularity within a
    category; ``mean_session_length`` (before truncation at ``max_session_length``);
    after the first click, each click repeats the previous item with ``repeat_prob``,
    shows another item of the same category with ``same_category_prob``, and otherwise
    jumps to another category; ``multi_intent_share`` of sessions change intent often;
    visitors have ``mean_sessions_per_visitor`` sessions on average (geometric law).

    Time and memory grow linearly: 20M clicks take about 10 to 15 seconds on two cores
    and under 3 GB at the peak (about 140 bytes per click).
    """
    _check(
        isinstance(n_events, (int, np.integer)) and not isinstance(n_events, bool),
        f"n_events must be an integer, not {n_events!r}",
    )
    n_events = int(n_events)
    _check(n_events >= 0, f"n_events must be >= 0, not {n_events}")
    _check(days * 86400.0 >= 3600.0, f"days must cover at least one hour, not {days!r}")
    _check(zipf_exponent >= 0.0, f"zipf_exponent must be >= 0, not {zipf_exponent}")
    _check(
        1.5 <= mean_session_length <= max_session_length,
        f"mean_session_length must lie in [1.5, max_session_length], not {mean_session_length}",
    )
    _check(
        1 <= max_session_length <= 10_000,
        f"max_session_length must lie in [1, 10000], not {max_session_length}",
    )
    _check(
        repeat_prob >= 0 and same_category_prob >= 0 and repeat_prob + same_category_prob <= 1,
        "repeat_prob and same_category_prob must be >= 0 and sum to at most 1",
    )
    _check(0.0 <= multi_intent_share <= 1.0, "multi_intent_share must lie in [0, 1]")
    _check(mean_sessions_per_visitor >= 1.0, "mean_sessions_per_visitor must be >= 1")
    _check(
        isinstance(seed, (int, np.integer)) and not isinstance(seed, bool) and seed >= 0,
        f"seed must be a non-negative integer, not {seed!r}",
    )
    period_start = _parse_start(start)
    period = float(days) * 86400.0

    if catalog is None:
        catalog = make_catalog(n_items, seed)
    st = _structure(catalog)
    if n_events == 0:
        empty = np.zeros(0, dtype=np.int64)
        return _frame(empty, empty, catalog["item_id"].clear(), np.zeros(0), empty)

    rng_len, rng_user, rng_walk, rng_item, rng_time = (
        np.random.default_rng(s) for s in np.random.SeedSequence([seed, 2]).spawn(5)
    )

    # Sessions, and visitors owning runs of consecutive sessions.
    lengths = _session_lengths(rng_len, n_events, mean_session_length, max_session_length)
    n_sessions = lengths.size
    first_click = np.concatenate([[0], np.cumsum(lengths)[:-1]])
    session_of = np.repeat(np.arange(n_sessions, dtype=np.int32), lengths)
    multi = rng_len.random(n_sessions) < multi_intent_share
    max_duration = min(_SESSION_MAX_S, period / 4.0)
    # At most k_max sessions per visitor, so that all of them always fit in the period.
    k_max = max(1, int((period - 1.0 + _RETURN_MIN_S) // (max_duration + _RETURN_MIN_S)))
    visitor_of = _visitors(rng_user, n_sessions, mean_sessions_per_visitor, k_max)
    visitor_first = np.ones(n_sessions, dtype=bool)
    visitor_first[1:] = visitor_of[1:] != visitor_of[:-1]
    visitor_start = np.flatnonzero(visitor_first)  # first session of each visitor

    # What each click does: 0 opens the session, 1 jumps to another category, 2 shows
    # another item of the same category, 3 repeats the previous item.
    u = rng_walk.random(n_events, dtype=np.float32)
    action = np.where(
        u < repeat_prob, 3, np.where(u < repeat_prob + same_category_prob, 2, 1)
    ).astype(np.int8)
    del u
    action[first_click] = 0

    # Where: a category per session start and jump, carried over to the clicks after it.
    start_cat = _Laws(st.cat_weight, np.array([0, st.n_cats])).sample(
        np.zeros(n_sessions, np.int64), rng_walk.random(n_sessions)
    )
    returning = ~visitor_first & (rng_walk.random(n_sessions) < _RETURN_SAME_START)
    start_cat[returning] = start_cat[visitor_start[visitor_of[returning]]]
    fresh = action <= 1
    cat_fresh = _walk_categories(
        rng_walk, _jump_laws(st), start_cat, action[fresh] == 0, multi[session_of[fresh]]
    )
    category = cat_fresh[_ffill_index(fresh)]
    del cat_fresh, fresh

    # What: a Zipf draw within the category, except that repeats copy the previous item.
    new_item = np.flatnonzero(action != 3)
    cat_new = category[new_item]
    del category
    pos = _zipf_laws(st, zipf_exponent).sample(cat_new, rng_item.random(new_item.size))
    item_row = st.by_rank[pos][_ffill_index(action != 3)]
    del pos, cat_new, new_item
    event = _event_types(rng_item, action == 3)
    del action

    # When: gaps within sessions, then every visitor's sessions laid out in the period.
    gap = rng_time.lognormal(math.log(_GAP_MEDIAN_S), _GAP_SIGMA, n_events)
    np.clip(gap, 1.0, _GAP_MAX_S, out=gap)
    gap[first_click] = 0.0
    elapsed = np.cumsum(gap, out=gap)
    elapsed -= elapsed[first_click][session_of]  # seconds since the session's first click
    duration = elapsed[first_click + lengths - 1]
    squeeze = np.minimum(1.0, max_duration / np.maximum(duration, 1e-9))
    if (squeeze < 1.0).any():
        elapsed *= squeeze[session_of]
        duration *= squeeze
    session_start = _session_starts(rng_user, visitor_of, visitor_start, duration, period)
    millis = np.rint((session_start[session_of] + elapsed) * 1000.0).astype(np.int64)
    del elapsed, gap, session_start

    # Ids in order of first appearance; clicks in time order (ties: session, then click).
    n_visitors = visitor_start.size
    session_id = np.empty(n_sessions, dtype=np.int64)
    session_id[_stable_argsort(millis[first_click])] = np.arange(1, n_sessions + 1)
    user_id = np.empty(n_visitors, dtype=np.int64)
    user_id[_stable_argsort(millis[first_click[visitor_start]])] = np.arange(1, n_visitors + 1)
    order = _stable_argsort(millis)
    timestamp = (millis[order] + round(period_start * 1000.0)) / 1000.0
    del millis
    click_session = session_of[order]
    return _frame(
        user_id[visitor_of][click_session],
        session_id[click_session],
        catalog["item_id"].gather(item_row[order]),
        timestamp,
        event[order],
    )


def _visitors(
    rng: np.random.Generator, n_sessions: int, mean_sessions: float, k_max: int
) -> np.ndarray:
    """Visitor index (0, 1, ...) of every session: runs of geometric length <= ``k_max``."""
    per_visitor: list[np.ndarray] = []
    assigned = 0
    while assigned < n_sessions:
        wanted = int((n_sessions - assigned) / mean_sessions) + 16
        draw = np.minimum(rng.geometric(1.0 / mean_sessions, wanted), k_max)
        per_visitor.append(draw)
        assigned += int(draw.sum())
    counts = np.concatenate(per_visitor)
    return np.repeat(np.arange(counts.size, dtype=np.int64), counts)[:n_sessions]


def _walk_categories(
    rng: np.random.Generator,
    jump: _Laws,
    start_cat: np.ndarray,
    is_start: np.ndarray,
    multi: np.ndarray,
) -> np.ndarray:
    """Categories of the "fresh" clicks (session starts and jumps), in click order.

    ``is_start`` and ``multi`` (the session is multi-intent) are per fresh click;
    ``start_cat`` has one category per session. Jump ``j`` of a session depends on jump
    ``j - 1``, so the walk runs over ``j``: all sessions' ``j``-th jumps in one vectorised
    step, at most ``max_session_length`` steps and O(clicks) work in total.
    """
    n_fresh = is_start.size
    n_cats = int(jump.start.size - 1) // 2
    position = np.arange(n_fresh, dtype=np.int64)
    step = position - np.maximum.accumulate(np.where(is_start, position, 0))
    del position
    by_step = np.argsort(step.astype(np.uint16), kind="stable")  # a radix sort
    bounds = np.concatenate([[0], np.cumsum(np.bincount(step))])
    del step
    category = np.empty(n_fresh, dtype=np.int32)
    category[by_step[: bounds[1]]] = start_cat  # step 0: the session starts, in order
    law_base = np.where(multi, n_cats, 0).astype(np.int32)
    u = rng.random(n_fresh)
    for j in range(1, bounds.size - 1):
        idx = by_step[bounds[j] : bounds[j + 1]]
        law = law_base[idx] + category[idx - 1]
        category[idx] = jump.sample(law, u[idx]) - law * n_cats
    return category


def _event_types(rng: np.random.Generator, repeat: np.ndarray) -> np.ndarray:
    """Event codes into :data:`EVENT_TYPES`: carts and purchases mostly on repeated clicks."""
    u = rng.random(repeat.size, dtype=np.float32)
    event = np.zeros(repeat.size, dtype=np.int8)
    event[repeat & (u < _CART_GIVEN_REPEAT + _PURCHASE_GIVEN_REPEAT)] = 1
    event[repeat & (u < _PURCHASE_GIVEN_REPEAT)] = 2
    event[~repeat & (u < _CART_GIVEN_NEW)] = 1
    return event


def _session_starts(
    rng: np.random.Generator,
    visitor_of: np.ndarray,
    visitor_start: np.ndarray,
    duration: np.ndarray,
    period: float,
) -> np.ndarray:
    """Start of every session in seconds after the period start, inside the period.

    A visitor waits at least :data:`_RETURN_MIN_S` plus a log-normal extra (at most a
    week) after a session ends before the next one. A visitor who would overrun the
    period has the extras shrunk to a random share of the room left (so heavy visitors do
    not all pile up at the period's edges), then starts uniformly in the remaining slack.
    ``k_max`` in :func:`generate_clicks` guarantees the room is never negative.
    """
    n_sessions = visitor_of.size
    n_visitors = visitor_start.size
    last = np.ones(n_sessions, dtype=bool)
    last[:-1] = visitor_of[1:] != visitor_of[:-1]
    wait = np.where(last, 0.0, _RETURN_MIN_S)
    extra = rng.lognormal(math.log(_RETURN_MEDIAN_S), _RETURN_SIGMA, n_sessions)
    np.minimum(extra, _RETURN_MAX_EXTRA_S, out=extra)
    extra[last] = 0.0
    busy = np.bincount(visitor_of, duration + wait, minlength=n_visitors)
    room = np.maximum(period - 1.0 - busy, 0.0)
    extra_sum = np.bincount(visitor_of, extra, minlength=n_visitors)
    fit = room * rng.random(n_visitors)
    shrink = np.where(extra_sum > room, fit / np.maximum(extra_sum, 1e-9), 1.0)
    extra *= shrink[visitor_of]
    slack = np.maximum(room - extra_sum * shrink, 0.0)
    advance = duration + wait + extra
    before = np.cumsum(advance) - advance  # time from the visitor's first session start
    before -= before[visitor_start][visitor_of]
    return (rng.random(n_visitors) * slack)[visitor_of] + before


def _frame(
    user_id: np.ndarray,
    session_id: np.ndarray,
    item_id: pl.Series,
    timestamp: np.ndarray,
    event: np.ndarray,
) -> pl.DataFrame:
    return pl.DataFrame(
        {
            "user_id": pl.Series(user_id, dtype=pl.Int64),
            "session_id": pl.Series(session_id, dtype=pl.Int64),
            "item_id": item_id.alias("item_id"),
            "timestamp": pl.Series(timestamp, dtype=pl.Float64),
            "event_type": pl.Series(EVENT_TYPES, dtype=pl.String).gather(event),
        }
    )


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

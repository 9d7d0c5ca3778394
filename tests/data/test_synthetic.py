"""The synthetic shop: reproducible, exactly sized, and with the structure the demo relies on."""

from __future__ import annotations

from datetime import UTC, date, datetime

import numpy as np
import polars as pl
import pytest

from sessionrec._errors import ConfigError, DataError
from sessionrec.data.sessions import SessionData
from sessionrec.data.synthetic import (
    DEMO_CATEGORIES,
    EVENT_TYPES,
    FIRST_ITEM_ID,
    SESSION_INTENTS,
    TAXONOMY,
    SyntheticShop,
    demo_session,
    generate_clicks,
    generate_shop,
    make_catalog,
)

JAN_1_2026 = datetime(2026, 1, 1, tzinfo=UTC).timestamp()
DAY = 86400.0


@pytest.fixture(scope="module")
def shop() -> SyntheticShop:
    return generate_shop(100_000, seed=0)


@pytest.fixture(scope="module")
def annotated(shop: SyntheticShop) -> pl.DataFrame:
    """Clicks with their item's category and intent, in session and click order."""
    return (
        shop.clicks.with_row_index("row")
        .join(shop.catalog.select("item_id", "category", "intent"), on="item_id", how="left")
        .sort("session_id", "timestamp", "row")
    )


def consecutive_pairs(frame: pl.DataFrame, column: str) -> tuple[np.ndarray, np.ndarray]:
    """(previous, next) values of ``column`` over consecutive clicks of the same session."""
    session = frame["session_id"].to_numpy()
    values = frame[column].to_numpy()
    same = session[1:] == session[:-1]
    return values[:-1][same], values[1:][same]


# ------------------------------------------------------------------------------ catalog
def test_catalog_schema_names_and_ids() -> None:
    catalog = make_catalog(500, seed=1)
    assert catalog.schema == pl.Schema(
        {
            "item_id": pl.Int64,
            "name": pl.String,
            "category": pl.String,
            "intent": pl.String,
            "price": pl.Float64,
            "available": pl.Boolean,
            "popularity_rank": pl.Int32,
        }
    )
    assert catalog.height == 500
    assert catalog["item_id"].to_list() == list(range(FIRST_ITEM_ID, FIRST_ITEM_ID + 500))
    assert catalog["name"].str.len_chars().min() > 5  # type: ignore[operator]
    assert catalog["name"].n_unique() > 300  # names vary, even within a category
    assert (catalog["price"] > 0).all()
    assert 0.85 < catalog["available"].mean() < 1.0  # type: ignore[operator]
    # Product names end with what the category sells.
    shoes = catalog.filter(pl.col("category") == "running shoes")["name"]
    assert shoes.str.ends_with("Running Shoes").all()


def test_catalog_categories_grouped_into_intents() -> None:
    catalog = make_catalog(2000)
    assert len(TAXONOMY) >= 6
    assert sum(len(c) for c in TAXONOMY.values()) >= 25
    assert set(catalog["intent"]) == set(TAXONOMY)
    pairs = catalog.select("intent", "category").unique()
    assert pairs.height == catalog["category"].n_unique()  # one intent per category
    for intent, categories in TAXONOMY.items():
        assert set(pairs.filter(pl.col("intent") == intent)["category"]) == set(categories)
    assert {"running shoes", "sports shorts", "fitness trackers"} <= set(
        TAXONOMY["sportswear/fitness"]
    )


def test_popularity_rank_is_a_permutation_per_category() -> None:
    catalog = make_catalog(3000, seed=4)
    per_category = catalog.group_by("category").agg(
        pl.col("popularity_rank").sort().alias("ranks"), pl.len().alias("n")
    )
    for ranks, n in per_category.select("ranks", "n").iter_rows():
        assert ranks == list(range(1, n + 1))


def test_catalog_reproducible_and_seeded() -> None:
    assert make_catalog(300, seed=5).equals(make_catalog(300, seed=5))
    assert not make_catalog(300, seed=5).equals(make_catalog(300, seed=6))


def test_catalog_too_small_is_refused() -> None:
    with pytest.raises(ConfigError, match="number of categories"):
        make_catalog(10)


# ---------------------------------------------------------------------------- clicks
def test_same_seed_same_log_different_seed_different_log() -> None:
    first = generate_clicks(20_000, seed=3)
    assert first.equals(generate_clicks(20_000, seed=3))
    assert not first.equals(generate_clicks(20_000, seed=4))


@pytest.mark.parametrize("n_events", [0, 1, 2, 7, 1000, 12_345])
def test_exact_event_count(n_events: int) -> None:
    assert generate_clicks(n_events, seed=n_events).height == n_events


def test_schema_and_dtypes(shop: SyntheticShop) -> None:
    assert shop.clicks.schema == pl.Schema(
        {
            "user_id": pl.Int64,
            "session_id": pl.Int64,
            "item_id": pl.Int64,
            "timestamp": pl.Float64,
            "event_type": pl.String,
            "session_intent": pl.Enum(SESSION_INTENTS),
        }
    )
    assert shop.clicks.null_count().sum_horizontal().item() == 0
    assert set(shop.clicks["event_type"]) == set(EVENT_TYPES)


def test_all_items_in_catalog(shop: SyntheticShop) -> None:
    assert shop.clicks["item_id"].is_in(shop.catalog["item_id"].implode()).all()


def test_timestamps_inside_period_and_sorted(shop: SyntheticShop) -> None:
    ts = shop.clicks["timestamp"].to_numpy()
    assert (np.diff(ts) >= 0).all()
    assert ts.min() >= JAN_1_2026
    assert ts.max() < JAN_1_2026 + 30 * DAY
    assert ts.max() - ts.min() > 29 * DAY  # spread over the whole period
    assert np.array_equal(ts, np.round(ts, 3))  # millisecond precision


def test_short_period_still_fits_every_visitor() -> None:
    clicks = generate_clicks(50_000, seed=2, days=1, start="2026-03-01")
    start = datetime(2026, 3, 1, tzinfo=UTC).timestamp()
    assert clicks["timestamp"].min() >= start  # type: ignore[operator]
    assert clicks["timestamp"].max() < start + DAY  # type: ignore[operator]
    assert clicks.group_by("user_id").agg(pl.col("session_id").n_unique())["session_id"].max() > 1  # type: ignore[operator]


def test_start_accepts_dates_datetimes_and_strings() -> None:
    by_string = generate_clicks(500, start="2026-02-01")
    assert by_string.equals(generate_clicks(500, start=date(2026, 2, 1)))
    assert by_string.equals(generate_clicks(500, start=datetime(2026, 2, 1, tzinfo=UTC)))
    assert by_string["timestamp"].min() >= datetime(2026, 2, 1, tzinfo=UTC).timestamp()  # type: ignore[operator]


def test_ids_numbered_by_first_appearance(shop: SyntheticShop) -> None:
    sessions = shop.clicks["session_id"].unique(maintain_order=True).to_list()
    users = shop.clicks["user_id"].unique(maintain_order=True).to_list()
    assert sessions == list(range(1, len(sessions) + 1))
    assert users == list(range(1, len(users) + 1))


def test_inactivity_cut_recovers_the_true_sessions(shop: SyntheticShop) -> None:
    """Gaps inside a session stay under 30 minutes; a visitor's sessions are further apart."""
    cut = shop.clicks.sort("user_id", "timestamp").with_columns(
        new=(
            (pl.col("user_id") != pl.col("user_id").shift())
            | (pl.col("timestamp").diff() > 30 * 60)
        )
        .fill_null(True)
        .cum_sum()
    )
    assert cut["new"].n_unique() == cut["session_id"].n_unique()
    assert cut.group_by("new").agg(pl.col("session_id").n_unique())["session_id"].max() == 1
    # ... and each session belongs to exactly one visitor.
    assert (
        shop.clicks.group_by("session_id").agg(pl.col("user_id").n_unique())["user_id"].max() == 1
    )


def test_returning_visitors(shop: SyntheticShop) -> None:
    per_user = shop.clicks.group_by("user_id").agg(pl.col("session_id").n_unique().alias("n"))
    share_returning = (per_user["n"] > 1).mean()
    assert 0.15 < share_returning < 0.7  # type: ignore[operator]


def test_intra_session_gaps_are_realistic(annotated: pl.DataFrame) -> None:
    before, after = consecutive_pairs(annotated, "timestamp")
    gaps = after - before
    assert gaps.min() > 0
    assert gaps.max() <= 20 * 60
    assert 15 < np.median(gaps) < 120  # tens of seconds to minutes


def test_session_length_distribution(shop: SyntheticShop) -> None:
    lengths = shop.clicks.group_by("session_id").len()["len"].to_numpy()
    assert 3.0 < lengths.mean() < 5.0
    assert (lengths <= 2).mean() > 0.4  # many one- and two-click sessions
    assert (lengths == 1).mean() > 0.2
    assert lengths.max() >= 30  # and a long tail


def test_consecutive_clicks_follow_an_intent(annotated: pl.DataFrame) -> None:
    """Known answer: under random choice two clicks share an intent with p = sum(share^2)."""
    before, after = consecutive_pairs(annotated, "intent")
    same_intent = (before == after).mean()
    shares = annotated["intent"].value_counts(normalize=True)["proportion"].to_numpy()
    random_same = float((shares**2).sum())
    assert random_same < 0.25
    assert same_intent > random_same + 0.5
    # Sessions move between related categories, not only within one.
    cat_before, cat_after = consecutive_pairs(annotated, "category")
    moved_within_intent = ((before == after) & (cat_before != cat_after)).mean()
    assert moved_within_intent > 0.2
    assert (cat_before == cat_after).mean() > 0.35  # and come back to / stay in a category


def test_some_sessions_switch_intent(annotated: pl.DataFrame) -> None:
    per_session = annotated.group_by("session_id").agg(
        pl.len().alias("n"), pl.col("intent").n_unique().alias("intents")
    )
    long = per_session.filter(pl.col("n") >= 5)
    switching = (long["intents"] > 1).mean()
    assert 0.05 < switching < 0.6  # type: ignore[operator]


def test_related_categories_follow_each_other(annotated: pl.DataFrame) -> None:
    """After running shoes, the next other category is mostly sportswear/fitness."""
    cat_before, cat_after = consecutive_pairs(annotated, "category")
    _, intent_after = consecutive_pairs(annotated, "intent")
    moved = (cat_before == "running shoes") & (cat_after != "running shoes")
    assert moved.sum() > 100
    assert (intent_after[moved] == "sportswear/fitness").mean() > 0.8


def test_zipf_popularity_within_category(shop: SyntheticShop) -> None:
    counts = (
        shop.clicks.group_by("item_id")
        .len()
        .join(shop.catalog, on="item_id", how="right")
        .with_columns(pl.col("len").fill_null(0))
    )
    biggest = counts["category"].mode()[0]
    in_cat = counts.filter(pl.col("category") == biggest).sort("popularity_rank")
    clicks = in_cat["len"].to_numpy()
    assert clicks[0] == clicks.max()  # rank 1 is the best seller
    assert clicks[0] > 5 * np.median(clicks)
    # A steeper exponent concentrates clicks further.
    steep = generate_clicks(100_000, catalog=shop.catalog, zipf_exponent=1.5)
    top_share = steep.filter(pl.col("item_id") == in_cat["item_id"][0]).height
    assert top_share > 1.5 * clicks[0] * steep.height / shop.clicks.height


def test_repeated_clicks_and_event_types(annotated: pl.DataFrame) -> None:
    item_before, item_after = consecutive_pairs(annotated, "item_id")
    assert 0.03 < (item_before == item_after).mean() < 0.3
    share = annotated["event_type"].value_counts(normalize=True)
    share_of = dict(zip(share["event_type"], share["proportion"], strict=True))
    assert share_of["view"] > 0.85
    assert 0 < share_of["purchase"] < share_of["cart"] < 0.1
    first_clicks = annotated.group_by("session_id").head(1)
    assert (first_clicks["event_type"] == "view").all()


def per_session(annotated: pl.DataFrame) -> pl.DataFrame:
    return annotated.group_by("session_id", maintain_order=True).agg(
        pl.col("session_intent").first(),
        pl.col("session_intent").n_unique().alias("n_intents"),
        "item_id",
        "event_type",
        "category",
    )


def test_every_session_has_one_intent_in_the_default_shares(annotated: pl.DataFrame) -> None:
    sessions = per_session(annotated)
    assert (sessions["n_intents"] == 1).all()
    share = dict(sessions["session_intent"].value_counts(normalize=True).iter_rows())
    # purchase 25% and switching 10% of the sessions long enough (about half of them)
    assert 0.10 < share["purchase"] < 0.20
    assert 0.02 < share["switching"] < 0.06
    assert share["browsing"] > 0.7


def funnel_violations(items: list[int], events: list[str]) -> list[str]:
    """What breaks the funnel rule in one session: a purchase of an item not carted
    earlier, or a cart of an item not viewed earlier."""
    viewed: set[int] = set()
    carted: set[int] = set()
    wrong = []
    for item, event in zip(items, events, strict=True):
        if event == "cart" and item not in viewed:
            wrong.append(f"cart of unviewed {item}")
        if event == "purchase" and item not in carted:
            wrong.append(f"purchase of uncarted {item}")
        (viewed if event == "view" else carted if event == "cart" else set()).add(item)
    return wrong


def test_purchase_sessions_are_funnels_in_one_category(annotated: pl.DataFrame) -> None:
    sessions = per_session(annotated)
    buying = sessions.filter(pl.col("session_intent") == "purchase")
    assert buying.height > 1000
    for items, events, categories in buying.select("item_id", "event_type", "category").rows():
        assert funnel_violations(items, events) == []
        assert len(set(categories)) == 1
        # views, then one or two carts, then one or two purchases (no more than carted)
        n_cart, n_buy = events.count("cart"), events.count("purchase")
        assert (
            events
            == ["view"] * (len(events) - n_cart - n_buy) + ["cart"] * n_cart + ["purchase"] * n_buy
        )
        assert 1 <= n_buy <= n_cart <= 2 and len(events) >= 3
    n_carts = buying["event_type"].list.count_matches("cart")
    assert 0.1 < (n_carts == 2).mean() < 0.35  # type: ignore[operator]


def test_switching_sessions_browse_and_buy_in_another_category(annotated: pl.DataFrame) -> None:
    sessions = per_session(annotated)
    switching = sessions.filter(pl.col("session_intent") == "switching")
    assert switching.height > 300
    orders = {"browse first": 0, "buy first": 0}
    for items, events, categories in switching.select("item_id", "event_type", "category").rows():
        assert funnel_violations(items, events) == []
        bought = [i for i, e in enumerate(events) if e == "purchase"]
        carted = [i for i, e in enumerate(events) if e == "cart"]
        assert bought and carted
        if bought[-1] == len(events) - 1:  # browse, then a funnel ending the session
            orders["browse first"] += 1
        else:  # a funnel, then browsing that opens in another category
            orders["buy first"] += 1
            after = bought[-1] + 1
            assert set(events[after:]) == {"view"}
            assert categories[after] != categories[bought[-1]]
    assert min(orders.values()) > 0.3 * switching.height


def test_browsing_sessions_only_view(annotated: pl.DataFrame) -> None:
    browsing = annotated.filter(pl.col("session_intent") == "browsing")
    assert (browsing["event_type"] == "view").all()


def test_intent_shares_are_configurable() -> None:
    clicks = generate_clicks(20_000, seed=1, purchase_share=0.0, switching_share=0.0)
    assert set(clicks["session_intent"]) == {"browsing"}
    assert set(clicks["event_type"]) == {"view"}
    everything = generate_clicks(20_000, seed=1, purchase_share=1.0, switching_share=0.0)
    long = everything.group_by("session_id").agg(pl.len(), pl.col("session_intent").first())
    assert (long.filter(pl.col("len") >= 3)["session_intent"] == "purchase").all()
    with pytest.raises(ConfigError, match="purchase_share and switching_share"):
        generate_clicks(100, purchase_share=0.8, switching_share=0.3)


def test_session_data_accepts_the_log(shop: SyntheticShop) -> None:
    data = SessionData.from_frame(shop.clicks)
    assert data.n_events == shop.clicks.height
    assert data.n_sessions == shop.clicks["session_id"].n_unique()
    assert data.event_types == ("cart", "purchase", "view")
    assert data.times is not None and (np.diff(data.start_times()) >= 0).all()


# ------------------------------------------------------------------------------ demo
def test_demo_session_is_the_best_sellers_of_the_demo_categories(shop: SyntheticShop) -> None:
    items = demo_session(shop.catalog)
    assert items == shop.demo_session()
    rows = shop.catalog.filter(pl.col("item_id").is_in(items))
    by_id = {row["item_id"]: row for row in rows.iter_rows(named=True)}
    assert [by_id[i]["category"] for i in items] == list(DEMO_CATEGORIES)
    assert all(by_id[i]["popularity_rank"] == 1 for i in items)


def test_demo_session_recommends_sportswear_by_cooccurrence(shop: SyntheticShop) -> None:
    """The demo's promise, checked with the simplest model: session co-occurrence counts."""
    demo = demo_session(shop.catalog)
    clicks = shop.clicks.select("session_id", "item_id")
    touching = clicks.filter(pl.col("item_id").is_in(demo))["session_id"].unique().implode()
    top = (
        clicks.filter(pl.col("session_id").is_in(touching) & ~pl.col("item_id").is_in(demo))
        .unique()
        .group_by("item_id")
        .len()
        .sort("len", "item_id", descending=[True, False])
        .head(20)
        .join(shop.catalog, on="item_id")
    )
    assert top.height == 20
    assert (top["intent"] == "sportswear/fitness").mean() >= 0.9  # type: ignore[operator]


def test_demo_session_unknown_category() -> None:
    with pytest.raises(ConfigError, match="no category"):
        demo_session(make_catalog(100), categories=["spaceships"])


# ---------------------------------------------------------------------- custom catalog
def test_caller_catalog_with_string_ids_and_no_popularity() -> None:
    catalog = pl.DataFrame(
        {
            "item_id": [f"P{i:06d}" for i in range(30)],
            "category": ["tea"] * 10 + ["cups"] * 10 + ["books"] * 10,
            "intent": ["drinks"] * 20 + ["reading"] * 10,
        }
    )
    clicks = generate_clicks(5000, seed=1, catalog=catalog)
    assert clicks.height == 5000
    assert clicks["item_id"].dtype == pl.String
    assert clicks["item_id"].is_in(catalog["item_id"].implode()).all()
    # Without popularity_rank, the first row of a category is its best seller.
    counts = clicks.group_by("item_id").len()
    top = counts.sort("len", descending=True)["item_id"][0]
    assert top in {"P000000", "P000010", "P000020"}


def test_single_category_catalog() -> None:
    catalog = pl.DataFrame({"item_id": [1, 2, 3], "category": ["x"] * 3, "intent": ["y"] * 3})
    clicks = generate_clicks(300, catalog=catalog)
    assert clicks.height == 300
    assert set(clicks["item_id"]) <= {1, 2, 3}


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"n_events": -1}, ConfigError),
        ({"n_events": 1.5}, ConfigError),
        ({"seed": -1}, ConfigError),
        ({"days": 0}, ConfigError),
        ({"start": "yesterday"}, ConfigError),
        ({"mean_session_length": 1.0}, ConfigError),
        ({"repeat_prob": 0.6, "same_category_prob": 0.6}, ConfigError),
        ({"n_items": 3}, ConfigError),
        ({"catalog": pl.DataFrame({"item_id": [1]})}, DataError),
        ({"catalog": pl.DataFrame({"item_id": [1, 1], "category": "a", "intent": "b"})}, DataError),
        (
            {"catalog": pl.DataFrame({"item_id": [1, 2], "category": "a", "intent": ["b", "c"]})},
            DataError,
        ),
        (
            {"catalog": pl.DataFrame({"item_id": [1, 2], "category": ["a", None], "intent": "b"})},
            DataError,
        ),
    ],
)
def test_invalid_arguments(kwargs: dict[str, object], error: type[Exception]) -> None:
    with pytest.raises(error):
        generate_clicks(**kwargs)  # type: ignore[arg-type]


# ------------------------------------------------------------------------------ scale
def test_moderate_scale() -> None:
    catalog = make_catalog(200_000, seed=7)
    assert catalog["item_id"].n_unique() == 200_000
    clicks = generate_clicks(1_000_000, seed=7, catalog=catalog)
    assert clicks.height == 1_000_000
    assert (clicks["timestamp"].diff().drop_nulls() >= 0).all()
    assert clicks["item_id"].is_in(catalog["item_id"].implode()).all()
    assert clicks["item_id"].n_unique() > 50_000  # the long tail gets clicked too


# ------------------------------------------------------------------------- internals
def test_guided_sampler_matches_a_binary_search() -> None:
    """The guide-table sampler returns exactly what searchsorted over the CDF would."""
    from sessionrec.data.synthetic.laws import DiscreteLaws

    rng = np.random.default_rng(1)
    for _ in range(10):
        sizes = rng.integers(1, 300, rng.integers(1, 6))
        start = np.concatenate([[0], np.cumsum(sizes)])
        weights = rng.random(start[-1]) ** rng.choice([1, 5, 20])  # flat to very steep
        weights[rng.random(weights.size) < 0.2] = 0.0  # impossible entries
        weights[start[:-1]] += 1e-3
        laws = DiscreteLaws(weights, start)
        law = rng.integers(0, sizes.size, 20_000)
        u = rng.random(20_000)
        expected = np.searchsorted(laws.cdf, law + u, side="right")
        assert np.array_equal(laws.sample(law, u), np.minimum(expected, start[law + 1] - 1))
        assert (weights[laws.sample(law, u)] > 0).all()

"""Event types in the session-kNN family: objective (click/cart/purchase) and type weights."""

from __future__ import annotations

import numpy as np
import pytest

from sessionrec._errors import ConfigError, DataError
from sessionrec.data.sessions import ItemVocab, SessionData
from sessionrec.models.base import SessionBatch
from sessionrec.models.registry import create_model, load_model
from sessionrec.models.topk import select_top_k

KNN = ("sknn", "vsknn", "stan", "vstan", "vmisknn")
TYPES = ("view", "cart", "purchase")
V, C, P = 0, 1, 2


def typed(
    sessions: list[list[tuple[str, int]]], event_types: tuple[str, ...] = TYPES
) -> SessionData:
    """Sessions of (item, type code) pairs."""
    ids = [item for s in sessions for item, _ in s]
    vocab = ItemVocab(sorted(set(ids)))
    offsets = np.cumsum([0] + [len(s) for s in sessions])
    return SessionData(
        offsets=offsets,
        items=vocab.encode(ids),
        vocab=vocab,
        types=np.array([t for s in sessions for _, t in s], dtype=np.int8),
        event_types=event_types,
    )


# Shoppers who look at "a" view "b" a lot but buy "c"; "d" is carted once and bought once.
TRAIN = typed(
    [[("a", V), ("b", V), ("c", V), ("c", P)]] * 3
    + [[("a", V), ("b", V), ("b", V)]] * 4
    + [[("a", V), ("d", C), ("d", P)]]
)


def batch(data: SessionData, sessions: list[list[tuple[str, int]]]) -> SessionBatch:
    return SessionBatch.from_sequences(
        [data.vocab.encode([i for i, _ in s]) for s in sessions],
        types=[[t for _, t in s] for s in sessions],
        event_types=TYPES,
    )


@pytest.mark.parametrize("name", KNN)
def test_click_objective_ignores_types(name: str) -> None:
    untyped = SessionData(TRAIN.offsets, TRAIN.items, TRAIN.vocab)
    plain = create_model(name, {"k": 10, "sample_size": 10}).fit(untyped)
    aware = create_model(name, {"k": 10, "sample_size": 10}).fit(TRAIN)
    queries = batch(TRAIN, [[("a", V)], [("a", V), ("d", C)]])
    np.testing.assert_array_equal(plain.score(queries), aware.score(queries))
    assert not aware.recommends_repeats()


@pytest.mark.parametrize("name", KNN)
def test_purchase_objective_ranks_bought_items_over_viewed_ones(name: str) -> None:
    click = create_model(name, {"k": 10, "sample_size": 10}).fit(TRAIN)
    buy = create_model(name, {"k": 10, "sample_size": 10, "objective": "purchase"}).fit(TRAIN)
    query = batch(TRAIN, [[("a", V)]])
    b, c, d = TRAIN.vocab.encode(["b", "c", "d"])
    click_scores, buy_scores = click.score(query)[0], buy.score(query)[0]
    # "b" co-occurs with "a" most, but "c" is what those sessions buy
    assert buy_scores[c] / buy_scores[b] > click_scores[c] / click_scores[b]
    assert buy_scores[c] > buy_scores[b]
    assert buy.recommends_repeats()
    ((idx, _),) = buy.top_k(query, 2, exclude=[query.items])
    assert idx[0] in (c, d)  # of the new items, one that was bought


@pytest.mark.parametrize("objective", ["purchase", "cart"])
def test_carted_unbought_session_items_rank_first_most_recent_first(objective: str) -> None:
    model = create_model("vstan", {"k": 10, "sample_size": 10, "objective": objective})
    model.fit(TRAIN)
    query = batch(TRAIN, [[("b", C), ("a", V), ("d", C), ("c", C), ("c", P)]])
    b, d = TRAIN.vocab.encode(["b", "d"])
    scores = model.score(query)[0]
    others = np.delete(scores, [b, d])
    assert scores[d] > scores[b] > others.max()  # "d" carted last; "c" already bought
    ((idx, _),) = model.top_k(query, 3)
    np.testing.assert_array_equal(idx[:2], [d, b])
    ranks = model.target_ranks(query, np.array([b]))
    assert ranks[0] == 2


def test_a_session_of_carts_without_neighbours_is_not_a_fallback() -> None:
    model = create_model("vsknn", {"k": 10, "sample_size": 10, "objective": "purchase"})
    model.fit(typed([[("a", V), ("b", P)], [("x", C), ("y", V)]]))
    query = batch(
        model.vocab_ and typed([[("a", V), ("b", P)], [("x", C), ("y", V)]]), [[("x", C)]]
    )
    assert not model.fallback_mask(query)[0]
    ((idx, _),) = model.top_k(query, 1)
    assert idx[0] == model.vocab_.index("x")


def test_type_weights_change_the_neighbours_only_with_types() -> None:
    # "a" was viewed, "e" carted: with a heavy cart weight the neighbours of "e" dominate.
    train = typed([[("a", V), ("b", V)]] * 3 + [[("e", V), ("f", V)]] * 2 + [[("a", V), ("e", V)]])
    params = {"k": 10, "sample_size": 10, "weighting": "same"}
    plain = create_model("vsknn", params).fit(train)
    heavy = create_model("vsknn", {**params, "type_weight_cart": 5.0}).fit(train)
    query = batch(train, [[("e", C), ("a", V)]])
    b, f = train.vocab.encode(["b", "f"])
    assert plain.score(query)[0][b] > plain.score(query)[0][f]
    assert heavy.score(query)[0][f] > heavy.score(query)[0][b]
    untyped = SessionBatch(query.offsets, query.items)  # no types: views only
    np.testing.assert_array_equal(heavy.score(untyped), plain.score(untyped))


@pytest.mark.parametrize("objective", ["cart", "purchase"])
def test_objective_needs_carts_or_purchases_in_the_data(objective: str) -> None:
    views = typed([[("a", V), ("b", V)]] * 2)
    with pytest.raises(DataError, match="objective="):
        create_model("vstan", {"objective": objective}).fit(views)
    with pytest.raises(DataError, match="objective="):
        create_model("vstan", {"objective": objective}).fit(
            SessionData.from_sequences([["a", "b"]])
        )


def test_bad_type_hyperparameters_are_refused() -> None:
    with pytest.raises(ConfigError, match="objective"):
        create_model("vsknn", {"objective": "orders"})
    with pytest.raises(ConfigError, match="type_weight_cart"):
        create_model("vsknn", {"type_weight_cart": 0.0})


def test_unknown_type_names_count_as_views() -> None:
    raw = typed([[("a", 0), ("b", 1)]] * 2, event_types=("fav", "purchase"))
    model = create_model("vsknn", {"objective": "purchase"}).fit(raw)
    assert model.index_.sess_types.max() == 2


def test_saved_model_keeps_types_and_old_folders_load(tmp_path) -> None:
    model = create_model("vstan", {"k": 10, "sample_size": 10, "objective": "purchase"})
    model.fit(TRAIN)
    query = batch(TRAIN, [[("a", V), ("d", C)]])
    loaded = load_model(model.save(tmp_path / "m"))
    np.testing.assert_array_equal(loaded.score(query), model.score(query))
    # A folder written before event types: no sess_types array, no objective hyperparameter.
    click = create_model("vstan", {"k": 10, "sample_size": 10}).fit(TRAIN)
    state = click._get_state()
    del state["sess_types"]
    old = create_model("vstan", {"k": 10, "sample_size": 10})
    old.vocab_ = click.vocab_
    old._set_state(state)
    np.testing.assert_array_equal(old.score(query), click.score(query))


def test_tune_searches_type_weights_only_on_data_with_carts_or_purchases(caplog) -> None:
    pytest.importorskip("optuna")
    from sessionrec.search_spaces import TYPE_WEIGHTS, type_weight_space
    from sessionrec.tuning import tune

    assert type_weight_space("vstan", ("cart", "purchase", "view")) == TYPE_WEIGHTS
    assert type_weight_space("vstan", ("view",)) == {}
    assert type_weight_space("itemknn", ("cart", "view")) == {}
    data = typed(
        [[("a", V), ("b", C), ("c", V)], [("b", V), ("c", C), ("d", P)], [("a", V), ("c", V)]] * 10
    )
    caplog.set_level("INFO", logger="sessionrec.tuning")
    result = tune(data, "vsknn", trials=8, seed=1, fixed_params={"k": 5, "sample_size": 10})
    trials = [r.args[-1] for r in caplog.records if r.args and isinstance(r.args[-1], dict)]
    drawn = {(p["type_weight_cart"], p["type_weight_purchase"]) for p in trials}
    assert len(drawn) > 1  # the trials drew other weights than the defaults
    assert TYPE_WEIGHTS["type_weight_cart"].contains(result["params"]["type_weight_cart"])


def test_repeat_layer_learns_that_carted_items_come_back(tmp_path) -> None:
    # Every session: view a, cart c, buy p, view v, then back to c (the carted item), never
    # to the bought one. Recency alone prefers v; the type factors learn to prefer c.
    rng = np.random.default_rng(0)
    sessions = []
    for _ in range(400):
        a, c, p, v = (f"i{k}" for k in rng.choice(60, 4, replace=False))
        sessions.append([(a, V), (c, C), (p, P), (v, V), (c, V)])
    data = typed(sessions)
    model = create_model("repeat", {"base": "vsknn", "min_cases": 5}).fit(data)
    factor = model.mixture_.type_factor
    assert factor[1] > 1.0 >= factor[2]
    query = batch(data, [[("i1", V), ("i2", C), ("i3", P), ("i4", V)]])
    ((idx, _),) = model.top_k(query, 1)
    assert idx[0] == data.vocab.index("i2")
    ((idx, vals),) = model.top_k(query, 5)
    ((dense_idx, dense_vals),) = select_top_k(model.score(query), 5)
    np.testing.assert_array_equal(idx, dense_idx)
    np.testing.assert_array_equal(vals, dense_vals)
    loaded = load_model(model.save(tmp_path / "repeat"))
    np.testing.assert_array_equal(loaded.score(query), model.score(query))
    untyped = SessionBatch(query.offsets, query.items)  # without types: recency decides
    ((idx, _),) = model.top_k(untyped, 1)
    assert idx[0] != data.vocab.index("i2")


@pytest.mark.parametrize("name", KNN)
def test_for_objective_twin_scores_as_a_model_fitted_for_it(name: str) -> None:
    params = {"k": 10, "sample_size": 10}
    click = create_model(name, params).fit(TRAIN)
    fitted = create_model(name, {**params, "objective": "purchase"}).fit(TRAIN)
    twin = click.for_objective("purchase")
    queries = batch(TRAIN, [[("a", V)], [("a", V), ("d", C)], [("b", V), ("c", P)]])
    np.testing.assert_array_equal(twin.score(queries), fitted.score(queries))
    assert twin.recommends_repeats() and not click.recommends_repeats()
    assert click.for_objective("purchase") is twin  # derived once
    assert click.for_objective("click") is click and twin.index_ is click.index_
    untyped = create_model(name, params).fit(SessionData(TRAIN.offsets, TRAIN.items, TRAIN.vocab))
    with pytest.raises(DataError, match="needs training data with event types"):
        untyped.for_objective("cart")


def test_models_without_objectives_refuse_another_one() -> None:
    from sessionrec._errors import ModelError

    markov = create_model("markov").fit(TRAIN)
    assert markov.for_objective("click") is markov
    with pytest.raises(ModelError, match="ranks for the 'click' objective only"):
        markov.for_objective("purchase")

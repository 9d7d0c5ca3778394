"""Known-answer tests of the non-neural baselines: pop, spop, markov, sr, itemknn.

Every expected score below is computed by hand from the tiny sessions next to it; the
vectorised fits are also checked against straightforward loop implementations of the papers'
definitions on random sessions.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

import numpy as np
import pytest
from scipy import sparse

from sessionrec._errors import ConfigError, ModelError
from sessionrec.data.sessions import ItemVocab, SessionData
from sessionrec.models.base import Recommender, SessionBatch
from sessionrec.models.itemknn import ItemKNN
from sessionrec.models.popular import Pop, SessionPop
from sessionrec.models.rules import Markov, SequentialRules, keep_top_per_row


def make_data(sessions: Sequence[Sequence[str]], vocab: Sequence[str] | None = None) -> SessionData:
    return SessionData.from_sequences(sessions, vocab=None if vocab is None else ItemVocab(vocab))


def ranked(model: Recommender, session: Sequence[str], k: int = 100) -> list[tuple[str, float]]:
    """The full recommendation list of one session as (id, score) pairs, best first."""
    return [(str(r.item_id), r.score) for r in model.recommend([session], k=k)[0]]


def as_dict(model: Recommender, session: Sequence[str]) -> dict[str, float]:
    return dict(ranked(model, session))


# ------------------------------------------------------------------------------ popularity
POP_TRAIN = [["a", "b", "c"], ["b", "c"], ["c", "a", "c"]]  # clicks: a 2, b 2, c 4; d none
POP_VOCAB = ["a", "b", "c", "d"]


def test_pop_scores_are_training_clicks_for_every_item() -> None:
    model = Pop().fit(make_data(POP_TRAIN, POP_VOCAB))
    expected = [("c", 4.0), ("a", 2.0), ("b", 2.0), ("d", 0.0)]  # tie a/b: lower index first
    assert ranked(model, []) == expected
    assert ranked(model, ["d", "zzz"]) == expected  # the session does not matter
    scores = model.score(SessionBatch.from_sequences([[0], []]))
    assert scores.dtype == np.float32
    np.testing.assert_array_equal(scores, [[2, 2, 4, 0], [2, 2, 4, 0]])


def test_session_pop_ranks_session_items_first_then_popularity() -> None:
    model = SessionPop().fit(make_data(POP_TRAIN, POP_VOCAB))
    # pop / (max_pop + 1) = a 2/5, b 2/5, c 4/5, d 0; session counts d 2, b 1.
    got = ranked(model, ["d", "b", "d"])
    assert [item for item, _ in got] == ["d", "b", "c", "a"]
    assert [score for _, score in got] == pytest.approx([2.0, 1.4, 0.8, 0.4], abs=1e-6)
    # Empty session: global popularity, every item finite.
    assert as_dict(model, []) == pytest.approx({"a": 0.4, "b": 0.4, "c": 0.8, "d": 0.0})


def test_session_pop_count_beats_popularity() -> None:
    # "c" is by far the most popular, but one more click in the session always wins.
    train = [["c"] * 50, ["a", "b"]]
    model = SessionPop().fit(make_data(train))
    assert [item for item, _ in ranked(model, ["a", "b", "a", "c"])] == ["a", "c", "b"]


# ---------------------------------------------------------------------------------- markov
def test_markov_counts_consecutive_transitions() -> None:
    train = [["a", "b", "c"], ["b", "c"], ["c", "a", "c"], ["a", "a"], ["d"]]
    # a->b 1, b->c 2, c->a 1, a->c 1, a->a 1 (a repeated click counts)
    model = Markov().fit(make_data(train))
    assert as_dict(model, ["c", "b"]) == {"c": 2.0}
    assert as_dict(model, ["b", "a"]) == {"a": 1.0, "b": 1.0, "c": 1.0}
    assert as_dict(model, ["c"]) == {"a": 1.0}
    assert ranked(model, ["d"]) == []  # never followed by anything
    assert ranked(model, []) == []  # empty session: no evidence at all
    assert np.isneginf(model.score(SessionBatch.from_sequences([[]]))).all()


def test_markov_uses_only_the_last_known_item() -> None:
    model = Markov().fit(make_data([["a", "b"], ["b", "c"]]))
    assert as_dict(model, ["a", "b", "unknown"]) == {"c": 1.0}


# ------------------------------------------------------------------------ sequential rules
SR_TRAIN = [["a", "b", "c", "a"], ["b", "c"]]
# Default (steps 10, 1/d): a->b 1, b->c 1 + 1, a->c 1/2, c->a 1, b->a 1/2, a->a 1/3.


def test_sr_div_weights_by_hand() -> None:
    model = SequentialRules().fit(make_data(SR_TRAIN))
    assert as_dict(model, ["c", "a"]) == pytest.approx({"b": 1.0, "c": 0.5, "a": 1 / 3})
    assert [item for item, _ in ranked(model, ["a"])] == ["b", "c", "a"]
    assert as_dict(model, ["b"]) == pytest.approx({"c": 2.0, "a": 0.5})
    assert as_dict(model, ["a", "c"]) == pytest.approx({"a": 1.0})
    assert ranked(model, []) == []


@pytest.mark.parametrize(
    ("params", "expected_from_a"),
    [
        ({"steps": 1}, {"b": 1.0}),
        ({"weighting": "same"}, {"b": 1.0, "c": 1.0, "a": 1.0}),
        ({"weighting": "linear"}, {"b": 0.9, "c": 0.8, "a": 0.7}),
        ({"weighting": "quadratic"}, {"b": 1.0, "c": 0.25, "a": 1 / 9}),
        (
            {"weighting": "log"},
            {"b": 1 / math.log10(2.7), "c": 1 / math.log10(3.7), "a": 1 / math.log10(4.7)},
        ),
        ({"steps": 2}, {"b": 1.0, "c": 0.5}),
    ],
)
def test_sr_parameters_by_hand(
    params: dict[str, object], expected_from_a: dict[str, float]
) -> None:
    model = SequentialRules(**params).fit(make_data(SR_TRAIN))  # type: ignore[arg-type]
    assert as_dict(model, ["a"]) == pytest.approx(expected_from_a, rel=1e-6)


def test_sr_linear_weight_zero_creates_no_rule() -> None:
    session = ["p"] + [f"f{i}" for i in range(9)] + ["q"]  # p and q are 10 clicks apart
    data = make_data([session])
    assert as_dict(SequentialRules().fit(data), ["p"])["q"] == pytest.approx(0.1)
    assert "q" not in as_dict(SequentialRules(weighting="linear").fit(data), ["p"])


def test_sr_pruning_keeps_heaviest_rules_ties_by_lower_index() -> None:
    data = make_data(SR_TRAIN)
    assert as_dict(SequentialRules(pruning=1).fit(data), ["a"]) == pytest.approx({"b": 1.0})
    assert as_dict(SequentialRules(pruning=2).fit(data), ["a"]) == pytest.approx(
        {"b": 1.0, "c": 0.5}
    )
    # weighting "same": a->a, a->b, a->c all weigh 1; vocab order a, b, c breaks the tie.
    same = SequentialRules(weighting="same", pruning=2).fit(data)
    assert as_dict(same, ["a"]) == {"a": 1.0, "b": 1.0}


def naive_sr(
    sessions: list[list[int]], n_items: int, steps: int, weight: str, pruning: int
) -> np.ndarray:
    """session-rec's sr.py loop, densified (-inf where no rule), pruning ties by lower index."""
    weights = {
        "div": lambda d: 1 / d,
        "same": lambda d: 1.0,
        "linear": lambda d: max(0.0, 1 - 0.1 * d),
        "quadratic": lambda d: 1 / d**2,
    }[weight]
    rules: dict[int, dict[int, float]] = defaultdict(lambda: defaultdict(float))
    for session in sessions:
        for p, item in enumerate(session):
            for d in range(1, min(steps, p) + 1):
                if weights(d) > 0:
                    rules[session[p - d]][item] += weights(d)
    out = np.full((n_items, n_items), -np.inf)
    for prev, row in rules.items():
        kept = sorted(row.items(), key=lambda kv: (-kv[1], kv[0]))
        for nxt, w in kept[: pruning or None]:
            out[prev, nxt] = w
    return out


def random_sessions(seed: int, n_sessions: int, n_items: int) -> list[list[int]]:
    rng = np.random.default_rng(seed)
    popularity = rng.zipf(1.5, n_items).astype(float)
    p = popularity / popularity.sum()
    return [
        rng.choice(n_items, size=int(rng.integers(1, 15)), p=p).tolist() for _ in range(n_sessions)
    ]


@pytest.mark.parametrize(
    ("steps", "weight", "pruning"),
    [(10, "div", 0), (3, "same", 0), (12, "linear", 0), (10, "quadratic", 4), (2, "div", 1)],
)
def test_sr_matches_loop_reference(steps: int, weight: str, pruning: int) -> None:
    n_items = 25
    sessions = random_sessions(1, 200, n_items)
    data = SessionData.from_sequences(sessions, vocab=ItemVocab(np.arange(n_items)))
    model = SequentialRules(steps=steps, weighting=weight, pruning=pruning).fit(data)
    expected = naive_sr(sessions, n_items, steps, weight, pruning)
    got = model.score(SessionBatch.from_sequences([[i] for i in range(n_items)]))
    np.testing.assert_allclose(got, expected.astype(np.float32), rtol=1e-6)


# --------------------------------------------------------------------------------- itemknn
KNN_TRAIN = [["a", "b"], ["a", "b", "c"], ["a", "a", "c"], ["d"]]
# Sessions containing: a {1, 2, 3}, b {1, 2}, c {2, 3}, d {4}.
R6 = 2 / math.sqrt(6)  # cos(a, b) = cos(a, c) = 2 / sqrt(3 * 2); cos(b, c) = 1 / sqrt(2 * 2)
COSINE = {"counting": "sessions", "lambda_": 0.0}  # the plain cosine (defaults are session-rec's)


def test_itemknn_session_cosine_by_hand() -> None:
    model = ItemKNN(**COSINE).fit(make_data(KNN_TRAIN))  # type: ignore[arg-type]
    got = ranked(model, ["a"])
    assert [item for item, _ in got] == ["b", "c"]  # a tie: lower index first
    assert [score for _, score in got] == pytest.approx([R6, R6])
    assert as_dict(model, ["a", "b"]) == pytest.approx({"a": R6, "c": 0.5})
    assert ranked(model, ["d"]) == []  # co-occurs with nothing
    assert ranked(model, []) == []
    sim = model.matrix().toarray()
    np.testing.assert_allclose(sim, sim.T, rtol=1e-6)  # cosine is symmetric
    assert (np.diag(sim) == 0).all()  # no self-similarity stored


@pytest.mark.parametrize(
    ("params", "session", "expected"),
    [
        # counting clicks: |a| = 4 clicks, co(a, c) = 1*1 + 2*1 = 3, co(a, b) = 2.
        ({"counting": "clicks"}, ["a"], {"c": 3 / math.sqrt(8), "b": 2 / math.sqrt(8)}),
        ({"lambda_": 1.0}, ["b"], {"a": 2 / math.sqrt(4 * 3), "c": 1 / 3}),
        ({"alpha": 1.0}, ["a"], {"b": 2 / 3, "c": 2 / 3}),  # co / |S_last|
        ({"alpha": 1.0}, ["b"], {"a": 1.0, "c": 0.5}),
        ({"alpha": 0.0}, ["b"], {"a": 2 / 3, "c": 0.5}),  # co / |S_candidate|
        ({"n_neighbors": 1}, ["b"], {"a": R6}),
        ({"n_neighbors": 1}, ["a"], {"b": R6}),  # tie b/c: lower index kept
    ],
)
def test_itemknn_parameters_by_hand(
    params: dict[str, object], session: list[str], expected: dict[str, float]
) -> None:
    model = ItemKNN(**{**COSINE, **params}).fit(make_data(KNN_TRAIN))  # type: ignore[arg-type]
    assert as_dict(model, session) == pytest.approx(expected, rel=1e-6)


def naive_itemknn(sessions: list[list[int]], n_items: int, n_neighbors: int) -> np.ndarray:
    """Cosine of binary session vectors from sets, top-n per row, -inf elsewhere."""
    holders = [{s for s, session in enumerate(sessions) if i in session} for i in range(n_items)]
    out = np.full((n_items, n_items), -np.inf)
    for i in range(n_items):
        row = [
            (len(holders[i] & holders[j]) / math.sqrt(len(holders[i]) * len(holders[j])), j)
            for j in range(n_items)
            if j != i and holders[i] & holders[j]
        ]
        for sim, j in sorted(row, key=lambda t: (-t[0], t[1]))[:n_neighbors]:
            out[i, j] = sim
    return out


@pytest.mark.parametrize("n_neighbors", [100, 3])
def test_itemknn_matches_set_reference(n_neighbors: int) -> None:
    n_items = 30
    sessions = random_sessions(2, 150, n_items)
    data = SessionData.from_sequences(sessions, vocab=ItemVocab(np.arange(n_items)))
    model = ItemKNN(n_neighbors=n_neighbors, **COSINE).fit(data)  # type: ignore[arg-type]
    got = model.score(SessionBatch.from_sequences([[i] for i in range(n_items)]))
    expected = naive_itemknn(sessions, n_items, n_neighbors)
    np.testing.assert_allclose(got, expected.astype(np.float32), rtol=1e-6)


def test_keep_top_per_row() -> None:
    dense = np.array([[0, 3, 1, 3, 2], [5, 0, 0, 0, 0], [0, 0, 0, 0, 0], [1, 1, 1, 1, 1]], float)
    kept = keep_top_per_row(sparse.csr_matrix(dense), 2).toarray()
    expected = np.array([[0, 3, 0, 3, 0], [5, 0, 0, 0, 0], [0, 0, 0, 0, 0], [1, 1, 0, 0, 0]], float)
    np.testing.assert_array_equal(kept, expected)


# ---------------------------------------------------------------- shared scoring behaviour
@pytest.mark.parametrize("cls", [Markov, SequentialRules, ItemKNN])
def test_last_item_models_score_a_batch_at_once(cls: type[Recommender]) -> None:
    model = cls().fit(make_data([*SR_TRAIN, ["d"]]))
    sessions = [["a"], [], ["zzz"], ["b", "a"], ["d"], ["c"]]
    batch = model.encode_sessions(sessions)
    together = model.score(batch)
    for row, session in enumerate(sessions):
        alone = model.score(model.encode_sessions([session]))
        np.testing.assert_array_equal(together[row], alone[0])
    assert np.isneginf(together[1]).all() and np.isneginf(together[2]).all()
    np.testing.assert_array_equal(together[0], together[3])  # same last item


@pytest.mark.parametrize("cls", [Pop, SessionPop, Markov, SequentialRules, ItemKNN])
def test_unknown_items_are_ignored(cls: type[Recommender]) -> None:
    model = cls().fit(make_data(SR_TRAIN))
    assert ranked(model, ["x", "b", "y", "a", "z"]) == ranked(model, ["b", "a"])
    assert ranked(model, ["x"]) == ranked(model, [])


# -------------------------------------------------------------------------- validation
@pytest.mark.parametrize(
    ("cls", "params"),
    [
        (SequentialRules, {"steps": 0}),
        (SequentialRules, {"steps": 2.5}),
        (SequentialRules, {"steps": True}),
        (SequentialRules, {"steps": "10"}),
        (SequentialRules, {"weighting": "cubic"}),
        (SequentialRules, {"weighting": None}),
        (SequentialRules, {"pruning": -1}),
        (SequentialRules, {"pruning": 0.5}),
        (ItemKNN, {"n_neighbors": 0}),
        (ItemKNN, {"n_neighbors": 10.0}),
        (ItemKNN, {"alpha": 1.5}),
        (ItemKNN, {"alpha": -0.1}),
        (ItemKNN, {"alpha": float("nan")}),
        (ItemKNN, {"alpha": "0.5"}),
        (ItemKNN, {"lambda_": -1.0}),
        (ItemKNN, {"lambda_": float("inf")}),
        (ItemKNN, {"counting": "views"}),
    ],
)
def test_bad_hyperparameters_raise_config_error(
    cls: type[Recommender], params: dict[str, object]
) -> None:
    name = next(iter(params))
    with pytest.raises(ConfigError, match=name):
        cls(**params)


def test_valid_hyperparameters_are_stored_unchanged() -> None:
    sr = SequentialRules(steps=np.int64(3), weighting="linear", pruning=5)  # type: ignore[arg-type]
    assert sr.get_params() == {
        "steps": 3,
        "weighting": "linear",
        "pruning": 5,
        **{"objective": "click", "type_weight_cart": 1.0, "type_weight_purchase": 1.0},
    }
    assert type(sr.steps) is np.int64
    knn = ItemKNN(n_neighbors=7, alpha=1, lambda_=20, counting="clicks")
    assert knn.get_params() == {"n_neighbors": 7, "alpha": 1, "lambda_": 20, "counting": "clicks"}


# ------------------------------------------------------------------------------ state
@pytest.mark.parametrize(
    ("cls", "corrupt"),
    [
        (SequentialRules, lambda s: {**s, "indptr": s["indptr"][:-1]}),
        (SequentialRules, lambda s: {**s, "indices": s["indices"] + 100}),
        (SequentialRules, lambda s: {k: v for k, v in s.items() if k != "data"}),
        (ItemKNN, lambda s: {**s, "data": np.full_like(s["data"], np.nan)}),
        (Markov, lambda s: {**s, "indices": s["indices"].astype(np.float32)}),
        (Pop, lambda s: {"popularity": s["popularity"][:2]}),
        (SessionPop, lambda s: {}),
    ],
)
def test_inconsistent_state_raises_model_error(cls: type[Recommender], corrupt: Any) -> None:
    fitted = cls().fit(make_data(SR_TRAIN))
    fresh = cls()
    fresh.vocab_ = fitted.vocab_
    with pytest.raises(ModelError, match="state"):
        fresh._set_state(corrupt(fitted._get_state()))

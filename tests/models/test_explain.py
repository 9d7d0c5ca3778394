"""Explanations (``Recommender.explain``) with hand-computed answers, plus a contract run.

The hand-computed cases use ``TRAIN`` (training session index: items)::

    0: 1 2 3      1: 2 3      2: 1 3 4      3: 4 5

Sequential rules (steps 10, weight 1/d): 1->2 1, 1->3 1 + 1/2 = 1.5, 1->4 1/2, 2->3 2,
3->4 1, 4->5 1. Item cosine (binary sessions): |S_1| = 2, |S_3| = 3, both in 2 sessions, so
sim(1, 3) = 2 / sqrt(6); sim(1, 2) = sim(1, 4) = 1 / 2.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest

from sessionrec._errors import ConfigError, DataError, ModelError, NotFittedError
from sessionrec.data.sessions import SessionData
from sessionrec.models.base import REASON_KINDS, Reason, Recommender
from sessionrec.models.itemknn import ItemKNN
from sessionrec.models.knn import SKNN, STAN, VMISKNN, VSKNN, VSTAN
from sessionrec.models.popular import Pop, SessionPop
from sessionrec.models.registry import MODELS, create_model
from sessionrec.models.rules import Markov, SequentialRules
from sessionrec.models.session_knn import SessionKNN

TRAIN = SessionData.from_sequences([[1, 2, 3], [2, 3], [1, 3, 4], [4, 5]])


def session_items(reasons: list[Reason]) -> list[list[tuple[Any, Any]]]:
    return [approx_pairs(r.session_items) for r in reasons]


def approx_pairs(pairs: tuple[tuple[Any, float], ...]) -> list[tuple[Any, Any]]:
    """Pairs with approximate weights, for comparison with a list of (id, weight)."""
    return [(key, pytest.approx(weight)) for key, weight in pairs]


# --------------------------------------------------------------------- rule models
def test_sr_names_the_last_item_with_its_rule_weight():
    model = SequentialRules().fit(TRAIN)
    recs = model.recommend([[2, 1]], k=3)[0]
    assert [r.item_id for r in recs] == [3, 2, 4]
    reasons = model.explain([2, 1], [3, 2, 4, 5])
    assert [r.kind for r in reasons] == ["session_items"] * 4
    assert session_items(reasons) == [[(1, 1.5)], [(1, 1.0)], [(1, 0.5)], []]
    assert all(r.neighbour_sessions == () for r in reasons)


def test_markov_weight_is_the_transition_count():
    model = Markov().fit(TRAIN)
    (reason,) = model.explain([1, 2], [3])
    assert reason == Reason("session_items", ((2, 2.0),))  # 2 -> 3 in sessions 0 and 1


def test_itemknn_weight_is_the_similarity_to_the_last_item():
    model = ItemKNN(lambda_=0.0, counting="sessions").fit(TRAIN)
    reasons = model.explain([5, 1], [3, 2, 4])
    assert session_items(reasons) == [[(1, 2 / math.sqrt(6))], [(1, 0.5)], [(1, 0.5)]]


def test_unknown_session_items_are_ignored_and_empty_sessions_explain_nothing():
    model = SequentialRules().fit(TRAIN)
    assert model.explain(["nope", 2, 1], [3]) == model.explain([2, 1], [3])
    assert model.explain([], [3]) == [Reason("session_items")]
    assert model.explain([2, 1], []) == []


# ------------------------------------------------------------------ popularity
def test_pop_and_spop_are_popular_and_spop_names_clicked_items():
    assert Pop().fit(TRAIN).explain([1, 2], [3, 1]) == [Reason("popular"), Reason("popular")]
    reasons = SessionPop().fit(TRAIN).explain([1, 1, 2], [1, 2, 3])
    assert reasons == [
        Reason("popular", ((1, 2.0),)),
        Reason("popular", ((2, 1.0),)),
        Reason("popular"),
    ]


# ---------------------------------------------------------------- session kNN
def test_vsknn_neighbours_and_session_item_shares_by_hand():
    # Session [1, 3]: linear weights 3 -> 1 (last click), 1 -> 0.9. Candidates share items:
    # s0 {1, 2, 3} and s2 {1, 3, 4} dot 1.9, s1 {2, 3} dot 1; vec similarity = dot / 2:
    # 0.95, 0.95, 0.5. With k=2 the neighbours are s2 and s0 (ties: more recent first).
    # Each neighbour gives its items 0.95, split over the session items it shares in
    # proportion 1 : 0.9, i.e. 0.5 to item 3 and 0.45 to item 1.
    model = VSKNN(k=2, sample_size=10).fit(TRAIN)
    sessions, sims = model.neighbors(model.vocab_.encode([1, 3]))
    assert sessions.tolist() == [2, 0] and sims == pytest.approx([0.95, 0.95])
    assert [r.item_id for r in model.recommend([[1, 3]], k=2, exclude_seen=True)[0]] == [2, 4]
    four, two, one = model.explain([1, 3], [4, 2, 1])
    assert four.kind == "neighbours"
    assert session_items([four, two, one]) == [
        [(3, 0.5), (1, 0.45)],
        [(3, 0.5), (1, 0.45)],
        [(3, 1.0), (1, 0.9)],
    ]
    assert approx_pairs(four.neighbour_sessions) == [(2, 0.95)]
    assert approx_pairs(two.neighbour_sessions) == [(0, 0.95)]
    assert approx_pairs(one.neighbour_sessions) == [(2, 0.95), (0, 0.95)]
    # top bounds both lists
    (short,) = model.explain([1, 3], [1], top=1)
    assert approx_pairs(short.session_items) == [(3, 1.0)]
    assert approx_pairs(short.neighbour_sessions) == [(2, 0.95)]


def test_knn_fallback_sessions_are_popular():
    model = VSKNN(k=2, sample_size=10).fit(TRAIN)
    assert model.explain([], [3]) == [Reason("popular")]
    assert model.explain(["unknown"], [3, 4]) == [Reason("popular"), Reason("popular")]


def random_train(seed: int = 3) -> SessionData:
    rng = np.random.default_rng(seed)
    p = 1.0 / np.arange(1, 21)
    sessions = [
        rng.choice(20, size=int(rng.integers(1, 9)), p=p / p.sum()).tolist() for _ in range(120)
    ]
    return SessionData.from_sequences(sessions)


@pytest.mark.parametrize(
    "model",
    [
        SKNN(k=20, sample_size=50),
        SKNN(k=20, sample_size=50, similarity="jaccard"),
        VSKNN(k=20, sample_size=50, weighting_score="div", idf_weighting=1.0),
        STAN(k=20, sample_size=50, lambda_snh=50.0),
        VSTAN(k=20, sample_size=50, lambda_snh=50.0),
        VMISKNN(k=20, sample_size=50),
        VSKNN(k=20, sample_size=50, last_n_clicks=2),
    ],
    ids=["sknn", "sknn-jaccard", "vsknn-idf", "stan", "vstan", "vmisknn", "vsknn-last2"],
)
def test_knn_shares_add_up_to_the_score(model: SessionKNN):
    train = random_train()
    model.fit(train)
    everything = 10_000
    for session in ([0, 1, 2], [5, 0, 5, 7, 3], [19, 4], [2, 2, 9, 1, 0, 6, 11]):
        batch = model.encode_sessions([session])
        scores = model.score(batch)[0]
        neighbours, _ = model.neighbors(batch.session(0))
        targets = [r.item_id for r in model.recommend([session], k=8)[0]]
        reasons = model.explain(session, targets, top=everything)
        for target, reason in zip(targets, reasons, strict=True):
            score = float(scores[model.vocab_.index(target)])
            assert reason.kind == "neighbours"
            assert sum(w for _, w in reason.session_items) == pytest.approx(score, rel=1e-5)
            assert sum(w for _, w in reason.neighbour_sessions) == pytest.approx(score, rel=1e-5)
            assert {s for s, _ in reason.neighbour_sessions} <= set(neighbours.tolist())
            considered = session[-2:] if model.last_n_clicks else session
            assert {i for i, _ in reason.session_items} <= set(considered)
            weights = [w for _, w in reason.session_items]
            assert weights == sorted(weights, reverse=True)


# ---------------------------------------------------------------- ablation default
class AblatedSR(SequentialRules):
    """SR explained by the base class's model-agnostic default."""

    _explain = Recommender._explain


def test_ablation_default_by_hand():
    model = AblatedSR().fit(TRAIN)
    # Session [1, 2] scores from item 2: 3 -> 2. Without 2 the session [1] gives 3 1.5
    # (drop 0.5); without 1 nothing changes. 4 has no evidence: nothing to explain.
    three, four = model.explain([1, 2], [3, 4])
    assert three == Reason("ablation", ((2, 0.5),))
    assert four == Reason("ablation")
    # Session [2, 1]: 2 scores W[1, 2] = 1. Without 1 the session [2] has no rule to 2: the
    # target falls one score range (2 - 0.5 over the three rows) below the lowest score
    # 0.5, to -1, a drop of 2; without 2 nothing changes.
    (two,) = model.explain([2, 1], [2])
    assert two.kind == "ablation" and approx_pairs(two.session_items) == [(1, 2.0)]


# ---------------------------------------------------------------------- GRU4Rec
def test_gru4rec_names_the_most_similar_session_item_by_embedding():
    pytest.importorskip("torch")
    train = random_train(5)
    model = create_model(
        "gru4rec", {"hidden_size": 8, "batch_size": 8, "n_sample": 0, "n_epochs": 1}
    ).fit(train)
    session = [3, 0, 7, 3]
    targets = [r.item_id for r in model.recommend([session], k=4)[0]]
    reasons = model.explain(session, targets, top=2)
    vectors = model.network_.item_weights.detach().cpu().numpy().astype(np.float64)
    unit = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
    distinct = [3, 7, 0]  # most recent first
    for target, reason in zip(targets, reasons, strict=True):
        cosine = [
            float(unit[model.vocab_.index(target)] @ unit[model.vocab_.index(i)]) for i in distinct
        ]
        order = sorted(range(3), key=lambda j: -cosine[j])[:2]
        assert reason.kind == "embedding"
        assert [i for i, _ in reason.session_items] == [distinct[j] for j in order]
        assert [w for _, w in reason.session_items] == pytest.approx(
            [cosine[j] for j in order], abs=1e-5
        )


# ----------------------------------------------------------------------- errors
def test_bad_input_gets_clear_errors():
    model = SequentialRules().fit(TRAIN)
    with pytest.raises(ConfigError, match="top must be a positive integer"):
        model.explain([1], [2], top=0)
    with pytest.raises(DataError, match="not in the model's vocabulary"):
        model.explain([1], [2, 42])
    with pytest.raises(DataError, match="items must be a list"):
        model.explain([1], "2")  # type: ignore[arg-type]
    with pytest.raises(NotFittedError):
        SequentialRules().explain([1], [2])
    with pytest.raises(ModelError, match="unknown reason kind"):
        Reason("because")


# --------------------------------------------------------------------- contract
def contract_params() -> tuple[dict[str, dict[str, Any]], dict[str, str]]:
    """The contract suite's quick hyperparameters and optional packages, when importable."""
    try:  # tests/models is on sys.path (pytest's default import mode): reuse its settings
        from test_contract import CONTRACT_PARAMS, REQUIRES
    except ImportError:  # pragma: no cover - another import mode
        return {}, {}
    return CONTRACT_PARAMS, REQUIRES


@pytest.mark.parametrize("name", sorted(MODELS))
def test_every_registered_model_explains_each_item(name: str):
    params, requires = contract_params()
    if name in requires:
        pytest.importorskip(requires[name])
    train = random_train(11)
    model = create_model(name, params.get(name)).fit(train)
    for session in ([0, 1, 2], [4], [2, 9, 2, 13], [], ["unknown", 1]):
        targets = [r.item_id for r in model.recommend([session], k=5)[0]]
        reasons = model.explain(session, targets, top=2)
        assert len(reasons) == len(targets)
        for reason in reasons:
            assert isinstance(reason, Reason) and reason.kind in REASON_KINDS
            assert len(reason.session_items) <= 2 and len(reason.neighbour_sessions) <= 2
            for item, weight in reason.session_items:
                assert item in session and math.isfinite(weight)
            for index, weight in reason.neighbour_sessions:
                assert 0 <= index < train.n_sessions and math.isfinite(weight) and weight > 0

"""Known-answer tests of the session-kNN family: sknn, vsknn, stan, vstan, vmisknn.

The hand-made training data below is small enough to compute every candidate, similarity,
decay and score by hand; each expected number is written as the formula it comes from. The
fast paths (``top_k``, ``target_ranks``) are checked against the dense ``score`` on random
data, and the V-SKNN yardstick of the issue runs on the real Diginetica and YooChoose 1/64 splits.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from sessionrec._errors import ConfigError, DataError, ModelError
from sessionrec.data.sessions import ItemVocab, SessionData
from sessionrec.evaluation.protocol import (
    BenchmarkFolder,
    evaluate,
    make_cases,
    prefix_batch,
    rank_targets,
)
from sessionrec.models.base import Recommender, SessionBatch
from sessionrec.models.knn import SKNN, STAN, VMISKNN, VSKNN, VSTAN
from sessionrec.models.knn_index import build_index
from sessionrec.models.registry import create_model
from sessionrec.models.session_knn import SessionKNN

# Five training sessions, oldest first; "age" = number of more recent sessions (4 .. 0).
#   s0 a b c | s1 b d | s2 a e | s3 c b f | s4 d e a a
TRAIN = [["a", "b", "c"], ["b", "d"], ["a", "e"], ["c", "b", "f"], ["d", "e", "a", "a"]]
VOCAB_ORDER = ["a", "b", "c", "d", "e", "f", "g"]  # g: in the vocabulary, never clicked
SESSION = ["a", "b"]  # b is the last click (d = 0), a one click before (d = 1)
N = 5


def make_data(sessions: Sequence[Sequence[str]] = TRAIN) -> SessionData:
    return SessionData.from_sequences(sessions, vocab=ItemVocab(VOCAB_ORDER))


def scores_of(model: Recommender, session: Sequence[str]) -> dict[str, float]:
    """Every finite score of one session, by external id."""
    row = model.score(model.encode_sessions([session]))[0]
    finite = np.flatnonzero(np.isfinite(row))
    return dict(zip(model.vocab_.decode(finite), row[finite].tolist(), strict=True))


def neighbours_of(model: SessionKNN, session: Sequence[str]) -> dict[int, float]:
    """Neighbour (training session number) -> similarity."""
    sessions, sims = model.neighbors(model.vocab_.encode(session))
    return dict(zip(sessions.tolist(), sims.tolist(), strict=True))


def approx(expected: dict[Any, float]) -> Any:
    return pytest.approx(expected, rel=1e-6)


# ------------------------------------------------------------------------------- V-SKNN
def test_vsknn_linear_decay_dot_product_and_scores() -> None:
    model = VSKNN(k=10, sample_size=10).fit(make_data())
    # Weights max(0, 1 - 0.1 d): b 1.0, a 0.9; similarity = dot / 2 distinct items.
    assert neighbours_of(model, SESSION) == approx(
        {0: (1 + 0.9) / 2, 1: 1 / 2, 2: 0.9 / 2, 3: 1 / 2, 4: 0.9 / 2}
    )
    # Each item scores the summed similarity of the neighbours that contain it.
    assert scores_of(model, SESSION) == approx(
        {
            "a": 0.95 + 0.45 + 0.45,  # s0 s2 s4
            "b": 0.95 + 0.5 + 0.5,  # s0 s1 s3
            "c": 0.95 + 0.5,  # s0 s3
            "d": 0.5 + 0.45,  # s1 s4
            "e": 0.45 + 0.45,  # s2 s4
            "f": 0.5,  # s3
        }
    )


def test_vsknn_k_keeps_the_most_similar_and_ties_go_to_the_more_recent() -> None:
    model = VSKNN(k=2, sample_size=10).fit(make_data())
    # s0 0.95 first; s1 and s3 tie at 0.5: the more recent s3 wins.
    assert neighbours_of(model, SESSION) == approx({0: 0.95, 3: 0.5})
    assert scores_of(model, SESSION) == approx({"a": 0.95, "b": 1.45, "c": 1.45, "f": 0.5})


def test_vsknn_samples_the_most_recent_candidates() -> None:
    model = VSKNN(k=2, sample_size=3).fit(make_data())
    # Candidates: the 3 most recent sessions sharing an item (s4, s3, s2); s3 0.5 first,
    # then s4 and s2 tie at 0.45 and the more recent s4 wins.
    assert neighbours_of(model, SESSION) == approx({3: 0.5, 4: 0.45})
    assert scores_of(model, SESSION) == approx(
        {"c": 0.5, "b": 0.5, "f": 0.5, "d": 0.45, "e": 0.45, "a": 0.45}
    )


def test_vsknn_linear_weight_reaches_zero_ten_clicks_back() -> None:
    train = make_data([["a", "c"], ["b", "c"]])
    model = VSKNN(k=10, sample_size=10).fit(train)
    session = ["a"] + ["b"] * 10  # a is 10 clicks back: weight 0, so s0 is no neighbour
    assert neighbours_of(model, session) == approx({1: 1.0 / 2})


def test_vsknn_match_decay_and_idf() -> None:
    model = VSKNN(k=10, sample_size=10, weighting_score="div", idf_weighting=2.0)
    model.fit(make_data())
    # div: 1 / step of the most recent session click in the neighbour (b: 1, a only: 2);
    # idf(i) = log(5 / sessions with i): a, b 3 sessions, c d e 2, f 1.
    low, mid, high = math.log(5 / 3), math.log(5 / 2), math.log(5)
    s0, s1, s2, s3, s4 = 0.95, 0.5, 0.45 / 2, 0.5, 0.45 / 2
    assert scores_of(model, SESSION) == approx(
        {
            "a": (s0 + s2 + s4) * (1 + 2 * low),
            "b": (s0 + s1 + s3) * (1 + 2 * low),
            "c": (s0 + s3) * (1 + 2 * mid),
            "d": (s1 + s4) * (1 + 2 * mid),
            "e": (s2 + s4) * (1 + 2 * mid),
            "f": s3 * (1 + 2 * high),
        }
    )


def test_repeated_items_keep_the_weight_of_their_last_click() -> None:
    model = VSKNN(k=10, sample_size=10).fit(make_data())
    # b a b: b is the last click (1.0), a one click back (0.9); 2 distinct items.
    assert neighbours_of(model, ["b", "a", "b"]) == approx(neighbours_of(model, SESSION))
    # a b a: a is the last click now.
    assert neighbours_of(model, ["a", "b", "a"])[2] == pytest.approx(1.0 / 2)


# --------------------------------------------------------------------------------- SKNN
def test_sknn_cosine_and_jaccard() -> None:
    cosine = SKNN(k=10, sample_size=10).fit(make_data())
    # Binary vectors: shared / sqrt(2 * |n|); |s0| = |s3| = |s4| = 3 distinct, |s1| = |s2| = 2.
    sims = {0: 2 / math.sqrt(6), 1: 1 / 2, 2: 1 / 2, 3: 1 / math.sqrt(6), 4: 1 / math.sqrt(6)}
    assert neighbours_of(cosine, SESSION) == approx(sims)
    assert scores_of(cosine, SESSION)["b"] == pytest.approx(sims[0] + sims[1] + sims[3])
    jaccard = SKNN(k=10, sample_size=10, similarity="jaccard").fit(make_data())
    # shared / (2 + |n| - shared)
    assert neighbours_of(jaccard, SESSION) == approx(
        {0: 2 / 3, 1: 1 / 3, 2: 1 / 3, 3: 1 / 4, 4: 1 / 4}
    )


def test_last_n_clicks_uses_only_the_end_of_the_session() -> None:
    model = SKNN(k=10, sample_size=10, last_n_clicks=1).fit(make_data())
    # Only b counts: s0 (1 / sqrt(3)), s1 (1 / sqrt(2)), s3 (1 / sqrt(3)).
    assert neighbours_of(model, SESSION) == approx(
        {0: 1 / math.sqrt(3), 1: 1 / math.sqrt(2), 3: 1 / math.sqrt(3)}
    )


# --------------------------------------------------------------------------------- STAN
def test_stan_three_decays() -> None:
    l1, l2, l3 = 1.0, 2.0, 1.5
    model = STAN(k=10, sample_size=10, lambda_spw=l1, lambda_snh=l2, lambda_inh=l3)
    model.fit(make_data())
    wa = math.exp(-1 / l1)  # a is one click back; b weighs exp(0) = 1
    norm = math.sqrt(1 + wa**2)

    def sim(dot: float, size: int, age: int) -> float:
        return dot / (norm * math.sqrt(size)) * math.exp(-age / l2)

    sims = {
        0: sim(1 + wa, 3, 4),
        1: sim(1, 2, 3),
        2: sim(wa, 2, 2),
        3: sim(1, 3, 1),
        4: sim(wa, 3, 0),
    }
    assert neighbours_of(model, SESSION) == approx(sims)

    def w3(distance: int) -> float:
        return math.exp(-distance / l3)

    # p* = last position in the neighbour of an item shared with the session:
    # s0 a1 b2 c3 -> 2; s1 b1 d2 -> 1; s2 a1 e2 -> 1; s3 c1 b2 f3 -> 2; s4 d1 e2 a4 -> 4.
    expected = {
        "a": sims[0] * w3(1) + sims[2] * w3(0) + sims[4] * w3(0),
        "b": sims[0] * w3(0) + sims[1] * w3(0) + sims[3] * w3(0),
        "c": sims[0] * w3(1) + sims[3] * w3(1),
        "d": sims[1] * w3(1) + sims[4] * w3(3),
        "e": sims[2] * w3(1) + sims[4] * w3(2),
        "f": sims[3] * w3(1),
    }
    assert scores_of(model, SESSION) == approx(expected)


def test_stan_recency_decay_picks_recent_neighbours() -> None:
    model = STAN(k=1, sample_size=10, lambda_spw=1e9, lambda_snh=0.1, lambda_inh=1e9)
    model.fit(make_data())
    # A very short λ2 makes the youngest candidate (s4, age 0) the single neighbour.
    assert list(neighbours_of(model, SESSION)) == [4]


def test_recency_follows_last_click_times_when_known() -> None:
    # s1 starts later but s0 ends last: with one candidate allowed, s0 is the most recent.
    train = SessionData.from_sequences([["a", "b"], ["a", "c"]], times=[[0.0, 100.0], [10.0, 20.0]])
    model = VSKNN(k=1, sample_size=1).fit(train)
    assert list(neighbours_of(model, ["a"])) == [0]
    untimed = VSKNN(k=1, sample_size=1).fit(SessionData.from_sequences([["a", "b"], ["a", "c"]]))
    assert list(neighbours_of(untimed, ["a"])) == [1]


def test_empty_training_sessions_are_ignored() -> None:
    with_empty = make_data([["a", "b"], [], ["b", "c"], []])
    model = VSKNN(k=5, sample_size=5).fit(with_empty)
    assert neighbours_of(model, ["b"]) == approx({0: 1.0, 2: 1.0})
    assert model.session_source_.tolist() == [0, 2]


# -------------------------------------------------------------------------------- VSTAN
def test_vstan_adds_match_decay_and_idf_to_stan() -> None:
    params = {"lambda_spw": 1.0, "lambda_snh": 2.0, "lambda_inh": 1.5}
    stan = STAN(k=10, sample_size=10, **params).fit(make_data())
    vstan = VSTAN(k=10, sample_size=10, lambda_ipw=0.5, lambda_idf=3.0, **params)
    vstan.fit(make_data())
    assert neighbours_of(vstan, SESSION) == approx(neighbours_of(stan, SESSION))
    # Neighbours holding b match at d* = 0 (factor 1); s2 and s4 hold only a: exp(-1 / 0.5).
    w3 = {d: math.exp(-d / 1.5) for d in range(4)}
    sims = neighbours_of(stan, SESSION)
    ipw = math.exp(-1 / 0.5)
    idf = {"d": math.log(5 / 2), "e": math.log(5 / 2)}
    expected_d = sims[1] * w3[1] + sims[4] * ipw * w3[3]
    expected_e = sims[2] * ipw * w3[1] + sims[4] * ipw * w3[2]
    got = scores_of(vstan, SESSION)
    assert got["d"] == pytest.approx(expected_d * (1 + 3 * idf["d"]))
    assert got["e"] == pytest.approx(expected_e * (1 + 3 * idf["e"]))


# ------------------------------------------------------------------------------ VMIS-kNN
def test_vmisknn_index_keeps_m_most_recent_sessions_per_item() -> None:
    index, source = build_index(make_data(), sample_size=2)
    indptr, sessions = index.post_indptr, index.post_sessions
    a = VOCAB_ORDER.index("a")
    # a occurs in s0, s2, s4: only s2 and s4 stay; s0 is still kept for c (s0, s3).
    assert source[sessions[indptr[a] : indptr[a + 1]]].tolist() == [2, 4]
    assert sorted(source.tolist()) == [0, 1, 2, 3, 4]
    index, source = build_index(make_data([["a"], ["a"], ["a"], ["b"]]), sample_size=2)
    assert source.tolist() == [1, 2, 3]  # s0 is referenced by no list: dropped


def test_vmisknn_position_weights_linear_decay_and_idf() -> None:
    model = VMISKNN(k=10, sample_size=10).fit(make_data())
    # Weights position / length: b 2/2, a 1/2; dot product / 2 distinct items.
    sims = {0: 1.5 / 2, 1: 1 / 2, 2: 0.5 / 2, 3: 1 / 2, 4: 0.5 / 2}
    assert neighbours_of(model, SESSION) == approx(sims)
    # linear decay by the match step: b (step 1) 0.9, only a (step 2) 0.8; times idf.
    d = {0: 0.9, 1: 0.9, 2: 0.8, 3: 0.9, 4: 0.8}
    contrib = {s: sims[s] * d[s] for s in sims}
    idf = {i: math.log(5 / n) for i, n in {"a": 3, "b": 3, "c": 2, "d": 2, "e": 2, "f": 1}.items()}
    assert scores_of(model, SESSION) == approx(
        {
            "a": (contrib[0] + contrib[2] + contrib[4]) * idf["a"],
            "b": (contrib[0] + contrib[1] + contrib[3]) * idf["b"],
            "c": (contrib[0] + contrib[3]) * idf["c"],
            "d": (contrib[1] + contrib[4]) * idf["d"],
            "e": (contrib[2] + contrib[4]) * idf["e"],
            "f": contrib[3] * idf["f"],
        }
    )


# ------------------------------------------------------------------------------ fallback
@pytest.mark.parametrize("name", ["sknn", "vsknn", "stan", "vstan", "vmisknn"])
def test_sessions_without_neighbours_fall_back_to_popularity_and_are_flagged(name: str) -> None:
    model = create_model(name, {"k": 3, "sample_size": 3}).fit(make_data())
    # clicks: a 4, b 3, c d e 2, f 1, g 0
    popular = [("a", 4.0), ("b", 3.0), ("c", 2.0), ("d", 2.0), ("e", 2.0), ("f", 1.0), ("g", 0.0)]
    sessions = [["zzz", "unknown"], [], ["g"], SESSION]
    recs = model.recommend(sessions, k=10)
    for rec in recs[:3]:
        assert [(r.item_id, r.score) for r in rec] == popular
    assert [r.item_id for r in recs[3]] != [item for item, _ in popular]
    batch = model.encode_sessions(sessions)
    np.testing.assert_array_equal(model.fallback_mask(batch), [True, True, True, False])
    none = np.zeros(0, dtype=np.int64)
    (first, _), *_ = model.top_k(batch, 2, exclude=[np.array([0]), none, none, none])
    assert first.tolist() == [VOCAB_ORDER.index("b"), VOCAB_ORDER.index("c")]  # a excluded


# ----------------------------------------------------------------------------- validation
@pytest.mark.parametrize("cls", [SKNN, VSKNN, STAN, VSTAN, VMISKNN])
@pytest.mark.parametrize(
    ("params", "match"),
    [
        ({"k": 0}, "k=0"),
        ({"k": -5}, "k=-5"),
        ({"k": 2.5}, "k=2.5"),
        ({"k": 100, "sample_size": 50}, "sample_size=50"),
        ({"sample_size": 0}, "sample_size=0"),
        ({"last_n_clicks": -1}, "last_n_clicks"),
    ],
)
def test_bad_neighbourhood_parameters_are_rejected_at_construction(
    cls: type[SessionKNN], params: dict[str, Any], match: str
) -> None:
    with pytest.raises(ConfigError, match=match):
        cls(**params)


@pytest.mark.parametrize("cls", [STAN, VSTAN])
@pytest.mark.parametrize("decay", ["lambda_spw", "lambda_snh", "lambda_inh"])
@pytest.mark.parametrize("value", [0.0, -1.0, math.inf, math.nan])
def test_non_positive_decays_are_rejected(cls: type[SessionKNN], decay: str, value: float) -> None:
    with pytest.raises(ConfigError, match=decay):
        cls(**{decay: value})


@pytest.mark.parametrize(
    ("cls", "params"),
    [
        (VSTAN, {"lambda_ipw": 0.0}),
        (VSTAN, {"lambda_idf": -1.0}),
        (VSKNN, {"idf_weighting": -0.5}),
        (VSKNN, {"weighting": "cubic"}),
        (VSKNN, {"weighting_score": "exp"}),
        (SKNN, {"similarity": "pearson"}),
        (VMISKNN, {"idf": "yes"}),
    ],
)
def test_other_bad_parameters_are_rejected(cls: type[SessionKNN], params: dict[str, Any]) -> None:
    with pytest.raises(ConfigError, match=next(iter(params))):
        cls(**params)


def test_load_rejects_a_corrupt_index(tmp_path: Path) -> None:
    model = VSKNN(k=2, sample_size=3).fit(make_data())
    state = model._get_state()
    state["post_sessions"] = state["post_sessions"] + 100  # points past the session store
    fresh = VSKNN(k=2, sample_size=3)
    fresh.vocab_ = model.vocab_
    with pytest.raises(ModelError, match="post entries"):
        fresh._set_state(state)
    with pytest.raises(DataError, match="internal indices"):
        model.score(SessionBatch.from_sequences([[len(VOCAB_ORDER)]]))


def test_kth_largest_handles_ties() -> None:
    from sessionrec.models.knn_kernels import kth_largest

    rng = np.random.default_rng(5)
    for trial in range(500):
        n = int(rng.integers(1, 40))
        values = rng.integers(0, 5, size=n).astype(float) if trial % 2 else rng.random(n)
        k = int(rng.integers(1, n + 1))
        assert kth_largest(values, k) == np.sort(values)[::-1][k - 1]


# ------------------------------------------------------------- fast paths = dense scores
def random_data(seed: int) -> SessionData:
    rng = np.random.default_rng(seed)
    p = 1.0 / np.arange(1, 41) ** 0.8
    p /= p.sum()
    sessions = [
        [f"i{x}" for x in rng.choice(40, size=int(rng.integers(1, 9)), p=p)] for _ in range(400)
    ]
    return SessionData.from_sequences(sessions)


FAST_PATH_MODELS = [
    ("sknn", {"k": 20, "sample_size": 60, "similarity": "jaccard"}),
    ("vsknn", {"k": 20, "sample_size": 50, "weighting_score": "div", "idf_weighting": 1.0}),
    ("stan", {"k": 30, "sample_size": 80, "lambda_snh": 300.0}),
    ("vstan", {"k": 25, "sample_size": 100, "lambda_snh": 200.0, "last_n_clicks": 3}),
    ("vmisknn", {"k": 15, "sample_size": 40}),
]


@pytest.mark.parametrize(("name", "params"), FAST_PATH_MODELS)
def test_top_k_and_target_ranks_equal_the_dense_scores(name: str, params: dict[str, Any]) -> None:
    train = random_data(1)
    model = create_model(name, params).fit(train)
    rng = np.random.default_rng(2)
    sessions = [rng.integers(0, train.n_items, size=int(rng.integers(0, 7))) for _ in range(300)]
    batch = SessionBatch.from_sequences(sessions)
    exclude = [rng.integers(0, train.n_items, size=int(rng.integers(0, 4))) for _ in sessions]
    for k in (1, 5, 20, train.n_items + 3):
        for ex in (None, exclude):
            fast = model.top_k(batch, k, exclude=ex)
            dense = Recommender.top_k(model, batch, k, exclude=ex)
            for (fi, fs), (di, ds) in zip(fast, dense, strict=True):
                np.testing.assert_array_equal(fi, di)
                np.testing.assert_array_equal(fs, ds)
    targets = rng.integers(-1, train.n_items, size=len(sessions))
    expected = rank_targets(model.score(batch), targets, "pessimistic")
    np.testing.assert_array_equal(model.target_ranks(batch, targets), expected)


def test_scores_do_not_depend_on_batch_composition() -> None:
    model = VSTAN(k=25, sample_size=100, lambda_snh=200.0).fit(random_data(3))
    sessions = [[1, 2, 3], [], [4], [5, 5, 6, 1]]
    together = model.score(SessionBatch.from_sequences(sessions))
    for row, session in enumerate(sessions):
        alone = model.score(SessionBatch.from_sequences([session]))[0]
        np.testing.assert_array_equal(alone, together[row])


# ------------------------------------------------------------------- the real benchmark
YARDSTICK = [
    # folder, cases, HR@20, MRR@20 of an independent V-SKNN implementation (issue 3)
    ("diginetica/srgnn", 60858, 49.08, 17.42),
    ("yoochoose/srgnn-1_64", 55898, 63.81, 25.70),
]


@pytest.mark.slow
@pytest.mark.parametrize(("name", "n_cases", "hr", "mrr"), YARDSTICK)
def test_vsknn_yardstick(shared_data: Path, name: str, n_cases: int, hr: float, mrr: float) -> None:
    """Untuned V-SKNN (k=100 of 500 recent, linear decay, dot / distinct items)."""
    folder = BenchmarkFolder(shared_data / name)
    train, test = folder.train(), folder.test()
    model = VSKNN(k=100, sample_size=500, weighting="linear", similarity="vec").fit(train)
    mapped = train.vocab.encode(test.vocab.ids).astype(np.int64)[test.items]
    cases = make_cases(test, "next")
    targets = mapped[cases.starts + cases.lengths]
    ranks = np.concatenate(
        [
            model.target_ranks(
                prefix_batch(
                    mapped, None, cases.starts[lo : lo + 8192], cases.lengths[lo : lo + 8192]
                ),
                targets[lo : lo + 8192],
            )
            for lo in range(0, len(cases), 8192)
        ]
    )
    assert len(ranks) == n_cases
    assert 100 * np.mean(ranks <= 20) == pytest.approx(hr, abs=0.5)
    assert 100 * np.mean(np.where(ranks <= 20, 1 / ranks, 0)) == pytest.approx(mrr, abs=0.5)
    # The fast ranks are the protocol's: compare on the first 300 test sessions.
    head = test.subset(np.arange(300))
    result = evaluate(model, head, protocol="benchmark", cutoffs=(20,))
    np.testing.assert_array_equal(result.ranks, ranks[: result.n_cases])

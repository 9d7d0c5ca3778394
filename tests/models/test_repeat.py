"""The repeat layer (``repeat``, :mod:`sessionrec.models.repeat`): it learns to recommend the
session's own items when the next click repeats one, stays off when it never does, serves
exactly what it scores, explains repeats, and saves its base as a member.

The constructed splits use the popularity base, which knows nothing of the session: every
gain on repeats is the layer's.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from sessionrec._errors import ConfigError, ModelError
from sessionrec.data.sessions import ItemVocab, SessionData
from sessionrec.data.split import last_fraction_split
from sessionrec.evaluation.protocol import make_cases
from sessionrec.models.base import Reason, ScoredItem, SessionBatch
from sessionrec.models.popular import Pop
from sessionrec.models.registry import create_model, load_model
from sessionrec.models.repeat import RepeatAware
from sessionrec.models.repeat_mixture import N_CELLS, Mixture, cell_of, learn_mixture
from sessionrec.models.topk import select_top_k
from sessionrec.tuning import validation_ranks

N_ITEMS = 300
VOCAB = ItemVocab(np.arange(N_ITEMS))


def zipf_items(rng: np.random.Generator, size: tuple[int, ...]) -> np.ndarray:
    p = 1.0 / np.arange(1, N_ITEMS + 1)
    return rng.choice(N_ITEMS, size=size, p=p / p.sum())


def repeat_sessions(n: int = 2000, seed: int = 1) -> SessionData:
    """Sessions ``a b b`` (a != b): the third click repeats the second, a new item follows a."""
    pairs = zipf_items(np.random.default_rng(seed), (2 * n, 2))
    pairs = pairs[pairs[:, 0] != pairs[:, 1]][:n]
    return SessionData.from_sequences([[int(a), int(b), int(b)] for a, b in pairs], vocab=VOCAB)


def explore_sessions(n: int = 2000, seed: int = 2) -> SessionData:
    """Sessions of three distinct items: the next click is never a repeat."""
    rng = np.random.default_rng(seed)
    sessions = []
    while len(sessions) < n:
        s = zipf_items(rng, (3,))
        if np.unique(s).size == 3:
            sessions.append([int(x) for x in s])
    return SessionData.from_sequences(sessions, vocab=VOCAB)


def ids(lists: list[list[ScoredItem]]) -> list[list[object]]:
    return [[r.item_id for r in recs] for recs in lists]


def gains(ranks: np.ndarray, cutoff: int = 20) -> float:
    """HR@20 + MRR@20 (fractions) of pessimistic ranks."""
    hit = ranks <= cutoff
    return float(hit.mean() + np.where(hit, 1.0 / ranks, 0.0).mean())


# ----------------------------------------------------------------------- the mixture, by hand
def test_repeat_scores_weigh_recency_and_frequency() -> None:
    # Session 3 5 3 7: item 7 is the last click (d=0, once), 3 was clicked twice, last at d=1,
    # 5 once at d=2. decay 0.5, power 1: 7 -> 1, 3 -> 0.5 * 2 = 1, 5 -> 0.25; the largest is 1.
    mixture = Mixture(0.5, 1.0, np.full(N_CELLS, 2.0))
    items, scores = mixture.repeat_scores(np.array([3, 5, 3, 7]))
    np.testing.assert_array_equal(items, [7, 3, 5])
    np.testing.assert_allclose(scores, [1.0, 1.0, 0.25])
    assert scores.dtype == np.float32


def test_cells_are_length_buckets_times_repeats_so_far() -> None:
    lengths = np.array([1, 2, 2, 3, 4, 5, 6, 9, 10, 50])
    repeats = np.array([0, 0, 1, 0, 1, 0, 0, 1, 0, 1], dtype=bool)
    np.testing.assert_array_equal(cell_of(lengths, repeats), [0, 2, 3, 4, 7, 6, 8, 9, 10, 11])
    beta = np.full(N_CELLS, np.nan)
    beta[3] = 0.5
    mixture = Mixture(1.0, 0.0, beta)
    assert mixture.session_beta(np.array([4, 4])) == 0.5  # two clicks, one repeat
    assert mixture.session_beta(np.array([4, 5])) is None  # two clicks, no repeat: off
    assert mixture.session_beta(np.array([], dtype=np.int64)) is None


def test_new_items_keep_the_base_score_and_session_items_get_beta_times_repeat() -> None:
    train = SessionData.from_sequences([[0, 1, 1, 1], [1, 2, 2], [3]])  # clicks 1, 4, 2, 1
    base = Pop().fit(train)
    model = RepeatAware.wrap(base, SessionData.from_sequences([[0, 1]]))
    model.mixture_ = Mixture(0.5, 0.0, np.full(N_CELLS, 0.3))
    scores = model.score(SessionBatch.from_sequences([[3, 1, 3], []]))
    # New items 0 and 2 keep their clicks (1 and 2); the best of them (2) scales the session
    # items 3 (d=0) and 1 (d=1): 2 * 0.3 * 1 and 2 * 0.3 * 0.5. The empty session is the base's.
    np.testing.assert_allclose(scores[0], [1.0, 0.3, 2.0, 0.6], rtol=1e-6)
    np.testing.assert_array_equal(scores[1], [1, 4, 2, 1])


# ------------------------------------------------------------- learning on constructed splits
def test_the_layer_learns_to_recommend_the_repeat() -> None:
    train = repeat_sessions()
    model = RepeatAware(base="pop").fit(train)
    assert model.recommends_repeats()
    # Two clicks (no repeat yet) -> the next one repeats the last: that cell is on; one
    # click -> a new item: that cell recommends no repeat.
    assert model.mixture_.beta[cell_of(np.array([2]), np.array([False]))[0]] > 0
    assert not model.mixture_.beta[cell_of(np.array([1]), np.array([False]))[0]] > 0
    # A new visitor's second click is recommended first, said to be a repeat.
    (first, *_), *_ = model.recommend([[17, 250]], k=5)
    assert first.item_id == 250
    assert model.explain([17, 250], [250, 0]) == [
        Reason("repeat", ((250, pytest.approx(first.score)),)),
        Reason("popular"),
    ]
    # On held-out sessions the repeat is always first; the base alone ranks it by popularity.
    test = repeat_sessions(300, seed=9)
    ranks = validation_ranks(model, test)
    cases = make_cases(test, "next")
    second = cases.lengths == 2
    np.testing.assert_array_equal(ranks[second], 1.0)
    assert gains(ranks) > gains(validation_ranks(model.base_, test)) + 0.5


def test_the_layer_stays_off_when_no_next_click_repeats() -> None:
    train = explore_sessions()
    model = RepeatAware(base="pop").fit(train)
    assert not model.recommends_repeats()
    # Popularity ranks the session's items high, but the next click is always new: where
    # validation has cases (1 or 2 clicks, no repeat) it leaves the session's items out;
    # sessions that repeat an item never occur there, so they keep the base's scores.
    beta = model.mixture_.beta
    assert (beta[cell_of(np.array([1, 2]), np.array([False, False]))] == 0).all()
    assert np.isnan(beta[cell_of(np.array([2, 3]), np.array([True, True]))]).all()
    base = Pop().fit(train)
    new_only = [[1, 2], [5]]
    assert ids(model.recommend(new_only, k=10)) == ids(
        base.recommend(new_only, k=10, exclude_seen=True)
    )
    assert model.recommend([[7, 7], []], k=10) == base.recommend([[7, 7], []], k=10)
    assert model.explain([1, 2], [0]) == [Reason("popular")]


def test_validation_never_prefers_the_layer_to_a_better_base() -> None:
    data = repeat_sessions(1200, seed=4)
    fit_part, valid = last_fraction_split(data, 0.2)
    base = Pop().fit(fit_part)
    wrapped = RepeatAware.wrap(base, valid, min_cases=1)
    assert gains(validation_ranks(wrapped, valid)) >= gains(validation_ranks(base, valid))
    none_repeat = explore_sessions(1200, seed=5)
    off = learn_mixture(base, none_repeat, min_cases=1)
    assert not off.is_on


# --------------------------------------------------------------------------- exact serving
@pytest.mark.parametrize("base", ["pop", "vsknn", "sr"])
def test_top_k_is_the_top_of_score_with_exclusions_inside_the_search(base: str) -> None:
    train = repeat_sessions(800, seed=3)
    model = RepeatAware(base=base, min_cases=1).fit(train)
    assert model.recommends_repeats()
    rng = np.random.default_rng(0)
    sessions = [zipf_items(rng, (n,)).tolist() for n in (1, 2, 2, 3, 4, 7, 0)]
    sessions.append([5, 5, 9])
    batch = model.encode_sessions(sessions)
    exclude = [np.asarray(batch.session(i)[:1], dtype=np.int64) for i in range(len(batch))]
    exclude[2] = np.arange(0, N_ITEMS, 3)  # many exclusions: deeper base search
    for k in (1, 5, 40):
        scores = model.score(batch)
        for row, items in enumerate(exclude):
            scores[row, items] = -np.inf
        expected = select_top_k(scores, k)
        got = model.top_k(batch, k, exclude=exclude)
        for (idx, vals), (want_idx, want_vals) in zip(got, expected, strict=True):
            np.testing.assert_array_equal(idx, want_idx)
            np.testing.assert_array_equal(vals, want_vals)


# ------------------------------------------------------------------------ folder and params
def test_saved_with_its_base_as_a_member(tmp_path: Path) -> None:
    train = repeat_sessions(600, seed=6)
    model = RepeatAware(base="sr", base_params={"steps": 5}, min_cases=1).fit(train)
    folder = model.save(tmp_path / "repeat")
    assert (folder / "members" / "base").is_dir()
    loaded = load_model(folder)
    assert isinstance(loaded, RepeatAware) and loaded.base_.get_params()["steps"] == 5
    np.testing.assert_array_equal(loaded.mixture_.beta, model.mixture_.beta)
    sessions = [[1, 2], [3, 3], [4]]
    assert loaded.recommend(sessions, k=8) == model.recommend(sessions, k=8)


def test_wrap_keeps_the_fitted_base() -> None:
    data = repeat_sessions(1000, seed=7)
    fit_part, valid = last_fraction_split(data, 0.2)
    base = create_model("vsknn").fit(fit_part)
    wrapped = RepeatAware.wrap(base, valid)
    assert wrapped.base_ is base and wrapped.get_params()["base"] == "vsknn"
    assert wrapped.recommends_repeats()


@pytest.mark.parametrize(
    "params",
    [
        {"base": "repeat"},
        {"base": "nope"},
        {"base": "sr", "base_params": {"no_such": 1}},
        {"base_params": [1]},
        {"valid_fraction": 1.0},
        {"valid_fraction": 0},
        {"min_cases": 0},
    ],
)
def test_bad_hyperparameters_are_refused(params: dict[str, object]) -> None:
    with pytest.raises(ConfigError):
        create_model("repeat", params)


def test_a_member_of_another_kind_is_refused(tmp_path: Path) -> None:
    model = RepeatAware(base="pop").fit(repeat_sessions(300))
    with pytest.raises(ModelError, match="base"):
        model._set_members({"base": create_model("sr").fit(repeat_sessions(300))})

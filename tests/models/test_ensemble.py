"""The ensemble: weights recovered on synthetic members of known quality, the validation
procedure, serving through the weighted members only, persistence with members inside."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from sessionrec._errors import ConfigError, ModelError
from sessionrec.data.sessions import ItemVocab, SessionData
from sessionrec.data.split import last_fraction_split
from sessionrec.evaluation.metrics import mrr
from sessionrec.models import registry
from sessionrec.models.base import Reason, Recommender, SessionBatch
from sessionrec.models.ensemble import (
    MEMBER_MODELS,
    Ensemble,
    choose_point,
    parse_members,
    reaches_floor,
)
from sessionrec.models.ensemble_fusion import (
    normalise,
    normalise_at,
    normalise_sparse,
    simplex_grid,
)
from sessionrec.models.persist import MANIFEST
from sessionrec.models.registry import create_model, load_model
from sessionrec.tuning import validation_ranks

N_ITEMS = 20
NAMES = [f"x{i:02d}" for i in range(N_ITEMS)]


def make_world(n_sessions: int, seed: int) -> SessionData:
    """Sessions that always move to the next item: x03 -> x04 -> x05 ... (mod 20)."""
    rng = np.random.default_rng(seed)
    sessions = []
    for _ in range(n_sessions):
        start, length = int(rng.integers(N_ITEMS)), int(rng.integers(2, 7))
        sessions.append([NAMES[(start + i) % N_ITEMS] for i in range(length)])
    return SessionData.from_sequences(sessions, vocab=ItemVocab(NAMES))


WORLD = make_world(300, seed=1)


class Expert(Recommender):
    """A synthetic member of known quality, over internal indices (= the x number).

    ``kind``: ``"all"`` knows every next item; ``"even"``/``"odd"`` know it after an even
    / odd last item and have no evidence otherwise; ``"noise"`` scores at random (seeded by
    the last item); ``"first"`` / ``"later"`` know it after one click / after two or more
    and score noise otherwise. An empty session gets a flat fallback row.
    """

    name = "expert-test"

    def __init__(self, kind: str = "all", seed: int = 0) -> None:
        self.kind = kind
        self.seed = seed

    def _fit(self, train: SessionData, valid: SessionData | None) -> None:
        self.n_train_sessions_ = train.n_sessions
        self.counts_ = train.item_counts()

    def knows(self, last: int) -> bool:
        return self.kind == "all" or (self.kind == "even") == (last % 2 == 0)

    def score(self, batch: SessionBatch) -> np.ndarray:
        self._check_fitted()
        out = np.full((len(batch), self.n_items), -np.inf, dtype=np.float32)
        for row, last in enumerate(batch.last_items().tolist()):
            one_click = bool(batch.lengths[row] == 1)
            if last < 0:
                out[row] = 0.0
            elif self.kind in ("first", "later") and one_click == (self.kind == "first"):
                out[row] = 0.0
                out[row, (last + 1) % self.n_items] = 1.0
            elif self.kind in ("noise", "first", "later"):
                out[row] = np.random.default_rng(last).random(self.n_items)
            elif self.knows(last):
                out[row, (last + 1) % self.n_items] = 1.0
        return out

    def fallback_mask(self, batch: SessionBatch) -> np.ndarray:
        return batch.lengths == 0

    def training_counts(self) -> np.ndarray | None:
        return self.counts_

    def _explain(self, session: np.ndarray, targets: np.ndarray, top: int) -> list[Reason]:
        last = self.vocab_.decode(session[-1:])[0]
        return [Reason("session_items", ((last, float(self.kind == "even")),)) for _ in targets]

    def _get_state(self) -> dict[str, np.ndarray]:
        return {"n": np.asarray(self.n_train_sessions_), "counts": self.counts_}

    def _set_state(self, state: dict[str, np.ndarray]) -> None:
        self.n_train_sessions_ = int(state["n"])
        self.counts_ = state["counts"]


@pytest.fixture(autouse=True)
def registered(monkeypatch: pytest.MonkeyPatch) -> None:
    # A member by name (fitting) and a saved member folder (loading) both find the test model.
    monkeypatch.setitem(MEMBER_MODELS, Expert.name, Expert)
    monkeypatch.setitem(registry.MODELS, Expert.name, Expert)


def experts(**kinds: str) -> dict[str, object]:
    """``members`` and ``member_params`` of an ensemble of experts, by label."""
    return {
        "members": ",".join(f"{Expert.name}:{label}" for label in kinds),
        "member_params": {label: {"kind": kind} for label, kind in kinds.items()},
    }


# ------------------------------------------------------------------------ known answers
def test_members_spec_names_and_labels() -> None:
    assert parse_members("vstan, sr:rules") == [("vstan", "vstan"), ("sr", "rules")]
    for bad in ("", "vstan,vstan", "sr:../x", "sr:", ":x"):
        if bad == "sr:":  # an empty label falls back to the name
            assert parse_members(bad) == [("sr", "sr")]
            continue
        with pytest.raises(ConfigError, match="members"):
            parse_members(bad)


def test_simplex_grid_lists_every_point_from_the_first_member_down() -> None:
    expected = [[1, 0, 0], [0.5, 0.5, 0], [0.5, 0, 0.5], [0, 1, 0], [0, 0.5, 0.5], [0, 0, 1]]
    np.testing.assert_array_equal(simplex_grid(3, 2), expected)
    assert simplex_grid(4, 10).shape == (286, 4)  # C(13, 3)
    np.testing.assert_allclose(simplex_grid(4, 10).sum(axis=1), 1.0)


def test_normalisations_on_a_worked_row() -> None:
    row = np.array([[1.0, 3.0, -np.inf, 2.0, 3.0]], dtype=np.float32)
    values, evidence = normalise(row, "minmax")
    np.testing.assert_allclose(values, [[0.0, 1.0, 0.0, 0.5, 1.0]])
    np.testing.assert_array_equal(evidence, [[True, True, False, True, True]])
    values, _ = normalise(row, "rank")  # ranks 4, 1, -, 3, 1: the tied 3s share rank 1
    np.testing.assert_allclose(values, [[61 / 64, 1.0, 0.0, 61 / 63, 1.0]])
    flat, _ = normalise(np.array([[2.0, 2.0, -np.inf]]), "minmax")
    np.testing.assert_allclose(flat, [[1.0, 1.0, 0.0]])


@pytest.mark.parametrize("method", ["minmax", "rank"])
def test_normalising_at_candidate_columns_equals_normalising_whole_rows(method: str) -> None:
    rng = np.random.default_rng(4)
    scores = rng.integers(0, 5, size=(6, 30)).astype(np.float32)  # ties on purpose
    scores[rng.random(scores.shape) < 0.4] = -np.inf
    scores[5] = -np.inf  # a row without evidence
    columns = rng.integers(-1, 30, size=(6, 8))
    values, evidence = normalise_at(scores, columns, method)
    full, finite = normalise(scores, method)
    rows = np.arange(6)[:, None]
    pad = columns < 0
    np.testing.assert_allclose(values, np.where(pad, 0.0, full[rows, columns]))
    np.testing.assert_array_equal(evidence, ~pad & finite[rows, columns])


# ------------------------------------------------------------------- weights recovered
def test_a_perfect_member_takes_all_the_weight_from_noise() -> None:
    model = create_model("ensemble", {**experts(noise="noise", oracle="all")}).fit(WORLD)
    assert model.member_weights() == {"noise": 0.0, "oracle": 1.0}
    assert model.valid_mrr_ == pytest.approx(100.0)


def test_complementary_experts_share_the_weight_and_noise_gets_none() -> None:
    model = create_model("ensemble", experts(even="even", odd="odd", noise="noise")).fit(WORLD)
    weights = model.member_weights()
    # Every split of the weight between the two experts is perfect on validation; ties go
    # to fewer scored members (noise 0), then to the first grid point: 0.9 / 0.1.
    assert weights == pytest.approx({"even": 0.9, "odd": 0.1, "noise": 0.0})
    assert model.valid_mrr_ == pytest.approx(100.0)
    # Each expert alone has no evidence for half of the cases; together they know them all.
    sessions = [[name] for name in NAMES]
    top = model.recommend(sessions, k=1)
    assert [rec[0].item_id for rec in top] == NAMES[1:] + NAMES[:1]
    for alone in ("even", "odd"):
        single = create_model("ensemble", experts(**{alone: alone})).fit(WORLD)
        assert single.valid_mrr_ == pytest.approx(100.0 * validation_share(alone))


def validation_share(kind: str) -> float:
    """The share of validation cases (the last 10% of WORLD) an even/odd expert knows."""
    _, held = last_fraction_split(WORLD, 0.1)
    lasts = np.concatenate([held.session(s)[:-1] for s in range(held.n_sessions)])
    return float(np.mean((lasts % 2 == 0) == (kind == "even")))


def test_chosen_weights_maximise_the_exact_validation_mrr() -> None:
    """On a small catalogue the candidate sets hold every item, so the search must pick the
    grid point whose dense, exact validation MRR@20 (the evaluation's ranks) is highest (one
    length group: no hit-rate floor)."""
    params = {
        "members": "sr,spop,vstan",
        "grid_steps": 4,
        "normalization": "minmax",
        "length_groups": "",
    }
    first, held = last_fraction_split(random_sessions(), 0.2)
    model = create_model("ensemble", params).fit(first, valid=held)
    chosen, found = model.weights_[0].copy(), model.valid_mrr_
    grid = simplex_grid(3, 4)
    exact = []
    for weights in grid:
        model.weights_ = weights[None, :]
        exact.append(100.0 * mrr(validation_ranks(model, held), 20))
    model_exact = exact[[list(w) for w in grid].index(list(chosen))]
    assert model_exact == pytest.approx(max(exact), abs=1e-9)
    assert found == pytest.approx(model_exact, abs=1e-6)
    assert len(set(np.round(exact, 6))) > 1  # the grid points differ: the choice matters


def test_each_length_group_gets_the_member_that_knows_it() -> None:
    """One member knows the next item after one click, the other after two or more: with
    weights per length group the fusion is perfect on validation, with one set it is not."""
    first, held = last_fraction_split(make_world(2000, seed=2), 0.2)
    kinds = experts(first="first", later="later")
    model = create_model("ensemble", kinds).fit(first, valid=held)
    assert model.group_weights() == {
        "1": {"first": 1.0, "later": 0.0},
        "2": {"first": 0.0, "later": 1.0},
        "3+": {"first": 0.0, "later": 1.0},
    }
    assert model.valid_mrr_ == pytest.approx(100.0)
    sessions = [["x03"], ["x03", "x04"], ["x07", "x08", "x09"]]
    assert [r[0].item_id for r in model.recommend(sessions, k=1)] == ["x04", "x05", "x10"]
    one = create_model("ensemble", {**kinds, "length_groups": ""}).fit(first, valid=held)
    assert one.weights_.shape == (1, 2)
    assert one.valid_mrr_ < 99.0


def test_weights_saved_before_length_groups_serve_every_group() -> None:
    model = create_model("ensemble", experts(noise="noise", oracle="all")).fit(WORLD)
    state = {"weights": np.array([0.0, 1.0]), "normalization": np.asarray(0), "valid_mrr": 1.0}
    model._set_state(state)
    np.testing.assert_array_equal(model.weights_, [[0.0, 1.0]] * 3)
    with pytest.raises(ModelError, match="length groups"):
        model._set_state({**state, "weights": np.ones((2, 2))})


@pytest.mark.parametrize("spec", ["2,1", "0", "1,x", "1,1"])
def test_bad_length_groups_are_refused(spec: str) -> None:
    with pytest.raises(ConfigError, match="length_groups"):
        create_model("ensemble", {"length_groups": spec})


def random_sessions() -> SessionData:
    """200 random sessions over 15 items of Zipf-like popularity."""
    rng = np.random.default_rng(5)
    p = 1.0 / np.arange(1, 16)
    sessions = [
        [f"r{x}" for x in rng.choice(15, size=int(rng.integers(2, 7)), p=p / p.sum())]
        for _ in range(200)
    ]
    return SessionData.from_sequences(sessions)


# --------------------------------------------------------------------- the procedure
def test_weighted_members_are_refitted_on_all_sessions_and_unweighted_ones_are_not() -> None:
    model = create_model("ensemble", experts(noise="noise", oracle="all")).fit(WORLD)
    first, _ = last_fraction_split(WORLD, 0.1)
    assert model.members_["oracle"].n_train_sessions_ == WORLD.n_sessions
    assert model.members_["noise"].n_train_sessions_ == first.n_sessions
    np.testing.assert_array_equal(model.training_counts(), WORLD.item_counts())


def test_a_given_validation_set_chooses_the_weights_and_members_fit_once() -> None:
    first, held = last_fraction_split(WORLD, 0.2)
    model = create_model("ensemble", experts(noise="noise", oracle="all")).fit(first, held)
    assert model.member_weights() == {"noise": 0.0, "oracle": 1.0}
    assert all(m.n_train_sessions_ == first.n_sessions for m in model.members_.values())


def test_from_fitted_members() -> None:
    first, held = last_fraction_split(WORLD, 0.2)
    members = {"noise": Expert("noise").fit(first), "oracle": Expert("all").fit(first)}
    model = Ensemble.from_fitted(members, held)
    assert model.member_weights() == {"noise": 0.0, "oracle": 1.0}
    assert model.get_params()["members"] == "expert-test:noise,expert-test:oracle"
    assert model.recommend([["x04"]], k=1)[0][0].item_id == "x05"


def test_a_member_without_weight_is_not_scored(monkeypatch: pytest.MonkeyPatch) -> None:
    model = create_model("ensemble", experts(noise="noise", oracle="all")).fit(WORLD)

    def refuse(batch: SessionBatch) -> np.ndarray:
        raise AssertionError("a member without weight was scored")

    monkeypatch.setattr(model.members_["noise"], "score", refuse)
    assert model.recommend([["x07"]], k=2)[0][0].item_id == "x08"


def test_fallback_only_when_every_weighted_member_falls_back() -> None:
    model = create_model("ensemble", experts(even="even", odd="odd")).fit(WORLD)
    batch = model.encode_sessions([[], ["x02"], ["x03"]])
    np.testing.assert_array_equal(model.fallback_mask(batch), [True, False, False])


def test_explained_by_the_member_that_contributes_most() -> None:
    model = create_model("ensemble", experts(even="even", odd="odd")).fit(WORLD)
    # After x02 only the even expert has evidence for x03: its reason (weight 1.0) is given.
    assert model.explain(["x02"], ["x03"]) == [Reason("session_items", (("x02", 1.0),))]
    assert model.explain(["x03"], ["x04"]) == [Reason("session_items", (("x03", 0.0),))]
    assert model.explain_members(["x02"], ["x03"]) == [{"even": 1.0, "odd": 0.0}]


# ------------------------------------------------------------------------- persistence
def test_saved_with_its_members_and_loaded_back(tmp_path: Path) -> None:
    model = create_model("ensemble", experts(even="even", odd="odd", noise="noise")).fit(WORLD)
    folder = model.save(tmp_path / "ensemble")
    assert json.loads((folder / MANIFEST).read_text())["members"] == ["even", "noise", "odd"]
    loaded = load_model(folder)
    assert isinstance(loaded, Ensemble)
    assert loaded.member_weights() == model.member_weights()
    assert loaded.normalization_ == model.normalization_
    sessions = [[name] for name in NAMES] + [[]]
    assert loaded.recommend(sessions, k=5) == model.recommend(sessions, k=5)


# ---------------------------------------------------------------------- bad parameters
@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"members": "sr,sr"}, "unique"),
        ({"members": "sr", "member_params": {"vstan": {}}}, "no member labelled"),
        ({"member_params": {"sr": 3}}, "member_params"),
        ({"normalization": "zscore"}, "normalization"),
        ({"valid_fraction": 1.0}, "valid_fraction"),
        ({"grid_steps": 0}, "grid_steps"),
    ],
)
def test_bad_parameters_are_refused(params: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        create_model("ensemble", params)


def test_unknown_member_models_are_refused_at_fit() -> None:
    with pytest.raises(ConfigError, match="unknown ensemble member 'nosuchmodel'"):
        create_model("ensemble", {"members": "nosuchmodel"}).fit(WORLD)
    with pytest.raises(ConfigError, match="cannot be a member"):
        create_model("ensemble", {"members": "ensemble:inner"}).fit(WORLD)


def test_parameters_from_the_command_line() -> None:
    parsed = registry.parse_params(
        "ensemble", ["members=sr,spop:popular", 'member_params={"popular": {}}', "grid_steps=4"]
    )
    assert parsed == {
        "members": "sr,spop:popular",
        "member_params": {"popular": {}},
        "grid_steps": 4,
    }
    model = create_model("ensemble", parsed).fit(random_sessions())
    assert set(model.member_weights()) == {"sr", "popular"}


def test_served_explained_and_hot_reloaded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("fastapi")
    from fastapi.testclient import TestClient

    from sessionrec.serve.app import create_app
    from sessionrec.serve.config import ServeConfig, VariantSpec

    before = create_model("sr").fit(WORLD).save(tmp_path / "sr")
    folder = (
        create_model("ensemble", experts(even="even", odd="odd"))
        .fit(WORLD)
        .save(tmp_path / "ensemble")
    )
    monkeypatch.setenv("SESSIONREC_ADMIN_TOKEN", "ensemble-token")
    config = ServeConfig(variants=(VariantSpec("default", str(before)),), reload_interval=0.0)
    with TestClient(create_app(config)) as client:
        reload = client.post(
            "/v1/admin/models/default/reload",
            json={"path": str(folder)},
            headers={"Authorization": "Bearer ensemble-token"},
        )
        assert reload.status_code == 200, reload.text
        body = {"items": ["x02"], "k": 1, "explain": True}
        answer = client.post("/v1/recommendations", json=body).json()
    assert answer["model"] == "ensemble"
    assert [item["item_id"] for item in answer["items"]] == ["x03"]
    reason = answer["items"][0]["reason"]
    assert reason["kind"] == "session_items"  # the even expert's own reason
    assert reason["session_items"] == [{"item_id": "x02", "weight": 1.0}]


@pytest.mark.parametrize("method", ["minmax", "rank"])
def test_sparse_normalisation_equals_a_row_by_row_reference(method: str) -> None:
    rng = np.random.default_rng(7)
    scores = rng.integers(0, 6, size=(8, 40)).astype(np.float32)  # many ties
    scores[rng.random(scores.shape) < 0.6] = -np.inf
    scores[3] = -np.inf  # no evidence at all
    scores[5] = -np.inf
    scores[5, 7] = 2.0  # one finite score: min-max gives 1
    values, evidence = normalise(scores, method)
    rows, cols, sparse = normalise_sparse(scores, method)
    np.testing.assert_array_equal(values[rows, cols], sparse)  # the two forms agree
    np.testing.assert_array_equal(
        evidence, np.isin(np.arange(scores.size), rows * 40 + cols).reshape(scores.shape)
    )
    for row in range(scores.shape[0]):
        finite = np.isfinite(scores[row])
        expected = np.zeros(scores.shape[1])
        known = scores[row, finite].astype(np.float64)
        if method == "minmax" and known.size:
            spread = known.max() - known.min()
            expected[finite] = (known - known.min()) / spread if spread > 0 else 1.0
        elif known.size:
            higher = np.array([(known > v).sum() for v in known])
            expected[finite] = 61.0 / (61.0 + higher)
        np.testing.assert_allclose(values[row], expected)
        np.testing.assert_array_equal(evidence[row], finite)


@pytest.mark.parametrize("dense_share", [0.0, 1.0])  # every member dense / every one sparse
def test_the_ensemble_score_is_the_sum_of_its_members_terms(
    dense_share: float, monkeypatch: pytest.MonkeyPatch
) -> None:
    import sessionrec.models.ensemble as ensemble_module

    monkeypatch.setattr(ensemble_module, "DENSE_SHARE", dense_share)
    first, held = last_fraction_split(random_sessions(), 0.2)
    model = create_model("ensemble", {"members": "sr,spop,vstan", "grid_steps": 4})
    model = model.fit(first, valid=held)
    model.weights_ = np.array([[0.5, 0.25, 0.25], [0.0, 1.0, 0.0], [0.2, 0.0, 0.8]])
    batch = SessionBatch.from_sequences([[1], [2, 3], [4, 5, 6], [7, 1, 2, 9]])
    terms = model.member_contributions(batch)
    total = np.sum(list(terms.values()), axis=0)
    rows = model._row_weights(batch)
    evidence = np.zeros(total.shape, dtype=bool)
    for j, label in enumerate(model.labels):
        finite = np.isfinite(model.members_[label].score(batch))
        evidence |= finite & (rows[:, j] > 0)[:, None]
    expected = np.where(evidence, total, -np.inf).astype(np.float32)
    np.testing.assert_array_equal(model.score(batch), expected)


def test_the_hit_rate_floor_binds_only_where_asked() -> None:
    grid = simplex_grid(2, 2)  # (1, 0), (0.5, 0.5), (0, 1)
    rr = np.array([30.0, 25.0, 10.0])  # the first member alone ranks best...
    hits = np.array([60.0, 70.0, 75.0])  # ...the second alone hits most
    assert choose_point(grid, rr, hits, floor=False) == 0
    assert choose_point(grid, rr, hits, floor=True) == 2  # only it reaches 75 hits
    hits[1] = 75.0  # the mix reaches the floor too, with a better MRR
    assert choose_point(grid, rr, hits, floor=True) == 1
    assert reaches_floor(grid, hits, 1) and not reaches_floor(grid, hits, 0)

"""The model contract (``docs/architecture.md``, "The model contract"), run by every
registered model.

Parametrized over :data:`sessionrec.models.registry.MODELS`, so a model added to the registry
runs this suite without touching it. What is checked holds for any model: recommendations are
the top-k of :meth:`Recommender.score` (finite scores only, best first, ties by lower index),
so the suite needs no per-model knowledge. A model too slow to fit on the fixture with its
defaults gets small hyperparameters in :data:`CONTRACT_PARAMS`.
"""

from __future__ import annotations

import json
import math
from collections.abc import Collection, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from sessionrec._errors import ConfigError, ModelError, NotFittedError
from sessionrec.data.sessions import ItemVocab, SessionData
from sessionrec.models.base import Recommender, ScoredItem, SessionBatch, TrainingHistory
from sessionrec.models.persist import COUNTS, FORMAT_VERSION, MANIFEST
from sessionrec.models.registry import MODELS, create_model, load_model, model_params
from sessionrec.models.topk import rank_targets, select_top_k

CONTRACT_PARAMS: dict[str, dict[str, Any]] = {
    "gru4rec": {"hidden_size": 16, "batch_size": 8, "n_sample": 8, "n_epochs": 2},
    "narm": {"embedding_size": 8, "hidden_size": 8, "batch_size": 16, "n_epochs": 2},
    "stamp": {"embedding_size": 8, "batch_size": 16, "n_epochs": 2},
    "srgnn": {"hidden_size": 8, "batch_size": 16, "n_epochs": 2},
    "sasrec": {"hidden_size": 16, "max_len": 8, "batch_size": 32, "n_epochs": 2},
    "ensemble": {"members": "vstan,sr,spop:popular", "grid_steps": 5},
    # A base with sparse scores and cells switched on by the few validation cases there are.
    "repeat": {"base": "vsknn", "valid_fraction": 0.3, "min_cases": 1},
}
"""Hyperparameters that keep a slow model quick on the fixture (e.g. one epoch)."""

REQUIRES: dict[str, str] = {
    "gru4rec": "torch",
    "narm": "torch",
    "stamp": "torch",
    "srgnn": "torch",
    "sasrec": "torch",
}
"""Optional package a model needs (its extra); the suite skips the model without it."""

N_CLICKED = 12
NEVER_CLICKED = ("i12", "i13")  # in the vocabulary, absent from the training clicks


def make_train() -> SessionData:
    """60 random sessions over 12 items (Zipf-like popularity, repeats), 14-item vocabulary.

    The vocabulary order is shuffled so that internal indices differ from the id numbers.
    """
    rng = np.random.default_rng(7)
    names = [f"i{x:02d}" for x in range(N_CLICKED + len(NEVER_CLICKED))]
    p = 1.0 / np.arange(1, N_CLICKED + 1)
    p /= p.sum()
    sessions = [
        [names[x] for x in rng.choice(N_CLICKED, size=int(rng.integers(1, 8)), p=p)]
        for _ in range(60)
    ]
    sessions += [["i00", "i01", "i01", "i02"], ["i05", "i05"], ["i11"]]
    vocab = ItemVocab([str(x) for x in rng.permutation(names)])
    return SessionData.from_sequences(sessions, vocab=vocab)


TRAIN = make_train()
QUERIES: list[list[str]] = [
    *([str(x) for x in TRAIN.vocab.decode(TRAIN.session(s))] for s in range(6)),
    ["i03"],
    ["i11"],
    ["i12"],  # an item without clicks
    ["i01", "i01", "i01"],
    ["i00", "i01", "i02", "i03", "i04", "i05", "i06", "i07", "i08", "i09", "i10", "i11"],
    [],
]


def build(name: str) -> Recommender:
    return create_model(name, CONTRACT_PARAMS.get(name))


_FITTED: dict[str, Recommender] = {}


@pytest.fixture(params=sorted(MODELS))
def name(request: pytest.FixtureRequest) -> str:
    if request.param in REQUIRES:
        pytest.importorskip(REQUIRES[request.param])
    return str(request.param)


@pytest.fixture
def model(name: str) -> Recommender:
    """The model fitted on :data:`TRAIN`, shared by the tests (a fitted model is read-only)."""
    if name not in _FITTED:
        _FITTED[name] = build(name).fit(TRAIN)
    return _FITTED[name]


def ids_and_scores(recs: Sequence[ScoredItem]) -> tuple[list[Any], list[float]]:
    return [r.item_id for r in recs], [r.score for r in recs]


def reference_lists(
    model: Recommender,
    sessions: Sequence[Sequence[Any]],
    k: int,
    exclude: Sequence[Collection[Any]] | None = None,
) -> list[list[tuple[Any, float]]]:
    """What ``recommend`` must return: the top-k of ``score`` with excluded items at -inf."""
    scores = model.score(model.encode_sessions(sessions))
    for row, items in enumerate(exclude or []):
        idx = model.vocab_.encode(list(items))
        scores[row, idx[idx >= 0]] = -np.inf
    return [
        list(zip(model.vocab_.decode(idx), vals.tolist(), strict=True))
        for idx, vals in select_top_k(scores, k)
    ]


def as_pairs(recs: list[list[ScoredItem]]) -> list[list[tuple[Any, float]]]:
    return [[(r.item_id, r.score) for r in rec] for rec in recs]


# --------------------------------------------------------------------------- construction
def test_registry_name_matches_class(name: str) -> None:
    assert MODELS[name].name == name


def test_get_params_round_trip_through_constructor(name: str) -> None:
    model = build(name)
    params = model.get_params()
    assert type(model)(**params).get_params() == params
    assert json.loads(json.dumps(params)) == params  # storable in the manifest
    assert MODELS[name]().get_params() == model_params(name)  # defaults are stored unchanged


def test_fit_returns_self(name: str) -> None:
    model = build(name)
    assert not model.is_fitted
    assert model.fit(TRAIN, valid=TRAIN.subset(np.arange(5))) is model
    assert model.is_fitted
    assert model.vocab_ == TRAIN.vocab and model.n_items == TRAIN.n_items


def test_fit_does_not_mutate_training_data(name: str) -> None:
    data = make_train()
    before = (data.offsets.copy(), data.items.copy(), data.vocab.ids.copy(), data.fingerprint())
    model = build(name).fit(data)
    model.recommend(QUERIES, k=5, exclude_seen=True)
    np.testing.assert_array_equal(data.offsets, before[0])
    np.testing.assert_array_equal(data.items, before[1])
    np.testing.assert_array_equal(data.vocab.ids, before[2])
    assert data.fingerprint() == before[3]


def test_not_fitted_model_raises(name: str, tmp_path: Path) -> None:
    model = build(name)
    with pytest.raises(NotFittedError):
        model.recommend([["i01"]], k=3)
    with pytest.raises(NotFittedError):
        model.score(SessionBatch.from_sequences([[0]]))
    with pytest.raises(NotFittedError):
        model.save(tmp_path / "model")
    assert not (tmp_path / "model").exists()


def test_a_failed_refit_leaves_the_model_unfitted(
    name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    model = build(name).fit(TRAIN)
    other = SessionData.from_sequences([["x1", "x2"], ["x2", "x3"]])

    def diverge(train: SessionData, valid: SessionData | None) -> None:
        raise FloatingPointError("loss is NaN")

    monkeypatch.setattr(model, "_fit", diverge)
    with pytest.raises(FloatingPointError):
        model.fit(other)
    # Neither the new vocabulary over the old state nor any part of the old state is left.
    assert not model.is_fitted
    assert not [attr for attr in vars(model) if attr.endswith("_") and attr != "lambda_"]
    with pytest.raises(NotFittedError):
        model.recommend([["i01"]], k=3)


# ------------------------------------------------------------------------------- scoring
def test_score_is_a_fresh_float32_matrix(model: Recommender) -> None:
    batch = model.encode_sessions(QUERIES)
    scores = model.score(batch)
    assert scores.dtype == np.float32
    assert scores.shape == (len(QUERIES), TRAIN.n_items)
    assert not np.isnan(scores).any() and not np.isposinf(scores).any()
    original = scores.copy()
    scores[:] = 0.0  # the caller may modify the array without touching the model
    np.testing.assert_array_equal(model.score(batch), original)
    assert model.score(SessionBatch.from_sequences([])).shape == (0, TRAIN.n_items)


def test_recommend_is_ranked_unpadded_and_matches_score(model: Recommender) -> None:
    k = 5
    recs = model.recommend(QUERIES, k=k)
    scores = model.score(model.encode_sessions(QUERIES))
    assert len(recs) == len(QUERIES)
    for row, rec in enumerate(recs):
        assert all(isinstance(r, ScoredItem) for r in rec)
        ids, vals = ids_and_scores(rec)
        assert len(ids) == len(set(ids)), "duplicates"
        assert all(isinstance(i, str) and i in TRAIN.vocab for i in ids), "external ids"
        assert all(math.isfinite(v) for v in vals), "padded with -inf"
        assert vals == sorted(vals, reverse=True), "not best first"
        assert len(rec) == min(k, int(np.isfinite(scores[row]).sum()))
        idx = TRAIN.vocab.encode(ids)
        np.testing.assert_array_equal(np.asarray(vals, np.float32), scores[row, idx])
        if rec:  # nothing left out scores higher than the last item returned
            assert (np.delete(scores[row], idx) <= vals[-1]).all()
    assert as_pairs(recs) == reference_lists(model, QUERIES, k)


def test_batch_equals_one_by_one(model: Recommender) -> None:
    together = model.recommend(QUERIES, k=7)
    for session, rec in zip(QUERIES, together, strict=True):
        alone = model.recommend([session], k=7)[0]
        assert ids_and_scores(alone)[0] == ids_and_scores(rec)[0]
        np.testing.assert_allclose(ids_and_scores(alone)[1], ids_and_scores(rec)[1], rtol=1e-5)


def test_k_larger_than_catalog(model: Recommender) -> None:
    recs = model.recommend(QUERIES, k=TRAIN.n_items + 10)
    scores = model.score(model.encode_sessions(QUERIES))
    for row, rec in enumerate(recs):
        finite = set(TRAIN.vocab.decode(np.flatnonzero(np.isfinite(scores[row]))))
        assert {r.item_id for r in rec} == finite
        assert len(rec) == len(finite) <= TRAIN.n_items
    assert model.recommend([["i01"]], k=10**9) == model.recommend([["i01"]], k=TRAIN.n_items)


@pytest.mark.parametrize("bad_k", [0, -1, 1.5, True, "3", None])
def test_k_must_be_a_positive_integer(model: Recommender, bad_k: Any) -> None:
    with pytest.raises(ConfigError, match="k must be"):
        model.recommend([["i01"]], k=bad_k)


def test_exclude_removes_items_and_keeps_the_rest_in_order(model: Recommender) -> None:
    full = model.recommend(QUERIES, k=TRAIN.n_items)
    exclude: list[Collection[Any]] = []
    for i, rec in enumerate(full):
        drop = [r.item_id for r in rec[:2]] + ["not-an-item", 12345]
        exclude.append(set(drop) if i % 2 else tuple(drop))
    k = 4
    got = model.recommend(QUERIES, k=k, exclude=exclude)
    for rec, excluded, base in zip(got, exclude, full, strict=True):
        assert not {r.item_id for r in rec} & set(excluded)
        assert rec == [r for r in base if r.item_id not in excluded][:k]
    assert as_pairs(got) == reference_lists(model, QUERIES, k, exclude)


def test_exclude_seen_removes_the_session_items(model: Recommender) -> None:
    full = model.recommend(QUERIES, k=TRAIN.n_items)
    k = 4
    got = model.recommend(QUERIES, k=k, exclude_seen=True)
    for rec, session, base in zip(got, QUERIES, full, strict=True):
        assert not {r.item_id for r in rec} & set(session)
        assert rec == [r for r in base if r.item_id not in session][:k]
    both = model.recommend(QUERIES, k=k, exclude=[["i00"]] * len(QUERIES), exclude_seen=True)
    for rec, session, base in zip(both, QUERIES, full, strict=True):
        assert rec == [r for r in base if r.item_id not in {*session, "i00"}][:k]


def test_unknown_items_are_ignored(model: Recommender) -> None:
    noisy: list[list[Any]] = [["??", *s, "nope", 987654] if s else ["??"] for s in QUERIES]
    interleaved = [[x for item in s for x in (item, "zz")] for s in QUERIES]
    expected = model.recommend(QUERIES, k=6)
    assert model.recommend(noisy, k=6) == expected
    assert model.recommend(interleaved, k=6) == expected
    np.testing.assert_array_equal(
        model.score(model.encode_sessions(noisy)), model.score(model.encode_sessions(QUERIES))
    )


def test_empty_sessions_and_empty_batches(model: Recommender) -> None:
    recs = model.recommend([[], [], ["only-unknown"]], k=5)
    assert len(recs) == 3 and recs[0] == recs[1] == recs[2]
    assert all(math.isfinite(r.score) for r in recs[0])
    assert model.recommend([], k=5) == []


def test_recommend_is_deterministic(model: Recommender) -> None:
    first = model.recommend(QUERIES, k=8, exclude_seen=True)
    assert model.recommend(QUERIES, k=8, exclude_seen=True) == first
    np.testing.assert_array_equal(
        model.score(model.encode_sessions(QUERIES)), model.score(model.encode_sessions(QUERIES))
    )


# --------------------------------------------------------------------------- persistence
def test_save_load_round_trip(model: Recommender, tmp_path: Path) -> None:
    path = model.save(tmp_path / "model", metrics={"hr@20": 12.5})
    loaded = load_model(path)
    assert type(loaded) is type(model)
    assert loaded.get_params() == model.get_params()
    assert loaded.vocab_ == model.vocab_
    assert loaded.recommend(QUERIES, k=6) == model.recommend(QUERIES, k=6)
    assert loaded.recommend(QUERIES, k=6, exclude_seen=True) == model.recommend(
        QUERIES, k=6, exclude_seen=True
    )
    np.testing.assert_array_equal(
        loaded.score(loaded.encode_sessions(QUERIES)), model.score(model.encode_sessions(QUERIES))
    )
    model.save(path)  # replacing an existing model folder works
    assert load_model(path).recommend(QUERIES, k=3) == model.recommend(QUERIES, k=3)


def test_load_rejects_a_modified_state_file(model: Recommender, tmp_path: Path) -> None:
    path = model.save(tmp_path / "model")
    state_file = path / "state.npz"
    with np.load(state_file, allow_pickle=False) as npz:
        arrays = {key: npz[key] for key in npz.files}
    arrays["tampered"] = np.zeros(1)
    with state_file.open("wb") as handle:
        np.savez(handle, **arrays)
    with pytest.raises(ModelError, match="checksum"):
        load_model(path)


def test_load_rejects_a_newer_format_version(model: Recommender, tmp_path: Path) -> None:
    path = model.save(tmp_path / "model")
    manifest = json.loads((path / MANIFEST).read_text())
    manifest["format_version"] = FORMAT_VERSION + 1
    (path / MANIFEST).write_text(json.dumps(manifest))
    with pytest.raises(ModelError, match="format_version"):
        load_model(path)


def test_load_rejects_artifact_versions_it_cannot_read(model: Recommender, tmp_path: Path) -> None:
    path = model.save(tmp_path / "model")
    manifest = json.loads((path / MANIFEST).read_text())
    assert manifest["artifact_version"] == type(model).artifact_version
    for version, message in (
        (type(model).artifact_version + 1, "upgrade sessionrec"),
        (type(model).oldest_artifact_version - 1, "train the model again"),
    ):
        manifest["artifact_version"] = version
        (path / MANIFEST).write_text(json.dumps(manifest))
        with pytest.raises(ModelError, match=f"artifact_version.*{message}"):
            load_model(path)


# ---------------------------------------------------------------- what callers may ask
def test_target_ranks_are_the_pessimistic_ranks_of_score(model: Recommender) -> None:
    batch = model.encode_sessions(QUERIES)
    rng = np.random.default_rng(3)
    targets = rng.integers(0, model.n_items, size=len(batch))
    expected = rank_targets(model.score(batch), targets, "pessimistic")
    np.testing.assert_array_equal(model.target_ranks(batch, targets), expected)
    with pytest.raises(Exception, match="one target per session"):
        model.target_ranks(batch, targets[:-1])


def test_fallback_mask_flags_only_sessions_answered_without_their_clicks(
    model: Recommender,
) -> None:
    batch = model.encode_sessions(QUERIES)
    mask = model.fallback_mask(batch)
    assert mask.dtype == np.bool_ and mask.shape == (len(batch),)
    # A fallback row does not depend on the session: the same for every session that gets it.
    scores = model.score(batch)
    for row in np.flatnonzero(mask):
        np.testing.assert_array_equal(scores[row], scores[np.flatnonzero(mask)[0]])


def test_top_k_with_fallback_is_top_k_and_fallback_mask(model: Recommender) -> None:
    batch = model.encode_sessions(QUERIES)
    exclude = [
        np.asarray(batch.items[batch.offsets[r] : batch.offsets[r + 1]]) for r in range(len(batch))
    ]
    for rows in (None, exclude):
        found, fallback = model.top_k_with_fallback(batch, 7, rows)
        np.testing.assert_array_equal(fallback, model.fallback_mask(batch))
        for (idx, vals), (want_idx, want_vals) in zip(
            found, model.top_k(batch, 7, rows), strict=True
        ):
            np.testing.assert_array_equal(idx, want_idx)
            np.testing.assert_array_equal(vals, want_vals)


def test_training_history_describes_the_epochs_run(model: Recommender) -> None:
    history = model.training_history()
    if history is None:
        return  # models without epochs (neighbourhoods, rules, popularity)
    assert isinstance(history, TrainingHistory)
    n_epochs = len(history.losses)
    assert n_epochs == int(model.get_params()["n_epochs"])
    for values in (history.seconds, history.examples, history.valid):
        assert len(values) == n_epochs
    assert 1 <= history.best_epoch <= n_epochs
    assert np.isfinite(history.losses).all() and (history.examples > 0).all()


def test_training_counts_are_the_training_clicks_per_item(model: Recommender) -> None:
    # Every model keeps them (regression: rules and item-kNN kept none, so serving had no
    # popularity fallback for them without --popularity).
    counts = model.training_counts()
    assert counts is not None
    assert counts.dtype.kind in "iu"
    np.testing.assert_array_equal(counts, TRAIN.item_counts())


def test_training_counts_survive_save_and_load(model: Recommender, tmp_path: Path) -> None:
    loaded = load_model(model.save(tmp_path / "model"))
    counts = loaded.training_counts()
    assert counts is not None
    np.testing.assert_array_equal(counts, TRAIN.item_counts())


def strip_counts(folder: Path) -> None:
    """Make ``folder`` look saved by a sessionrec that kept no counts (members included)."""
    for manifest_path in [folder / MANIFEST, *folder.glob(f"members/*/{MANIFEST}")]:
        manifest = json.loads(manifest_path.read_text())
        manifest["files"].pop(COUNTS, None)
        manifest_path.write_text(json.dumps(manifest))
        (manifest_path.parent / COUNTS).unlink(missing_ok=True)


def test_a_folder_saved_without_counts_still_loads(model: Recommender, tmp_path: Path) -> None:
    path = model.save(tmp_path / "model")
    strip_counts(path)
    loaded = load_model(path)
    assert loaded.recommend(QUERIES, k=4) == model.recommend(QUERIES, k=4)
    counts = loaded.training_counts()  # None, unless the model's own state holds them
    if counts is not None:
        np.testing.assert_array_equal(counts, TRAIN.item_counts())


def test_load_rejects_a_modified_counts_file(model: Recommender, tmp_path: Path) -> None:
    path = model.save(tmp_path / "model")
    # A composite model's counts are its members'.
    counts = path / COUNTS if (path / COUNTS).is_file() else next(path.glob(f"members/*/{COUNTS}"))
    counts.write_bytes(counts.read_bytes() + b"x")
    with pytest.raises(ModelError, match="checksum"):
        load_model(path)

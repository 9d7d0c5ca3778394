"""Live updates of the session-kNN index (``SessionKNN.update``): exactly a refit on the
training sessions followed by the new ones, new items included; bounded by ``max_sessions``."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from sessionrec._errors import ConfigError, DataError, ModelError
from sessionrec.data.sessions import SessionData
from sessionrec.models.base import SessionBatch
from sessionrec.models.registry import create_model, load_model
from sessionrec.models.session_knn import SessionKNN

KNN_MODELS = ("sknn", "vsknn", "stan", "vstan", "vmisknn")
EVENT_TYPES = ("cart", "purchase", "view")  # sorted, as the data layer stores them


def random_sessions(
    rng: np.random.Generator, n: int, n_items: int, prefix: str, start: float
) -> tuple[list[list[str]], list[list[float]], list[list[int]]]:
    """Sessions over items ``<prefix><k>`` with increasing times and random event types."""
    sessions, times, types = [], [], []
    clock = start
    for _ in range(n):
        length = int(rng.integers(0, 7))  # empty sessions too: they count in ages and ids
        sessions.append([f"{prefix}{int(k)}" for k in rng.integers(0, n_items, length)])
        times.append([clock + 10.0 * j for j in range(length)])
        types.append(rng.integers(0, len(EVENT_TYPES), length).tolist())
        clock += 100.0
    return sessions, times, types


def typed(
    sessions: list[list[str]], times: list[list[float]], types: list[list[int]]
) -> SessionData:
    data = SessionData.from_sequences(sessions, times=times)
    flat = np.asarray([t for ts in types for t in ts], dtype=np.int8)
    return replace(data, types=flat, event_types=EVENT_TYPES)


def probes(data: SessionData, n: int) -> SessionBatch:
    prefixes = [data.session(s)[:3] for s in range(n)]
    return SessionBatch.from_sequences([p for p in prefixes if len(p)])


@pytest.fixture(scope="module")
def parts() -> tuple[SessionData, list[SessionData], SessionData]:
    """Training sessions, three later batches (new items ``n*`` among them) and all of it."""
    rng = np.random.default_rng(7)
    a = random_sessions(rng, 120, 25, "i", 0.0)
    batches = [
        random_sessions(rng, 30, 25, "i", 1e6),
        random_sessions(rng, 25, 8, "n", 2e6),  # only new items
        random_sessions(rng, 40, 30, "i", 3e6),  # i25..i29: new as well
    ]
    everything = tuple([*a[k], *(x for b in batches for x in b[k])] for k in range(3))
    return typed(*a), [typed(*b) for b in batches], typed(*everything)


def assert_same_model(updated: SessionKNN, refit: SessionKNN) -> None:
    assert updated.vocab_ == refit.vocab_
    for name, value in refit.index_._asdict().items():
        np.testing.assert_array_equal(getattr(updated.index_, name), value, err_msg=name)
    np.testing.assert_array_equal(updated.session_source_, refit.session_source_)
    np.testing.assert_array_equal(updated.popularity_, refit.popularity_)
    assert updated.counts_ is not None and refit.counts_ is not None
    np.testing.assert_array_equal(updated.counts_.item_df, refit.counts_.item_df)
    assert updated.counts_.as_array().tolist() == refit.counts_.as_array().tolist()


@pytest.mark.parametrize("name", KNN_MODELS)
def test_update_equals_a_refit_on_the_concatenated_sessions(name: str, parts) -> None:
    train, batches, everything = parts
    params = {"k": 5, "sample_size": 6}  # small: posting lists are truncated
    updated = create_model(name, params).fit(train)
    for batch in batches:
        updated.update(batch)
    refit = create_model(name, params).fit(everything)
    assert_same_model(updated, refit)
    batch = probes(everything, 60)
    np.testing.assert_array_equal(updated.score(batch), refit.score(batch))
    got = updated.top_k(batch, 10)
    want = refit.top_k(batch, 10)
    for (gi, gs), (wi, ws) in zip(got, want, strict=True):
        np.testing.assert_array_equal(gi, wi)
        np.testing.assert_array_equal(gs, ws)


def test_update_with_types_and_a_purchase_objective_equals_a_refit(parts) -> None:
    train, batches, everything = parts
    params = {"objective": "purchase", "type_weight_cart": 2.0, "k": 5, "sample_size": 8}
    updated = create_model("vsknn", params).fit(train)
    twin_before = updated.for_objective("click")
    updated.update(batches[0]).update(batches[1])
    refit = create_model("vsknn", params).fit(everything.subset(np.arange(175)).compact_vocab())
    assert_same_model(updated, refit)
    # the objective twin made before the update is derived again from the new index
    assert updated.for_objective("click") is not twin_before
    batch = probes(everything, 40)
    np.testing.assert_array_equal(
        updated.for_objective("click").score(batch), refit.for_objective("click").score(batch)
    )


def test_new_items_become_recommendable(parts) -> None:
    train, _, _ = parts
    model = create_model("vsknn", {"k": 20, "sample_size": 50}).fit(train)
    assert "new1" not in model.vocab_.ids.tolist()
    model.update(SessionData.from_sequences([["i3", "new1"], ["i3", "new1", "new2"]]))
    listed = [item for item, _ in model.recommend([["i3"]], 50)[0]]
    assert {"new1", "new2"} <= set(listed)
    assert model.training_counts()[model.vocab_.index("new1")] == 2


def test_a_copy_made_before_the_update_keeps_the_old_index(parts) -> None:
    import copy

    train, batches, _ = parts
    model = create_model("vmisknn", {"k": 5, "sample_size": 6}).fit(train)
    frozen = copy.copy(model)
    before = frozen.score(probes(train, 30))
    model.update(batches[1])
    assert frozen.n_items == train.n_items < model.n_items
    np.testing.assert_array_equal(frozen.score(probes(train, 30)), before)


def test_max_sessions_evicts_the_oldest_sessions(parts) -> None:
    train, batches, _ = parts
    model = create_model("vsknn", {"k": 5, "sample_size": 6}).fit(train)
    kept_before = model.index_.sess_age.size
    model.update(batches[2], max_sessions=50)
    assert model.index_.sess_age.size == 50
    assert model.evicted_sessions_ > 0
    # the youngest sessions stay: the kept ones are the 50 most recent of those a refit keeps
    assert model.index_.sess_age.max() < kept_before + 40
    ages = model.index_.sess_age
    assert (np.diff(ages) < 0).all()  # still numbered oldest first
    posted = np.unique(model.index_.post_sessions)
    np.testing.assert_array_equal(posted, np.arange(50))  # no dangling or orphan session
    model.score(probes(train, 30))  # the kernels read the bounded index


def test_update_survives_save_and_load(parts, tmp_path) -> None:
    train, batches, _ = parts
    model = create_model("vstan", {"k": 5, "sample_size": 6}).fit(train).update(batches[0])
    model.save(tmp_path / "m")
    loaded = load_model(tmp_path / "m")
    assert_same_model(loaded, model)
    loaded.update(batches[1])
    model.update(batches[1])
    assert_same_model(loaded, model)
    assert loaded.data_fingerprint_.endswith("+live")


def test_a_folder_without_counts_refuses_an_update(parts, tmp_path) -> None:
    train, batches, _ = parts
    model = create_model("sknn").fit(train)
    model.counts_ = None  # as a folder saved before the counts were kept
    model.save(tmp_path / "old")
    old = load_model(tmp_path / "old")
    assert old.counts_ is None
    np.testing.assert_array_equal(old.score(probes(train, 5)), model.score(probes(train, 5)))
    with pytest.raises(ModelError, match="fit it again"):
        old.update(batches[0])


def test_update_refuses_what_is_not_sessions(parts) -> None:
    train, _, _ = parts
    model = create_model("sknn").fit(train)
    with pytest.raises(DataError, match="SessionData"):
        model.update([["i1", "i2"]])  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="max_sessions"):
        model.update(train, max_sessions=0)


def test_updated_leaves_the_model_as_it_was(parts) -> None:
    train, batches, _ = parts
    model = create_model("stan", {"k": 5, "sample_size": 6}).fit(train)
    before = model.score(probes(train, 20))
    grown = model.updated(batches[1])
    assert model.learns_live() and grown is not model
    assert model.n_items == train.n_items and grown.n_items > train.n_items
    np.testing.assert_array_equal(model.score(probes(train, 20)), before)
    assert model.data_fingerprint_ == train.fingerprint()


def test_a_repeat_layer_learns_live_through_its_base(parts) -> None:
    train, batches, everything = parts
    params = {"base": "vsknn", "base_params": {"k": 5, "sample_size": 6}}
    model = create_model("repeat", params).fit(train)
    grown = model.updated(batches[1])
    assert grown.learns_live() and grown.n_items == grown.base_.n_items > model.n_items
    assert model.base_.n_items == train.n_items  # the serving model is untouched
    batch = probes(everything, 30)
    base = create_model("vsknn", {"k": 5, "sample_size": 6}).fit(train).update(batches[1])
    np.testing.assert_array_equal(grown.base_.score(batch), base.score(batch))
    assert len(grown.top_k(batch, 5)) == len(batch)


def test_models_that_cannot_learn_live_say_what_to_do_instead(parts) -> None:
    train, batches, _ = parts
    model = create_model("markov").fit(train)
    assert not model.learns_live()
    with pytest.raises(ModelError, match="init-from"):
        model.updated(batches[0])

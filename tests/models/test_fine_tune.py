"""Fine-tuning a trained neural model on newer sessions, new items included.

``NeuralRecommender.fine_tune`` (and ``sessionrec train --init-from``, tests/cli): the old
items keep their indices and, with zero epochs, their exact scores; a new item becomes
recommendable; the counts and the data fingerprint cover both trainings; an architecture
change is refused. Tiny models on one CPU thread: seconds.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import successor_data

from sessionrec._errors import ConfigError, DataError
from sessionrec.data.sessions import ItemVocab, SessionData
from sessionrec.models.base import SessionBatch
from sessionrec.models.neural.common import NeuralRecommender
from sessionrec.models.persist import MANIFEST, read_manifest
from sessionrec.models.registry import create_model, load_model
from sessionrec.models.vocab_growth import chained_fingerprint, extended_vocab

torch = pytest.importorskip("torch")
torch.set_num_threads(1)

N_OLD = 12
NEW_ITEM = 100  # follows item 5 in every new session that reaches 5
TINY: dict[str, dict[str, Any]] = {
    "gru4rec": {"hidden_size": 16, "batch_size": 16, "n_sample": 8, "learning_rate": 0.1},
    "sasrec": {"hidden_size": 16, "max_len": 8, "batch_size": 64, "learning_rate": 0.01},
    "narm": {"embedding_size": 8, "hidden_size": 8, "batch_size": 32, "learning_rate": 0.01},
    "stamp": {"embedding_size": 8, "batch_size": 32, "learning_rate": 0.01},
    "srgnn": {"hidden_size": 8, "batch_size": 32, "learning_rate": 0.01, "lr_decay": 1.0},
}
MODELS = sorted(TINY)

# The old model's data: successor walks over items 0..11 (11 never clicked, in the vocabulary).
OLD = SessionData.from_sequences(
    successor_data.successor_sessions(150, N_OLD - 1, 0, longest=5),
    vocab=ItemVocab([*range(N_OLD)]),
)


def new_sessions() -> list[list[int]]:
    """Newer sessions: walks over items 0..5 only (6..11 are not clicked again); a walk
    that reaches item 5 goes on to the new item 100 and ends. Item 11 (never clicked
    before) and a second new item 101 appear once."""
    walks = successor_data.successor_sessions(120, 6, 1, longest=4)
    sessions = [[*w[: w.index(5) + 1], NEW_ITEM] if 5 in w else w for w in walks]
    return [*sessions, [4, 5, NEW_ITEM], [3, 4, 5, NEW_ITEM], [11, 101]]


NEW_SESSIONS = new_sessions()
# Its own vocabulary, ordered unlike the old one: ids are what must line up, not indices.
NEW = SessionData.from_sequences(
    NEW_SESSIONS, vocab=ItemVocab([101, NEW_ITEM, *range(N_OLD - 1, -1, -1)])
)
PROBES = SessionBatch.from_sequences([[1, 2, 3], [4], [7, 8, 9], [0, 5]])  # old indices


@pytest.fixture(scope="module")
def trained() -> dict[str, NeuralRecommender]:
    """One tiny model per neural model, trained on :data:`OLD` for one epoch."""
    models = {}
    for name in MODELS:
        model = create_model(name, {**TINY[name], "n_epochs": 1, "device": "cpu"})
        assert isinstance(model, NeuralRecommender)
        models[name] = model.fit(OLD)
    return models


@pytest.mark.parametrize("name", MODELS)
def test_zero_epochs_keep_the_old_items_indices_and_exact_scores(trained, name):
    old = trained[name]
    tuned = old.fine_tune(NEW, n_epochs=0)
    assert tuned is not old and type(tuned) is type(old)
    # Appended, never renumbered: the old ids first, in their order, then the new ones.
    assert tuned.vocab_.ids.tolist() == [*range(N_OLD), 101, NEW_ITEM]
    assert [tuned.vocab_.index(i) for i in range(N_OLD)] == list(range(N_OLD))
    scores = tuned.score(PROBES)
    assert scores.shape == (len(PROBES), N_OLD + 2)
    before = old.score(PROBES)
    np.testing.assert_array_equal(scores[:, : N_OLD - 1], before[:, : N_OLD - 1])
    # Item 11, in the old vocabulary but never clicked, was unscored; clicked now, it is.
    assert np.isneginf(before[:, N_OLD - 1]).all() and np.isfinite(scores[:, N_OLD - 1]).all()
    # Nothing trained: the hyperparameters and the epoch count stay the old model's.
    assert tuned.get_params() == old.get_params()
    assert tuned.training_history().losses.size == 0


@pytest.mark.parametrize("name", MODELS)
def test_counts_are_the_old_plus_the_new_and_the_fingerprint_names_both(trained, name):
    old = trained[name]
    tuned = old.fine_tune(NEW, n_epochs=0)
    new_counts = np.bincount(
        tuned.vocab_.encode([i for s in NEW_SESSIONS for i in s]), minlength=N_OLD + 2
    )
    expected = np.concatenate([old.training_counts(), [0, 0]]) + new_counts
    np.testing.assert_array_equal(tuned.training_counts(), expected)
    np.testing.assert_array_equal(tuned.training_counts_, expected)
    assert tuned.training_counts()[N_OLD - 1] == 1  # never clicked before, once now
    assert tuned.data_fingerprint_ == f"{OLD.fingerprint()}+{NEW.fingerprint()}"


@pytest.mark.parametrize("name", MODELS)
def test_a_new_item_is_recommended_where_it_follows_and_old_items_keep_their_rows(trained, name):
    old = trained[name]
    before = old.score(PROBES)
    tuned = old.fine_tune(NEW, n_epochs=8)
    top = [item for item, _ in tuned.recommend([[3, 4, 5]], k=3)[0]]
    assert NEW_ITEM in top
    # Where it does not follow, it scores lower than where it does.
    new_item = tuned.vocab_.index(NEW_ITEM)
    where = tuned.score(tuned.encode_sessions([[3, 4, 5], [0, 1]]))[:, new_item]
    assert where[0] > where[1]
    # Items 6..10 were not clicked again: still known, still scored.
    assert np.isfinite(tuned.score(PROBES)[:, 6:11]).all()
    assert tuned.vocab_.ids[:N_OLD].tolist() == list(range(N_OLD))
    assert tuned.training_history().losses.size == 8
    np.testing.assert_array_equal(old.score(PROBES), before)  # the source is untouched


@pytest.mark.parametrize("name", ["gru4rec", "sasrec"])
def test_a_fine_tuned_model_saves_and_loads(trained, name, tmp_path):
    tuned = trained[name].fine_tune(NEW, n_epochs=1, learning_rate=0.005)
    assert tuned.learning_rate == 0.005 and tuned.n_epochs == 1
    folder = tuned.save(tmp_path / "tuned")
    loaded = load_model(folder)
    assert loaded.vocab_ == tuned.vocab_
    np.testing.assert_array_equal(loaded.score(PROBES), tuned.score(PROBES))
    np.testing.assert_array_equal(loaded.training_counts(), tuned.training_counts())
    manifest = read_manifest(folder)
    assert manifest["data_fingerprint"] == tuned.data_fingerprint_
    assert (folder / MANIFEST).is_file()
    # Fine-tuned again, the chain grows by the newest data.
    again = loaded.fine_tune(NEW, n_epochs=0)
    assert again.data_fingerprint_ == f"{OLD.fingerprint()}+{NEW.fingerprint()}+{NEW.fingerprint()}"


@pytest.mark.parametrize(
    ("name", "changes", "message"),
    [
        ("gru4rec", {"hidden_size": 8}, "hidden_size=8 (the model's: 16)"),
        ("gru4rec", {"n_layers": 2}, "n_layers=2 (the model's: 1)"),
        ("sasrec", {"n_heads": 2}, "n_heads=2 (the model's: 1)"),
        ("sasrec", {"max_len": 4}, "max_len=4 (the model's: 8)"),
        ("narm", {"embedding_size": 16}, "embedding_size=16"),
        ("srgnn", {"formulation": "authors-code"}, "formulation='authors-code'"),
    ],
)
def test_an_architecture_change_is_refused(trained, name, changes, message):
    with pytest.raises(ConfigError, match="keeps the architecture") as error:
        trained[name].fine_tune(NEW, **changes)
    assert message in str(error.value)
    assert "learning_rate" in str(error.value)  # says what may change


def test_the_same_value_of_an_architecture_hyperparameter_is_accepted(trained):
    tuned = trained["gru4rec"].fine_tune(NEW, n_epochs=0, hidden_size=16, batch_size=8)
    assert tuned.batch_size == 8 and tuned.hidden_size == 16


def test_bad_fine_tune_arguments_are_refused(trained):
    model = trained["gru4rec"]
    with pytest.raises(ConfigError, match="no hyperparameter"):
        model.fine_tune(NEW, hidden=3)
    with pytest.raises(ConfigError, match="n_epochs"):
        model.fine_tune(NEW, n_epochs=-1)
    with pytest.raises(DataError, match="SessionData"):
        model.fine_tune([[1, 2]])  # type: ignore[arg-type]
    strings = SessionData.from_sequences([["a", "b"]], vocab=ItemVocab(["a", "b"]))
    with pytest.raises(DataError, match="integers but the new sessions' are strings"):
        model.fine_tune(strings, n_epochs=0)


def test_extended_vocab_joins_integer_ids_to_a_string_vocabulary_as_text():
    old = ItemVocab(["x", "7"])
    new = SessionData.from_sequences([[7, 8]], vocab=ItemVocab([8, 9, 7]))
    assert extended_vocab(old, new).ids.tolist() == ["x", "7", "8"]  # 9 is not clicked


def test_chained_fingerprint_skips_an_unknown_old_one():
    assert chained_fingerprint("", "abc") == "abc"
    assert chained_fingerprint("a+b", "c") == "a+b+c"


@pytest.mark.parametrize("embedding_size", [0, 8])  # one-hot input, separate input table
def test_gru4rec_input_tables_gain_rows_too(embedding_size):
    params = {**TINY["gru4rec"], "constrained_embedding": False, "embedding_size": embedding_size}
    old = create_model("gru4rec", {**params, "n_epochs": 1, "device": "cpu"}).fit(OLD)
    tuned = old.fine_tune(NEW, n_epochs=0)
    assert tuned.network_.inputs.shape[0] == N_OLD + 2
    np.testing.assert_array_equal(
        tuned.score(PROBES)[:, : N_OLD - 1], old.score(PROBES)[:, : N_OLD - 1]
    )
    assert NEW_ITEM in [i for i, _ in old.fine_tune(NEW, n_epochs=8).recommend([[3, 4, 5]], k=3)[0]]


def test_gru4rec_in_batch_logq_uses_the_new_sessions_counts(trained, monkeypatch):
    """In-batch negatives are the new sessions' targets: their logQ correction is by the new
    sessions' counts, not the old plus new (the shared negatives' are by the latter)."""
    from sessionrec.models.neural import gru4rec_training

    seen: dict[str, np.ndarray] = {}
    build = gru4rec_training.SessionParallelEpoch.__init__

    def spy(self, *args: Any, **kwargs: Any) -> None:
        build(self, *args, **kwargs)
        seen["log_q"], seen["targets"] = self.target_log_q.numpy(), self.plan.targets

    monkeypatch.setattr(gru4rec_training.SessionParallelEpoch, "__init__", spy)
    old = trained["gru4rec"]
    tuned = old.fine_tune(NEW, n_epochs=0)
    new_counts = tuned.training_counts() - np.concatenate([old.training_counts(), [0, 0]])
    expected = np.log(new_counts[seen["targets"]].astype(np.float64)).astype(np.float32)
    np.testing.assert_array_equal(seen["log_q"], expected)
    assert not np.array_equal(expected, np.log(tuned.training_counts()[seen["targets"]]))

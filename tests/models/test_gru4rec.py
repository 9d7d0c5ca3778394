"""GRU4Rec: hyperparameter checks, learning, determinism, persistence, presets, no-torch path.

The contract suite (test_contract.py) covers what every model must do; this file covers what
is GRU4Rec's own. Models are tiny so the file runs in seconds on one CPU thread.
"""

from __future__ import annotations

import json
import subprocess
import sys
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import successor_data

from sessionrec._errors import ConfigError, ModelError
from sessionrec.data.sessions import ItemVocab, SessionData
from sessionrec.evaluation.protocol import evaluate
from sessionrec.models.base import Recommender, SessionBatch
from sessionrec.models.neural.gru4rec import PRESET_FOLDER, GRU4Rec, presets
from sessionrec.models.persist import MANIFEST
from sessionrec.models.registry import load_model

torch = pytest.importorskip("torch")
torch.set_num_threads(1)  # tiny tensors: two OpenMP threads only add waiting on a shared box

N_ITEMS = 30
SMALL: dict[str, Any] = {
    "hidden_size": 32,
    "batch_size": 16,
    "n_sample": 8,
    "learning_rate": 0.1,
    "n_epochs": 4,
    "device": "cpu",
}


def successor_sessions(n: int, seed: int) -> list[list[int]]:
    """Sessions where the next item is always (item + 1) mod 30: learnable to 100%."""
    return successor_data.successor_sessions(n, N_ITEMS, seed, longest=7)


VOCAB = ItemVocab([*range(N_ITEMS), 98, 99])  # 98, 99 never clicked
TRAIN = SessionData.from_sequences(successor_sessions(400, 0), vocab=VOCAB)
TEST = SessionData.from_sequences(successor_sessions(100, 1), vocab=VOCAB)


def hr_at(model: Recommender, k: int) -> float:
    return float(evaluate(model, TEST, protocol="next", cutoffs=(k,)).metrics()[f"hr@{k}"])


# --------------------------------------------------------------------------- construction
@pytest.mark.parametrize(
    ("param", "value"),
    [
        ("loss", "top1"),
        ("hidden_size", 0),
        ("n_layers", 1.5),
        ("batch_size", -1),
        ("dropout_p_embed", 1.0),
        ("dropout_p_hidden", -0.1),
        ("learning_rate", 0.0),
        ("momentum", 1.0),
        ("n_sample", -5),
        ("sample_alpha", float("nan")),
        ("bpreg", -1.0),
        ("logq", "1"),
        ("n_epochs", 0),
        ("patience", -1),
        ("valid_fraction", 1.0),
        ("selection_metric", "auc"),
        ("seed", -3),
        ("device", "gpu"),
        ("max_train_seconds", 0.0),
        ("constrained_embedding", 1),
    ],
)
def test_bad_hyperparameters_are_rejected_at_construction(param: str, value: Any) -> None:
    with pytest.raises(ConfigError, match=param):
        GRU4Rec(**{param: value})


def test_embedding_size_needs_unconstrained_embeddings() -> None:
    with pytest.raises(ConfigError, match="embedding_size"):
        GRU4Rec(constrained_embedding=True, embedding_size=16)
    GRU4Rec(constrained_embedding=False, embedding_size=16)


def test_presets_are_the_json_files_and_construct() -> None:
    found = presets()
    assert set(found) == {p.stem for p in PRESET_FOLDER.glob("*.json")}
    assert {"rsc15-100", "yoochoose", "diginetica"} <= set(found)  # the official files
    assert found["diginetica"]["loss"] == "bpr-max"
    assert found["benchmark-diginetica"]["learning_rate"] == 0.03
    for params in found.values():
        assert GRU4Rec(**params).get_params()["hidden_size"] == params["hidden_size"]


# ------------------------------------------------------------------------------- learning
@pytest.mark.parametrize(
    "params",
    [
        {"loss": "cross-entropy", "logq": 1.0, "momentum": 0.2},
        {"loss": "bpr-max", "elu_param": 0.5, "bpreg": 1.0, "dropout_p_hidden": 0.1},
        {"constrained_embedding": False, "embedding_size": 24, "n_layers": 2},
        {"constrained_embedding": False, "dropout_p_embed": 0.1},  # one-hot input
    ],
    ids=["xe-logq-momentum", "bprmax-elu", "embedding-2-layers", "onehot"],
)
def test_learns_a_deterministic_successor(params: dict[str, Any]) -> None:
    model = GRU4Rec(**{**SMALL, **params}).fit(TRAIN)
    assert hr_at(model, 1) >= 95.0
    assert model.epoch_losses_[-1] < model.epoch_losses_[0]
    assert len(model.epoch_losses_) == SMALL["n_epochs"] == model.best_epoch_


def test_scores_unknown_and_unclicked_items_as_no_evidence() -> None:
    model = GRU4Rec(**SMALL).fit(TRAIN)
    never = VOCAB.encode([98, 99])
    scores = model.score(SessionBatch.from_sequences([[3, 4], [], never.tolist()]))
    assert np.isneginf(scores[0, never]).all() and np.isfinite(scores[0, :N_ITEMS]).all()
    assert np.isneginf(scores[1]).all() and np.isneginf(scores[2]).all()
    # an unclicked item in the session is dropped like an unknown one
    with_never = model.score(SessionBatch.from_sequences([[3, int(never[0]), 4]]))
    np.testing.assert_array_equal(with_never[0], scores[0])


# ------------------------------------------------------------ validation, early stopping
def test_validation_selects_an_epoch() -> None:
    valid = SessionData.from_sequences(successor_sessions(60, 2), vocab=VOCAB)
    model = GRU4Rec(**{**SMALL, "n_epochs": 3, "selection_metric": "mrr@20"}).fit(TRAIN, valid)
    assert np.isfinite(model.epoch_valid_).all() and len(model.epoch_valid_) <= 3
    assert model.best_epoch_ == int(np.argmax(model.epoch_valid_)) + 1
    held_out = GRU4Rec(**{**SMALL, "n_epochs": 2, "valid_fraction": 0.2}).fit(TRAIN)
    assert np.isfinite(held_out.epoch_valid_).all()
    assert held_out.item_counts_.sum() < TRAIN.n_events  # trained on the first 80% only


def test_divergence_raises_instead_of_returning_a_broken_model() -> None:
    model = GRU4Rec(**{**SMALL, "learning_rate": 1e30, "n_epochs": 2})
    with pytest.raises(ModelError, match="diverged"):
        model.fit(TRAIN)
    assert not model.is_fitted  # nothing half-trained is left to evaluate or save


# --------------------------------------------------------------------------- determinism
def test_seeded_training_is_reproducible() -> None:
    batch = SessionBatch.from_sequences([[1, 2, 3], [7], [20, 21]])
    params = {**SMALL, "n_epochs": 1, "dropout_p_hidden": 0.2}
    first = GRU4Rec(**params).fit(TRAIN).score(batch)
    np.testing.assert_array_equal(GRU4Rec(**params).fit(TRAIN).score(batch), first)
    other = GRU4Rec(**{**params, "seed": 7}).fit(TRAIN).score(batch)
    assert not np.array_equal(other, first)


def test_n_sample_larger_than_the_catalog_is_clamped_with_a_warning() -> None:
    with pytest.warns(UserWarning, match=r"n_sample=2048 .* 30 items .* n_sample=30") as caught:
        model = GRU4Rec(**{**SMALL, "n_sample": 2048, "n_epochs": 1}).fit(TRAIN)
    assert model.get_params()["n_sample"] == 2048  # the hyperparameter is stored unchanged
    # The warning names the line that called fit, not a line inside sessionrec.
    assert [w.filename for w in caught] == [__file__]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        GRU4Rec(**{**SMALL, "n_sample": 30, "n_epochs": 1}).fit(TRAIN)


# --------------------------------------------------------------------------- persistence
@pytest.mark.parametrize(
    "params",
    [{}, {"constrained_embedding": False, "embedding_size": 8, "n_layers": 2}],
    ids=["shared", "embedding-2-layers"],
)
def test_save_load_gives_identical_scores(params: dict[str, Any], tmp_path: Path) -> None:
    model = GRU4Rec(**{**SMALL, "n_epochs": 1, **params}).fit(TRAIN)
    batch = SessionBatch.from_sequences([[1, 2, 3], [29], [5, 6, 7, 8, 9]])
    loaded = load_model(model.save(tmp_path / "m"))
    assert isinstance(loaded, GRU4Rec)
    np.testing.assert_array_equal(loaded.score(batch), model.score(batch))
    np.testing.assert_array_equal(loaded.epoch_losses_, model.epoch_losses_)
    assert loaded.best_epoch_ == model.best_epoch_


def test_load_refuses_weights_that_do_not_match_the_manifest(tmp_path: Path) -> None:
    path = GRU4Rec(**{**SMALL, "n_epochs": 1}).fit(TRAIN).save(tmp_path / "m")
    manifest = json.loads((path / MANIFEST).read_text())
    manifest["params"]["hidden_size"] = 64  # the weights are 32 wide
    (path / MANIFEST).write_text(json.dumps(manifest))
    with pytest.raises(ModelError, match=r"item_weights.*shape \(32, 64\)"):
        load_model(path)
    manifest["params"]["hidden_size"] = 32
    manifest["params"]["n_layers"] = 2  # no weights for a second layer
    (path / MANIFEST).write_text(json.dumps(manifest))
    with pytest.raises(ModelError, match="missing"):
        load_model(path)


# ------------------------------------------------------------------------------ no torch
def test_without_torch_the_package_imports_and_the_model_says_what_to_install(
    tmp_path: Path,
) -> None:
    script = """
import sys
sys.modules["torch"] = None  # as if the torch extra were not installed
from sessionrec._errors import ConfigError
from sessionrec.data.sessions import SessionData
from sessionrec.models.registry import MODELS, create_model
model = create_model("gru4rec", {"hidden_size": 8})
try:
    model.fit(SessionData.from_sequences([[1, 2], [2, 3]]))
except ConfigError as exc:
    print("ConfigError:", exc)
"""
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=False, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert "pip install 'sessionrec[torch]'" in done.stdout


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_training_serves_on_the_cpu(tmp_path: Path) -> None:
    model = GRU4Rec(**{**SMALL, "device": "cuda"}).fit(TRAIN)
    assert hr_at(model, 1) >= 95.0
    path = model.save(tmp_path / "m")
    manifest = json.loads((path / MANIFEST).read_text())
    manifest["params"]["device"] = "cpu"
    (path / MANIFEST).write_text(json.dumps(manifest))
    batch = SessionBatch.from_sequences([[1, 2, 3]])
    np.testing.assert_allclose(
        load_model(path).score(batch), model.score(batch), rtol=1e-4, atol=1e-4
    )

"""SASRec: construction checks, causality, truncation, the sampled loss, learning, persistence."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import successor_data

from sessionrec._errors import ConfigError
from sessionrec.data.sessions import ItemVocab, SessionData
from sessionrec.models.base import SessionBatch
from sessionrec.models.neural.sasrec import SASRec
from sessionrec.models.registry import load_model

torch = pytest.importorskip("torch")

from sessionrec.evaluation.protocol import evaluate  # noqa: E402
from sessionrec.models.neural import sasrec as sasrec_module  # noqa: E402
from sessionrec.models.neural.losses import masked_sampled_softmax  # noqa: E402

SMALL: dict[str, Any] = {"hidden_size": 16, "n_blocks": 2, "n_heads": 2, "device": "cpu"}


def cycle_sessions(n_sessions: int, n_items: int, seed: int) -> list[list[str]]:
    """Sessions that walk a cycle ``i -> i + 1 (mod n_items)`` from a random start."""
    return successor_data.successor_sessions(n_sessions, n_items, seed, longest=6, label="c{}")


VOCAB = ItemVocab([f"c{i}" for i in range(8)] + ["never"])
TRAIN = SessionData.from_sequences(cycle_sessions(300, 8, seed=1), vocab=VOCAB)


@pytest.fixture(scope="module")
def fitted() -> SASRec:
    return SASRec(**SMALL, max_len=4, n_epochs=2).fit(TRAIN)


# ---------------------------------------------------------------------------- construction
@pytest.mark.parametrize(
    ("params", "name"),
    [
        ({"hidden_size": 0}, "hidden_size"),
        ({"hidden_size": 10, "n_heads": 3}, "hidden_size"),
        ({"n_heads": 0}, "n_heads"),
        ({"n_blocks": 0}, "n_blocks"),
        ({"ffn_size": 0}, "ffn_size"),
        ({"max_len": 0}, "max_len"),
        ({"dropout": 1.0}, "dropout"),
        ({"dropout": -0.1}, "dropout"),
        ({"loss": "bpr"}, "loss"),
        ({"n_negatives": -1}, "n_negatives"),
        ({"sample_alpha": -0.5}, "sample_alpha"),
        ({"logq": math.nan}, "logq"),
        ({"batch_size": 0}, "batch_size"),
        ({"learning_rate": 0.0}, "learning_rate"),
        ({"n_epochs": 0}, "n_epochs"),
        ({"patience": -1}, "patience"),
        ({"valid_fraction": 1.0}, "valid_fraction"),
        ({"selection_metric": "ndcg@10"}, "selection_metric"),
        ({"seed": -1}, "seed"),
        ({"device": "tpu"}, "device"),
        ({"max_train_seconds": -5.0}, "max_train_seconds"),
        ({"max_len": True}, "max_len"),
    ],
)
def test_bad_hyperparameters_are_rejected(params: dict[str, Any], name: str) -> None:
    with pytest.raises(ConfigError, match=f"hyperparameter {name}="):
        SASRec(**params)


# ------------------------------------------------------------------------------- causality
def test_a_later_item_never_changes_an_earlier_output(fitted: SASRec) -> None:
    items = torch.tensor([[0, 1, 2, 3], [0, 1, 5, 6]])  # differ from position 2 on

    def run(x: torch.Tensor) -> torch.Tensor:
        with torch.inference_mode():
            return sasrec_module.encode(fitted.weights_, x, n_blocks=2, n_heads=2)

    out = run(items)
    assert torch.equal(out[0, :2], out[1, :2])  # exactly: no leak from the future
    assert not torch.equal(out[0, 2], out[1, 2])
    # The prefix on its own gives the same outputs (up to float rounding: the matrix
    # products have another shape), so scoring a prefix is what training saw at that position.
    torch.testing.assert_close(run(items[:1, :2]), out[:1, :2], rtol=1e-5, atol=1e-6)


# ---------------------------------------------------------------------------- initialisation
def test_an_untrained_network_ranks_the_last_click_first() -> None:
    # The initialisation keeps every block close to the identity, so before any training
    # the output at a click scores that very item highest: the repeat signal that sessions
    # are full of is there from the first step instead of having to be learned.
    n_items, d, n_blocks = 500, 64, 2
    shapes = sasrec_module.weight_shapes(n_items, d, n_blocks, max_len=10, ffn_size=d)
    weights = {name: torch.zeros(shape) for name, shape in shapes.items()}
    sasrec_module.init_weights(weights, torch.Generator().manual_seed(0))
    items = torch.randint(0, n_items, (200, 6), generator=torch.Generator().manual_seed(1))
    with torch.inference_mode():
        out = sasrec_module.encode(weights, items, n_blocks=n_blocks, n_heads=2)
        top = (out[:, -1] @ weights["item_embedding"].t()).argmax(dim=1)
    assert (top == items[:, -1]).float().mean() > 0.95


# ------------------------------------------------------------------------------ truncation
def test_training_sessions_are_cut_to_their_most_recent_clicks_and_counted() -> None:
    # max_len=4: at most 5 clicks (4 input positions); lengths 7 and 9 lose 2 and 4 clicks.
    sessions = [[f"c{j % 8}" for j in range(n)] for n in (2, 5, 7, 9)]
    data = SessionData.from_sequences(sessions, vocab=VOCAB)
    model = SASRec(**SMALL, max_len=4, n_epochs=1).fit(data)
    assert model.truncated_sessions_ == 2
    assert model.truncated_clicks_ == 6
    assert int(model.epoch_examples_[0]) == 1 + 4 + 4 + 4


def test_scoring_keeps_the_most_recent_known_clicks(fitted: SASRec) -> None:
    long = ["c1", "c2", "c3", "c4", "c5", "c6"]
    recent = ["c3", "c4", "c5", "c6"]  # the last max_len = 4
    with_unseen = ["c3", "never", "c4", "c5", "never", "c6"]
    scores = fitted.score(fitted.encode_sessions([long, recent, with_unseen]))
    np.testing.assert_array_equal(scores[0], scores[1])
    np.testing.assert_array_equal(scores[2], scores[1])
    assert scores[0, VOCAB.index("never")] == -np.inf


# -------------------------------------------------------------------------- sampled softmax
def test_sampled_softmax_matches_a_hand_computed_value() -> None:
    # Two rows (targets: items 5 and 7) and one shared negative, item 5: it is row 0's
    # target, so row 0 must not score it as a negative.
    scores = torch.tensor([[1.0, 2.0, 3.0], [0.5, 1.0, -1.0]], requires_grad=True)
    columns = torch.tensor([5, 7, 5])
    log_q = torch.tensor([0.1, 0.2, 0.3])
    loss = masked_sampled_softmax(scores, columns, log_q, logq=1.0)
    row0 = -0.9 + math.log(math.exp(0.9) + math.exp(1.8))
    row1 = -0.8 + math.log(math.exp(0.4) + math.exp(0.8) + math.exp(-1.3))
    assert loss.item() == pytest.approx(row0 + row1, rel=1e-6)
    loss.backward()
    assert scores.grad is not None
    assert scores.grad[0, 2].item() == 0.0  # the target is never a negative
    # Without the correction: plain softmax over the unmasked columns.
    plain = masked_sampled_softmax(scores.detach(), columns, log_q, logq=0.0)
    expected = (-1.0 + math.log(math.exp(1.0) + math.exp(2.0))) + (
        -1.0 + math.log(math.exp(0.5) + math.exp(1.0) + math.exp(-1.0))
    )
    assert plain.item() == pytest.approx(expected, rel=1e-6)


def test_repeated_in_batch_targets_are_not_negatives_of_each_other() -> None:
    scores = torch.tensor([[0.0, 5.0], [3.0, -2.0]])
    loss = masked_sampled_softmax(scores, torch.tensor([4, 4]))
    assert loss.item() == 0.0  # each row's only other column is its own target item


# ---------------------------------------------------------------------------------- learning
@pytest.mark.parametrize(
    "params",
    [
        {"loss": "ce"},
        {"loss": "sampled", "n_negatives": 4, "sample_alpha": 0.0},
        {"loss": "sampled", "n_negatives": 4, "sample_alpha": 1.0, "logq": 0.5},
    ],
)
def test_learns_a_deterministic_cycle_to_hr_at_1(params: dict[str, Any]) -> None:
    model = SASRec(
        **SMALL, max_len=6, dropout=0.0, batch_size=64, learning_rate=0.01, n_epochs=6, **params
    ).fit(TRAIN)
    test = SessionData.from_sequences(cycle_sessions(40, 8, seed=2), vocab=VOCAB)
    metrics = evaluate(model, test, cutoffs=(1,)).metrics()
    assert metrics["hr@1"] == 100.0


def test_validation_selects_the_epoch_with_the_evaluation_module() -> None:
    valid = SessionData.from_sequences(cycle_sessions(30, 8, seed=3), vocab=VOCAB)
    model = SASRec(**SMALL, max_len=4, n_epochs=3, patience=0, selection_metric="mrr@20")
    model.fit(TRAIN, valid)
    assert model.epoch_valid_.shape == (3,) and np.isfinite(model.epoch_valid_).all()
    assert model.best_epoch_ == int(np.argmax(model.epoch_valid_)) + 1
    # The kept weights score what the best epoch scored, as the evaluation module ranks it.
    expected = evaluate(model, valid, cutoffs=(20,)).metrics()["mrr@20"]
    assert model.epoch_valid_[model.best_epoch_ - 1] == pytest.approx(expected, rel=1e-6)


# ------------------------------------------------------------------- persistence, fallback
def test_save_load_gives_identical_scores(fitted: SASRec, tmp_path: Path) -> None:
    loaded = load_model(fitted.save(tmp_path / "model"))
    assert isinstance(loaded, SASRec)
    batch = fitted.encode_sessions([["c1", "c2"], ["c7"], [], ["c3", "c4", "c5", "c6", "c7"]])
    np.testing.assert_array_equal(loaded.score(batch), fitted.score(batch))
    assert loaded.truncated_sessions_ == fitted.truncated_sessions_
    np.testing.assert_array_equal(loaded.epoch_losses_, fitted.epoch_losses_)


def test_empty_and_unknown_sessions_get_the_popularity_fallback(fitted: SASRec) -> None:
    batch = fitted.encode_sessions([[], ["never"], ["not-in-vocab"], ["c1"]])
    scores = fitted.score(batch)
    popularity = TRAIN.item_counts().astype(np.float32)
    popularity[popularity == 0] = -np.inf
    for row in range(3):
        np.testing.assert_array_equal(scores[row], popularity)
    np.testing.assert_array_equal(fitted.fallback_mask(batch), [True, True, True, False])
    assert fitted.score(SessionBatch.from_sequences([])).shape == (0, len(VOCAB))


def test_n_negatives_larger_than_the_catalog_is_clamped_with_a_warning_at_the_fit() -> None:
    params = {"hidden_size": 8, "batch_size": 64, "n_epochs": 1, "device": "cpu"}
    with pytest.warns(UserWarning, match=r"n_negatives=1000 .* using n_negatives=") as caught:
        model = SASRec(**params, loss="sampled", n_negatives=1000).fit(TRAIN)
    assert model.get_params()["n_negatives"] == 1000  # the hyperparameter is stored unchanged
    assert [w.filename for w in caught] == [__file__]  # the caller's line, not sessionrec's

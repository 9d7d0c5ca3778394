"""NARM, STAMP and SR-GNN: prefix cases, the session graph, learning, fallback, persistence.

The contract suite (test_contract.py) covers what every model must do; this file covers what
the prefix models share (models/neural/prefix.py) and what is each one's own. Models are
tiny so the file runs in seconds on one CPU thread.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import successor_data

from sessionrec._errors import ConfigError, DataError
from sessionrec.data.sessions import ItemVocab, SessionData
from sessionrec.evaluation.protocol import evaluate
from sessionrec.models.base import SessionBatch
from sessionrec.models.neural.narm import NARM
from sessionrec.models.neural.prefix import PrefixRecommender
from sessionrec.models.neural.prefix_training import (
    PrefixBatches,
    length_runs,
    pad_prefixes,
    prefix_cases,
)
from sessionrec.models.neural.srgnn import SRGNN, session_graphs
from sessionrec.models.neural.stamp import STAMP
from sessionrec.models.registry import load_model

torch = pytest.importorskip("torch")
torch.set_num_threads(1)  # tiny tensors: two OpenMP threads only add waiting on a shared box

N_ITEMS = 20
VOCAB = ItemVocab([*range(N_ITEMS), 98, 99])  # 98, 99 never clicked


def successor_sessions(n: int, seed: int) -> list[list[int]]:
    """Sessions where the next item is always (item + 1) mod 20: learnable to 100%."""
    return successor_data.successor_sessions(n, N_ITEMS, seed, longest=5)


TRAIN = SessionData.from_sequences(successor_sessions(200, 0), vocab=VOCAB)
TEST = SessionData.from_sequences(successor_sessions(60, 1), vocab=VOCAB)

SMALL: dict[type[PrefixRecommender], dict[str, Any]] = {
    NARM: {"embedding_size": 16, "hidden_size": 16, "dropout_embed": 0.0, "dropout_context": 0.0},
    STAMP: {"embedding_size": 16},
    SRGNN: {"hidden_size": 16, "lr_decay": 1.0},
}
COMMON: dict[str, Any] = {"batch_size": 32, "learning_rate": 0.02, "n_epochs": 6, "device": "cpu"}
MODELS = list(SMALL)


def small(cls: type[PrefixRecommender], **params: Any) -> PrefixRecommender:
    return cls(**{**COMMON, **SMALL[cls], **params})


_FITTED: dict[type[PrefixRecommender], PrefixRecommender] = {}


def fitted(cls: type[PrefixRecommender]) -> PrefixRecommender:
    if cls not in _FITTED:
        _FITTED[cls] = small(cls).fit(TRAIN)
    return _FITTED[cls]


# --------------------------------------------------------------------------- construction
@pytest.mark.parametrize(
    ("cls", "param", "value"),
    [
        (NARM, "embedding_size", 0),
        (NARM, "hidden_size", 2.5),
        (NARM, "dropout_embed", 1.0),
        (NARM, "dropout_context", -0.1),
        (STAMP, "embedding_size", -1),
        (STAMP, "formulation", "tensorflow"),
        (SRGNN, "hidden_size", 0),
        (SRGNN, "n_steps", 0),
        (SRGNN, "formulation", "pytorch"),
        (SRGNN, "batch_size", 0),
        (SRGNN, "learning_rate", 0.0),
        (STAMP, "lr_decay", 1.5),
        (STAMP, "lr_decay_every", 0),
        (NARM, "l2", -1e-5),
        (SRGNN, "max_len", 0),
        (STAMP, "n_epochs", 0),
        (NARM, "patience", -1),
        (SRGNN, "valid_fraction", 1.0),
        (STAMP, "selection_metric", "auc"),
        (NARM, "seed", -1),
        (SRGNN, "device", "gpu"),
        (STAMP, "learning_rate", float("nan")),
        (NARM, "max_train_seconds", 0),
        (SRGNN, "max_train_seconds", "1h"),
    ],
)
def test_bad_hyperparameters_are_rejected_at_construction(
    cls: type[PrefixRecommender], param: str, value: Any
) -> None:
    with pytest.raises(ConfigError, match=param):
        cls(**{param: value})


def test_defaults_are_the_papers() -> None:
    narm, stamp, srgnn = NARM(), STAMP(), SRGNN()
    assert (narm.embedding_size, narm.hidden_size, narm.batch_size) == (50, 100, 512)
    assert narm.learning_rate == 0.001
    assert (stamp.embedding_size, stamp.learning_rate, stamp.batch_size) == (100, 0.005, 512)
    assert (srgnn.hidden_size, srgnn.batch_size, srgnn.learning_rate) == (100, 100, 0.001)
    assert (srgnn.lr_decay, srgnn.lr_decay_every, srgnn.l2) == (0.1, 3, 1e-5)


def test_stamp_authors_code_formulation_matches_a_hand_computation() -> None:
    """No biases, the mean added to the memory, inputs clipped to norm 1.5 (module docstring)."""
    model = STAMP(embedding_size=3, formulation="authors-code", device="cpu")
    network = model._build_network(n_items=4).double()
    assert not any(name.endswith("bias") for name, _ in network.named_parameters())
    rng = np.random.default_rng(0)
    with torch.no_grad():
        table = rng.normal(size=(5, 3))
        table[0] = 0.0
        table[2] *= 3.0 / np.linalg.norm(table[2])  # norm 3: clipped to 1.5
        table[3] *= 0.5 / np.linalg.norm(table[3])  # norm 0.5: left alone
        network["embedding"].weight.copy_(torch.from_numpy(table))
        weights = {
            key: rng.normal(size=(1 if key == "w0" else 3, 3))
            for key in ("w0", "w1", "w2", "w3", "mlp_s", "mlp_t")
        }
        for key, value in weights.items():
            network[key].weight.copy_(torch.from_numpy(value))
    x = table[[3, 2]] * np.array([[1.0], [0.5]])  # the prefix [3, 2], item 2 clipped
    last, mean = x[1], x.mean(axis=0)
    sigmoid = 1.0 / (
        1.0 + np.exp(-(x @ weights["w1"].T + last @ weights["w2"].T + mean @ weights["w3"].T))
    )
    alpha = sigmoid @ weights["w0"].T  # [2, 1], unnormalised
    memory = (alpha * x).sum(axis=0) + mean
    expected = np.tanh(weights["mlp_s"] @ memory) * np.tanh(weights["mlp_t"] @ last)
    items = torch.tensor([[3, 2, 0]])  # padded to 3
    got = model._session_vectors(network, items, torch.tensor([2]))
    np.testing.assert_allclose(got[0].detach().numpy(), expected, rtol=1e-12)
    paper = STAMP(embedding_size=3, device="cpu")._build_network(n_items=4)
    assert sum(name.endswith("bias") for name, _ in paper.named_parameters()) == 3


def test_stamp_authors_code_formulation_learns_and_round_trips(tmp_path: Path) -> None:
    model = small(STAMP, formulation="authors-code").fit(TRAIN)
    assert evaluate(model, TEST, protocol="next", cutoffs=(1,)).metrics()["hr@1"] == 100.0
    loaded = load_model(model.save(tmp_path / "m"))
    assert loaded.get_params()["formulation"] == "authors-code"
    batch = SessionBatch.from_sequences([[1, 2, 3], [5]])
    np.testing.assert_array_equal(loaded.score(batch), model.score(batch))


# ---------------------------------------------------------------------------- prefix cases
def test_prefix_cases_are_every_prefix_truncated_to_the_most_recent() -> None:
    # sessions [10, 11, 12], [13], [14, 15, 16, 17] as CSR
    offsets = np.array([0, 3, 4, 8])
    items = np.array([10, 11, 12, 13, 14, 15, 16, 17])
    cases = prefix_cases(offsets, items, max_len=2)
    # [10]->11, [10,11]->12, [14]->15, [14,15]->16, [15,16]->17 (cut from [14,15,16])
    np.testing.assert_array_equal(cases.starts, [0, 0, 4, 4, 5])
    np.testing.assert_array_equal(cases.lengths, [1, 2, 1, 2, 2])
    np.testing.assert_array_equal(cases.targets, [11, 12, 15, 16, 17])
    assert cases.n_truncated == 1
    untruncated = prefix_cases(offsets, items, max_len=50)
    np.testing.assert_array_equal(untruncated.lengths, [1, 2, 1, 2, 3])
    assert untruncated.n_truncated == 0
    with pytest.raises(ConfigError, match="max_len"):
        prefix_cases(offsets, items, max_len=0)


def test_batches_cover_every_case_once_padded_to_their_own_longest() -> None:
    offsets = np.array([0, 3, 4, 8])
    items = np.array([10, 11, 12, 13, 14, 15, 16, 17])
    cases = prefix_cases(offsets, items, max_len=2)
    batches = PrefixBatches(cases, items, batch_size=2, seed=0)
    assert len(batches) == 3
    seen = []
    for padded, lengths, targets in batches.epoch():
        assert padded.shape == (lengths.size, lengths.max())
        for row, length, target in zip(padded, lengths, targets, strict=True):
            assert (row[length:] == 0).all()  # padding after the clicks only
            seen.append((tuple((row[:length] - 1).tolist()), int(target)))  # ids are item + 1
    expected = [((10,), 11), ((10, 11), 12), ((14,), 15), ((14, 15), 16), ((15, 16), 17)]
    assert sorted(seen) == sorted(expected)
    orders = [[int(t) for _, _, ts in batches.epoch() for t in ts] for _ in range(3)]
    assert len({tuple(o) for o in orders}) > 1  # reshuffled every epoch


def test_batches_of_a_small_distributed_shard_repeat_cases_to_keep_in_step() -> None:
    # A rank with 5 cases must take as many steps (4) as a rank with more: the shuffled
    # order repeats from its start, as DistributedSampler pads.
    offsets = np.array([0, 3, 4, 8])
    items = np.array([10, 11, 12, 13, 14, 15, 16, 17])
    cases = prefix_cases(offsets, items, max_len=2)
    batches = PrefixBatches(cases, items, batch_size=2, seed=0, n_batches=4)
    epoch = list(batches.epoch())
    assert len(batches) == 4 and [t.size for _, _, t in epoch] == [2, 2, 2, 2]
    targets = [int(t) for _, _, ts in epoch for t in ts]
    assert sorted(set(targets)) == [11, 12, 15, 16, 17]  # every case at least once
    assert len(targets) == 8  # three of them twice


def test_batch_rows_come_sorted_by_length() -> None:
    sessions = successor_sessions(50, seed=3)
    data = SessionData.from_sequences(sessions, vocab=VOCAB)
    cases = prefix_cases(data.offsets, data.items, max_len=50)
    for _, lengths, _ in PrefixBatches(cases, data.items, batch_size=16, seed=0).epoch():
        assert (np.diff(lengths) >= 0).all()


def test_length_runs_keep_padding_within_twice_the_shortest() -> None:
    lengths = np.array([1] * 40 + [2] * 40 + [3] * 40 + [5] * 40 + [50] * 3)
    # 1-2 (longest at most twice the shortest), 3-5, then the three 50s merged into the
    # last run rather than left as a run of fewer than min_rows rows.
    assert length_runs(lengths, min_rows=32) == [(0, 80), (80, 163)]
    assert length_runs(np.array([1, 1, 2, 4, 9]), min_rows=1) == [(0, 3), (3, 4), (4, 5)]
    assert length_runs(np.array([7]), min_rows=32) == [(0, 1)]
    assert length_runs(np.array([], dtype=np.int64)) == []


@pytest.mark.parametrize("cls", MODELS, ids=lambda c: c.name)
def test_batch_loss_in_length_runs_equals_the_whole_padded_batch(
    cls: type[PrefixRecommender],
) -> None:
    model = fitted(cls)
    network = model.network_
    rng = np.random.default_rng(4)
    lengths = np.sort(np.concatenate([rng.integers(1, 4, 60), rng.integers(8, 20, 10)]))
    shifted = rng.integers(1, N_ITEMS + 1, int(lengths.sum()))
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]])
    items = torch.as_tensor(pad_prefixes(shifted, starts, lengths))
    lengths_t = torch.as_tensor(lengths)
    targets = torch.as_tensor(rng.integers(0, N_ITEMS, lengths.size))
    assert len(length_runs(lengths)) > 1
    with torch.no_grad():
        in_runs = model._batch_loss(network, items, lengths_t, targets)
        logits = model._session_vectors(network, items, lengths_t) @ model._item_table(network).t()
        whole = torch.nn.functional.cross_entropy(logits, targets, reduction="sum")
    torch.testing.assert_close(in_runs, whole, rtol=1e-5, atol=1e-4)


# ------------------------------------------------------------------------- session graph
def test_srgnn_session_graph_matches_the_hand_computed_matrices() -> None:
    # The paper's Figure 2 session v1, v2, v3, v2, v4 (ids + 1 here, as batches hold them),
    # beside a repeated click and a single click, padded to a batch.
    items = torch.tensor([[2, 3, 4, 3, 5], [6, 6, 0, 0, 0], [4, 0, 0, 0, 0]])
    nodes, alias, a_in, a_out = session_graphs(items)
    np.testing.assert_array_equal(nodes, [[2, 3, 4, 5], [6, 0, 0, 0], [4, 0, 0, 0]])
    np.testing.assert_array_equal(alias, [[0, 1, 2, 1, 3], [0, 0, 0, 0, 0], [0, 0, 0, 0, 0]])
    # edges v1->v2, v2->v3, v3->v2, v2->v4
    expected_out = [[0, 1, 0, 0], [0, 0, 0.5, 0.5], [0, 1, 0, 0], [0, 0, 0, 0]]
    expected_in = [[0, 0, 0, 0], [0.5, 0, 0.5, 0], [0, 1, 0, 0], [0, 1, 0, 0]]
    np.testing.assert_allclose(a_out[0], expected_out)
    np.testing.assert_allclose(a_in[0], expected_in)
    self_loop = np.zeros((4, 4))
    self_loop[0, 0] = 1.0  # 6 -> 6, counted once
    np.testing.assert_allclose(a_out[1], self_loop)
    np.testing.assert_allclose(a_in[1], self_loop)
    assert not a_in[2].any() and not a_out[2].any()
    # The authors' TensorFlow code: row j of a_in holds j's successors k weighted
    # 1 / in-degree(k), row j of a_out its predecessors k weighted 1 / out-degree(k).
    _, _, code_in, code_out = session_graphs(items, formulation="authors-code")
    np.testing.assert_allclose(code_in[0], [[0, 0.5, 0, 0], [0, 0, 1, 1], [0, 0.5, 0, 0], [0] * 4])
    np.testing.assert_allclose(code_out[0], [[0] * 4, [1, 0, 1, 0], [0, 0.5, 0, 0], [0, 0.5, 0, 0]])
    np.testing.assert_allclose(code_in[1], self_loop)
    np.testing.assert_allclose(code_out[1], self_loop)


def test_srgnn_authors_code_formulation_matches_a_hand_computation() -> None:
    """TensorFlow's GRU cell, no b_iah/b_oah, W_1 s_l in the readout (module docstring)."""
    model = SRGNN(hidden_size=3, formulation="authors-code", device="cpu")
    network = model._build_network(n_items=5).double()
    assert {name for name, _ in network.named_parameters() if name.endswith(("bias", "c"))} == {
        "edge_in.bias",
        "edge_out.bias",
        "gates.bias",
        "candidate_input.bias",
        "attention_bias.c",
    }
    torch.testing.assert_close(network["gates"].bias, torch.ones(6, dtype=torch.float64))
    rng = np.random.default_rng(0)
    with torch.no_grad():
        values = {name: rng.normal(size=tuple(p.shape)) for name, p in network.named_parameters()}
        values["embedding.weight"][0] = 0.0
        for name, parameter in network.named_parameters():
            parameter.copy_(torch.from_numpy(values[name]))

    def linear(name: str, x: np.ndarray) -> np.ndarray:
        out = x @ values[f"{name}.weight"].T
        return out + values[f"{name}.bias"] if f"{name}.bias" in values else out

    def sigmoid(x: np.ndarray) -> np.ndarray:
        return 1.0 / (1.0 + np.exp(-x))

    # The paper's Figure 2 session v1, v2, v3, v2, v4 as items 1, 2, 3, 2, 4 (ids + 1 in
    # batches): edges v1->v2, v2->v3, v3->v2, v2->v4; in-degrees 0, 2, 1, 1 and out-degrees
    # 1, 2, 1, 0. Successors go through W_in weighted by their in-degree, predecessors
    # through W_out weighted by their out-degree.
    h = values["embedding.weight"][[2, 3, 4, 5]]
    successors = np.array([[0, 0.5, 0, 0], [0, 0, 1, 1], [0, 0.5, 0, 0], [0, 0, 0, 0]])
    predecessors = np.array([[0, 0, 0, 0], [1, 0, 1, 0], [0, 0.5, 0, 0], [0, 0.5, 0, 0]])
    a = np.concatenate(
        [successors @ linear("edge_in", h), predecessors @ linear("edge_out", h)], axis=1
    )
    reset, update = np.split(sigmoid(linear("gates", np.concatenate([a, h], axis=1))), 2, axis=1)
    candidate = np.tanh(linear("candidate_input", a) + linear("candidate_hidden", reset * h))
    h = update * h + (1.0 - update) * candidate
    clicks = h[[0, 1, 2, 1, 3]]
    projected_last = linear("w_last", clicks[4])
    alpha = linear(
        "q", sigmoid(projected_last + linear("w_click", clicks) + values["attention_bias.c"])
    )
    pooled = (alpha * clicks).sum(axis=0)
    expected = linear("w_out", np.concatenate([pooled, projected_last]))
    items = torch.tensor([[2, 3, 4, 3, 5, 0]])  # padded to 6
    got = model._session_vectors(network, items, torch.tensor([5]))
    np.testing.assert_allclose(got[0].detach().numpy(), expected, rtol=1e-12)


def test_srgnn_authors_code_formulation_learns_and_round_trips(tmp_path: Path) -> None:
    model = small(SRGNN, formulation="authors-code").fit(TRAIN)
    assert evaluate(model, TEST, protocol="next", cutoffs=(1,)).metrics()["hr@1"] == 100.0
    loaded = load_model(model.save(tmp_path / "m"))
    assert loaded.get_params()["formulation"] == "authors-code"
    batch = SessionBatch.from_sequences([[1, 2, 1, 3], [5]])
    np.testing.assert_array_equal(loaded.score(batch), model.score(batch))


# ------------------------------------------------------------------------------ learning
@pytest.mark.parametrize("cls", MODELS, ids=lambda c: c.name)
def test_learns_a_deterministic_successor(cls: type[PrefixRecommender]) -> None:
    model = fitted(cls)
    hr1 = evaluate(model, TEST, protocol="next", cutoffs=(1,)).metrics()["hr@1"]
    assert hr1 == 100.0
    assert model.epoch_losses_[-1] < model.epoch_losses_[0]
    assert len(model.epoch_seconds_) == len(model.epoch_examples_) == COMMON["n_epochs"]
    assert (model.epoch_examples_ == int((TRAIN.lengths - 1).sum())).all()


@pytest.mark.parametrize("cls", MODELS, ids=lambda c: c.name)
def test_a_spent_time_budget_stops_after_the_first_epoch(cls: type[PrefixRecommender]) -> None:
    data = TRAIN.subset(np.arange(40))
    model = small(cls, n_epochs=3, max_train_seconds=1e-9).fit(data, data)
    assert len(model.epoch_losses_) == 1 and model.best_epoch_ == 1
    assert len(small(cls, n_epochs=2, max_train_seconds=1e6).fit(data).epoch_losses_) == 2


@pytest.mark.parametrize("cls", MODELS, ids=lambda c: c.name)
def test_same_seed_same_model(cls: type[PrefixRecommender]) -> None:
    data = TRAIN.subset(np.arange(40))
    first = small(cls, n_epochs=1).fit(data)
    second = small(cls, n_epochs=1).fit(data)
    batch = SessionBatch.from_sequences([[1, 2, 3], [7]])
    np.testing.assert_array_equal(first.score(batch), second.score(batch))


def test_validation_selects_an_epoch() -> None:
    valid = SessionData.from_sequences(successor_sessions(30, 2), vocab=VOCAB)
    model = small(STAMP, n_epochs=3, selection_metric="mrr@20").fit(TRAIN, valid)
    assert np.isfinite(model.epoch_valid_).all() and len(model.epoch_valid_) <= 3
    assert model.best_epoch_ == int(np.argmax(model.epoch_valid_)) + 1
    held_out = small(NARM, n_epochs=1, valid_fraction=0.2).fit(TRAIN)
    assert np.isfinite(held_out.epoch_valid_).all()


def test_single_click_sessions_only_is_a_data_error() -> None:
    with pytest.raises(DataError, match="at least two clicks"):
        small(SRGNN).fit(SessionData.from_sequences([[1], [2]], vocab=VOCAB))


# ------------------------------------------------------------ fallback, truncation, unknowns
@pytest.mark.parametrize("cls", MODELS, ids=lambda c: c.name)
def test_empty_and_unclicked_sessions_get_the_popularity_fallback(
    cls: type[PrefixRecommender],
) -> None:
    model = fitted(cls)
    never = VOCAB.encode([98, 99]).tolist()
    scores = model.score(SessionBatch.from_sequences([[], never, [3, 4]]))
    popularity = TRAIN.item_counts().astype(np.float32)
    expected = np.where(popularity > 0, popularity, -np.inf)
    np.testing.assert_array_equal(scores[0], expected)
    np.testing.assert_array_equal(scores[1], expected)
    assert np.isneginf(scores[2, never]).all() and np.isfinite(scores[2, :N_ITEMS]).all()
    # an unclicked item in a session is dropped like an unknown one
    with_never = model.score(SessionBatch.from_sequences([[3, never[0], 4]]))
    np.testing.assert_array_equal(with_never[0], scores[2])


@pytest.mark.parametrize("cls", MODELS, ids=lambda c: c.name)
def test_long_sessions_keep_their_most_recent_clicks(cls: type[PrefixRecommender]) -> None:
    model = small(cls, n_epochs=1, max_len=3).fit(TRAIN)
    batch = SessionBatch.from_sequences([[9, 1, 5, 6, 7], [5, 6, 7]])
    scores = model.score(batch)
    np.testing.assert_array_equal(scores[0], scores[1])


# --------------------------------------------------------------------------- persistence
@pytest.mark.parametrize("cls", MODELS, ids=lambda c: c.name)
def test_save_load_round_trip_gives_identical_scores(
    cls: type[PrefixRecommender], tmp_path: Path
) -> None:
    model = fitted(cls)
    loaded = load_model(model.save(tmp_path / "m"))
    assert isinstance(loaded, cls)
    batch = SessionBatch.from_sequences([[1, 2, 3], [], [5], [4, 4, 6, 2]])
    np.testing.assert_array_equal(loaded.score(batch), model.score(batch))
    assert loaded.best_epoch_ == model.best_epoch_
    np.testing.assert_array_equal(loaded.epoch_losses_, model.epoch_losses_)


# ------------------------------------------------------------------------------ no torch
def test_without_torch_the_models_say_what_to_install() -> None:
    script = """
import sys
sys.modules["torch"] = None  # as if the torch extra were not installed
from sessionrec._errors import ConfigError
from sessionrec.data.sessions import SessionData
from sessionrec.models.registry import create_model
for name in ("narm", "stamp", "srgnn"):
    try:
        create_model(name).fit(SessionData.from_sequences([[1, 2], [2, 3]]))
    except ConfigError as exc:
        print("ConfigError:", exc)
"""
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=False, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.count("pip install 'sessionrec[torch]'") == 3

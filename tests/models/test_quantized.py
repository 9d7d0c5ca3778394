"""The int8 candidate search must find exactly the dense top-k, whatever the scores look like."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from sessionrec.data.sessions import ItemVocab, SessionData
from sessionrec.models.base import Recommender
from sessionrec.models.quantized import QuantizedTable
from sessionrec.models.registry import load_model
from sessionrec.models.topk import select_top_k


def dense_top(weights: np.ndarray, h: np.ndarray, bias: np.ndarray, k: int) -> np.ndarray:
    scores = (weights.astype(np.float64) @ h.astype(np.float64) + bias).astype(np.float32)
    ((items, _),) = select_top_k(scores[None, :], k)
    return items


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("k", [1, 5, 20])
def test_candidates_hold_the_exact_top_k(seed: int, k: int) -> None:
    rng = np.random.default_rng(seed)
    n, d = 3000, 64
    weights = rng.normal(0, 0.1, size=(n, d)).astype(np.float32)
    # Near-ties at the boundary: copies of the best rows nudged by less than one int8 step.
    best = np.argsort(-(weights @ np.ones(d, np.float32)))[:30]
    weights[rng.integers(0, n, 30)] = weights[best] + rng.normal(0, 1e-4, (30, d))
    h = rng.normal(0, 1, d).astype(np.float32)
    bias = rng.normal(0, 0.05, n).astype(np.float32)
    bias[rng.integers(0, n, 300)] = -np.inf  # items never to serve
    table = QuantizedTable(weights, bias)
    found = table.candidates(h, k)
    assert found is not None
    assert set(dense_top(weights, h, bias, k).tolist()) <= set(found.tolist())
    assert np.all(np.isfinite(bias[found]))
    assert found.size < n // 10  # the bound prunes most of the catalog


def test_excluded_items_are_never_candidates_and_the_next_best_are() -> None:
    rng = np.random.default_rng(7)
    weights = rng.normal(0, 0.1, size=(500, 16)).astype(np.float32)
    h = rng.normal(0, 1, 16).astype(np.float32)
    bias = np.zeros(500, np.float32)
    exact = dense_top(weights, h, bias, 8)
    excluded = np.concatenate([exact[:3], exact[:1]])  # repeats are harmless
    found = QuantizedTable(weights, bias).candidates(h, 5, excluded)
    assert found is not None
    assert not set(excluded.tolist()) & set(found.tolist())
    assert set(exact[3:8].tolist()) <= set(found.tolist())


def test_fewer_servable_items_than_k_returns_all_of_them() -> None:
    weights = np.eye(4, dtype=np.float32)
    bias = np.array([0.0, -np.inf, 0.0, -np.inf], np.float32)
    found = QuantizedTable(weights, bias).candidates(np.ones(4, np.float32), 3)
    assert found is not None and found.tolist() == [0, 2]
    found = QuantizedTable(weights, bias).candidates(np.ones(4, np.float32), 1, np.array([0]))
    assert found is not None and found.tolist() == [2]


def test_a_zero_row_is_quantized_without_dividing_by_zero() -> None:
    table = QuantizedTable(np.zeros((3, 2), np.float32), np.zeros(3, np.float32))
    assert table.rows.tolist() == [[0, 0]] * 3 and np.all(table.scales == 1.0)


# Every neural model serves a few live sessions through the int8 table (QuantizedServing).
SERVED = {
    "gru4rec": {"hidden_size": 32, "n_sample": 16, "n_epochs": 2},
    "narm": {"embedding_size": 16, "hidden_size": 16, "n_epochs": 1},
    "stamp": {"embedding_size": 16, "n_epochs": 1},
    "srgnn": {"hidden_size": 16, "n_epochs": 1},
    "sasrec": {"hidden_size": 16, "n_epochs": 1},
}
VOCAB = ItemVocab([f"i{i}" for i in range(260)])  # i200..i259 have no training clicks


def served_data(seed: int) -> list[list[str]]:
    rng = np.random.default_rng(seed)
    return [[f"i{i}" for i in rng.integers(0, 200, int(rng.integers(2, 9)))] for _ in range(400)]


def fit_served(name: str, sessions: list[list[str]], model: Recommender | None = None) -> Any:
    from sessionrec.models.registry import create_model

    model = model or create_model(name, {**SERVED[name], "device": "cpu"})
    return model.fit(SessionData.from_sequences(sessions, vocab=VOCAB))


def assert_serves_the_dense_top_k(model: Recommender, sessions: list[list[str]]) -> None:
    """Live sessions (one with unseen items, one of unknown ids, one empty), top 10 with and
    without exclusions, through the int8 path and the dense product."""
    live = [s[:4] for s in sessions[:5]] + [["i3", "i250", "i7"], ["nope"], []]
    batch = model.encode_sessions(live)
    excluded = [np.asarray(batch.session(i)) for i in range(len(batch))]
    excluded[-1] = np.asarray([0, 1, 2])  # the empty session's fallback minus three items
    for exclude in (None, excluded):
        fast = model.top_k(batch, 10, exclude)
        dense = Recommender.top_k(model, batch, 10, exclude)
        for (items, scores), (want_items, want_scores) in zip(fast, dense, strict=True):
            assert items.tolist() == want_items.tolist()
            np.testing.assert_allclose(scores, want_scores, rtol=1e-5, atol=1e-6)
            assert not np.isin(items, np.arange(200, 260)).any()  # never an unseen item
    assert model.__dict__.get("_int8_table") is not None  # the int8 path answered


@pytest.mark.parametrize("share", [0.125, 0.0])
@pytest.mark.parametrize("name", sorted(SERVED))
def test_serving_top_k_equals_the_dense_top_k(
    name: str, share: float, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("torch")
    from sessionrec.models import quantized
    from sessionrec.models.neural import quantized_serving

    monkeypatch.setattr(quantized_serving, "QUANTIZED_MIN_SIZE", 0)  # tiny models take it
    monkeypatch.setattr(quantized, "MAX_CANDIDATE_SHARE", share)  # 0: the dense fallback
    sessions = served_data(3)
    model = fit_served(name, sessions)
    assert_serves_the_dense_top_k(model, sessions)
    fallback = model.top_k(model.encode_sessions([["nope"]]), 5)[0][0]
    if name == "gru4rec":
        assert fallback.size == 0  # no evidence, nothing served
    else:  # the most clicked training items
        counts = SessionData.from_sequences(sessions, vocab=VOCAB).item_counts()
        assert fallback.tolist() == np.argsort(-counts, kind="stable")[:5].tolist()


@pytest.mark.parametrize("name", sorted(SERVED))
def test_the_int8_table_follows_a_new_fit_and_a_load(
    name: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    pytest.importorskip("torch")
    from sessionrec.models.neural import quantized_serving

    monkeypatch.setattr(quantized_serving, "QUANTIZED_MIN_SIZE", 0)
    first, second = served_data(3), served_data(4)
    model = fit_served(name, first)
    assert_serves_the_dense_top_k(model, first)
    built = model.__dict__["_int8_table"]
    assert_serves_the_dense_top_k(model, first)
    assert model.__dict__["_int8_table"] is built  # kept while the weights stay
    fit_served(name, second, model)  # the same object trained again on other sessions
    assert_serves_the_dense_top_k(model, second)
    assert model.__dict__["_int8_table"] is not built
    loaded = load_model(model.save(tmp_path / "model"))
    assert_serves_the_dense_top_k(loaded, second)

"""The int8 candidate search must find exactly the dense top-k, whatever the scores look like."""

from __future__ import annotations

import numpy as np
import pytest

from sessionrec.data.sessions import SessionData
from sessionrec.models.base import Recommender
from sessionrec.models.quantized import QuantizedTable
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


@pytest.mark.parametrize("share", [0.125, 0.0])
def test_gru4rec_serving_top_k_equals_the_dense_top_k(
    share: float, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("torch")
    from sessionrec.models import quantized
    from sessionrec.models.neural import gru4rec

    monkeypatch.setattr(gru4rec, "QUANTIZED_MIN_SIZE", 0)  # a tiny model takes the int8 path
    monkeypatch.setattr(quantized, "MAX_CANDIDATE_SHARE", share)  # 0: the dense fallback
    rng = np.random.default_rng(3)
    sessions = [list(rng.integers(0, 200, int(rng.integers(2, 9)))) for _ in range(400)]
    train = SessionData.from_sequences(sessions)
    params = {"hidden_size": 32, "n_sample": 16, "n_epochs": 2, "device": "cpu"}
    model = gru4rec.GRU4Rec(**params).fit(train)
    batch = model.encode_sessions([s[:4] for s in sessions[:6]] + [[99999]])
    excluded = [np.asarray(batch.session(i)) for i in range(len(batch))]
    for exclude in (None, excluded):
        fast = model.top_k(batch, 10, exclude)
        dense = Recommender.top_k(model, batch, 10, exclude)
        assert model.__dict__.get("_int8_table") is not None
        for (items, scores), (want_items, want_scores) in zip(fast, dense, strict=True):
            np.testing.assert_allclose(scores, want_scores, rtol=1e-5, atol=1e-6)
            assert items.tolist() == want_items.tolist()
    assert fast[-1][0].size == 0  # a session of unknown items: no evidence, nothing served

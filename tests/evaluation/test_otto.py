"""The OTTO protocol (sessionrec.evaluation.otto) against hand-computed recalls."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from sessionrec.data.sessions import ItemVocab, SessionData
from sessionrec.evaluation.otto import evaluate_otto, otto_cases, otto_recall
from sessionrec.models.registry import create_model

FIXTURE = Path(__file__).resolve().parents[3] / "shared" / "data" / "otto" / "train_fixture.jsonl"
RAW_TO_CANONICAL = {"clicks": "view", "carts": "cart", "orders": "purchase"}
EVENT_TYPES = ("view", "cart", "purchase")


def otto_fixture() -> SessionData:
    """The 20 OTTO sessions, types mapped to the canonical names here (the data layer's
    normalisation is another issue)."""
    if not FIXTURE.is_file():
        pytest.skip(f"shared data not found: {FIXTURE}")
    sessions = [json.loads(line) for line in FIXTURE.read_text().splitlines() if line]
    aids = [e["aid"] for s in sessions for e in s["events"]]
    vocab = ItemVocab(list(dict.fromkeys(aids)))
    types = [EVENT_TYPES.index(RAW_TO_CANONICAL[e["type"]]) for s in sessions for e in s["events"]]
    offsets = np.cumsum([0] + [len(s["events"]) for s in sessions])
    return SessionData(
        offsets=offsets,
        items=vocab.encode(aids),
        vocab=vocab,
        times=np.array([e["ts"] / 1000 for s in sessions for e in s["events"]]),
        types=np.array(types, dtype=np.int8),
        event_types=EVENT_TYPES,
        session_ids=np.array([s["session"] for s in sessions]),
    )


def test_recall_matches_hand_computation_on_the_otto_fixture() -> None:
    data = otto_fixture()
    row = {int(sid): r for r, sid in enumerate(data.session_ids)}
    cuts = np.zeros(data.n_sessions, dtype=np.int64)
    # Session 4 (19 events): kept 613619 click, 298827 click; after the cut: 298827 ORDER,
    #   383828 click, ..., 1554752 cart, 917213 cart, 758750 cart, ...
    #   -> next click 383828 (the order at the cut is not a click), carts {1554752, 917213,
    #   758750}, orders {298827}.
    # Session 9 (7 events): kept 847707 click; after: 847707 CART, 1078113 click, ...
    #   -> next click 1078113, carts {847707}, no orders.
    # Session 8 (4 events): kept 1814223, 324620, 1320098; after: 324620 click
    #   -> next click 324620, no carts, no orders.
    cuts[row[4]], cuts[row[9]], cuts[row[8]] = 2, 1, 3
    cases = otto_cases(data, cuts=cuts)
    assert len(cases) == 3
    lists = {
        4: [298827, 1554752, 613619, 917213],
        9: [847707, 1078113],
        8: [1814223],
    }
    recommended = [data.vocab.encode(lists[int(data.session_ids[s])]) for s in cases.sessions]

    result = otto_recall(recommended, cases, k=20)
    # clicks: session 4 misses (383828 not listed), 9 hits, 8 misses: 1 / 3
    # carts: session 4 lists 2 of its 3 (min(20, 3) = 3), session 9 1 of 1: (2 + 1) / (3 + 1)
    # orders: session 4 lists its only order: 1 / 1
    # score: 0.10 * 1/3 + 0.30 * 3/4 + 0.60 * 1 = 0.0333... + 0.225 + 0.6 = 0.858333...
    assert result.recall["clicks"] == pytest.approx(1 / 3)
    assert result.recall["carts"] == pytest.approx(3 / 4)
    assert result.recall["orders"] == pytest.approx(1.0)
    assert result.score == pytest.approx(0.1 / 3 + 0.225 + 0.6)
    assert result.sessions_with_target == {"clicks": 3, "carts": 2, "orders": 1}
    assert result.n_sessions == 3

    short = otto_recall(recommended, cases, k=2)
    # k = 2: session 4's top 2 = [298827, 1554752]: 1 cart hit of min(2, 3) = 2, the order
    # hit; session 9 unchanged. clicks 1/3, carts (1 + 1) / (2 + 1) = 2/3, orders 1/1:
    # 0.10 * 1/3 + 0.30 * 2/3 + 0.60 * 1 = 0.0333... + 0.2 + 0.6 = 0.833333...
    assert short.recall["carts"] == pytest.approx(2 / 3)
    assert short.score == pytest.approx(0.1 / 3 + 0.2 + 0.6)


def test_random_cuts_are_seeded_and_keep_an_event_on_each_side() -> None:
    data = otto_fixture()
    first, again = otto_cases(data, seed=3), otto_cases(data, seed=3)
    np.testing.assert_array_equal(first.cut, again.cut)
    lengths = data.lengths[first.sessions]
    assert (first.cut >= 1).all() and (first.cut < lengths).all()
    assert len(first) == int((data.lengths >= 2).sum())


def test_data_without_types_has_click_targets_only() -> None:
    data = SessionData.from_sequences([["a", "b", "c"], ["b", "c"]])
    result = otto_recall([np.array([1, 2]), np.array([2])], otto_cases(data, cuts=[2, 1]))
    # next clicks: "c" (index 2) and "c": both listed
    assert result.recall["clicks"] == 1.0
    assert math.isnan(result.recall["orders"]) and math.isnan(result.score)
    assert result.sessions_with_target == {"clicks": 2, "carts": 0, "orders": 0}


def test_evaluate_otto_runs_a_model_on_the_truncated_sessions() -> None:
    data = otto_fixture()
    model = create_model("vsknn", {"objective": "purchase"}).fit(data)
    result = evaluate_otto(model, data, seed=0)
    assert result.n_sessions == int((data.lengths >= 2).sum())
    assert 0.0 <= result.recall["clicks"] <= 1.0
    assert result.sessions_with_target["orders"] >= 1

"""Event types in the rule models (Markov, SequentialRules): source type weights and the
objective, against matrices computed by hand."""

from __future__ import annotations

import numpy as np
import pytest

from sessionrec._errors import DataError
from sessionrec.data.sessions import SessionData
from sessionrec.models.knn_objective import canonical_codes
from sessionrec.models.registry import create_model
from sessionrec.models.rules import strongest_later_type
from typed_sessions import C, P, V, typed

TRAIN = typed(
    [
        [("a", V), ("b", C), ("c", V)],
        [("b", P), ("c", V)],
        [("a", C), ("c", C), ("c", P)],
    ]
)
A, B, CC = 0, 1, 2  # internal indices (sorted ids)


def dense(name: str, params: dict[str, object], data: SessionData = TRAIN) -> np.ndarray:
    return create_model(name, params).fit(data).matrix().toarray().astype(np.float64)


def expected(entries: dict[tuple[int, int], float]) -> np.ndarray:
    out = np.zeros((3, 3))
    for (row, col), value in entries.items():
        out[row, col] = value
    return out


def test_strongest_later_type_is_the_items_type_from_that_click_on() -> None:
    codes = canonical_codes(TRAIN.types, TRAIN.event_types)
    # s3: c is carted then purchased: both of its clicks reached a purchase; a stays a cart.
    assert strongest_later_type(TRAIN, codes).tolist() == [V, C, V, P, V, C, P, P]


def test_markov_defaults_count_transitions_as_without_types() -> None:
    untyped = SessionData(TRAIN.offsets, TRAIN.items, TRAIN.vocab)
    counts = expected({(A, B): 1, (A, CC): 1, (B, CC): 2, (CC, CC): 1})
    np.testing.assert_array_equal(dense("markov", {}), counts)
    np.testing.assert_array_equal(dense("markov", {}, untyped), counts)


def test_markov_weighs_a_rule_by_its_source_clicks_type() -> None:
    # a->b from a view: 1; b->c from a cart (3) and from a purchase (5); a->c and c->c
    # from carts: 3 each.
    got = dense("markov", {"type_weight_cart": 3.0, "type_weight_purchase": 5.0})
    np.testing.assert_array_equal(got, expected({(A, B): 1, (A, CC): 3, (B, CC): 8, (CC, CC): 3}))


def test_markov_purchase_objective_weighs_targets_by_what_they_became() -> None:
    # shares (view 0.1, cart 0.5, purchase 1): b was carted (0.5); c was only viewed in s1
    # and s2 (0.1 each); in s3 both c clicks lead to its purchase (1 each).
    got = dense("markov", {"objective": "purchase"})
    want = expected({(A, B): 0.5, (A, CC): 1.0, (B, CC): 0.2, (CC, CC): 1.0})
    np.testing.assert_allclose(got, want, rtol=1e-6)


def test_sequential_rules_weigh_every_distance_by_the_source_type() -> None:
    # steps=2, w(d) = 1/d. s1: a->b 1, b->c 3, a->c 0.5; s2: b->c 5; s3: a->c 3, c->c 3,
    # a->c at d=2 from a cart: 0.5 * 3.
    params = {"steps": 2, "type_weight_cart": 3.0, "type_weight_purchase": 5.0}
    got = dense("sr", params)
    want = expected({(A, B): 1, (A, CC): 0.5 + 3 + 1.5, (B, CC): 8, (CC, CC): 3})
    np.testing.assert_allclose(got, want, rtol=1e-6)


def test_sequential_rules_defaults_ignore_types_exactly() -> None:
    untyped = SessionData(TRAIN.offsets, TRAIN.items, TRAIN.vocab)
    plain = create_model("sr", {}).fit(untyped)
    aware = create_model("sr", {}).fit(TRAIN)
    mine, theirs = aware.matrix(), plain.matrix()
    for part in ("indptr", "indices", "data"):
        np.testing.assert_array_equal(getattr(mine, part), getattr(theirs, part))


@pytest.mark.parametrize("name", ["markov", "sr"])
def test_a_purchase_objective_needs_typed_data(name: str) -> None:
    untyped = SessionData(TRAIN.offsets, TRAIN.items, TRAIN.vocab)
    with pytest.raises(DataError, match="objective='purchase'"):
        create_model(name, {"objective": "purchase"}).fit(untyped)


@pytest.mark.parametrize("name", ["markov", "sr"])
def test_only_a_cart_or_purchase_objective_keeps_the_sessions_items_when_served(
    name: str,
) -> None:
    assert not create_model(name, {}).recommends_repeats()
    assert create_model(name, {"objective": "cart"}).recommends_repeats()

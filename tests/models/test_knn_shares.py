"""The cart/purchase objectives' neighbour shares as hyperparameters (share_view,
share_other) of the session-kNN models."""

from __future__ import annotations

import numpy as np
import pytest

from sessionrec._errors import ConfigError
from sessionrec.models.base import SessionBatch
from sessionrec.models.knn_objective import OBJECTIVE_SHARES, objective_shares
from sessionrec.models.registry import create_model
from typed_sessions import C, P, V, typed

KNN = ("sknn", "vsknn", "stan", "vstan", "vmisknn")


# After "a": "b" is viewed in every neighbour, "c" carted in one, "d" bought in one.
TRAIN = typed(
    [[("a", V), ("b", V)]] * 2 + [[("a", V), ("b", V), ("c", C)], [("a", V), ("b", V), ("d", P)]]
)
QUERY = SessionBatch.from_sequences(
    [TRAIN.vocab.encode(["a"])], types=[[V]], event_types=("view", "cart", "purchase")
)


def test_the_default_shares_are_the_fixed_ones_of_before() -> None:
    for objective in ("click", "cart", "purchase"):
        assert objective_shares(objective) == OBJECTIVE_SHARES[objective]
    assert objective_shares("purchase", 0.2, 0.7) == (0.2, 0.7, 1.0)
    assert objective_shares("cart", 0.2, 0.7) == (0.2, 1.0, 0.7)
    assert objective_shares("click", 0.2, 0.7) == (1.0, 1.0, 1.0)


@pytest.mark.parametrize("name", KNN)
def test_shares_scale_the_neighbours_items_by_their_type(name: str) -> None:
    base = {"k": 10, "sample_size": 10, "objective": "purchase"}
    default = create_model(name, base).fit(TRAIN).score(QUERY)[0]
    explicit = create_model(name, {**base, "share_view": 0.1, "share_other": 0.5})
    np.testing.assert_array_equal(explicit.fit(TRAIN).score(QUERY)[0], default)
    b, c, d = TRAIN.vocab.encode(["b", "c", "d"])
    # A purchase objective: d (bought) counts 1, c (carted) share_other, b (viewed) share_view.
    scaled = create_model(name, {**base, "share_view": 0.5, "share_other": 0.25}).fit(TRAIN)
    got = scaled.score(QUERY)[0]
    assert got[d] == pytest.approx(default[d], rel=1e-5)
    assert got[b] == pytest.approx(5 * default[b], rel=1e-5)
    assert got[c] == pytest.approx(0.5 * default[c], rel=1e-5)


def test_a_negative_share_is_refused() -> None:
    with pytest.raises(ConfigError, match="share_view"):
        create_model("vsknn", {"share_view": -0.1})

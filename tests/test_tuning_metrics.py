"""The validation metrics of ``sessionrec tune`` (:mod:`sessionrec.tuning_metrics`): the
OTTO recalls on validation, the defaults by objective, typed folders and the rule models'
type weights."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from sessionrec._errors import ConfigError
from sessionrec.cli import main
from sessionrec.data.sessions import SessionData
from sessionrec.evaluation.otto import otto_cases
from sessionrec.tuning import tune, tuning_plan
from sessionrec.tuning_metrics import (
    VALID_CUT_SEED,
    ValidationMetric,
    default_metric,
    parse_metric,
    validation_metric,
)
from typed_sessions import C, P, V, prepared_folder, typed

# Even sessions: view a, cart b, buy b (b is predictable after a and after b). Odd ones:
# view c, buy an item seen nowhere else (never predictable). The last 10% (sessions 18, 19)
# validate: [a | b b] with any cut has the order {b}, a hit; [c | d19] a miss: 1 / 2.
FUNNEL = typed(
    [[("a", V), ("b", C), ("b", P)] if s % 2 == 0 else [("c", V), (f"d{s}", P)] for s in range(20)]
)


def test_metric_names_parse_and_the_defaults_follow_the_objective() -> None:
    assert validation_metric("orders@20") == ValidationMetric("orders", 20)
    assert validation_metric("otto@10").otto and not validation_metric("mrr@20").otto
    for bad in ("orders", "orders@0", "recall@20"):
        with pytest.raises(ConfigError, match="--metric"):
            validation_metric(bad)
    with pytest.raises(ConfigError, match="not a metric of ranks"):
        parse_metric("carts@20")
    assert default_metric({"objective": "purchase"}) == "orders@20"
    assert default_metric({"objective": "cart"}) == "carts@20"
    assert default_metric({"objective": "click"}) == "mrr@20" == default_metric({})
    assert default_metric({"base_params": {"objective": "purchase"}}) == "orders@20"


@pytest.mark.parametrize("name", ["markov", "sr"])
def test_a_purchase_objective_is_tuned_on_validation_order_recall(name: str) -> None:
    pytest.importorskip("optuna")
    result = tune(FUNNEL, name, trials=3, fixed_params={"objective": "purchase"})
    assert result["metric"] == "orders@20"
    assert result["default_value"] == pytest.approx(50.0)
    assert result["value"] == pytest.approx(50.0)
    assert result["params"]["objective"] == "purchase"


def test_the_otto_score_weighs_the_three_recalls() -> None:
    pytest.importorskip("optuna")
    # Validation sessions 18 and 19 have no later view (clicks: no target): refused.
    with pytest.raises(ConfigError, match="later clicks"):
        tune(FUNNEL, "sr", trials=1, metric="otto@20")
    # One path a -> b(cart) -> e -> f(purchase) -> g: Markov lists only the item after the
    # last one kept. Per cut c (events kept): (click hit, cart target/hit, order target/hit)
    # c=1: list [b]: click e miss, cart b hit, order f miss; c=2: [e]: click hit, no cart,
    # order miss; c=3: [f]: click g miss, order f hit; c=4: [g]: click hit, nothing else.
    chain = [("a", V), ("b", C), ("e", V), ("f", P), ("g", V)]
    data = typed([chain] * 100)
    table = {1: (0, 1, 1, 1, 0), 2: (1, 0, 0, 1, 0), 3: (0, 0, 0, 1, 1), 4: (1, 0, 0, 0, 0)}
    valid = data.subset(np.arange(90, 100))
    cuts = otto_cases(valid, VALID_CUT_SEED).cut.tolist()
    click, carts, cart_hits, orders, order_hits = np.sum([table[c] for c in cuts], axis=0)
    assert carts and orders  # the fixed seed's cuts give every kind of target
    expected = 100 * (0.1 * click / len(cuts) + 0.3 * cart_hits / carts + 0.6 * order_hits / orders)
    result = tune(data, "markov", trials=1, metric="otto@20", fixed_params={"objective": "cart"})
    assert result["metric"] == "otto@20"
    assert result["default_value"] == pytest.approx(expected)


def test_an_order_metric_on_views_only_data_is_refused() -> None:
    pytest.importorskip("optuna")
    views = SessionData(FUNNEL.offsets, FUNNEL.items, FUNNEL.vocab)
    with pytest.raises(ConfigError, match="later orders"):
        tune(views, "sr", trials=1, metric="orders@20")


def test_the_rule_models_search_their_type_weights_only_on_typed_data() -> None:
    plan = tuning_plan("markov", event_types=("cart", "purchase", "view"))
    assert set(plan.space) == {"type_weight_cart", "type_weight_purchase"}
    assert plan.defaults_in_space() == {"type_weight_cart": 1.0, "type_weight_purchase": 1.0}
    assert "type_weight_cart" in tuning_plan("sr", event_types=("cart", "view")).space
    assert "type_weight_cart" not in tuning_plan("sr").space
    with pytest.raises(ConfigError, match="no hyperparameter to tune"):
        tuning_plan("markov", event_types=("view",))


def test_the_knn_search_holds_the_objective_shares_for_cart_and_purchase_only() -> None:
    typed_names = ("cart", "purchase", "view")
    purchase = tuning_plan("vsknn", fixed_params={"objective": "purchase"}, event_types=typed_names)
    assert {"share_view", "share_other", "type_weight_cart"} <= set(purchase.space)
    assert purchase.defaults_in_space() is not None  # the defaults are trial 0
    click = tuning_plan("vsknn", event_types=typed_names)
    assert "share_view" not in click.space and "type_weight_cart" in click.space
    repeat = tuning_plan(
        "repeat",
        fixed_params={"base": "vsknn", "base_params": {"objective": "purchase"}},
        event_types=typed_names,
    )
    assert "share_other" in repeat.space


@pytest.fixture
def typed_folder(tmp_path: Path) -> Path:
    """A prepared folder (Parquet with event types): the funnel sessions over three days
    of training and a test day whose file must never be opened by tuning."""
    rows: list[dict[str, Any]] = []
    for s in range(80):
        day = s // 20
        base = 1_700_000_000 + day * 86_400 + s * 600
        events = [("a", "view"), ("b", "cart"), ("b", "purchase")] if s % 2 == 0 else []
        events = events or [("c", "view"), ("a", "view"), ("b", "purchase")]
        for k, (item, kind) in enumerate(events):
            rows.append(
                {"session_id": s, "item_id": item, "timestamp": base + k, "event_type": kind}
            )
    return prepared_folder(rows, tmp_path)


def test_cli_tune_reads_a_prepared_folders_types(typed_folder: Path, tmp_path: Path) -> None:
    pytest.importorskip("optuna")
    (typed_folder / "test.parquet").unlink()  # tuning never needs the test file
    out = tmp_path / "best.json"
    argv = ["tune", "--benchmark", str(typed_folder), "--model", "sr", "--objective", "purchase"]
    assert main([*argv, "--trials", "2", "--output", str(out)]) == 0
    written = json.loads(out.read_text())
    assert written["metric"] == "orders@20" and written["params"]["objective"] == "purchase"
    assert written["valid_cut_seed"] == 0
    # b is bought in every session and follows a and b: every later order is found.
    assert written["default_value"] == pytest.approx(100.0)

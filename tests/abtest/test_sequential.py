"""Known answers of the sequential tests, and a small seeded A/A simulation."""

import math

import numpy as np
import pytest

from sessionrec._errors import ConfigError
from sessionrec.abtest.analysis import analyze
from sessionrec.abtest.export import SessionLog
from sessionrec.abtest.sequential import (
    always_valid_p,
    msprt_log_lambda,
    msprt_mixture_log_lambda,
    spending_boundaries,
)


def test_msprt_statistic_matches_a_hand_computation():
    # d = 0.01, V = 1e-4, tau = 0.02: Lambda = sqrt(V / (V + tau^2))
    #   * exp(tau^2 d^2 / (2 V (V + tau^2))) = sqrt(0.2) * exp(0.4) = 0.667164
    assert float(msprt_log_lambda(0.01, 1e-4, 0.02)) == pytest.approx(math.log(0.667164), abs=1e-6)
    # d = 0.05: the exponent is 0.0004 * 0.0025 / 1e-7 = 10
    assert float(msprt_log_lambda(0.05, 1e-4, 0.02)) == pytest.approx(
        0.5 * math.log(0.2) + 10, abs=1e-9
    )
    # symmetric in the sign of the difference, vectorised
    values = msprt_log_lambda(np.array([-0.05, 0.05]), 1e-4, 0.02)
    assert values[0] == pytest.approx(values[1])


def test_msprt_mixture_over_tau_is_the_mean_of_the_statistics():
    # tau = 0.04: sqrt(1e-4 / 0.0017) * exp(0.0016 * 1e-4 / (2 * 1e-4 * 0.0017))
    #           = 0.2425356 * exp(0.4705882) = 0.388284; mean with 0.667164: 0.527724
    value = msprt_mixture_log_lambda(0.01, 1e-4, [0.02, 0.04])
    assert value == pytest.approx(math.log(0.527724), abs=2e-6)
    # a difference 25 times the small tau (z = 5): the small tau alone barely reacts
    # (log Lambda 0.46), the mixture crosses 1 / alpha at once
    small = float(msprt_log_lambda(0.05, 1e-4, 0.002))
    mixed = msprt_mixture_log_lambda(0.05, 1e-4, [0.002 * 2**i for i in range(6)])
    assert small < 0.5 < math.log(20) < mixed


def test_always_valid_p_is_the_running_minimum_of_one_over_lambda():
    p = always_valid_p([math.log(0.667164), 0.5 * math.log(0.2) + 10, 2.0])
    assert p[0] == 1.0
    assert p[1] == pytest.approx(1.01518e-4, rel=1e-4)  # exp(-9.195281)
    assert p[2] == p[1]  # a later, weaker look never raises it


def test_msprt_refuses_a_zero_variance():
    with pytest.raises(ConfigError):
        msprt_log_lambda(0.1, 0.0, 0.1)


def test_spending_boundaries_match_the_published_tables():
    # five equally spaced looks, alpha 0.05 two-sided (Jennison & Turnbull; gsDesign)
    fractions = np.arange(1, 6) / 5
    obf = spending_boundaries(fractions, 0.05, "obrien-fleming")
    np.testing.assert_allclose(obf, [4.877, 3.357, 2.680, 2.290, 2.031], atol=2e-3)
    pocock = spending_boundaries(fractions, 0.05, "pocock")
    np.testing.assert_allclose(pocock, [2.438, 2.427, 2.410, 2.397, 2.386], atol=2e-3)
    # one look at the end is the fixed-horizon test
    assert spending_boundaries([1.0], 0.05)[0] == pytest.approx(1.959964, abs=1e-5)


def test_spending_boundaries_hold_alpha_on_brownian_paths():
    rng = np.random.default_rng(7)
    fractions = np.array([0.1, 0.15, 0.3, 0.5, 0.55, 0.8, 1.0])  # uneven looks
    bounds = spending_boundaries(fractions)
    steps = rng.standard_normal((100_000, fractions.size)) * np.sqrt(np.diff(fractions, prepend=0))
    z = steps.cumsum(axis=1) / np.sqrt(fractions)
    rate = float((np.abs(z) >= bounds).any(axis=1).mean())
    assert rate == pytest.approx(0.05, abs=0.003)


def test_looks_past_the_plan_spend_nothing_more():
    bounds = spending_boundaries([0.5, 1.0, 1.2])
    assert math.isinf(bounds[2])


def _aa_pilot(rng: np.random.Generator, looks: int, per_look: int, p: float) -> SessionLog:
    n = 2 * looks * per_look
    return SessionLog(
        session_ids=np.array([str(i) for i in range(n)], dtype=object),
        variants=np.array(["a", "b"] * (n // 2), dtype=object),
        impressions=np.ones(n, dtype=np.int64),
        clicks=np.zeros(n, dtype=np.int64),
        carts=np.zeros(n, dtype=np.int64),
        purchases=(rng.random(n) < p).astype(np.int64),
        revenue=np.zeros(n),
        first_seen=np.repeat(np.arange(looks) * 3600.0 + 1.0, 2 * per_look),
    )


def test_a_seeded_aa_simulation_keeps_false_positives_near_alpha():
    rng = np.random.default_rng(2026)
    pilots, looks, per_look = 120, 8, 150
    msprt = spending = naive = 0
    for _ in range(pilots):
        result = analyze(
            _aa_pilot(rng, looks, per_look, 0.2),
            metrics=("conversion",),
            planned_sessions=looks * per_look,
            mde=0.1,
        )
        (seq,) = result["sequential"]
        assert len(seq["looks"]) == looks - 1  # hourly after the first session: 2 groups first
        msprt += seq["msprt_stop"] is not None
        spending += seq["spending_stop"] is not None
        naive += any(abs(look["z"]) >= 1.959964 for look in seq["looks"])
    # expected: mSPRT ~1-2% (always valid: conservative over 8 looks), spending ~5% (6 of
    # 120), naive repeated z-tests ~15-20% (about 20 of 120)
    assert msprt <= 6
    assert 1 <= spending <= 13
    assert naive >= 12
    assert naive > 2 * spending

"""Known answers of the fixed-horizon statistics: delta method, uplift, SRM, planner."""

import math

import numpy as np
import pytest

from sessionrec._errors import ConfigError, DataError
from sessionrec.abtest import stats as st
from sessionrec.abtest.planner import plan, sessions_per_variant

Z975 = 1.959963984540054  # the 97.5% normal quantile, from a table


def test_delta_method_interval_matches_a_hand_computation():
    # clicks x and impressions y of four sessions: mean x = 1, mean y = 2, R = 0.5;
    # Var x = Var y = Cov = 2/3 (n - 1 = 3), so
    # Var R = (2/3 - 2 * 0.5 * 2/3 + 0.25 * 2/3) / (4 * 2^2) = (1/6) / 16 = 1/96.
    est = st.ratio_estimate(np.array([1, 0, 2, 1]), np.array([2, 1, 3, 2]))
    assert est.value == pytest.approx(0.5)
    assert est.se == pytest.approx(math.sqrt(1 / 96))
    low, high = est.interval(0.05)
    assert low == pytest.approx(0.5 - Z975 * 0.1020620726, abs=1e-9)
    assert high == pytest.approx(0.700038, abs=1e-6)


def test_running_sums_give_the_same_ratio_estimate():
    rng = np.random.default_rng(3)
    y = rng.integers(1, 9, 50).astype(float)
    x = rng.binomial(y.astype(int), 0.3).astype(float)
    direct = st.ratio_estimate(x, y)
    sums = np.cumsum(np.stack([np.ones(50), x, y, x * x, y * y, x * y], axis=1), axis=0)
    from_sums = st.ratio_from_sums(*(float(v) for v in sums[-1]))
    assert from_sums.value == pytest.approx(direct.value)
    assert from_sums.se == pytest.approx(direct.se)
    # a mean is the ratio with y = 1
    ones = np.ones(50)
    assert st.ratio_from_sums(50, x.sum(), 50, (x * x).sum(), 50, x.sum()).se == pytest.approx(
        st.mean_estimate(x).se
    )
    assert st.ratio_estimate(x, ones).se == pytest.approx(st.mean_estimate(x).se)


def test_mean_estimate_of_a_conversion_rate():
    values = np.array([1.0] * 20 + [0.0] * 80)  # p = 0.2, sample variance 16/99
    est = st.mean_estimate(values)
    assert est.value == pytest.approx(0.2)
    assert est.se == pytest.approx(math.sqrt(0.2 * 0.8 * 100 / 99 / 100))


def test_difference_and_relative_uplift():
    a, b = st.Estimate(0.10, 0.003, 10_000), st.Estimate(0.11, 0.004, 10_000)
    diff = st.difference(a, b)
    assert diff.value == pytest.approx(0.01)
    assert diff.se == pytest.approx(0.005)  # sqrt(0.003^2 + 0.004^2)
    assert diff.p_value() == pytest.approx(0.0455003, rel=1e-5)  # z = 2
    up = st.relative_uplift(a, b)
    assert up is not None
    assert up.value == pytest.approx(0.1)
    # Var = 0.004^2 / 0.1^2 + 0.11^2 * 0.003^2 / 0.1^4 = 0.0016 + 0.001089
    assert up.se == pytest.approx(math.sqrt(0.002689))
    assert st.relative_uplift(st.Estimate(0.0, 0.0, 10), b) is None
    # the interval on the log scale: sd of log(b / a) = sqrt((0.004/0.11)^2 + (0.003/0.1)^2)
    # = 0.0471405; 1.1 exp(+-1.959964 * 0.0471405) - 1 = [0.002920, 0.206478]
    low, high = st.uplift_interval(a, b)
    assert low == pytest.approx(0.002920, abs=2e-6)
    assert high == pytest.approx(0.206478, abs=2e-6)
    # a small control: the interval stays above -100% (the linear one would not)
    tiny = st.Estimate(0.0014, 0.0008, 2000)
    big = st.Estimate(0.021, 0.003, 2000)
    assert st.relative_uplift(tiny, big).interval()[0] < -1
    assert st.uplift_interval(tiny, big)[0] > 1.0
    assert st.uplift_interval(st.Estimate(0.0, 0.0, 10), b) is None


def test_wilson_interval_of_a_share():
    # 20 of 100: centre (0.2 + z^2/200) / (1 + z^2/100) = 0.211100, half-width
    # z / (1 + z^2/100) sqrt(0.0016 + z^2/40000) = 0.077732 (z = 1.959964)
    low, high = st.proportion_interval(20, 100)
    assert low == pytest.approx(0.133367, abs=2e-6)
    assert high == pytest.approx(0.288829, abs=2e-6)
    assert st.proportion_interval(0, 100)[0] == 0.0


def test_srm_flags_a_planted_mismatch_and_passes_a_fair_split():
    # 5200 / 4800 against 50/50: chi2 = 2 * 200^2 / 5000 = 16, p = 2 (1 - Phi(4)) = 6.334e-5
    planted = st.srm_check({"a": 5200, "b": 4800})
    assert planted.chi2 == pytest.approx(16.0)
    assert planted.p_value == pytest.approx(6.334248e-5, rel=1e-5)
    assert planted.mismatch
    fair = st.srm_check({"a": 5030, "b": 4970})
    assert fair.chi2 == pytest.approx(0.36)
    assert not fair.mismatch
    weighted = st.srm_check({"a": 9000, "b": 1000}, {"a": 9, "b": 1})
    assert weighted.chi2 == pytest.approx(0.0)
    assert st.srm_check({"a": 5000, "b": 5000}, {"a": 9, "b": 1}).mismatch
    with pytest.raises(ConfigError, match="other variants"):
        st.srm_check({"a": 1, "b": 1}, {"a": 1, "c": 1})


def test_too_few_sessions_says_how_many_more():
    with pytest.raises(DataError, match=r"'b' has 37 \(63 more needed\)"):
        st.check_enough_sessions({"a": 500, "b": 37}, 100)
    st.check_enough_sessions({"a": 100, "b": 100}, 100)


def test_planner_matches_the_two_proportion_formula_by_hand():
    # 10% -> 12%, alpha 0.05, power 0.8: z = 1.959964, z_power = 0.841621, pbar = 0.11;
    # (1.959964 sqrt(2 * 0.11 * 0.89) + 0.841621 sqrt(0.09 + 0.1056))^2 / 0.02^2
    # = (0.867270 + 0.372221)^2 / 0.0004 = 3840.8 -> 3841
    assert sessions_per_variant(0.10, 0.12) == 3841
    p = plan(0.10, 0.2, daily_sessions=1000)  # relative +20% is the same 0.12
    assert p.target == pytest.approx(0.12)
    assert p.sessions_per_variant == 3841
    assert p.total_sessions == 7682
    assert p.days == pytest.approx(7.682)
    assert plan(0.10, 0.02, relative=False).sessions_per_variant == 3841
    # three variants: each still needs 3841, the traffic is split three ways
    assert plan(0.10, 0.2, variants=3, daily_sessions=1000).days == pytest.approx(11.523)


def test_planner_refuses_impossible_inputs():
    with pytest.raises(ConfigError, match="baseline"):
        plan(1.5, 0.05)
    with pytest.raises(ConfigError, match="must not be 0"):
        plan(0.1, 0.0)
    with pytest.raises(ConfigError, match="target rate"):
        plan(0.9, 0.5)

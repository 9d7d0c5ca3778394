"""Fixed-horizon A/B statistics: session-level estimates, intervals, uplift and SRM.

The unit of randomisation is the session, so every metric is computed from per-session
values: a *mean* metric is the mean of one value per session (conversion: 1 if the session
bought a recommended item), a *ratio* metric is a ratio of two per-session sums (CTR:
clicks / impressions), whose variance comes from the delta method:

    R = mean(x) / mean(y),
    Var(R) ~ (Var(x) - 2 R Cov(x, y) + R^2 Var(y)) / (n mean(y)^2).

Intervals are normal (Wald) intervals; quantiles and tail probabilities come from
:mod:`scipy.stats`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import stats

from sessionrec._errors import ConfigError, DataError
from sessionrec.abtest.export import SessionLog

MIN_SESSIONS = 100
"""Sessions a variant needs before its intervals are computed: below about a hundred the
normal approximation of a session-level mean is not to be trusted for 0/1 metrics."""

SRM_ALPHA = 0.001
"""The p-value below which the split of sessions is a sample-ratio mismatch (a strict
threshold: the check runs on every look and a false alarm halts a healthy pilot)."""


@dataclass(frozen=True)
class Metric:
    """A session-level metric: a mean of ``numerator`` or a ratio of two sums."""

    name: str
    label: str
    numerator: str  # a SessionLog field; "purchases>0" style means "1 if > 0"
    denominator: str | None = None

    @property
    def is_ratio(self) -> bool:
        return self.denominator is not None

    @property
    def is_binary(self) -> bool:
        """A share of sessions (each session 0 or 1)."""
        return self.denominator is None and self.numerator.endswith(">0")

    def values(self, log: SessionLog) -> tuple[np.ndarray, np.ndarray | None]:
        """Per-session numerator and (ratio metrics) denominator values."""
        return _column(log, self.numerator), (
            None if self.denominator is None else _column(log, self.denominator)
        )


METRICS: tuple[Metric, ...] = (
    Metric("conversion", "conversion (sessions buying a recommended item)", "purchases>0"),
    Metric("cart_rate", "cart rate (sessions carting a recommended item)", "carts>0"),
    Metric("ctr", "CTR (clicks per impression, delta method)", "clicks", "impressions"),
    Metric("revenue_per_session", "revenue per session", "revenue"),
)
METRIC_NAMES: tuple[str, ...] = tuple(m.name for m in METRICS)


def metric(name: str) -> Metric:
    for m in METRICS:
        if m.name == name:
            return m
    raise ConfigError(f"unknown metric {name!r}; choose one of {', '.join(METRIC_NAMES)}")


def _column(log: SessionLog, spec: str) -> np.ndarray:
    if spec.endswith(">0"):
        return (getattr(log, spec[:-2]) > 0).astype(np.float64)
    return np.asarray(getattr(log, spec), dtype=np.float64)


@dataclass(frozen=True)
class Estimate:
    """A point estimate with its standard error, on ``n`` sessions."""

    value: float
    se: float
    n: int

    def interval(self, alpha: float = 0.05) -> tuple[float, float]:
        half = float(stats.norm.ppf(1 - alpha / 2)) * self.se
        return self.value - half, self.value + half

    def p_value(self) -> float:
        """Two-sided p-value of 'the true value is 0'."""
        if self.se == 0:
            return 1.0 if self.value == 0 else 0.0
        return float(2 * stats.norm.sf(abs(self.value) / self.se))


def proportion_interval(successes: int, n: int, alpha: float = 0.05) -> tuple[float, float]:
    """Wilson score interval of a share (scipy's ``binomtest``): unlike the normal interval
    it stays within [0, 1] when conversions are rare."""
    if n < 1 or not 0 <= successes <= n:
        raise DataError(f"a share needs 0 <= successes <= n, n >= 1; got {successes} of {n}")
    ci = stats.binomtest(successes, n).proportion_ci(1 - alpha, method="wilson")
    return float(ci.low), float(ci.high)


def mean_estimate(values: np.ndarray) -> Estimate:
    """The mean of per-session values and its standard error (sample variance, n - 1)."""
    x = np.asarray(values, dtype=np.float64)
    n = int(x.size)
    if n < 2:
        raise DataError(f"a mean needs at least 2 sessions, got {n}")
    return Estimate(float(x.mean()), float(x.std(ddof=1) / math.sqrt(n)), n)


def ratio_estimate(numerator: np.ndarray, denominator: np.ndarray) -> Estimate:
    """``sum(numerator) / sum(denominator)`` with its delta-method standard error."""
    x = np.asarray(numerator, dtype=np.float64)
    y = np.asarray(denominator, dtype=np.float64)
    n = int(x.size)
    if n < 2:
        raise DataError(f"a ratio needs at least 2 sessions, got {n}")
    mean_y = float(y.mean())
    if mean_y == 0:
        raise DataError("a ratio metric's denominator is 0 in every session")
    ratio = float(x.mean()) / mean_y
    cov = np.cov(x, y, ddof=1)
    variance = (cov[0, 0] - 2 * ratio * cov[0, 1] + ratio**2 * cov[1, 1]) / (n * mean_y**2)
    return Estimate(ratio, float(math.sqrt(max(variance, 0.0))), n)


def ratio_from_sums(n: float, sx: float, sy: float, sxx: float, syy: float, sxy: float) -> Estimate:
    """:func:`ratio_estimate` from the sums of ``x``, ``y``, ``x^2``, ``y^2`` and ``x y``
    over ``n`` sessions (running sums make every look of a sequential test O(1)); a mean
    metric is the ratio with ``y = 1``."""
    if n < 2:
        raise DataError(f"an estimate needs at least 2 sessions, got {n}")
    if sy == 0:
        raise DataError("a ratio metric's denominator is 0 in every session")
    ratio = sx / sy
    var_x = (sxx - sx * sx / n) / (n - 1)
    var_y = (syy - sy * sy / n) / (n - 1)
    cov = (sxy - sx * sy / n) / (n - 1)
    mean_y = sy / n
    variance = (var_x - 2 * ratio * cov + ratio**2 * var_y) / (n * mean_y**2)
    return Estimate(ratio, math.sqrt(max(variance, 0.0)), int(n))


def running_sums(log: SessionLog, m: Metric) -> np.ndarray:
    """Cumulative sums ``[n, sx, sy, sxx, syy, sxy]`` after each session of ``log``
    (shape ``[len(log), 6]``), for :func:`ratio_from_sums`."""
    x, y = m.values(log)
    if y is None:
        y = np.ones_like(x)
    terms = np.stack([np.ones_like(x), x, y, x * x, y * y, x * y], axis=1)
    return np.cumsum(terms, axis=0)


def estimate(log: SessionLog, m: Metric) -> Estimate:
    numerator, denominator = m.values(log)
    if denominator is None:
        return mean_estimate(numerator)
    return ratio_estimate(numerator, denominator)


def difference(control: Estimate, treatment: Estimate) -> Estimate:
    """Treatment minus control (independent samples)."""
    return Estimate(
        treatment.value - control.value,
        math.hypot(control.se, treatment.se),
        control.n + treatment.n,
    )


def relative_uplift(control: Estimate, treatment: Estimate) -> Estimate | None:
    """``treatment / control - 1`` with its delta-method standard error; None when the
    control's value is 0 (no relative change is defined)."""
    if control.value == 0:
        return None
    a, b = control.value, treatment.value
    variance = treatment.se**2 / a**2 + b**2 * control.se**2 / a**4
    return Estimate(b / a - 1, math.sqrt(variance), control.n + treatment.n)


def uplift_interval(
    control: Estimate, treatment: Estimate, alpha: float = 0.05
) -> tuple[float, float] | None:
    """Interval of ``treatment / control - 1`` by the delta method on the log scale:
    ``exp(log(b / a) +- z sqrt((se_b / b)^2 + (se_a / a)^2)) - 1``. Unlike the linear delta
    method it never reaches below -100% and stays sensible when the control is small; with a
    value of 0 on either side (no log) it falls back to :func:`relative_uplift`'s interval.
    None when the control is 0."""
    linear = relative_uplift(control, treatment)
    if linear is None:
        return None
    a, b = control.value, treatment.value
    if a <= 0 or b <= 0:
        return linear.interval(alpha)
    z = float(stats.norm.ppf(1 - alpha / 2))
    spread = z * math.hypot(treatment.se / b, control.se / a)
    ratio = b / a
    return ratio * math.exp(-spread) - 1, ratio * math.exp(spread) - 1


@dataclass(frozen=True)
class SrmResult:
    """The sample-ratio-mismatch check: observed sessions per variant against the split."""

    observed: dict[str, int]
    expected: dict[str, float]
    chi2: float
    p_value: float

    @property
    def mismatch(self) -> bool:
        return self.p_value < SRM_ALPHA


def srm_check(observed: dict[str, int], weights: dict[str, float] | None = None) -> SrmResult:
    """Chi-square goodness of fit of the sessions per variant against the traffic weights
    (equal weights by default)."""
    names = list(observed)
    if len(names) < 2:
        raise DataError("a sample-ratio check needs at least two variants")
    if weights is None:
        weights = {name: 1.0 for name in names}
    unknown = sorted(set(weights) ^ set(names))
    if unknown:
        raise ConfigError(f"the weights name other variants than the data ({', '.join(unknown)})")
    if any(not (w > 0 and math.isfinite(w)) for w in weights.values()):
        raise ConfigError("traffic weights must be positive numbers")
    total_weight = sum(weights[name] for name in names)
    total = sum(observed.values())
    expected = {name: total * weights[name] / total_weight for name in names}
    result = stats.chisquare([observed[name] for name in names], [expected[name] for name in names])
    return SrmResult(dict(observed), expected, float(result.statistic), float(result.pvalue))


def check_enough_sessions(counts: dict[str, int], min_sessions: int = MIN_SESSIONS) -> None:
    """A DataError saying how many more sessions each short variant needs."""
    short = {name: n for name, n in counts.items() if n < min_sessions}
    if short:
        parts = ", ".join(
            f"'{name}' has {n} ({min_sessions - n} more needed)" for name, n in short.items()
        )
        raise DataError(
            f"too few sessions for intervals: each variant needs at least {min_sessions}; " + parts
        )

"""Sequential tests: a pilot may be looked at every hour and stopped at the first significant
look without inflating the false-positive rate.

Two tests of "no difference" on the treatment-minus-control estimate ``d`` (variance ``V``
from :mod:`sessionrec.abtest.stats`):

- :func:`msprt` the mixture sequential probability ratio test (mSPRT, Johari et al.,
  "Always valid inference", 2017) with a normal mixing distribution ``N(0, tau^2)`` over the
  true difference. Its statistic is the ratio of the marginal densities of ``d`` under the
  mixture and under no difference,

      Lambda = N(d; 0, V + tau^2) / N(d; 0, V)
             = sqrt(V / (V + tau^2)) exp(tau^2 d^2 / (2 V (V + tau^2))),

  and ``min(1, 1 / max Lambda so far)`` is an always-valid p-value: rejecting when it falls
  below alpha keeps the false-positive rate under alpha for ANY number of looks and no
  planned end. The price: over a few dozen looks it is conservative (well under alpha).
- :func:`spending_boundaries` group-sequential boundaries from a Lan-DeMets alpha-spending
  function: looks may come at any time (every hour), but the planned number of sessions
  (the :mod:`~sessionrec.abtest.planner`'s) fixes the information fraction of each look;
  the whole alpha is spent when the plan is reached, so the false-positive rate is alpha.

Densities come from :mod:`scipy.stats`; the boundaries by numerical integration of the
Brownian score process over a grid (Armitage, McPherson & Rowe's recursion).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from scipy import optimize, special, stats

from sessionrec._errors import ConfigError

SPENDING_KINDS: tuple[str, ...] = ("obrien-fleming", "pocock")
_GRID = 401  # points of the score density per look: boundaries to ~1e-4
_NO_BOUNDARY = math.inf


def msprt_log_lambda(
    difference: np.ndarray | float, variance: np.ndarray | float, tau: np.ndarray | float
) -> np.ndarray:
    """``log Lambda`` of the mSPRT for estimates ``difference`` with ``variance`` and a mixing
    standard deviation ``tau`` (arrays broadcast)."""
    d = np.asarray(difference, dtype=np.float64)
    v = np.asarray(variance, dtype=np.float64)
    t = np.asarray(tau, dtype=np.float64)
    if np.any(v <= 0) or np.any(t <= 0):
        raise ConfigError("the mSPRT needs a positive variance and mixing tau")
    mixture = stats.norm.logpdf(d, loc=0.0, scale=np.sqrt(v + t**2))
    null = stats.norm.logpdf(d, loc=0.0, scale=np.sqrt(v))
    return np.asarray(mixture - null)


TAU_SCALES: tuple[float, ...] = (1.0, 2.0, 4.0, 8.0, 16.0, 32.0)
"""Mixing spreads of :func:`msprt_mixture_log_lambda`, in multiples of the planned effect:
one tau tuned to the minimum detectable effect barely reacts to an effect ten times larger
(a broken variant), so the report averages the statistics of these six; an average of
mSPRT statistics is itself one (a mixture over tau), so the guarantee stands."""


def msprt_mixture_log_lambda(
    difference: float, variance: float, taus: Sequence[float] | np.ndarray
) -> float:
    """``log`` of the mean of the mSPRT statistics over the mixing spreads ``taus`` (equal
    weights): a mixture prior over the true difference that covers small and large effects."""
    values = msprt_log_lambda(difference, variance, np.asarray(taus, dtype=np.float64))
    return float(special.logsumexp(values) - math.log(values.size))


def always_valid_p(log_lambdas: Sequence[float] | np.ndarray) -> np.ndarray:
    """The always-valid p-value after each look: ``min(1, 1 / max Lambda so far)``."""
    values = np.asarray(log_lambdas, dtype=np.float64)
    if values.size == 0:
        return values
    best = np.maximum.accumulate(values, axis=-1)
    return np.asarray(np.minimum(1.0, np.exp(-best)))


def spent(fraction: np.ndarray | float, alpha: float, kind: str = "obrien-fleming") -> np.ndarray:
    """Alpha spent by information fraction ``fraction`` (0..1, clipped), two-sided.

    ``obrien-fleming``: ``4 - 4 Phi(z_{1-alpha/4} / sqrt(t))`` (Lan & DeMets' O'Brien-Fleming
    type applied to each side with alpha/2: almost nothing early, close to a fixed-horizon
    test at the end); ``pocock``: ``alpha log(1 + (e - 1) t)`` (spends
    evenly, stops earlier, needs more sessions for the same power).
    """
    t = np.clip(np.asarray(fraction, dtype=np.float64), 0.0, 1.0)
    if kind == "obrien-fleming":
        z = float(stats.norm.isf(alpha / 4))
        with np.errstate(divide="ignore"):
            out = 4 * stats.norm.sf(z / np.sqrt(t))
        return np.asarray(np.where(t > 0, out, 0.0))
    if kind == "pocock":
        return np.asarray(alpha * np.log1p((math.e - 1) * t))
    raise ConfigError(f"unknown spending function {kind!r}; choose {', '.join(SPENDING_KINDS)}")


def spending_boundaries(
    fractions: Sequence[float] | np.ndarray, alpha: float = 0.05, kind: str = "obrien-fleming"
) -> np.ndarray:
    """Two-sided z boundaries of looks at the information ``fractions`` (increasing, > 0;
    values past 1 spend nothing more: their boundary is infinite)."""
    t_all = np.asarray(fractions, dtype=np.float64)
    if t_all.size == 0:
        return t_all
    if t_all[0] <= 0 or np.any(np.diff(t_all) <= 0):
        raise ConfigError("look fractions must be positive and increasing")
    if not 0 < alpha < 1:
        raise ConfigError(f"alpha must lie in (0, 1), got {alpha}")
    cumulative = spent(t_all, alpha, kind)
    bounds = np.empty(t_all.size)
    grid: np.ndarray | None = None  # score values of paths still running
    density: np.ndarray | None = None  # their sub-density times the grid weights
    previous_t, previous_spent = 0.0, 0.0
    for k, t in enumerate(t_all):
        target = float(cumulative[k]) - previous_spent
        step = float(min(t, 1.0)) - previous_t
        if step <= 0 or target <= 1e-12:
            bounds[k] = _NO_BOUNDARY
            continue
        sd = math.sqrt(step)
        if grid is None or density is None:
            b = math.sqrt(step) * float(stats.norm.isf(target / 2))
        else:
            g, f = grid, density

            def excess(
                b: float,
                g: np.ndarray = g,
                f: np.ndarray = f,
                sd: float = sd,
                target: float = target,
            ) -> float:
                # P(|score| >= b at this look | g at the last): the normal cdf's ufunc
                # (scipy.special.ndtr) without scipy.stats' per-call overhead
                crossing = special.ndtr((-b - g) / sd) + special.ndtr((g - b) / sd)
                return float(f @ crossing) - target

            top = float(np.abs(g).max()) + 12 * sd
            b = optimize.brentq(excess, 0.0, top, xtol=1e-10) if excess(0.0) > 0 else 0.0
        scale = math.sqrt(min(t, 1.0))
        bounds[k] = b / scale
        new_grid = np.linspace(-b, b, _GRID)
        weights = np.full(_GRID, (2 * b) / (_GRID - 1))
        weights[[0, -1]] /= 2  # trapezoid rule
        if grid is None or density is None:
            values = stats.norm.pdf(new_grid, scale=sd)
        else:
            kernel = stats.norm.pdf((new_grid[None, :] - grid[:, None]) / sd) / sd
            values = density @ kernel
        grid, density = new_grid, values * weights
        previous_t, previous_spent = float(min(t, 1.0)), float(cumulative[k])
    return bounds

"""How many sessions a pilot needs, and how long it runs at the shop's traffic.

The textbook sample size of a two-sided test of two proportions ``p1`` (control) and
``p2 = p1 + delta`` with equal groups (e.g. Chow, Shao & Wang, "Sample size calculations in
clinical research", 4.2; without continuity correction):

    n per variant = (z_{1-alpha/2} sqrt(2 pbar (1 - pbar))
                     + z_{power} sqrt(p1 (1 - p1) + p2 (1 - p2)))^2 / delta^2,
    pbar = (p1 + p2) / 2,

rounded up. Quantiles come from :mod:`scipy.stats`. With the alpha-spending test of
:mod:`~sessionrec.abtest.sequential` the pilot may stop before that many sessions; the
planned number is also its information horizon.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

from scipy import stats

from sessionrec._errors import ConfigError


@dataclass(frozen=True)
class Plan:
    """A pilot's size: sessions per variant and in all, and days at the given traffic."""

    baseline: float
    target: float  # the treatment's rate the pilot must detect
    alpha: float
    power: float
    variants: int
    sessions_per_variant: int
    total_sessions: int
    daily_sessions: float | None
    days: float | None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def sessions_per_variant(p1: float, p2: float, alpha: float = 0.05, power: float = 0.8) -> int:
    """Sessions each variant needs to detect ``p1 -> p2`` (see the module docstring)."""
    for name, value in (("baseline", p1), ("target rate", p2)):
        if not 0 < value < 1:
            raise ConfigError(f"the {name} must lie in (0, 1), got {value}")
    if p1 == p2:
        raise ConfigError("the minimum detectable effect must not be 0")
    if not 0 < alpha < 1:
        raise ConfigError(f"alpha must lie in (0, 1), got {alpha}")
    if not 0 < power < 1:
        raise ConfigError(f"power must lie in (0, 1), got {power}")
    z_alpha = float(stats.norm.ppf(1 - alpha / 2))
    z_power = float(stats.norm.ppf(power))
    pbar = (p1 + p2) / 2
    root = z_alpha * math.sqrt(2 * pbar * (1 - pbar)) + z_power * math.sqrt(
        p1 * (1 - p1) + p2 * (1 - p2)
    )
    return math.ceil(root**2 / (p2 - p1) ** 2)


def plan(
    baseline: float,
    mde: float,
    *,
    relative: bool = True,
    alpha: float = 0.05,
    power: float = 0.8,
    variants: int = 2,
    daily_sessions: float | None = None,
) -> Plan:
    """The plan for a minimum detectable effect ``mde`` on a conversion-type ``baseline``:
    relative (0.05 = +5%) by default, else absolute (0.002 = +0.2 points). Each treatment is
    compared with the control at ``alpha`` (no correction for several treatments); traffic is
    split evenly over ``variants``. ``daily_sessions`` (all variants together) gives days."""
    if variants < 2:
        raise ConfigError(f"a pilot needs at least 2 variants, got {variants}")
    target = baseline * (1 + mde) if relative else baseline + mde
    n = sessions_per_variant(baseline, target, alpha, power)
    total = n * variants
    days = None
    if daily_sessions is not None:
        if not daily_sessions > 0:
            raise ConfigError(f"daily sessions must be positive, got {daily_sessions}")
        days = total / daily_sessions
    return Plan(baseline, target, alpha, power, variants, n, total, daily_sessions, days)

"""The analysis behind ``sessionrec abtest report``: one JSON-ready dict per pilot.

:func:`analyze` takes a :class:`~sessionrec.abtest.export.SessionLog` and gives, per variant
and metric, the estimate with its interval; per treatment the difference and the relative
uplift against the control with their intervals; the sample-ratio check; and the sequential
tests looked at every ``look_every`` seconds of the pilot (by the sessions' first_seen).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from sessionrec._errors import ConfigError, DataError
from sessionrec.abtest import stats as st
from sessionrec.abtest.export import SessionLog
from sessionrec.abtest.sequential import (
    SPENDING_KINDS,
    TAU_SCALES,
    always_valid_p,
    msprt_mixture_log_lambda,
    spending_boundaries,
)

DEFAULT_CONTROL = "default"
"""The control when none is named and a variant has this name (the service's name for the
model it serves besides the A/B variants); else the alphabetically first variant."""


def analyze(
    log: SessionLog,
    *,
    control: str | None = None,
    alpha: float = 0.05,
    metrics: Sequence[str] = st.METRIC_NAMES,
    min_sessions: int = st.MIN_SESSIONS,
    weights: dict[str, float] | None = None,
    look_every: float = 3600.0,
    mde: float = 0.05,
    planned_sessions: int | None = None,
    spending: str = "obrien-fleming",
) -> dict[str, Any]:
    """The report's numbers (see the module docstring).

    ``mde`` (relative) sets the mSPRT's mixing spreads: ``tau = mde * |pooled estimate|``
    times each of :data:`~sessionrec.abtest.sequential.TAU_SCALES`.
    ``control`` defaults to :data:`DEFAULT_CONTROL`.
    ``planned_sessions`` (per variant, from the planner) adds the alpha-spending test.
    Raises a DataError when a variant has fewer than ``min_sessions`` sessions.
    """
    if not 0 < alpha < 1:
        raise ConfigError(f"alpha must lie in (0, 1), got {alpha}")
    if not mde > 0:
        raise ConfigError(f"the minimum detectable effect must be positive, got {mde}")
    if not look_every > 0:
        raise ConfigError(f"looks must be a positive number of seconds apart, got {look_every}")
    if spending not in SPENDING_KINDS:
        raise ConfigError(f"unknown spending function {spending!r}")
    if planned_sessions is not None and planned_sessions < 1:
        raise ConfigError(f"planned sessions must be positive, got {planned_sessions}")
    chosen = [st.metric(name) for name in metrics]
    names = log.variant_names
    if len(names) < 2:
        raise DataError(f"an A/B report needs at least two variants, got {names}")
    if control is None:
        control = DEFAULT_CONTROL if DEFAULT_CONTROL in names else sorted(names)[0]
    if control not in names:
        raise ConfigError(f"control variant {control!r} is not in the data ({', '.join(names)})")
    names = [control, *sorted(name for name in names if name != control)]
    counts = {name: int((log.variants == name).sum()) for name in names}
    st.check_enough_sessions(counts, min_sessions)
    srm = st.srm_check(counts, weights)
    parts = {name: log.subset(log.variants == name) for name in names}
    treatments = [name for name in names if name != control]
    ordered = log.sorted_by_time()
    return {
        "sessions": len(log),
        "variants": counts,
        "control": control,
        "alpha": alpha,
        "first_seen": float(log.first_seen.min()),
        "last_seen": float(log.first_seen.max()),
        "traffic": _traffic(log, counts, planned_sessions),
        "srm": {
            "observed": srm.observed,
            "expected": srm.expected,
            "chi2": srm.chi2,
            "p_value": srm.p_value,
            "mismatch": srm.mismatch,
            "threshold": st.SRM_ALPHA,
        },
        "metrics": [_metric_rows(m, parts, control, treatments, alpha) for m in chosen],
        "sequential": [
            _sequential(
                ordered,
                m,
                control,
                name,
                alpha,
                min_sessions,
                look_every,
                mde,
                planned_sessions,
                spending,
            )
            for m in chosen
            for name in treatments
        ],
    }


def _traffic(
    log: SessionLog, counts: dict[str, int], planned_sessions: int | None
) -> dict[str, Any]:
    """Sessions a day so far and, with a plan, the share reached and the days still needed
    at that pace (by the smallest variant)."""
    days = (float(log.first_seen.max()) - float(log.first_seen.min())) / 86_400
    per_day = len(log) / days if days > 0 else None
    out: dict[str, Any] = {"days": days, "sessions_per_day": per_day}
    if planned_sessions is not None:
        smallest = min(counts.values())
        reached = smallest / planned_sessions
        out["planned_sessions"] = planned_sessions
        out["reached"] = reached
        out["days_left"] = None if per_day is None else max(0.0, (1 - reached) * days / reached)
    return out


def _interval(estimate: st.Estimate | None, alpha: float) -> list[float] | None:
    return None if estimate is None else list(estimate.interval(alpha))


def _pair(pair: tuple[float, float] | None) -> list[float] | None:
    return None if pair is None else list(pair)


def _metric_rows(
    m: st.Metric,
    parts: dict[str, SessionLog],
    control: str,
    treatments: Sequence[str],
    alpha: float,
) -> dict[str, Any]:
    estimates = {}
    for name, part in parts.items():
        try:
            estimates[name] = st.estimate(part, m)
        except DataError as exc:
            raise DataError(f"{m.name} of variant '{name}': {exc}") from None
    rows = []
    for name, est in estimates.items():
        if m.is_binary:  # Wilson: stays in [0, 1] for rare conversions
            successes = round(est.value * est.n)
            ci = list(st.proportion_interval(successes, est.n, alpha))
        else:
            ci = list(est.interval(alpha))
        row: dict[str, Any] = {"variant": name, "n": est.n, "estimate": est.value, "ci": ci}
        if name in treatments:
            diff = st.difference(estimates[control], est)
            uplift = st.relative_uplift(estimates[control], est)
            row |= {
                "difference": diff.value,
                "difference_ci": _interval(diff, alpha),
                "p_value": diff.p_value(),
                "uplift": None if uplift is None else uplift.value,
                "uplift_ci": _pair(st.uplift_interval(estimates[control], est, alpha)),
            }
        rows.append(row)
    return {"metric": m.name, "label": m.label, "rows": rows}


MAX_LOOKS = 10_000
"""More looks than this means a wrong time unit or a stray first_seen (hourly looks cover
more than a year): refused rather than computed for minutes."""


def look_times(first_seen: np.ndarray, every: float) -> np.ndarray:
    """Look times: every ``every`` seconds after the first session, and one at the last."""
    start, end = float(first_seen.min()), float(first_seen.max())
    count = max(math.ceil((end - start) / every), 1)
    if count > MAX_LOOKS:
        raise DataError(
            f"the sessions' first_seen span {(end - start) / 86_400:.0f} days: {count} looks "
            f"{every:g} s apart (at most {MAX_LOOKS}); check first_seen or look less often "
            "(--look-every)"
        )
    times = start + every * np.arange(1, count + 1, dtype=np.float64)
    times[-1] = max(times[-1], end)
    return times


def _sequential(
    ordered: SessionLog,
    m: st.Metric,
    control: str,
    treatment: str,
    alpha: float,
    min_sessions: int,
    look_every: float,
    mde: float,
    planned_sessions: int | None,
    spending: str,
) -> dict[str, Any]:
    """The sequential tests of one metric and treatment, look by look."""
    in_test = (ordered.variants == control) | (ordered.variants == treatment)
    pair = ordered.subset(in_test)
    is_treatment = pair.variants == treatment
    sums = {
        side: st.running_sums(pair.subset(mask), m)
        for side, mask in (("control", ~is_treatment), ("treatment", is_treatment))
    }
    treated_before = np.concatenate([[0], np.cumsum(is_treatment)])
    looks: list[dict[str, Any]] = []
    for t in look_times(pair.first_seen, look_every):
        upto = int(np.searchsorted(pair.first_seen, t, side="right"))
        n_t = int(treated_before[upto])
        n_c = upto - n_t
        if min(n_c, n_t) < max(min_sessions, 2):
            continue
        if looks and looks[-1]["n_control"] == n_c and looks[-1]["n_treatment"] == n_t:
            continue  # nothing new since the last look
        at_c, at_t = sums["control"][n_c - 1], sums["treatment"][n_t - 1]
        try:
            a = st.ratio_from_sums(*(float(v) for v in at_c))
            b = st.ratio_from_sums(*(float(v) for v in at_t))
        except DataError:  # e.g. a ratio's denominator still 0 everywhere
            continue
        diff = st.difference(a, b)
        pooled = (at_c[1] + at_t[1]) / (at_c[2] + at_t[2])
        tau = mde * abs(pooled)
        if diff.se <= 0 or tau <= 0:
            continue
        looks.append(
            {
                "time": float(t),
                "n_control": n_c,
                "n_treatment": n_t,
                "difference": float(diff.value),
                "z": float(diff.value / diff.se),
                "log_lambda": msprt_mixture_log_lambda(
                    diff.value, diff.se**2, [tau * scale for scale in TAU_SCALES]
                ),
            }
        )
    p_values = always_valid_p([look["log_lambda"] for look in looks])
    for look, p in zip(looks, p_values, strict=True):
        look["p_always_valid"] = float(p)
    stop = next((look for look in looks if look["p_always_valid"] <= alpha), None)
    result: dict[str, Any] = {
        "metric": m.name,
        "variant": treatment,
        "looks": looks,
        "p_always_valid": float(p_values[-1]) if looks else 1.0,
        "msprt_stop": None if stop is None else stop["time"],
    }
    if planned_sessions is not None:
        result |= _spending(looks, planned_sessions, alpha, spending)
    return result


@functools.lru_cache(maxsize=64)
def _boundaries(fractions: tuple[float, ...], alpha: float, kind: str) -> tuple[float, ...]:
    """Boundaries shared by the metrics of one treatment (their looks are the same)."""
    return tuple(float(b) for b in spending_boundaries(fractions, alpha, kind))


def _spending(looks: list[dict[str, Any]], planned: int, alpha: float, kind: str) -> dict[str, Any]:
    fractions = [min(look["n_control"], look["n_treatment"]) / planned for look in looks]
    kept = [i for i, f in enumerate(fractions) if i == 0 or f > fractions[i - 1]]
    bounds = _boundaries(tuple(fractions[i] for i in kept), alpha, kind) if kept else ()
    stop = None
    for i, bound in zip(kept, bounds, strict=True):
        looks[i]["boundary"] = None if math.isinf(bound) else float(bound)
        if stop is None and abs(looks[i]["z"]) >= bound:
            stop = looks[i]["time"]
    return {"spending": kind, "planned_sessions": planned, "spending_stop": stop}

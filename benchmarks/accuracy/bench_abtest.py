"""Do the A/B statistics keep their promises? Simulated pilots with a known answer.

Usage (one core, about 1-2 minutes with the defaults)::

    OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 .venv/bin/python -m benchmarks.accuracy.bench_abtest \\
        [--pilots 1000] [--looks 24] [--uplift 0.05] [--ab-horizon 2] [--mde 0.05] \\
        [--events 200000] [--model sr] [--seed 0] [--json-out FILE]

1. The baseline: a synthetic shop (``generate_shop``), its last 3 days as test sessions,
   ``--model`` fitted on the rest, and the test sessions replayed under the behaviour model
   of ``sessionrec abtest simulate``: the conversion rate ``p0`` is the share of sessions
   buying an item the model recommended.
2. The planner: sessions per variant to detect ``p0 -> p0 (1 + uplift)`` at alpha 5% and
   power 80% (``sessionrec abtest plan``).
3. A/A pilots: both variants convert like the replayed sessions (drawing sessions from the
   replay with replacement: for a 0/1 outcome the conversions of a look are then exactly
   Binomial(sessions, p0), which is how they are drawn). Each pilot reaches the planned size
   in ``--looks`` equal looks (hourly: 24 looks = one day) and is looked at every time with
   the mSPRT as ``abtest report`` runs it (always-valid p < alpha; mixing spreads
   ``TAU_SCALES`` times ``--mde`` times the rate), the mSPRT with the one spread ``--mde``
   times the rate (``msprt_one_tau``), the O'Brien-Fleming alpha-spending boundary over the
   planned size, and naive repeated two-sample t-tests (scipy). False-positive rates.
4. A/B pilots: the treatment's conversion raised by ``--uplift``; looks continue to
   ``--ab-horizon`` times the planned size. Power at the planned size and at the end, and the
   median stopping look, against the planner's prediction (80% power at the planned size).

Every look uses the library's own functions (``sessionrec.abtest.stats``,
``sessionrec.abtest.sequential``), the ones ``abtest report`` calls.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path
from typing import Any

import numpy as np
from scipy import stats as scipy_stats

from sessionrec.abtest import stats as st
from sessionrec.abtest.planner import plan
from sessionrec.abtest.sequential import (
    TAU_SCALES,
    always_valid_p,
    msprt_log_lambda,
    msprt_mixture_log_lambda,
    spending_boundaries,
)
from sessionrec.abtest.simulate import replay
from sessionrec.data.sessions import SessionData
from sessionrec.data.split import temporal_split
from sessionrec.data.synthetic import generate_shop
from sessionrec.models.registry import create_model

ALPHA = 0.05
POWER = 0.8


def replayed_conversion(events: int, model_name: str, seed: int) -> dict[str, Any]:
    """The conversion rate of replayed test sessions of a synthetic shop."""
    shop = generate_shop(events, seed=seed, days=14)
    train, test = temporal_split(shop.clicks, days=3)
    model = create_model(model_name).fit(SessionData.from_frame(train))
    test_data = SessionData.from_frame(test)
    outcome = replay(test_data, model, k=10)
    shown = outcome["impressions"] > 0
    converted = outcome["purchases"][shown] > 0
    return {
        "test_sessions": int(shown.sum()),
        "p0": float(converted.mean()),
        "ctr": float(outcome["clicks"].sum() / max(outcome["impressions"].sum(), 1)),
    }


def run_pilots(
    rng: np.random.Generator,
    pilots: int,
    looks: int,
    per_look: int,
    p_control: float,
    p_treatment: float,
    planned: int,
    mde: float,
    bounds: np.ndarray,
) -> dict[str, np.ndarray]:
    """Look index (1-based) at which each test first rejects, 0 for never; per pilot.

    ``planned`` is the look at which the planned size is reached (the fixed-horizon test's).
    """
    conversions = np.stack(
        [
            rng.binomial(per_look, p, size=(pilots, looks)).cumsum(axis=1)
            for p in (p_control, p_treatment)
        ]
    )  # [arm, pilot, look]
    n = per_look * np.arange(1, looks + 1, dtype=np.float64)
    names = ("msprt", "msprt_one_tau", "spending", "naive")
    first = {name: np.zeros(pilots, dtype=np.int64) for name in names}
    for i in range(pilots):
        log_lambdas = np.full(looks, -math.inf)
        mixed = np.full(looks, -math.inf)
        z = np.empty(looks)
        for k in range(looks):
            ca, cb = float(conversions[0, i, k]), float(conversions[1, i, k])
            # a 0/1 metric: x = x^2 = x * y, y = 1 (st.ratio_from_sums's sums)
            a = st.ratio_from_sums(n[k], ca, n[k], ca, n[k], ca)
            b = st.ratio_from_sums(n[k], cb, n[k], cb, n[k], cb)
            diff = st.difference(a, b)
            tau = mde * (ca + cb) / (2 * n[k])
            if diff.se <= 0 or tau <= 0:
                z[k] = 0.0
                continue
            log_lambdas[k] = float(msprt_log_lambda(diff.value, diff.se**2, tau))
            mixed[k] = msprt_mixture_log_lambda(
                diff.value, diff.se**2, [tau * scale for scale in TAU_SCALES]
            )
            z[k] = diff.value / diff.se
        _record(first["msprt"], i, always_valid_p(mixed) <= ALPHA)
        _record(first["msprt_one_tau"], i, always_valid_p(log_lambdas) <= ALPHA)
        _record(first["spending"], i, np.abs(z) >= bounds)
    # naive: a two-sample t-test (scipy) at every look, as if each were the only one
    mean = conversions / n
    std = np.sqrt(mean * (1 - mean) * n / (n - 1))
    naive_p = scipy_stats.ttest_ind_from_stats(
        mean[1], std[1], n, mean[0], std[0], n, equal_var=False
    ).pvalue
    naive_rejects = np.nan_to_num(naive_p, nan=1.0) < ALPHA
    for i in range(pilots):
        _record(first["naive"], i, naive_rejects[i])
    # the planner's design: one t-test when the planned size is reached
    at_plan = min(planned, looks)
    first["fixed"] = np.where(naive_rejects[:, at_plan - 1], at_plan, 0)
    return first


def _record(out: np.ndarray, i: int, rejects: np.ndarray) -> None:
    hits = np.flatnonzero(rejects)
    out[i] = hits[0] + 1 if hits.size else 0


def summarize(first: np.ndarray, at: int) -> dict[str, Any]:
    """Share rejecting by look ``at`` and overall; median stopping look of those stopping."""
    stopped = first[first > 0]
    return {
        f"rate_by_look_{at}": float(((first > 0) & (first <= at)).mean()),
        "rate_overall": float((first > 0).mean()),
        "median_stop_look": float(np.median(stopped)) if stopped.size else None,
    }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--pilots", type=int, default=1000)
    parser.add_argument("--looks", type=int, default=24, help="looks up to the planned size")
    parser.add_argument("--uplift", type=float, default=0.05, help="planted relative uplift")
    parser.add_argument("--ab-horizon", type=float, default=2.0, help="A/B pilots' length")
    parser.add_argument("--mde", type=float, default=0.05, help="mSPRT tau = mde * rate")
    parser.add_argument("--events", type=int, default=200_000, help="synthetic shop clicks")
    parser.add_argument("--model", default="sr")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json-out", type=Path)
    args = parser.parse_args(argv)
    started = time.perf_counter()
    base = replayed_conversion(args.events, args.model, args.seed)
    p0 = base["p0"]
    planned = plan(p0, args.uplift, alpha=ALPHA, power=POWER)
    n_plan = planned.sessions_per_variant
    per_look = math.ceil(n_plan / args.looks)
    rng = np.random.default_rng(args.seed)
    aa_bounds = spending_boundaries(np.arange(1, args.looks + 1) / args.looks, ALPHA)
    aa = run_pilots(rng, args.pilots, args.looks, per_look, p0, p0, args.looks, args.mde, aa_bounds)
    ab_looks = math.ceil(args.looks * args.ab_horizon)
    ab_bounds = spending_boundaries(np.arange(1, ab_looks + 1) / args.looks, ALPHA)
    ab = run_pilots(
        rng, args.pilots, ab_looks, per_look, p0, p0 * (1 + args.uplift), args.looks, args.mde,
        ab_bounds,
    )  # fmt: skip
    result = {
        "baseline": base | {"model": args.model, "events": args.events},
        "plan": planned.to_dict(),
        "pilots": args.pilots,
        "looks_to_plan": args.looks,
        "sessions_per_look_per_variant": per_look,
        "aa": {name: summarize(first, args.looks) for name, first in aa.items()},
        "ab": {name: summarize(first, args.looks) for name, first in ab.items()},
        "ab_looks": ab_looks,
        "seconds": time.perf_counter() - started,
    }
    _print(result)
    if args.json_out:
        args.json_out.write_text(json.dumps(result, indent=2) + "\n")
    return result


def _print(result: dict[str, Any]) -> None:
    base, planned, looks = result["baseline"], result["plan"], result["looks_to_plan"]
    print(
        f"baseline: {base['model']} replayed on {base['test_sessions']} test sessions of a "
        f"{base['events']}-click synthetic shop: conversion p0 = {base['p0']:.4f}"
    )
    print(
        f"planner: {planned['sessions_per_variant']} sessions per variant for "
        f"{planned['baseline']:.4f} -> {planned['target']:.4f} (alpha 5%, power 80%), "
        f"reached at look {looks} ({result['sessions_per_look_per_variant']} per look)"
    )
    print(f"\n{result['pilots']} A/A pilots, {looks} looks each: false-positive rate")
    print("| test | false positives | median look of a false stop |\n|---|---|---|")
    for name, row in result["aa"].items():
        print(f"| {name} | {100 * row['rate_overall']:.1f}% | {row['median_stop_look']} |")
    lift = 100 * planned["target"] / planned["baseline"] - 100
    print(
        f"\n{result['pilots']} A/B pilots (+{lift:.1f}% conversion), looks to {result['ab_looks']}"
    )
    print(
        f"| test | power by look {looks} (planned size) | power by look {result['ab_looks']} | "
        "median stopping look (sessions per variant) |\n|---|---|---|---|"
    )
    per_look = result["sessions_per_look_per_variant"]
    for name, row in result["ab"].items():
        median = row["median_stop_look"]
        when = "-" if median is None else f"{median:g} ({median * per_look:,.0f})"
        print(
            f"| {name} | {100 * row[f'rate_by_look_{looks}']:.1f}% | "
            f"{100 * row['rate_overall']:.1f}% | {when} |"
        )
    print(f"\n{result['seconds']:.0f} s")


if __name__ == "__main__":
    main()

"""The ensemble on the public benchmark splits: every member alone, then the ensemble.

Usage (one thread, as in BENCHMARKS.md)::

    OMP_NUM_THREADS=1 NUMBA_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 \\
        .venv/bin/python -m benchmarks.accuracy.bench_ensemble \\
        [--data ../shared/data] [--datasets diginetica,yoochoose-1_64] \\
        [--members vstan,sr,spop,stan] [--latency-calls 1000] [--json-out FILE]

A member takes its committed hyperparameters from ``benchmarks/params/NAME-DATASET.json``
when the file exists (e.g. vstan on Diginetica), its defaults otherwise. The ensemble
chooses its weights and normalisation on the last 10% of the training sessions only, then
refits its weighted members on all of them; the test file is read for the final figures
alone. Prints a Markdown table: test HR@20 / MRR@20 (benchmark protocol, pessimistic ties),
fit seconds, the chosen weights, and single-session top-20 latency p50 / p99 (ms) over test
prefixes: each member alone (its own ``recommend``), each member's share inside the
ensemble (its dense ``score``, what the ensemble pays for it) and the ensemble's total.

Figures of 2026-12-07 (2 shared cores, load about 3; members vstan,sr,spop,stan; HR@20 /
MRR@20 on the test file):

- Diginetica: vstan (tuned params file) 51.87 / 18.76, sr 39.68 / 13.71, spop 21.08 /
  13.65, stan 51.50 / 18.58; ensemble 51.94 / 18.75 (minmax, vstan 0.8, stan 0.2,
  validation MRR@20 18.29), fit 134 s, top-20 latency 1.52 / 9.98 ms p50 / p99.
- YooChoose 1/64: vstan (defaults) 69.90 / 28.86, sr 66.96 / 30.07, spop 30.86 / 18.45,
  stan 66.15 / 28.26; ensemble 69.17 / 30.77 (rank, sr 0.7, vstan 0.3, validation MRR@20
  31.61), fit 101 s, latency 1.27 / 9.85 ms.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.common import BENCHMARK_FOLDERS, PARAMS, SHARED_DATA, load_average, read_params_file
from sessionrec.data.sessions import SessionData
from sessionrec.evaluation.protocol import BenchmarkFolder, evaluate, make_cases, measure_latency
from sessionrec.models.base import Recommender
from sessionrec.models.ensemble import Ensemble, parse_members
from sessionrec.models.registry import create_model


def member_params(members: str, dataset: str) -> dict[str, dict[str, Any]]:
    """The committed parameter file of each member on ``dataset``, where there is one."""
    out = {}
    for name, label in parse_members(members):
        path = PARAMS / f"{name}-{dataset}.json"
        if path.is_file():
            out[label] = read_params_file(path)
    return out


def test_figures(model: Recommender, test: SessionData, counts: np.ndarray) -> dict[str, Any]:
    result = evaluate(model, test, protocol="benchmark", cutoffs=(20,))
    return result.metrics(item_counts=counts)


def score_latency(model: Ensemble, test: SessionData, n_calls: int) -> dict[str, np.ndarray]:
    """Milliseconds of each weighted member's dense ``score`` of one session (the test
    prefixes :func:`measure_latency` draws, same seed), as the ensemble calls it."""
    cases = make_cases(test, "next")
    pick = np.random.default_rng(0).choice(len(cases), size=n_calls, replace=len(cases) < n_calls)
    batches = [
        model.encode_sessions([test.vocab.ids[test.items[s : s + n]].tolist()])
        for s, n in zip(cases.starts[pick], cases.lengths[pick], strict=True)
    ]
    out = {}
    for label, weight in model.member_weights().items():
        if weight <= 0:
            continue
        member = model.members_[label]
        millis = np.empty(len(batches))
        for i, batch in enumerate(batches):
            started = time.perf_counter()
            member.score(batch)
            millis[i] = (time.perf_counter() - started) * 1000.0
        out[label] = millis
    return out


def percentiles(millis: np.ndarray) -> str:
    return f"{np.percentile(millis, 50):.2f} / {np.percentile(millis, 99):.2f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=SHARED_DATA)
    parser.add_argument("--datasets", default="diginetica")
    parser.add_argument("--members", default="vstan,sr,spop,stan")
    parser.add_argument("--normalization", default="auto")
    parser.add_argument("--latency-calls", type=int, default=1000)
    parser.add_argument("--json-out", type=Path, help="also write the raw results here")
    args = parser.parse_args()

    rows: list[dict[str, Any]] = []
    print(f"load before: {load_average()}")
    print(
        "| dataset | model | HR@20 | MRR@20 | weight | fit s | alone p50 / p99 ms | "
        "in ensemble p50 / p99 ms |"
    )
    print("|---|---|---:|---:|---:|---:|---:|---:|")
    for dataset in args.datasets.split(","):
        folder = BenchmarkFolder(args.data / BENCHMARK_FOLDERS[dataset])
        train, test = folder.train(), folder.test()
        counts = train.item_counts()
        params = member_params(args.members, dataset)
        ensemble = create_model(
            "ensemble",
            {
                "members": args.members,
                "member_params": params or None,
                "normalization": args.normalization,
            },
        )
        assert isinstance(ensemble, Ensemble)
        started = time.perf_counter()
        ensemble.fit(train)
        ensemble_fit = time.perf_counter() - started
        weights = ensemble.member_weights()  # the mean over the length groups
        inside = score_latency(ensemble, test, args.latency_calls)
        for name, label in parse_members(args.members):
            member = ensemble.members_[label]
            fit_seconds = float("nan")
            if weights[label] <= 0:  # fitted on the validation split's first part only
                member = create_model(name, params.get(label))
                started = time.perf_counter()
                member.fit(train)
                fit_seconds = time.perf_counter() - started
            metrics = test_figures(member, test, counts)
            alone = measure_latency(member, test, n_calls=args.latency_calls)
            fit_text = "in ensemble" if fit_seconds != fit_seconds else f"{fit_seconds:.2f}"
            share = percentiles(inside[label]) if label in inside else "not scored"
            print(
                f"| {dataset} | {label} | {metrics['hr@20']:.2f} | {metrics['mrr@20']:.2f} | "
                f"{weights[label]:.1f} | {fit_text} | {percentiles(alone)} | {share} |",
                flush=True,
            )
            rows.append(
                {
                    "dataset": dataset,
                    "model": label,
                    "weight": weights[label],
                    "alone_ms_p50": float(np.percentile(alone, 50)),
                    "alone_ms_p99": float(np.percentile(alone, 99)),
                    **metrics,
                }
            )
        metrics = test_figures(ensemble, test, counts)
        total = measure_latency(ensemble, test, n_calls=args.latency_calls)
        print(
            f"| {dataset} | **ensemble** ({ensemble.normalization_}, validation MRR@20 "
            f"{ensemble.valid_mrr_:.2f}) | {metrics['hr@20']:.2f} | {metrics['mrr@20']:.2f} | "
            f"1.0 | {ensemble_fit:.2f} | {percentiles(total)} | - |",
            flush=True,
        )
        print(f"{dataset}: weights by session length {ensemble.group_weights()}", flush=True)
        rows.append(
            {
                "dataset": dataset,
                "model": "ensemble",
                "weights": weights,
                "normalization": ensemble.normalization_,
                "valid_mrr@20": ensemble.valid_mrr_,
                "ensemble_fit_seconds": ensemble_fit,
                "ms_p50": float(np.percentile(total, 50)),
                "ms_p99": float(np.percentile(total, 99)),
                **metrics,
            }
        )
    print(f"load after: {load_average()}")
    if args.json_out:
        args.json_out.write_text(json.dumps(rows, indent=2) + "\n")


if __name__ == "__main__":
    main()

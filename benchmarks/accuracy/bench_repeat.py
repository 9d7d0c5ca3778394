"""The repeat layer (``repeat``) against its base on the public benchmark splits.

Usage (single-threaded, as in BENCHMARKS.md)::

    OMP_NUM_THREADS=1 NUMBA_NUM_THREADS=1 .venv/bin/python -m benchmarks.accuracy.bench_repeat \\
        [--data ../shared/data] [--datasets diginetica,yoochoose-1_64] \\
        [--bases vstan-tuned,vstan,sr] [--json-out FILE]

For every (dataset, base) it fits ``RepeatAware(base, base_params)`` on ``train_sessions.txt``
(the base on the first 90%, the mixture learned on the last 10%, the base fitted again on
all of it) and prints:

- the share of test targets that repeat an item of their prefix;
- HR@20 / MRR@20 (percent, every next-click case, pessimistic ties) of the base alone (the
  layer's own refitted base) and of the layer, overall and for prefixes of 1 and 2 clicks;
- the mixture validation chose (recency decay, frequency power, ``beta`` per cell);
- single-session latency: ``top_k`` (k=20) on one-session batches over every test prefix,
  base and layer timed alternately on the same prefix, p50 / p99 in milliseconds (wall
  clock), and the p50 of the per-prefix difference (what the layer adds).

``vstan-tuned`` is vstan with ``benchmarks/params/vstan-<dataset>.json`` (tuned on the
validation split); it is skipped on a dataset without such a file. Nothing here is tuned on
the test file: the layer's mixture comes from the validation split only.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.common import BENCHMARK_FOLDERS, PARAMS, SHARED_DATA, load_average, read_params_file

BASES = ("vstan-tuned", "vstan", "sr")
BATCH = 2048


def base_config(label: str, dataset: str) -> tuple[str, dict[str, Any]] | None:
    """The base model and its hyperparameters of a ``--bases`` label (None: no params file)."""
    if label.endswith("-tuned"):
        name = label.removesuffix("-tuned")
        path = PARAMS / f"{name}-{dataset}.json"
        if not path.is_file():
            print(f"# no {path.name}: {label} skipped on {dataset}", file=sys.stderr)
            return None
        return name, read_params_file(path)
    return label, {}


def all_ranks(model: Any, items: np.ndarray, cases: Any, targets: np.ndarray) -> np.ndarray:
    from sessionrec.evaluation.protocol import prefix_batch

    out = np.empty(len(cases), dtype=np.float64)
    for lo in range(0, len(cases), BATCH):
        hi = min(lo + BATCH, len(cases))
        batch = prefix_batch(items, None, cases.starts[lo:hi], cases.lengths[lo:hi])
        out[lo:hi] = model.target_ranks(batch, targets[lo:hi])
    return out


def figures(ranks: np.ndarray, lengths: np.ndarray) -> dict[str, float]:
    from sessionrec.evaluation import metrics

    out = {"hr@20": 100 * metrics.hit_rate(ranks, 20), "mrr@20": 100 * metrics.mrr(ranks, 20)}
    for n in (1, 2):
        mask = lengths == n
        out[f"hr@20_len{n}"] = 100 * metrics.hit_rate(ranks[mask], 20)
        out[f"mrr@20_len{n}"] = 100 * metrics.mrr(ranks[mask], 20)
        out[f"cases_len{n}"] = int(mask.sum())
    return out


def latency(model: Any, items: np.ndarray, cases: Any) -> dict[str, float]:
    """Base and layer ``top_k`` (k=20) per single test prefix, timed alternately."""
    from sessionrec.evaluation.protocol import prefix_batch

    singles = [
        prefix_batch(items, None, cases.starts[i : i + 1], cases.lengths[i : i + 1])
        for i in range(len(cases))
    ]
    model.top_k(singles[0], 20)  # first calls (Numba caches) outside the timing
    model.base_.top_k(singles[0], 20)
    base, layer = np.empty(len(singles)), np.empty(len(singles))
    for i, batch in enumerate(singles):
        started = time.perf_counter_ns()
        model.base_.top_k(batch, 20)
        middle = time.perf_counter_ns()
        model.top_k(batch, 20)
        base[i] = (middle - started) / 1e6
        layer[i] = (time.perf_counter_ns() - middle) / 1e6
    return {
        "base_p50_ms": float(np.percentile(base, 50)),
        "base_p99_ms": float(np.percentile(base, 99)),
        "layer_p50_ms": float(np.percentile(layer, 50)),
        "layer_p99_ms": float(np.percentile(layer, 99)),
        "added_p50_ms": float(np.percentile(layer - base, 50)),
    }


def run(dataset: str, label: str, base: str, params: dict[str, Any], folder: Any) -> dict[str, Any]:
    from sessionrec.evaluation.protocol import items_for, make_cases
    from sessionrec.models.repeat import RepeatAware
    from sessionrec.models.repeat_mixture import CELL_LABELS

    train, test = folder.train(), folder.test()
    started = time.perf_counter()
    model = RepeatAware(base=base, base_params=params or None).fit(train)
    fit_seconds = time.perf_counter() - started
    items = items_for(model, test)
    cases = make_cases(test, "next")
    targets = items[cases.starts + cases.lengths]
    repeats = np.fromiter(
        (
            targets[c] >= 0 and targets[c] in items[s : s + n]
            for c, (s, n) in enumerate(
                zip(cases.starts.tolist(), cases.lengths.tolist(), strict=True)
            )
        ),
        dtype=bool,
        count=len(cases),
    )
    started = time.perf_counter()
    layer_ranks = all_ranks(model, items, cases, targets)
    eval_seconds = time.perf_counter() - started
    base_ranks = all_ranks(model.base_, items, cases, targets)
    mixture = model.mixture_
    return {
        "dataset": dataset,
        "base": label,
        "params": params,
        "n_cases": len(cases),
        "repeat_targets_pct": 100 * float(repeats.mean()),
        "base_figures": figures(base_ranks, cases.lengths),
        "layer_figures": figures(layer_ranks, cases.lengths),
        "mixture": {
            "decay": mixture.decay,
            "power": mixture.power,
            "beta": {
                cell: (None if np.isnan(b) else float(b))
                for cell, b in zip(CELL_LABELS, mixture.beta.tolist(), strict=True)
            },
        },
        "recommends_repeats": model.recommends_repeats(),
        "fit_seconds": fit_seconds,
        "layer_eval_seconds": eval_seconds,
        "latency": latency(model, items, cases),
        "load_average": load_average(),
    }


def markdown(row: dict[str, Any]) -> str:
    b, r, lat = row["base_figures"], row["layer_figures"], row["latency"]
    return (
        f"| {row['dataset']} | {row['base']} | {b['hr@20']:.2f} / {b['mrr@20']:.2f} "
        f"| {r['hr@20']:.2f} / {r['mrr@20']:.2f} "
        f"| {b['hr@20_len1']:.2f} / {b['mrr@20_len1']:.2f} -> "
        f"{r['hr@20_len1']:.2f} / {r['mrr@20_len1']:.2f} "
        f"| {b['hr@20_len2']:.2f} / {b['mrr@20_len2']:.2f} -> "
        f"{r['hr@20_len2']:.2f} / {r['mrr@20_len2']:.2f} "
        f"| {lat['base_p50_ms']:.3f} / {lat['layer_p50_ms']:.3f} (+{lat['added_p50_ms']:.3f}) |"
    )


def main() -> None:
    from sessionrec.evaluation.protocol import BenchmarkFolder

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=SHARED_DATA)
    parser.add_argument("--datasets", default=",".join(BENCHMARK_FOLDERS))
    parser.add_argument("--bases", default=",".join(BASES))
    parser.add_argument("--json-out", type=Path, help="also write the raw rows here")
    args = parser.parse_args()
    rows = []
    print(
        "| data | base | base HR@20 / MRR@20 | layer HR@20 / MRR@20 | length 1 | length 2 "
        "| top_k p50 ms base / layer (added) |"
    )
    print("|---|---|---|---|---|---|---|")
    for dataset in args.datasets.split(","):
        folder = BenchmarkFolder(args.data / BENCHMARK_FOLDERS[dataset])
        for label in args.bases.split(","):
            config = base_config(label, dataset)
            if config is None:
                continue
            row = run(dataset, label, config[0], config[1], folder)
            rows.append(row)
            print(markdown(row), flush=True)
            print(
                f"# repeat targets {row['repeat_targets_pct']:.1f}%, mixture "
                f"{json.dumps(row['mixture'])}, fit {row['fit_seconds']:.1f} s, "
                f"latency {json.dumps(row['latency'])}",
                flush=True,
            )
    if args.json_out:
        args.json_out.write_text(json.dumps(rows, indent=2) + "\n")


if __name__ == "__main__":
    main()

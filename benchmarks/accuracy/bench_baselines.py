"""Baselines on the public benchmark splits (benchmark protocol, pessimistic ties).

Usage (one BLAS thread, as in BENCHMARKS.md)::

    OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 \
        .venv/bin/python -m benchmarks.accuracy.bench_baselines \
        [--data ../shared/data] [--models pop,spop,markov,sr,itemknn] [--datasets diginetica,...]

Prints a Markdown table: HR@20 / MRR@20 in percent, next to the published POP and Item-KNN
rows, with fit and evaluation times. Each row goes through the same path as
``sessionrec evaluate --benchmark DIR --model NAME --json``.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from benchmarks.common import BENCHMARK_FOLDERS, SHARED_DATA
from sessionrec.evaluation.protocol import BenchmarkFolder, evaluate
from sessionrec.models.registry import create_model

PUBLISHED = {  # HR@20 / MRR@20 as cited by SR-GNN and GCE-GNN (shared/data/README.md)
    ("diginetica", "pop"): (0.89, 0.20),
    ("diginetica", "itemknn"): (35.75, 11.57),
    ("yoochoose-1_64", "pop"): (6.71, 1.65),
    ("yoochoose-1_64", "itemknn"): (51.60, 21.81),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=SHARED_DATA)
    parser.add_argument("--models", default="pop,spop,markov,sr,itemknn")
    parser.add_argument("--datasets", default=",".join(BENCHMARK_FOLDERS))
    parser.add_argument("--json-out", type=Path, help="also write the raw results here")
    args = parser.parse_args()

    rows = []
    print(
        "| dataset | model | cases | HR@20 | MRR@20 | published HR@20 / MRR@20 | fit s | eval s |"
    )
    print("|---|---|---:|---:|---:|---|---:|---:|")
    for dataset in args.datasets.split(","):
        folder = BenchmarkFolder(args.data / BENCHMARK_FOLDERS[dataset])
        train, test = folder.train(), folder.test()
        counts = train.item_counts()
        for name in args.models.split(","):
            model = create_model(name)
            started = time.perf_counter()
            model.fit(train)
            fit_seconds = time.perf_counter() - started
            result = evaluate(model, test, protocol="benchmark", cutoffs=(20,))
            result.fit_seconds = fit_seconds
            metrics = result.metrics(item_counts=counts)
            published = PUBLISHED.get((dataset, name))
            pub = f"{published[0]:.2f} / {published[1]:.2f}" if published else "-"
            print(
                f"| {dataset} | {name} | {metrics['n_cases']} | {metrics['hr@20']:.2f} | "
                f"{metrics['mrr@20']:.2f} | {pub} | {fit_seconds:.2f} | "
                f"{result.predict_seconds:.1f} |",
                flush=True,
            )
            rows.append({"dataset": dataset, "model": name, **metrics})
    if args.json_out:
        args.json_out.write_text(json.dumps(rows, indent=2) + "\n")


if __name__ == "__main__":
    main()

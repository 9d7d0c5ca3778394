"""``sessionrec auto`` on the public benchmark splits: the chosen model against the best single
candidate, on the test file, overall and at prefix lengths 1 and 2.

Usage (one thread, as in BENCHMARKS.md)::

    OMP_NUM_THREADS=1 NUMBA_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 \\
        .venv/bin/python -m benchmarks.accuracy.bench_auto \\
        [--data ../shared/data] [--datasets diginetica,yoochoose-1_64,rsc15-100k] \\
        [--budget 60m] [--out DIR] [--json-out FILE]

``rsc15-100k`` is the YooChoose sample preprocessed the GRU4Rec way: ``train_full`` ->
``test`` with times, every next click of a test session a case (the next-item protocol).

``auto`` chooses on the last 10% of the training sessions only; the test file is read for
the final figures alone. The best single candidate (the best plain model on validation: a
rule, a tuned session-kNN or a neural model, no repeat layer or ensemble) is refitted on all
the training sessions to be compared on the same test cases. Prints a Markdown table: test
HR@20 / MRR@20 (benchmark protocol, pessimistic ties) and HR@20 at prefix lengths 1 and 2,
with the validation MRR@20 that chose, and the run's wall-clock seconds.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

from benchmarks.common import BENCHMARK_FOLDERS, SHARED_DATA, load_average
from sessionrec.auto import auto, parse_budget, refit
from sessionrec.auto.stages import SINGLE_STAGES
from sessionrec.data.events import read_events
from sessionrec.data.sessions import SessionData
from sessionrec.evaluation.protocol import BenchmarkFolder, evaluate
from sessionrec.models.base import Recommender
from sessionrec.models.registry import load_model

GRU4REC_SPLITS = {
    "rsc15-100k": (
        "yoochoose/rsc15-100k/yoochoose-clicks-100k_train_full.txt",
        "yoochoose/rsc15-100k/yoochoose-clicks-100k_test.txt",
    )
}
"""Data sets in the GRU4Rec TSV format: (training file, test file) under ``--data``."""


def load(data: Path, dataset: str) -> tuple[SessionData, SessionData, str]:
    """Training sessions, test sessions and the evaluation protocol of ``dataset``."""
    if dataset in GRU4REC_SPLITS:
        train_file, test_file = GRU4REC_SPLITS[dataset]
        train = SessionData.from_frame(read_events(data / train_file, preset="gru4rec"))
        test = SessionData.from_frame(read_events(data / test_file, preset="gru4rec"))
        return train, test, "next"
    folder = BenchmarkFolder(data / BENCHMARK_FOLDERS[dataset])
    return folder.train(), folder.test(), "benchmark"


def test_row(model: Recommender, test: SessionData, protocol: str) -> dict[str, Any]:
    result = evaluate(model, test, protocol=protocol, cutoffs=(20,))
    by_length = result.by_length(20)
    row = {key: result.metrics()[key] for key in ("hr@20", "mrr@20")}
    for n in ("1", "2"):
        row[f"hr@20 len {n}"] = 100.0 * by_length[n]["hr@20"]  # by_length: fractions
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=SHARED_DATA)
    parser.add_argument("--datasets", default="diginetica")
    parser.add_argument("--budget", default="60m")
    parser.add_argument("--out", type=Path, default=Path("bench-auto"))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json-out", type=Path, help="also write the raw results here")
    args = parser.parse_args()

    results: list[dict[str, Any]] = []
    print(f"load before: {load_average()}")
    print("| dataset | model | valid MRR@20 | HR@20 | MRR@20 | HR@20 len 1 | HR@20 len 2 |")
    print("|---|---|---:|---:|---:|---:|---:|")
    for dataset in args.datasets.split(","):
        train, test, protocol = load(args.data, dataset)
        started = time.perf_counter()
        summary = auto(train, args.out / dataset, parse_budget(args.budget), seed=args.seed)
        seconds = time.perf_counter() - started
        board = json.loads((Path(summary["work_dir"]) / "leaderboard.json").read_text())
        singles = [c for c in board["candidates"] if c["stage"] in SINGLE_STAGES]
        single = max(singles, key=lambda c: c["mrr"])
        work = Path(summary["work_dir"]) / "candidates" / single["label"]
        rows = [
            (f"auto: {summary['chosen']}", summary["valid_mrr@20"], load_model(args.out / dataset)),
            (f"best single: {single['label']}", single["mrr"], refit(load_model(work), train)),
        ]
        for label, valid_mrr, model in rows:
            row = test_row(model, test, protocol)
            results.append({"dataset": dataset, "model": label, "valid_mrr@20": valid_mrr, **row})
            print(
                f"| {dataset} | {label} | {valid_mrr:.2f} | {row['hr@20']:.2f} | "
                f"{row['mrr@20']:.2f} | {row['hr@20 len 1']:.2f} | {row['hr@20 len 2']:.2f} |"
            )
        print(f"{dataset}: auto ran {seconds:.0f}s for a budget of {args.budget}")
    print(f"load after: {load_average()}")
    if args.json_out is not None:
        args.json_out.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
